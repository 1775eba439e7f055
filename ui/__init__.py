"""parttrack.ui: the PyQt6 live viewer (:mod:`ui.viewer`, the only module importing Qt) and
its screenshot helper. It draws with :mod:`tracker.overlay` (numpy/OpenCV only), which the
batch path shares; ``ui`` imports ``tracker`` and ``engine``, never the other way round."""

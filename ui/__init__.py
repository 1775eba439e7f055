"""parttrack.ui: overlay drawing (numpy/OpenCV only, :mod:`ui.overlay`) and the PyQt6 live
viewer (:mod:`ui.viewer`, the only module importing Qt)."""

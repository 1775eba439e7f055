"""parttrack.tracker: video sources, per-part pose extraction, Kalman smoothing, tracks,
skeleton, exporters, batch processing and the command-line interface."""

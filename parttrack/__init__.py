"""parttrack: learn an articulated subject's parts from video without labels, track each
part's pose, export the tracks.

The public Python API (everything else is reachable as the subpackages ``parttrack.engine``,
``parttrack.tracker`` and ``parttrack.ui``, whose internals may change between versions):

- :func:`load_model` — a trained model bundle with its inference runtime (:class:`Model`);
- :func:`track_video` — track a recorded file offline (Kalman filter + RTS smoother), the tracks
  in memory as arrays (:class:`Tracks`; :meth:`Tracks.to_dataframe` with pandas);
- :func:`track_to_folder` — the same, written as a ``parttrack track`` result folder (CSV,
  joints, optional overlay video, label PNGs and export formats);
- :class:`Tracker` — frame by frame for live use and closed-loop experiments
  (``process(frame) -> PartPoses``, causal Kalman filter);
- :func:`export` — write export formats (``nwb``, ``dlc``, ``sleap``, ``bvh``, ``ae``,
  ``blender``) from a result folder.

Coordinates are the source video's pixels (x right, y down, pixel centres at integers), angles
degrees counter-clockwise on screen from +x in (-180, 180], times seconds from the stream's
timestamps: README, "Conventions: coordinates, angles, time".
"""

from __future__ import annotations

from importlib import import_module
from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("parttrack")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

_API = ("Model", "Tracks", "Tracker", "export", "load_model", "track_to_folder", "track_video")
__all__ = ["__version__", *_API]


def __getattr__(name: str):
    # Lazy: `import parttrack` stays cheap (no ONNX Runtime, OpenCV or PyAV until used).
    if name in _API:
        return getattr(import_module("parttrack.api"), name)
    raise AttributeError(f"module 'parttrack' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_API))

"""Which cameras there are, by name and resolution, for the viewer's camera picker (C).

:func:`list_cameras` asks Qt's ``QMediaDevices`` (``PyQt6.QtMultimedia``) first: names and the
resolutions each camera offers. QtMultimedia needs system libraries that are not always
installed (on a bare Linux it fails to import without ``libpulse``); then, on Linux, the names
come from ``/sys/class/video4linux/video*/name`` (no resolutions), and elsewhere the picker
offers indices 0–3. The picker's list is editable: a stream URL or a device path can be typed.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class CameraInfo:
    """One camera: ``spec`` opens it (an OpenCV index, or a device path/URL), ``name`` is
    what the system calls it, ``resolutions`` the (width, height) modes it offers (may be empty)."""

    spec: int | str
    name: str
    resolutions: tuple[tuple[int, int], ...] = field(default=())

    def label(self) -> str:
        res = ", ".join(f"{w}×{h}" for w, h in self.resolutions[:4])
        more = f" (+{len(self.resolutions) - 4})" if len(self.resolutions) > 4 else ""
        where = f"camera {self.spec}" if isinstance(self.spec, int) else str(self.spec)
        return f"{self.name} — {res}{more} [{where}]" if res else f"{self.name} [{where}]"


def _index_of(device_id: str) -> int | str:
    m = re.fullmatch(r"/dev/video(\d+)", device_id)
    return int(m.group(1)) if m else device_id


def qt_cameras() -> list[CameraInfo] | None:
    """Cameras from ``QMediaDevices.videoInputs()``; None when QtMultimedia cannot be imported."""
    try:
        from PyQt6.QtMultimedia import QMediaDevices
    except ImportError:
        return None
    out = []
    for i, dev in enumerate(QMediaDevices.videoInputs()):
        raw = bytes(dev.id()).decode("utf-8", "replace")
        spec = _index_of(raw) if sys.platform.startswith("linux") else i
        modes = sorted({(f.resolution().width(), f.resolution().height()) for f in dev.videoFormats()},
                       key=lambda wh: -wh[0] * wh[1])
        out.append(CameraInfo(spec, dev.description() or f"camera {i}", tuple(modes)))
    return out


def sysfs_cameras(root: str | Path = "/sys/class/video4linux") -> list[CameraInfo]:
    """Linux capture devices by name from sysfs (no resolutions)."""
    out = []
    for d in sorted(Path(root).glob("video*"), key=lambda p: int(re.sub(r"\D", "", p.name) or 0)):
        try:
            name = (d / "name").read_text().strip()
        except OSError:
            name = d.name
        out.append(CameraInfo(int(re.sub(r"\D", "", d.name) or 0), name or d.name))
    return out


def list_cameras() -> list[CameraInfo]:
    """The cameras to offer (see the module docstring); never raises."""
    cams = qt_cameras()
    if cams:
        return cams
    if sys.platform.startswith("linux"):
        cams = sysfs_cameras()
        if cams:
            return cams
    return [CameraInfo(i, f"camera {i}") for i in range(4)]


def parse_choice(text: str, cameras: list[CameraInfo]) -> int | str | None:
    """The picker's text → what to open: a listed camera's spec, a typed index, URL or path."""
    text = text.strip()
    for cam in cameras:
        if text == cam.label():
            return cam.spec
    if not text:
        return None
    return int(text) if text.isdigit() else text

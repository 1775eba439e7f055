"""Check, before Qt starts, that the system libraries of Qt's xcb platform plugin are installed.

On a fresh Debian/Ubuntu machine PyQt6's wheels find most of what they need, but the xcb
platform plugin (``PyQt6/Qt6/plugins/platforms/libqxcb.so``, the X11 one) links against
system libraries such as ``libxcb-icccm.so.4`` and ``libxcb-keysyms.so.1`` that a minimal
install lacks. Qt then *aborts the process* (exit 134) with "could not load the Qt platform
plugin xcb", naming a library that is not necessarily the missing one. ``ldd`` on the plugin
lists exactly the libraries that do not load ("=> not found"), so :func:`check_qt_platform`
runs it first and turns the result into an error naming the libraries and the apt (Debian,
Ubuntu) and dnf (Fedora, RHEL) packages that provide them.

The check applies only when Qt will use xcb: ``QT_QPA_PLATFORM`` starting with ``xcb``, or
unset on Linux with ``DISPLAY`` set outside a Wayland session (``XDG_SESSION_TYPE=wayland``
with ``WAYLAND_DISPLAY`` set makes Qt 6 pick its wayland plugin). ``offscreen``, ``wayland``,
``vnc`` … are not checked. Nothing here imports Qt.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from parttrack.engine.errors import ParttrackError

#: Shared library → (Debian/Ubuntu package, Fedora/RHEL package). The xcb plugin's usual
#: system dependencies (Qt's own list of X11 requirements, plus what PyQt6's wheel does not bundle).
PACKAGES: dict[str, tuple[str, str]] = {
    "libxcb-cursor.so.0": ("libxcb-cursor0", "xcb-util-cursor"),
    "libxcb-icccm.so.4": ("libxcb-icccm4", "xcb-util-wm"),
    "libxcb-keysyms.so.1": ("libxcb-keysyms1", "xcb-util-keysyms"),
    "libxcb-image.so.0": ("libxcb-image0", "xcb-util-image"),
    "libxcb-render-util.so.0": ("libxcb-render-util0", "xcb-util-renderutil"),
    "libxcb-util.so.1": ("libxcb-util1", "xcb-util"),
    "libxcb.so.1": ("libxcb1", "libxcb"),
    "libxcb-randr.so.0": ("libxcb-randr0", "libxcb"),
    "libxcb-render.so.0": ("libxcb-render0", "libxcb"),
    "libxcb-shape.so.0": ("libxcb-shape0", "libxcb"),
    "libxcb-shm.so.0": ("libxcb-shm0", "libxcb"),
    "libxcb-sync.so.1": ("libxcb-sync1", "libxcb"),
    "libxcb-xfixes.so.0": ("libxcb-xfixes0", "libxcb"),
    "libxcb-xinput.so.0": ("libxcb-xinput0", "libxcb"),
    "libxcb-xkb.so.1": ("libxcb-xkb1", "libxcb"),
    "libxcb-glx.so.0": ("libxcb-glx0", "libxcb"),
    "libX11-xcb.so.1": ("libx11-xcb1", "libX11-xcb"),
    "libX11.so.6": ("libx11-6", "libX11"),
    "libxkbcommon-x11.so.0": ("libxkbcommon-x11-0", "libxkbcommon-x11"),
    "libxkbcommon.so.0": ("libxkbcommon0", "libxkbcommon"),
    "libSM.so.6": ("libsm6", "libSM"),
    "libICE.so.6": ("libice6", "libICE"),
    "libEGL.so.1": ("libegl1", "libglvnd-egl"),
    "libGL.so.1": ("libgl1", "libglvnd-glx"),
    "libOpenGL.so.0": ("libopengl0", "libglvnd-opengl"),
    "libfontconfig.so.1": ("libfontconfig1", "fontconfig"),
    "libfreetype.so.6": ("libfreetype6", "freetype"),
    "libdbus-1.so.3": ("libdbus-1-3", "dbus-libs"),
    "libglib-2.0.so.0": ("libglib2.0-0", "glib2"),
}


def qt_platform(environ=None) -> str:
    """The platform plugin Qt 6 will load on this machine: ``QT_QPA_PLATFORM``'s first entry
    (``"xcb;wayland"`` → ``xcb``, options after ``:`` dropped) when set; else, on Linux,
    ``wayland`` in a Wayland session (``XDG_SESSION_TYPE=wayland`` and ``WAYLAND_DISPLAY`` set),
    otherwise ``xcb``; ``""`` on other systems (their plugins need no system libraries)."""
    env = os.environ if environ is None else environ
    value = (env.get("QT_QPA_PLATFORM") or "").strip()
    if value:
        return value.split(";")[0].split(":")[0].strip().lower()
    if not sys.platform.startswith("linux"):
        return ""
    if env.get("XDG_SESSION_TYPE", "").lower() == "wayland" and env.get("WAYLAND_DISPLAY"):
        return "wayland"
    return "xcb"


def xcb_plugin() -> Path | None:
    """PyQt6's ``Qt6/plugins/platforms/libqxcb.so`` (found without importing Qt), or None."""
    spec = importlib.util.find_spec("PyQt6")
    if spec is None or not spec.submodule_search_locations:
        return None
    for root in spec.submodule_search_locations:
        for sub in ("Qt6", "Qt"):
            p = Path(root) / sub / "plugins" / "platforms" / "libqxcb.so"
            if p.is_file():
                return p
    return None


def run_ldd(path: Path) -> str | None:
    """``ldd PATH``'s output (stdout and stderr), or None when ldd is not there or fails to run."""
    ldd = shutil.which("ldd")
    if ldd is None:
        return None
    try:
        proc = subprocess.run([ldd, str(path)], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    return proc.stdout + proc.stderr


#: The ldd runner (a module attribute so tests can simulate a missing library).
LDD = run_ldd


def missing_libraries(ldd_output: str) -> list[str]:
    """Library names on ``name => not found`` lines of ldd output, in order, without repeats."""
    found = re.findall(r"^\s*(\S+)\s+=>\s+not found", ldd_output or "", flags=re.MULTILINE)
    return list(dict.fromkeys(found))


def install_hint(libraries) -> str:
    """The apt and dnf commands that install ``libraries`` (sonames); libraries not in
    :data:`PACKAGES` are named with how to find their package."""
    libraries = list(libraries)
    apt = list(dict.fromkeys(PACKAGES[lib][0] for lib in libraries if lib in PACKAGES))
    dnf = list(dict.fromkeys(PACKAGES[lib][1] for lib in libraries if lib in PACKAGES))
    unknown = [lib for lib in libraries if lib not in PACKAGES]
    parts = []
    if apt:
        parts.append(f"on Debian/Ubuntu: sudo apt-get install {' '.join(apt)}; "
                     f"on Fedora/RHEL: sudo dnf install {' '.join(dnf)}")
    if unknown:
        parts.append(f"find the package of {', '.join(unknown)} with `apt-file search NAME` or "
                     f"`dnf provides '*/NAME'`")
    return "; ".join(parts)


def check_qt_platform(environ=None) -> None:
    """Raise when Qt would use xcb and the xcb plugin's libraries do not all load.

    Does nothing for other platforms, when PyQt6 or its xcb plugin is not found (Qt reports
    that itself), or when ``ldd`` cannot be run.

    Raises:
        ParttrackError: exit status 2; the message names the missing libraries, the hint the
            apt and dnf commands (:func:`install_hint`).
    """
    if qt_platform(environ) != "xcb":
        return
    plugin = xcb_plugin()
    if plugin is None:
        return
    missing = missing_libraries(LDD(plugin) or "")
    if missing:
        raise ParttrackError(
            f"the viewer cannot start: Qt's xcb platform plugin ({plugin.name}) needs system libraries that "
            f"are not installed: {', '.join(missing)}",
            install_hint(missing) + " (or run headless: `parttrack track VIDEO -o OUT --overlay`)")

"""The viewer's check of Qt's xcb platform plugin libraries (ui.qt_platform), with ldd simulated."""

import shutil

import pytest

from parttrack.ui import qt_platform
from parttrack.ui.qt_platform import PACKAGES, check_qt_platform, install_hint, missing_libraries
from parttrack.ui.qt_platform import qt_platform as platform

LDD_MISSING = """\
\tlinux-vdso.so.1 (0x00007ffd5a3f1000)
\tlibQt6XcbQpa.so.6 => /venv/PyQt6/Qt6/plugins/platforms/../../lib/libQt6XcbQpa.so.6 (0x00007f...)
\tlibxcb-icccm.so.4 => not found
\tlibxcb-keysyms.so.1 => not found
\tlibxcb.so.1 => /lib/x86_64-linux-gnu/libxcb.so.1 (0x00007f...)
\tlibxcb-icccm.so.4 => not found
\tlibfoo-unknown.so.7 => not found
"""
LDD_OK = "\tlibxcb.so.1 => /lib/x86_64-linux-gnu/libxcb.so.1 (0x00007f...)\n"


@pytest.mark.parametrize("env, expected", [
    ({"QT_QPA_PLATFORM": "offscreen", "DISPLAY": ":0"}, "offscreen"),
    ({"QT_QPA_PLATFORM": "xcb"}, "xcb"),
    ({"QT_QPA_PLATFORM": "wayland;xcb"}, "wayland"),
    ({"QT_QPA_PLATFORM": "xcb:nograb"}, "xcb"),
    ({"DISPLAY": ":0"}, "xcb"),
    ({"DISPLAY": ":0", "WAYLAND_DISPLAY": "wayland-0", "XDG_SESSION_TYPE": "wayland"}, "wayland"),
])
def test_platform(env, expected, monkeypatch):
    monkeypatch.setattr(qt_platform.sys, "platform", "linux")
    assert platform(env) == expected


def test_missing_libraries_and_hint():
    missing = missing_libraries(LDD_MISSING)
    assert missing == ["libxcb-icccm.so.4", "libxcb-keysyms.so.1", "libfoo-unknown.so.7"]
    hint = install_hint(missing)
    assert "sudo apt-get install libxcb-icccm4 libxcb-keysyms1;" in hint
    assert "sudo dnf install xcb-util-wm xcb-util-keysyms" in hint
    assert "libfoo-unknown.so.7" in hint and "apt-file search" in hint
    assert missing_libraries(LDD_OK) == []
    assert all(len(v) == 2 and all(v) for v in PACKAGES.values())


def test_check_only_for_xcb(monkeypatch):
    calls = []
    monkeypatch.setattr(qt_platform, "LDD", lambda p: calls.append(p) or LDD_MISSING)
    check_qt_platform({"QT_QPA_PLATFORM": "offscreen", "DISPLAY": ":0"})
    assert calls == []
    monkeypatch.setattr(qt_platform, "LDD", lambda p: LDD_OK)
    check_qt_platform({"QT_QPA_PLATFORM": "xcb"})  # everything loads: no error


def test_viewer_reports_missing_libraries_before_qt_starts(monkeypatch, capsys):
    """`parttrack --video clip.mp4` with a display but a missing xcb library: exit 2, the error
    names the libraries and the packages, before any source, model or window is opened."""
    if qt_platform.xcb_plugin() is None:
        pytest.skip("PyQt6 has no xcb plugin here")
    monkeypatch.setattr(qt_platform, "LDD", lambda p: LDD_MISSING)
    monkeypatch.setattr(qt_platform.sys, "platform", "linux")
    monkeypatch.delenv("QT_QPA_PLATFORM", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.setenv("DISPLAY", ":0")
    from parttrack.tracker.cli import main

    assert main(["--video", "does-not-matter.mp4"]) == 2
    err = capsys.readouterr().err
    assert "libxcb-icccm.so.4, libxcb-keysyms.so.1" in err
    assert "apt-get install libxcb-icccm4 libxcb-keysyms1" in err and "dnf install" in err
    assert "Traceback" not in err and "does-not-matter" not in err


@pytest.mark.skipif(shutil.which("ldd") is None, reason="no ldd")
def test_real_ldd_output_parses():
    plugin = qt_platform.xcb_plugin()
    if plugin is None:
        pytest.skip("PyQt6 has no xcb plugin here")
    out = qt_platform.run_ldd(plugin)
    assert out is not None and "libQt6XcbQpa" in out
    assert all(".so" in lib for lib in missing_libraries(out))  # whatever this machine lacks

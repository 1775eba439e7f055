"""The built wheel, installed into a clean virtual environment, is one package, `parttrack`,
and tracks the shipped clip from outside the repository (issue 17)."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def run(cmd, **kw):
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=900, **kw)
    assert proc.returncode == 0, f"{cmd}\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
    return proc


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    pytest.importorskip("build")
    out = tmp_path_factory.mktemp("dist")
    proc = run([sys.executable, "-m", "build", "--wheel", "--outdir", out, ROOT])
    log = proc.stdout + proc.stderr
    # A clean build log: no deprecation warnings from our packaging (licence table, package data).
    assert "Deprecat" not in log and "is absent from the `packages`" not in log, log[-4000:]
    (whl,) = out.glob("parttrack-*.whl")
    return whl


def test_wheel_has_one_top_level_package(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names}
    assert {t for t in tops if not t.endswith(".dist-info")} == {"parttrack"}
    for f in ("parttrack/api.py", "parttrack/engine/runtime/base.py", "parttrack/tracker/cli/__init__.py",
              "parttrack/ui/viewer.py", "parttrack/trained/bbb/model.onnx", "parttrack/trained/bbb/clip.mp4",
              "parttrack/trained/prior/weights.npz", "parttrack/trained/prior/config.json"):
        assert f in names, f


def test_wheel_installs_and_tracks_from_outside_the_repository(wheel, tmp_path):
    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", venv])
    py = venv / "bin" / "python"
    site = Path(run([py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip())
    # The dependencies come from this test environment (a plain path entry: its .pth files, such
    # as an editable install of parttrack, are not run); parttrack itself only from the wheel.
    (site / "zz_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    run([py, "-m", "pip", "install", "--no-deps", "--no-index", wheel])
    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH",)}
    code = ("import parttrack, pathlib; print(parttrack.__version__); print(pathlib.Path(parttrack.__file__).parent); "
            "import parttrack.engine.bundle as b; print(b.default_model_path()); "
            "from parttrack.tracker.cli.train import prior_bundle; print((prior_bundle() / 'weights.npz').is_file())")
    out = run([py, "-c", code], cwd=work, env=env).stdout.split()
    assert out[0] != "0.0.0+unknown" and out[1].startswith(str(site)) and out[2].startswith(str(site))
    assert out[3] == "True"      # `parttrack train`'s default start ships with the package
    clip = Path(out[2]) / "clip.mp4"
    run([venv / "bin" / "parttrack", "track", clip, "-o", work / "out", "--no-progress", "--max-frames", "20"],
        cwd=work, env=env)
    lines = (work / "out" / "clip" / "tracks.csv").read_text().splitlines()
    assert lines[0].startswith("frame,time_s,part,part_name") and len(lines) == 1 + 20 * 10

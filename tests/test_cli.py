"""The command line as a user meets it: complete help, and bad input gives a one-line error
(with a hint), a non-zero exit code and no traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from parttrack.tracker.cli import COMMANDS, build_parser, main

ROOT = Path(__file__).resolve().parent.parent


def test_top_level_help_lists_every_command(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    for name in COMMANDS:
        assert name in out
    assert "--camera" in out and "--video" in out
    assert "being built" not in out


@pytest.mark.parametrize("command", COMMANDS)
def test_every_subcommand_has_help(command, capsys):
    with pytest.raises(SystemExit) as info:
        main([command, "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert f"parttrack {command}" in out
    # every option is described (argparse prints the help string after the flags)
    parser = build_parser()
    sub = parser._subparsers._group_actions[0].choices[command]
    for action in sub._actions:
        if action.option_strings and action.dest != "help":
            assert action.help, f"{command} {action.option_strings} has no help text"


def run_cli(*args: str, cwd: Path | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "parttrack", *args], capture_output=True, text=True,
                          env=env, cwd=cwd or ROOT, timeout=timeout)


def assert_user_error(proc: subprocess.CompletedProcess, *words: str) -> None:
    assert proc.returncode not in (0, 1), proc.stderr  # 1 would be an uncaught exception
    assert "Traceback" not in proc.stderr, proc.stderr
    assert "error:" in proc.stderr
    for w in words:
        assert w in proc.stderr, proc.stderr


def _not_a_video(tmp_path: Path) -> Path:
    p = tmp_path / "notes.mp4"
    p.write_text("this is not a video")
    return p


def _read_only_dir(tmp_path: Path) -> Path:
    # a path *under a file* can never be created, even by root
    blocker = tmp_path / "blocker"
    blocker.write_text("")
    return blocker / "out"


CLIP = str(ROOT / "trained" / "bbb" / "clip.mp4")

# (arguments built from tmp_path, words the error must contain)
BAD_INPUT = {
    "missing video": (lambda t: ["track", str(t / "nope.mp4"), "-o", str(t / "o")], ["does not exist"]),
    "corrupt video": (lambda t: ["track", str(_not_a_video(t)), "-o", str(t / "o")], ["not a readable video"]),
    "missing bundle": (lambda t: ["track", CLIP, "-o", str(t / "o"), "--model", str(t / "no_model")],
                       ["does not exist"]),
    "unwritable output": (lambda t: ["track", CLIP, "-o", str(_read_only_dir(t))], ["out"]),
    "viewer missing video": (lambda t: ["--video", str(t / "nope.mp4")], ["does not exist"]),
    "viewer missing camera": (lambda t: ["--camera", "57"], ["camera 57"]),
    "export missing csv": (lambda t: ["export", str(t / "tracks.csv")], ["tracks.csv"]),
    "label missing bundle": (lambda t: ["label", str(t / "nothing")], ["does not exist"]),
    "train unreadable video": (lambda t: ["train", str(_not_a_video(t)), "-o", str(t / "m")],
                               ["not a readable video"]),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUT))
def test_bad_input_is_a_one_line_error(tmp_path, case):
    build, words = BAD_INPUT[case]
    proc = run_cli(*build(tmp_path))
    assert_user_error(proc, *words)
    # nothing half-written is left behind
    for leftover in ("o", "m"):
        out = tmp_path / leftover
        assert not out.exists() or not any(out.rglob("done.json")), f"{case} left {out}"


NO_TORCH = """
import sys
sys.modules['torch'] = None  # any 'import torch' now raises ImportError, as in a plain install
from parttrack.tracker.cli import main
{body}
"""


def _run_without_torch(body: str, tmp_path: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-c", NO_TORCH.format(body=body)], capture_output=True, text=True,
                          env=env, cwd=tmp_path, timeout=180)


def test_plain_install_runs_without_torch(tmp_path):
    """`pip install parttrack` has no torch: help, tracking and export must still work, and
    training must say which extra to install."""
    pytest.importorskip("torch")
    from tests.bundle_factory import make_tiny_bundle
    from tests.videos import moving_square, write_video

    bundle = make_tiny_bundle(tmp_path / "tiny", num_parts=3, input_size=32)
    video = write_video(tmp_path / "v.mp4", moving_square(6))
    body = f"""
import sys
for args in (["--help"], ["train", "--help"], ["track", "--help"]):
    try:
        main(args)
    except SystemExit as e:
        assert e.code == 0, args
code = main(["track", r"{video}", "-o", r"{tmp_path / 'out'}", "--no-progress", "--export", "all",
             "--model", r"{bundle}"])
assert code == 0, code
assert "torch" not in [m for m in sys.modules if sys.modules[m] is not None], "torch was imported"
sys.exit(main(["train", r"{video}", "-o", r"{tmp_path / 'm'}"]))
"""
    proc = _run_without_torch(body, tmp_path)
    assert proc.returncode == 2, proc.stderr + proc.stdout
    assert "training needs torch" in proc.stderr and "parttrack[train]" in proc.stderr
    assert (tmp_path / "out" / "v" / "done.json").is_file()


def test_train_and_the_learn_mode_default_to_one_input_size():
    from parttrack.engine.preprocess import DEFAULT_INPUT_SIZE
    from parttrack.tracker.learn import LearnSettings

    train = build_parser().parse_args(["train", "clip.mp4", "-o", "out"])
    view = build_parser().parse_args([])
    assert train.size == view.learn_size == LearnSettings().size == DEFAULT_INPUT_SIZE == 160

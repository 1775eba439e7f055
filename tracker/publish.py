"""Transactional writing of result folders (layout: :mod:`tracker.results`).

One writer per folder: :func:`result_lock` holds a lock file ``OUT/.<name>.lock`` (a second
run waits for the first). A video's files are written into a hidden sibling
``OUT/.<name>.partial-*`` (:func:`staging_dir`) and renamed into place only when complete
(:func:`publish`), so an existing complete result stays intact until its replacement is
complete. An interrupted run publishes its partial files (``track.json`` ``"complete":
false``, no ``done.json``) only where there is no complete result (:func:`publish_partial`).
Leftovers of a killed run are removed by the next run on that folder (:func:`recover_folder`).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
from pathlib import Path

from parttrack.engine.errors import OutputError
from parttrack.tracker.progress import log as _default_log
from parttrack.tracker.results import DONE_FILE, ERROR_FILE, INFO_FILE, TRACKS_FILE, done_info


def lock_path(out_dir: Path) -> Path:
    """The lock file of a result folder: ``OUT/.<name>.lock`` (beside it, so it survives the
    folder being replaced)."""
    out_dir = Path(out_dir)
    return out_dir.with_name(f".{out_dir.name}.lock")


@contextlib.contextmanager
def result_lock(out_dir: Path, log=None, poll_s: float = 0.5):
    """Hold the lock of ``out_dir`` (``filelock``; released when this process exits, however
    it exits). When another run holds it, says so once through ``log`` and waits.

    Raises:
        OutputError: the lock file cannot be created (the output folder is not writable).
    """
    from filelock import FileLock, Timeout

    path = lock_path(out_dir)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(path))
        try:
            lock.acquire(timeout=0)
        except Timeout:
            (log or _default_log)(f"parttrack: {out_dir} is being written by another parttrack run "
                                  f"(lock {path}); waiting for it to finish")
            lock.acquire(poll_interval=poll_s)
    except OSError as exc:
        raise OutputError(f"cannot lock the result folder {out_dir}: {exc.strerror or exc}",
                          "choose another folder with -o, or fix its permissions") from None
    try:
        yield
    finally:
        lock.release()


def _leftovers(out_dir: Path, kind: str) -> list[Path]:
    parent = Path(out_dir).parent
    if not parent.is_dir():
        return []
    return sorted(parent.glob(f".{Path(out_dir).name}.{kind}-*"))


def recover_folder(out_dir: Path) -> None:
    """Clean up after a run that was killed on ``out_dir`` (call with :func:`result_lock`
    held): an old complete result moved aside but not replaced is put back, staging folders
    are deleted."""
    out_dir = Path(out_dir)
    for old in _leftovers(out_dir, "old"):
        if not out_dir.exists() and (old / DONE_FILE).is_file():
            os.rename(old, out_dir)
        else:
            shutil.rmtree(old, ignore_errors=True)
    for tmp in _leftovers(out_dir, "partial"):
        shutil.rmtree(tmp, ignore_errors=True)


def _new_sibling(out_dir: Path, kind: str, create: bool) -> Path:
    """An unused name ``.<name>.<kind>-<random>`` beside ``out_dir`` (created with the umask's
    permissions when ``create``)."""
    while True:
        p = out_dir.with_name(f".{out_dir.name}.{kind}-{secrets.token_hex(4)}")
        if create:
            try:
                p.mkdir()
            except FileExistsError:
                continue
            return p
        if not os.path.lexists(p):
            return p


def staging_dir(out_dir: Path) -> Path:
    """A new empty hidden sibling ``OUT/.<name>.partial-XXXX`` to write ``out_dir``'s files in.

    Raises:
        OutputError: it cannot be created.
    """
    out_dir = Path(out_dir)
    try:
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        return _new_sibling(out_dir, "partial", create=True)
    except OSError as exc:
        raise OutputError(f"cannot write to the output folder {out_dir.parent}: {exc.strerror or exc}",
                          "choose another folder with -o, or fix its permissions") from None


#: Entries that mark a folder as a parttrack result (which publish may replace).
_RESULT_MARKERS = (DONE_FILE, INFO_FILE, TRACKS_FILE, ERROR_FILE)


def check_replaceable(out_dir: Path) -> None:
    """Raise :class:`OutputError` when ``out_dir`` exists and is not a result folder (a file,
    or a folder with other things in it): publishing would delete them."""
    out_dir = Path(out_dir)
    if not out_dir.exists():
        return
    if not out_dir.is_dir():
        raise OutputError(f"{out_dir} exists and is not a folder", "remove it or choose another -o")
    entries = os.listdir(out_dir)
    if entries and not any(m in entries for m in _RESULT_MARKERS):
        raise OutputError(f"{out_dir} exists and is not a parttrack result folder (it would be replaced)",
                          "move its files away or choose another -o")


def publish(staging: Path, out_dir: Path) -> None:
    """Put the finished folder ``staging`` in place of ``out_dir`` (two renames in the same
    parent; the old folder is deleted only once the new one is in place)."""
    staging, out_dir = Path(staging), Path(out_dir)
    old = None
    if out_dir.exists():
        old = _new_sibling(out_dir, "old", create=False)
        os.rename(out_dir, old)
    os.rename(staging, out_dir)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def publish_partial(staging: Path, out_dir: Path) -> bool:
    """After an interruption: publish the partial folder ``staging`` unless ``out_dir`` holds a
    complete result (which is kept; a ``staging`` that was complete already is published);
    returns whether it was published."""
    staging, out_dir = Path(staging), Path(out_dir)
    if not (staging / DONE_FILE).is_file() and (done_info(out_dir) is not None or not (staging / INFO_FILE).is_file()):
        shutil.rmtree(staging, ignore_errors=True)
        return False
    publish(staging, out_dir)
    return True

"""The live viewer (ui.viewer) driven from small video files under QT_QPA_PLATFORM=offscreen.

Most tests inject a tiny deterministic tracker (the bright square in the test video is part 1)
so they check the viewer — threads, overlay, controls, recording, errors — not a model; the
end-to-end test at the bottom runs the real OnlineTracker on a real (tiny, random) bundle.
"""

from __future__ import annotations

import threading
from types import SimpleNamespace

import numpy as np
import pytest

pytest.importorskip("pytestqt")
from PyQt6.QtCore import Qt

from parttrack.engine.bundle import BundleMeta
from parttrack.tracker.capture import FrameGrabber, LatestSlot, StreamEnd
from parttrack.tracker.core import Frame, JointPositions, PartPoses
from parttrack.tracker.overlay import OverlayStyle
from parttrack.ui.viewer import ViewerWindow, qimage_to_array
from parttrack.ui.worker import TrackingWorker
from tests.videos import write_video

H, W, N = 72, 96, 30
RED, GREEN = (230, 25, 75), (60, 180, 75)
SQUARE = 16


def square_frames(n=N):
    """(n, H, W, 3) RGB: a bright square moving right over a dark background."""
    frames = np.zeros((n, H, W, 3), np.uint8)
    frames[..., 2] = 40
    for i in range(n):
        x = 4 + 2 * i
        frames[i, 28:28 + SQUARE, x:x + SQUARE] = (240, 240, 240)
    return frames


@pytest.fixture
def video(tmp_path):
    return write_video(tmp_path / "square.mp4", square_frames(), fps=25)


class FakeRuntime:
    name, device = "fake", "cpu"

    def __init__(self, k=2):
        self.meta = BundleMeta(num_parts=k, input_size=32, mask_size=(32, 32), part_names=("square", "ghost")[:k],
                               part_colors=(RED, GREEN)[:k])

    def describe(self):
        return "fake runtime (cpu)"


class SquareTracker:
    """Part 1 = the bright pixels (centroid, angle 0); part 2 a fixed point (10, 10); one
    joint between them."""

    def __init__(self, runtime, src_h, src_w):
        assert (src_h, src_w) == (H, W)
        self.threads = set()

    def step(self, frame: Frame):
        self.threads.add(threading.get_ident())
        bright = frame.image.mean(axis=2) > 150
        labels = bright.astype(np.uint8)
        ys, xs = np.nonzero(bright)
        xy = np.array([[xs.mean(), ys.mean()], [10.0, 10.0]])
        poses = PartPoses(frame.index, frame.time_s, xy, np.zeros(2), np.full((2, 2), 6.0), np.array([bright.sum(), 0.0]),
                          np.array([True, True]), np.array([1.0, 0.5]))
        joints = JointPositions(frame.index, frame.time_s, np.array([[1, 2]]), xy.mean(axis=0, keepdims=True))
        return SimpleNamespace(frame=frame, raw=poses, smoothed=poses, labels=labels, joints=joints)


def make_window(qtbot, source, **kw):
    kw.setdefault("make_tracker", SquareTracker)
    kw.setdefault("realtime", False)
    win = ViewerWindow(kw.pop("runtime", FakeRuntime()), source, **kw)
    qtbot.addWidget(win)
    win.resize(480, 400)
    win.show()
    return win


def grab(win):
    return qimage_to_array(win.view.grab().toImage())


def colour_pixels(img, color, tol=12):
    return np.abs(img.astype(int) - np.array(color)).max(axis=2) <= tol


def pause_after_frames(qtbot, win, n=1):
    qtbot.waitUntil(lambda: win.displayed >= n, timeout=10000)
    win.set_paused(True)
    qtbot.wait(150)  # let an in-flight frame land
    win.render()


# --------------------------------------------------------------------------- plumbing
def test_latest_slot_newest_wins_and_counts_drops():
    slot = LatestSlot()
    for i in range(3):
        assert slot.put(i)
    assert slot.take(0) == 2 and slot.dropped == 2
    assert slot.take(0) is None
    slot.close()
    assert not slot.put(5) and slot.take(0) is None


def test_latest_slot_wait_blocks_until_taken():
    slot = LatestSlot()
    slot.put("a")
    done = threading.Event()
    t = threading.Thread(target=lambda: (slot.put("b", wait=True), done.set()))
    t.start()
    assert not done.wait(0.2)  # still blocked: "a" was not taken
    assert slot.take(1) == "a"
    t.join(2)
    assert done.is_set() and slot.take(0) == "b" and slot.dropped == 0


class FakeCamera:
    """A live source producing ``n`` frames at once, then ending."""

    name, width, height, fps, is_live = "fakecam", W, H, 30.0, True

    def __init__(self, n=50):
        self.n, self.exhausted, self.closed = n, threading.Event(), False

    def __iter__(self):
        for i in range(self.n):
            yield Frame(np.full((H, W, 3), i, np.uint8), i, i / 30)
        self.exhausted.set()

    def close(self):
        self.closed = True


def test_grabber_drops_frames_of_a_live_source_when_the_consumer_is_slow():
    cam, slot = FakeCamera(50), LatestSlot()
    grabber = FrameGrabber(cam, slot)
    grabber.start()
    assert cam.exhausted.wait(5)
    item = slot.take(1)
    assert item.frame.index == 49 and slot.dropped == 49  # only the newest frame survives
    end = slot.take(2)
    assert isinstance(end, StreamEnd) and end.error is None
    grabber.stop()
    assert cam.closed and not grabber.alive


def test_grabber_keeps_every_file_frame_when_not_realtime(video):
    from parttrack.tracker.sources import open_source

    slot = LatestSlot()
    grabber = FrameGrabber(open_source(video, threaded=False), slot, realtime=False)
    grabber.start()
    got = []
    while True:
        item = slot.take(5)
        if isinstance(item, StreamEnd):
            break
        got.append(item.frame.index)
    grabber.stop()
    assert got == list(range(N)) and slot.dropped == 0


def test_worker_process_one_without_threads(video):
    from parttrack.tracker.sources import open_source

    src = open_source(video, threaded=False)
    worker = TrackingWorker(src, FakeRuntime(), make_tracker=SquareTracker)
    info = worker.prepare()
    assert (info.width, info.height, info.is_live) == (W, H, False)
    frame = next(iter(src))
    vf = worker.process_one(frame)
    assert vf.tracked.frame is frame and vf.step_ms >= 0
    assert worker.latest() is vf and worker.latest() is None  # collected once
    src.close()


# --------------------------------------------------------------------------- the window
def test_frames_arrive_and_the_window_shows_part_colours_where_the_part_is(qtbot, video):
    win = make_window(qtbot, video, style=OverlayStyle(mask_opacity=1.0, show_outlines=False,
                                                       show_legend=False, show_hud=False,
                                                       show_axes=False, show_skeleton=False))
    pause_after_frames(qtbot, win)
    tracker = win.worker.tracker
    assert tracker.threads and threading.get_ident() not in tracker.threads  # tracked off the GUI thread
    img = grab(win)
    red = colour_pixels(img, RED)
    assert red.sum() > 100
    # where the part is: the square's centroid, mapped into the letterboxed view
    rect = win.view.target_rect()
    frame = win.last.tracked.frame
    cx, cy = win.last.tracked.smoothed.xy[0]
    s = rect.width() / frame.width
    ys, xs = np.nonzero(red)
    assert abs(xs.mean() - (rect.x() + (cx + 0.5) * s)) < 3
    assert abs(ys.mean() - (rect.y() + (cy + 0.5) * s)) < 3
    side = np.sqrt(red.sum())
    assert abs(side - SQUARE * s) < 1.2 * s  # the square's size on screen (edges blend over ~1 source px)


def test_toggles_change_the_picture(qtbot, video):
    win = make_window(qtbot, video)
    pause_after_frames(qtbot, win)
    base = grab(win)
    for name in ("masks", "axes", "skeleton", "legend", "hud"):
        win.actions_by_name[name].trigger()  # off
        changed = grab(win)
        assert (changed != base).any(), name
        win.actions_by_name[name].trigger()  # on again
        assert (grab(win) == base).all(), name
    assert win.style.show_masks and win.style.show_axes  # back to the initial style
    win.set_opacity(0.9)
    more = grab(win)
    red_base, red_more = colour_pixels(base, RED, 20).sum(), colour_pixels(more, RED, 20).sum()
    assert red_more > red_base  # the mask approaches the pure part colour


def test_keyboard_shortcuts(qtbot, video):
    win = make_window(qtbot, video)
    pause_after_frames(qtbot, win)
    win.activateWindow()
    qtbot.waitUntil(win.isActiveWindow, timeout=3000)
    assert win.style.show_masks
    qtbot.keyClick(win, Qt.Key.Key_M)
    assert not win.style.show_masks
    qtbot.keyClick(win, Qt.Key.Key_A)
    qtbot.keyClick(win, Qt.Key.Key_S)
    assert not win.style.show_axes and not win.style.show_skeleton
    opacity = win.style.mask_opacity
    qtbot.keyClick(win, Qt.Key.Key_Minus)
    assert win.style.mask_opacity == pytest.approx(opacity - 0.1)
    qtbot.keyClick(win, Qt.Key.Key_Space)  # resume
    assert not win.worker.paused


def test_recording_writes_a_valid_tracks_csv(qtbot, video, tmp_path):
    from parttrack.tracker.io import TRACKS_COLUMNS, read_tracks_csv

    csv_path = tmp_path / "rec" / "tracks.csv"
    win = make_window(qtbot, video, record=csv_path)
    qtbot.waitUntil(lambda: win.ended, timeout=20000)
    assert not win.actions_by_name["record"].isChecked()  # closed at the end of the file
    assert csv_path.read_text().splitlines()[0] == ",".join(TRACKS_COLUMNS)
    track, names = read_tracks_csv(csv_path)
    assert names == ("square", "ghost")
    assert len(track) == N and list(track.index) == list(range(N))  # every frame (not realtime)
    assert np.all(np.diff(track.xy[:, 0, 0]) > 0)  # the square moves right
    assert track.visible.all() and np.allclose(track.xy[:, 1], 10.0)


def test_record_toggle_and_snapshot(qtbot, video, tmp_path):
    win = make_window(qtbot, video, out_dir=tmp_path / "out", loop=True)
    qtbot.waitUntil(lambda: win.displayed >= 1, timeout=10000)
    win.actions_by_name["record"].trigger()
    qtbot.waitUntil(lambda: win.worker.recording is not None and win.worker.recording.rows >= 6, timeout=10000)
    path = win.worker.recording.path
    win.actions_by_name["record"].trigger()
    assert win.worker.recording is None and path.parent == tmp_path / "out"
    rows = path.read_text().splitlines()
    assert len(rows) >= 7 and (len(rows) - 1) % 2 == 0  # header + K=2 rows per frame
    win.set_paused(True)
    snap = win.save_snapshot()
    import cv2

    saved = cv2.imread(str(snap))[..., ::-1]
    assert snap.parent == tmp_path / "out" and saved.shape == win.rendered.shape
    assert (saved == win.rendered).all()


def test_closing_stops_the_worker_thread(qtbot, video):
    win = make_window(qtbot, video, loop=True, realtime=True)
    qtbot.waitUntil(lambda: win.displayed >= 2, timeout=10000)
    thread, worker = win.thread, win.worker
    assert thread.isRunning() and worker.grabber.alive
    win.close()
    assert not thread.isRunning() and thread.isFinished()
    assert not worker.running and not worker.grabber.alive
    assert win.summary().startswith("viewer: ")


def test_realtime_file_plays_at_its_own_pace(qtbot, video):
    win = make_window(qtbot, video, realtime=True)
    qtbot.waitUntil(lambda: win.ended, timeout=20000)
    # N frames at 25 frames/s take about N/25 s of playing: frames are tracked in order
    assert win.worker is not None and win.worker.processed <= N
    assert win.last.tracked.frame.index == N - 1  # the last frame is never dropped


def test_end_of_file_then_space_plays_again(qtbot, video):
    win = make_window(qtbot, video)
    qtbot.waitUntil(lambda: win.ended, timeout=20000)
    assert "end of square" in win.statusBar().currentMessage()
    win.actions_by_name["pause"].trigger()  # Space
    assert not win.ended and not win.actions_by_name["pause"].isChecked()
    qtbot.waitUntil(lambda: win.ended, timeout=20000)
    assert win.worker.processed == N


def test_loop_keeps_going_past_the_end(qtbot, video):
    win = make_window(qtbot, video, loop=True, max_frames=N + 10)
    qtbot.waitUntil(lambda: win.ended, timeout=20000)
    assert win.worker.processed == N + 10
    assert win.last.tracked.frame.time_s > (N - 1) / 25  # time keeps increasing across loops


def test_window_keeps_the_video_aspect_ratio(qtbot, video):
    win = make_window(qtbot, video)
    pause_after_frames(qtbot, win)
    for size in ((900, 300), (300, 700)):
        win.resize(*size)
        qtbot.waitUntil(lambda: win.view.width() > 0)
        qtbot.wait(50)
        rect = win.view.target_rect()
        assert rect.width() / rect.height() == pytest.approx(W / H, rel=0.02)
        img = grab(win)
        if size[0] > size[1]:  # wide window: black bars left and right
            assert (img[:, : rect.x() - 1] == 0).all() and rect.x() > 10
        else:
            assert (img[: rect.y() - 1] == 0).all() and rect.y() > 10


def test_missing_camera_gives_a_message_not_a_traceback(qtbot, capsys):
    win = make_window(qtbot, None)
    win.open_camera(97)
    qtbot.waitUntil(lambda: win.last_error is not None, timeout=15000)
    assert "camera 97" in win.last_error[0]
    assert "camera 97" in win.view.message
    qtbot.waitUntil(lambda: not win.worker_running, timeout=5000)
    err = capsys.readouterr().err
    assert "error: camera 97" in err and "Traceback" not in err
    win.render()  # the window keeps working
    win.actions_by_name["pause"].trigger()  # Space retries (and fails the same way)
    qtbot.waitUntil(lambda: win.last_error is not None and not win.worker_running, timeout=15000)
    assert "camera 97" in win.last_error[0] and not win.actions_by_name["pause"].isChecked()


class DisconnectingCamera(FakeCamera):
    def __iter__(self):
        from parttrack.engine.errors import InputError

        for i in range(5):
            yield Frame(np.full((H, W, 3), 200, np.uint8), i, i / 30)
        raise InputError("camera 3 disconnected after 5 frames", "reconnect it and start again")


def test_camera_disconnect_is_reported_in_the_window(qtbot):
    class Tracker(SquareTracker):
        def step(self, frame):
            out = super().step(frame)
            return out

    win = make_window(qtbot, DisconnectingCamera(), make_tracker=Tracker)
    qtbot.waitUntil(lambda: win.last_error is not None, timeout=10000)
    assert "disconnected" in win.last_error[0] and "disconnected" in win.view.message
    qtbot.waitUntil(lambda: not win.worker_running, timeout=5000)


def test_tracking_error_does_not_freeze_the_window(qtbot, video):
    class Broken(SquareTracker):
        def step(self, frame):
            raise RuntimeError("boom")

    win = make_window(qtbot, video, make_tracker=Broken)
    qtbot.waitUntil(lambda: win.last_error is not None, timeout=10000)
    assert "boom" in win.last_error[0]
    qtbot.waitUntil(lambda: not win.worker_running, timeout=5000)


def test_switching_sources_stops_the_previous_worker(qtbot, video):
    win = make_window(qtbot, video, loop=True)
    qtbot.waitUntil(lambda: win.displayed >= 2, timeout=10000)
    old_thread = win.thread
    win.open_file(video)
    assert not old_thread.isRunning()
    shown = win.displayed
    qtbot.waitUntil(lambda: win.displayed > shown, timeout=10000)


# --------------------------------------------------------------------------- command line
def test_parttrack_alone_prints_help(capsys):
    from parttrack.tracker.cli import main

    assert main([]) == 0
    out = capsys.readouterr().out
    assert "--camera" in out and "--video" in out


def test_cli_missing_camera_is_an_error_line_without_a_window(capsys):
    from parttrack.tracker.cli import main

    assert main(["--camera", "97"]) == 2
    err = capsys.readouterr().err
    assert "error: camera 97" in err and "hint:" in err and "Traceback" not in err


def test_cli_missing_video_is_an_error_line(capsys, tmp_path):
    from parttrack.tracker.cli import main

    assert main(["--video", str(tmp_path / "nope.mp4")]) == 2
    assert "does not exist" in capsys.readouterr().err


# --------------------------------------------------------------------------- end to end
def test_real_online_tracker_colours_the_parts(qtbot, tmp_path):
    """OnlineTracker (poses, Kalman, labels) + a colour-keyed fake runtime: the window shows
    each part's colour over that part's pixels, and the recording holds smoothed poses."""
    from parttrack.tracker.io import read_tracks_csv
    from tests.fakes import ColorKeyRuntime, flat_parts_frames

    frames, (centres, _, _, _) = flat_parts_frames(12, 96, 128)
    video = write_video(tmp_path / "arm.mp4", frames, fps=25)
    runtime = ColorKeyRuntime()
    csv_path = tmp_path / "arm.csv"
    style = OverlayStyle(mask_opacity=1.0, show_outlines=False, show_axes=False, show_skeleton=False,
                         show_legend=False, show_hud=False)
    win = make_window(qtbot, video, runtime=runtime, make_tracker=None, style=style, record=csv_path)
    qtbot.waitUntil(lambda: win.ended, timeout=30000)
    win.render()
    img = grab(win)
    rect = win.view.target_rect()
    s = rect.width() / 128
    last = win.last.tracked
    assert last.frame.index == 11 and last.labels.shape == (96, 128)
    for part, color in enumerate(runtime.meta.part_colors):
        shown = colour_pixels(img, color, tol=10)
        assert shown.sum() > 50, part
        ys, xs = np.nonzero(shown)
        cx, cy = centres[11, part]
        assert abs(xs.mean() - (rect.x() + (cx + 0.5) * s)) < 6 * s
        assert abs(ys.mean() - (rect.y() + (cy + 0.5) * s)) < 6 * s
    track, names = read_tracks_csv(csv_path)
    assert len(track) == 12 and names == runtime.meta.part_names
    assert np.abs(track.xy[-1] - centres[11]).max() < 8


@pytest.fixture(scope="module")
def tiny_bundle(tmp_path_factory):
    pytest.importorskip("torch")
    from tests.bundle_factory import make_tiny_bundle

    return make_tiny_bundle(tmp_path_factory.mktemp("bundle") / "tiny", num_parts=3, input_size=32)


def test_cli_plays_a_video_with_a_real_bundle_and_records(qapp, tiny_bundle, video, tmp_path, capsys):
    from parttrack.tracker.cli import main
    from parttrack.tracker.io import read_tracks_csv

    csv_path = tmp_path / "cli.csv"
    code = main(["--video", str(video), "--model", str(tiny_bundle), "--backend", "onnxruntime",
                 "--every-frame", "--max-frames", "8", "--record", str(csv_path), "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 0, err
    assert "runtime: onnxruntime" in err and "viewer: 8 frames tracked" in err
    track, names = read_tracks_csv(csv_path)
    assert len(track) == 8 and len(names) == 3


def test_cli_missing_model_is_an_error_line(capsys, video, tmp_path):
    from parttrack.tracker.cli import main

    assert main(["--video", str(video), "--model", str(tmp_path / "no_model")]) == 2
    err = capsys.readouterr().err
    assert "error: model bundle" in err and "does not exist" in err and "Traceback" not in err


def test_screenshot_tool_grabs_the_window(qapp, tiny_bundle, video, tmp_path):
    import cv2

    from parttrack.ui.screenshot import grab_viewer

    out = grab_viewer(video, tmp_path / "shot.png", frame=4, model=tiny_bundle, backend="onnxruntime", width=384)
    img = cv2.imread(str(out))
    assert img is not None and img.shape[1] >= 384 and img.shape[0] > 288  # video area + toolbar


def test_realtime_file_drops_frames_when_tracking_is_slower(qtbot, video):
    import time as _time

    seen = []

    class Slow(SquareTracker):
        def step(self, frame):
            seen.append(frame.index)
            _time.sleep(0.12)  # 3x slower than the video's 25 frames/s
            return super().step(frame)

    win = make_window(qtbot, video, make_tracker=Slow, realtime=True)
    qtbot.waitUntil(lambda: win.ended, timeout=30000)
    assert seen[-1] == N - 1 and len(seen) < N  # newest frame wins: skipped, never queued
    assert np.all(np.diff(seen) > 0) and win.worker.dropped == N - len(seen)


def test_the_status_bar_says_where_the_model_looks():
    from parttrack.engine.bundle import BundleMeta
    from parttrack.ui.viewer import crop_note

    meta = BundleMeta(num_parts=2, input_size=32, mask_size=(8, 8))
    assert crop_note(meta, 96, 128) == "" and crop_note(None, 96, 128) == ""
    cropped = BundleMeta(num_parts=2, input_size=32, mask_size=(8, 8), crop=(8, 4, 64, 64), crop_frame=(128, 96))
    assert crop_note(cropped, 192, 256) == " · model crop 16,8,128,128"
    assert "crop is for 128×96 frames: it sees whole frames here" in crop_note(cropped, 100, 100)

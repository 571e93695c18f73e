"""The render thread: latest request wins, preview then refine, several clients, pacing, tasks."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from pipelines.viewer.camera_conversion import ViewCamera
from pipelines.viewer.render_worker import RenderWorker, RenderWorkerConfig


def camera(x: float) -> ViewCamera:
    return ViewCamera((1.0, 0.0, 0.0, 0.0), (x, 0.0, -2.0), 0.7, 1.0)


def wait_for(condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for the render worker")
        time.sleep(0.005)


class Recorder:
    """A fake renderer that takes ``seconds`` per frame and remembers what it rendered and sent."""

    def __init__(self, seconds: float = 0.0) -> None:
        self.seconds = seconds
        self.rendered: list[tuple[float, str]] = []
        self.sent: list[tuple[int, str]] = []
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()

    def render(self, view: ViewCamera, quality: str) -> np.ndarray:
        self.entered.set()
        self.gate.wait(10)
        time.sleep(self.seconds)
        self.rendered.append((view.position[0], quality))
        return np.zeros((2, 2, 3), dtype=np.uint8)

    def send(self, client_id: int, image: np.ndarray, quality: str) -> None:
        self.sent.append((client_id, quality))


def test_latest_request_wins_and_is_refined_when_still():
    recorder = Recorder()
    worker = RenderWorker(recorder.render, recorder.send, RenderWorkerConfig(settle_seconds=0.05))
    worker.start()
    try:
        recorder.gate.clear()  # hold the first frame while the camera keeps moving
        worker.update_camera(1, camera(0.0))
        assert recorder.entered.wait(10)
        for x in range(1, 30):
            worker.update_camera(1, camera(float(x)))
        recorder.gate.set()
        wait_for(lambda: (29.0, "full") in recorder.rendered)
        time.sleep(0.1)
        positions = [x for x, _ in recorder.rendered]
        # Nothing between the first frame and the newest camera was rendered: no stale pile-up.
        assert set(positions) <= {0.0, 29.0}
        assert recorder.rendered[-1] == (29.0, "full")
        assert worker.frames_of(1) == len(recorder.rendered)
    finally:
        worker.stop()


def test_moving_camera_gets_a_preview_first_then_full_quality():
    recorder = Recorder()
    worker = RenderWorker(recorder.render, recorder.send, RenderWorkerConfig(settle_seconds=0.3))
    worker.start()
    try:
        worker.update_camera(5, camera(1.0))
        wait_for(lambda: len(recorder.sent) >= 2)
        assert recorder.sent[:2] == [(5, "preview"), (5, "full")]
        time.sleep(0.4)
        assert len(recorder.sent) == 2, "a still view must not be re-rendered"
        worker.invalidate(skip_preview=True)  # e.g. new weights from the trainer
        wait_for(lambda: len(recorder.sent) >= 3)
        assert recorder.sent[2] == (5, "full")
    finally:
        worker.stop()


def test_several_clients_are_served_and_removed_clients_are_not():
    recorder = Recorder()
    worker = RenderWorker(recorder.render, recorder.send, RenderWorkerConfig(settle_seconds=0.0))
    worker.start()
    try:
        for client in (1, 2, 3):
            worker.update_camera(client, camera(float(client)))
        wait_for(lambda: all(worker.frames_of(c) >= 1 for c in (1, 2, 3)))
        worker.remove_client(2)
        assert worker.client_ids == [1, 3]
        count = len(recorder.sent)
        worker.invalidate()
        wait_for(lambda: len(recorder.sent) >= count + 2)
        time.sleep(0.05)
        assert {c for c, _ in recorder.sent[count:]} == {1, 3}
    finally:
        worker.stop()


def test_busy_fraction_spaces_frames_out():
    recorder = Recorder(seconds=0.02)
    worker = RenderWorker(recorder.render, recorder.send, RenderWorkerConfig(settle_seconds=0.0, max_busy_fraction=0.25))
    worker.start()
    try:
        start = time.monotonic()
        for step in range(4):
            worker.update_camera(1, camera(float(step)))
            wait_for(lambda: len(recorder.rendered) > step)
        elapsed = time.monotonic() - start
        # Four renders of >= 20 ms at a 25% share need >= 3 pauses of >= 60 ms between them.
        assert elapsed >= 3 * 0.06
        assert worker.busy_seconds <= 0.5 * elapsed
    finally:
        worker.stop()


def test_tasks_run_on_the_render_thread_and_errors_do_not_kill_it():
    calls = []

    def failing_render(view: ViewCamera, quality: str) -> np.ndarray:
        calls.append(quality)
        raise ValueError("bad setting")

    worker = RenderWorker(failing_render, lambda *a: None, RenderWorkerConfig(settle_seconds=0.0))
    worker.start()
    try:
        worker.update_camera(1, camera(0.0))
        wait_for(lambda: len(worker.errors) == 1)
        time.sleep(0.05)
        assert len(calls) == 1, "a failing request must not be retried in a loop"
        thread_name = worker.submit(lambda: threading.current_thread().name).result(timeout=5)
        assert thread_name == "epigraf-viewer-render"
        with pytest.raises(ZeroDivisionError):
            worker.submit(lambda: 1 / 0).result(timeout=5)
    finally:
        worker.stop()
    assert worker.submit(lambda: 1).cancelled()


def test_config_is_validated():
    with pytest.raises(ValueError, match="max_busy_fraction"):
        RenderWorkerConfig(max_busy_fraction=0.0)

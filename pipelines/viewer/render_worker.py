"""One render thread per viewer: latest request wins, a fast preview while moving, refined when still."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import torch

from pipelines.viewer.camera_conversion import ViewCamera

Quality = Literal["preview", "full"]
RenderFn = Callable[[ViewCamera, Quality], np.ndarray]
SendFn = Callable[[int, np.ndarray, Quality], None]


@dataclass
class RenderWorkerConfig:
    """Pacing of the render thread."""

    settle_seconds: float = 0.2
    """A view counts as still (and is re-rendered at full resolution) this long after its last change."""
    max_busy_fraction: float = 1.0
    """Upper bound on the share of wall time the thread spends rendering (1: no pause between frames;
    the live training viewer uses a small share so training keeps its speed)."""
    torch_threads: int = 0
    """Intra-op threads of the render thread (0: leave torch's setting); per thread, so training keeps its own."""

    def __post_init__(self) -> None:
        if not 0.0 < self.max_busy_fraction <= 1.0:
            raise ValueError(f"max_busy_fraction must lie in (0, 1], got {self.max_busy_fraction}")
        if self.settle_seconds < 0 or self.torch_threads < 0:
            raise ValueError("settle_seconds and torch_threads must be >= 0")


@dataclass
class _ClientView:
    camera: ViewCamera | None = None
    version: int = 0
    """Bumped on every change of camera, settings or generator."""
    changed_at: float = 0.0
    preview_version: int = -1
    full_version: int = -1
    skip_preview: bool = False
    frames: int = 0


@dataclass
class _Task:
    function: Callable[[], object]
    future: Future = field(default_factory=Future)


class RenderWorker:
    """Renders frames for every connected client on one thread.

    Each client keeps only its newest camera: requests that arrive while a frame renders replace each
    other, so a slow render never leaves a queue of stale frames behind it. A change is first shown
    at preview quality; once the view has been still for ``settle_seconds`` it is rendered at full
    quality. Other work that must not race with rendering (saving a PNG, extracting a mesh) runs on
    the same thread through :meth:`submit`.
    """

    def __init__(self, render: RenderFn, send: SendFn, config: RenderWorkerConfig | None = None) -> None:
        self.config = RenderWorkerConfig() if config is None else config
        self._render, self._send = render, send
        self._views: dict[int, _ClientView] = {}
        self._tasks: list[_Task] = []
        self._condition = threading.Condition()
        self._stop = False
        self._thread: threading.Thread | None = None
        self.frames_rendered = 0
        self.last_frame_seconds = 0.0
        self.busy_seconds = 0.0
        self.errors: list[str] = []

    # ------------------------------------------------------------------------- requests (any thread)
    def start(self) -> None:
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="epigraf-viewer-render", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        with self._condition:
            self._stop = True
            self._condition.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        for task in self._tasks:
            task.future.cancel()
        self._tasks.clear()

    def update_camera(self, client_id: int, camera: ViewCamera) -> None:
        """A client's camera moved (or the client connected): its newest camera replaces any pending one."""
        with self._condition:
            view = self._views.setdefault(client_id, _ClientView())
            view.camera = camera
            self._touch(view, skip_preview=False)

    def invalidate(self, skip_preview: bool = False) -> None:
        """Settings or weights changed: every client needs a new frame (``skip_preview``: go straight to full)."""
        with self._condition:
            for view in self._views.values():
                self._touch(view, skip_preview)

    def remove_client(self, client_id: int) -> None:
        with self._condition:
            self._views.pop(client_id, None)

    def camera_of(self, client_id: int) -> ViewCamera | None:
        with self._condition:
            view = self._views.get(client_id)
            return None if view is None else view.camera

    def frames_of(self, client_id: int) -> int:
        with self._condition:
            view = self._views.get(client_id)
            return 0 if view is None else view.frames

    def is_settled(self) -> bool:
        """Whether every client's newest view has been rendered at full quality (nothing is left to draw)."""
        with self._condition:
            return all(view.camera is None or view.full_version >= view.version for view in self._views.values())

    @property
    def client_ids(self) -> list[int]:
        with self._condition:
            return list(self._views)

    def submit(self, function: Callable[[], object]) -> Future:
        """Runs ``function`` on the render thread (between frames); returns its future."""
        task = _Task(function)
        with self._condition:
            if self._stop:
                task.future.cancel()
                return task.future
            self._tasks.append(task)
            self._condition.notify_all()
        return task.future

    def _touch(self, view: _ClientView, skip_preview: bool) -> None:
        view.version += 1
        view.changed_at = time.monotonic()
        view.skip_preview = skip_preview
        self._condition.notify_all()

    # ----------------------------------------------------------------------------- render thread
    def _next_job(self) -> tuple[str, object] | None:
        """What to do next, waiting as long as nothing is due; None when stopping."""
        with self._condition:
            while not self._stop:
                if self._tasks:
                    return "task", self._tasks.pop(0)
                now = time.monotonic()
                wake_at = None
                best: tuple[float, int, Quality] | None = None
                for client_id, view in self._views.items():
                    if view.camera is None or view.full_version >= view.version:
                        continue
                    settled = now - view.changed_at >= self.config.settle_seconds
                    if settled or view.skip_preview:
                        job = (view.changed_at, client_id, "full")
                    elif view.preview_version < view.version:
                        job = (view.changed_at, client_id, "preview")
                    else:
                        due = view.changed_at + self.config.settle_seconds
                        wake_at = due if wake_at is None else min(wake_at, due)
                        continue
                    # Serve the client that has waited longest first, so no client starves.
                    if best is None or job[0] < best[0]:
                        best = job
                if best is not None:
                    _, client_id, quality = best
                    view = self._views[client_id]
                    return "frame", (client_id, view.camera, view.version, quality)
                self._condition.wait(None if wake_at is None else max(wake_at - time.monotonic(), 0.0))
        return None

    def _run(self) -> None:
        if self.config.torch_threads > 0:
            torch.set_num_threads(self.config.torch_threads)
        while True:
            job = self._next_job()
            if job is None:
                return
            kind, payload = job
            start = time.monotonic()
            if kind == "task":
                self._run_task(payload)
            else:
                self._render_frame(*payload)
            elapsed = time.monotonic() - start
            self.busy_seconds += elapsed
            self._pause(elapsed)

    def _run_task(self, task: _Task) -> None:
        if not task.future.set_running_or_notify_cancel():
            return
        try:
            task.future.set_result(task.function())
        except BaseException as error:  # handed to whoever waits on the future
            task.future.set_exception(error)

    def _render_frame(self, client_id: int, camera: ViewCamera, version: int, quality: Quality) -> None:
        start = time.monotonic()
        try:
            image = self._render(camera, quality)
        except Exception as error:  # a bad setting must not kill the thread; show it and keep serving
            self._record_error(client_id, version, error)
            return
        self.last_frame_seconds = time.monotonic() - start
        with self._condition:
            view = self._views.get(client_id)
            if view is None:  # disconnected while rendering
                return
            view.preview_version = max(view.preview_version, version)
            if quality == "full":
                view.full_version = max(view.full_version, version)
            view.frames += 1
            self.frames_rendered += 1
        try:
            self._send(client_id, image, quality)
        except Exception as error:  # the browser may close mid-send
            self.errors.append(f"sending to client {client_id}: {error}")

    def _record_error(self, client_id: int, version: int, error: Exception) -> None:
        self.errors.append(f"{type(error).__name__}: {error}")
        del self.errors[:-20]
        with self._condition:
            view = self._views.get(client_id)
            if view is not None:  # do not retry the same failing request in a loop
                view.preview_version = max(view.preview_version, version)
                view.full_version = max(view.full_version, version)

    def _pause(self, elapsed: float) -> None:
        """Keeps the busy share at most max_busy_fraction (a render of t seconds is followed by t (1/f - 1) idle)."""
        fraction = self.config.max_busy_fraction
        if fraction >= 1.0:
            return
        deadline = time.monotonic() + elapsed * (1.0 / fraction - 1.0)
        with self._condition:
            while not self._stop and time.monotonic() < deadline:
                self._condition.wait(deadline - time.monotonic())

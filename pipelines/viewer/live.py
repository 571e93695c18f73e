"""The viewer on the live EMA generator of a training run, refreshed once per tick."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pipelines.model import GeneratorModel
from pipelines.pipeline import Pipeline
from pipelines.viewer.server import GeneratorViewer, ViewerConfig
from renderers.cameras import Cameras


@dataclass
class LiveViewerConfig(ViewerConfig):
    """Viewer defaults that leave the machine to training: small frames, one thread, a bounded busy share."""

    resolution: int = 96
    """Rows of a refined frame."""
    samples_per_ray: int = 24
    """Samples per ray at start."""
    max_busy_fraction: float = 0.05
    """The render thread renders at most this share of wall time, and only while a browser is connected
    and the camera, GUI or weights changed. While it renders it takes a core from training's
    threads, so training slows by more than this share (0.1 measured 8-16% on 2 cores)."""
    torch_threads: int = 1
    """Intra-op threads of the render thread (training keeps its own setting)."""
    preview_grid_resolution: int = 32
    """Cells per side of the preview's occupancy grid: rebuilt for every new set of weights, so kept small."""
    output_dir: Path = Path("viewer_output")
    """Where saved views and meshes go (the trainer passes the run folder's viewer/ directory)."""


class LiveViewer:
    """Shows a training run's EMA generator in the browser.

    The trainer calls :meth:`start` once, :meth:`update_model` once per tick from the training
    thread (an in-place copy of the weights under a lock; rendering uses the other buffer, so it never
    sees a half-updated model and training never waits for a frame) and :meth:`stop` at the end.
    """

    def __init__(self, model: GeneratorModel, config: ViewerConfig | None = None, cameras: Cameras | None = None) -> None:
        self.config = LiveViewerConfig() if config is None else config
        self.viewer = GeneratorViewer(model, self.config, cameras=cameras, title="epigraf · live training")
        self.ticks = 0

    @classmethod
    def from_pipeline(cls, pipeline: Pipeline, config: ViewerConfig | None = None) -> LiveViewer:
        """A viewer on the pipeline's EMA generator, framed by its camera distribution."""
        return cls(pipeline.model(), config)

    @property
    def url(self) -> str | None:
        return self.viewer.url

    def start(self) -> str:
        """Starts serving; returns the URL (also printed)."""
        return self.viewer.start()

    def update_model(self, model: GeneratorModel) -> None:
        """New EMA weights (call once per tick from the training thread); connected browsers refresh."""
        self.ticks += 1
        self.viewer.update_model(model)

    def stop(self) -> None:
        self.viewer.stop()

    def __enter__(self) -> LiveViewer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

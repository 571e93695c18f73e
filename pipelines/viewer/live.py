"""The viewer on the live EMA generator of a training run, refreshed once per tick."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from epigraf_field.generator import TriPlaneGenerator
from pipelines.camera_distributions import CameraDistributionConfig
from pipelines.viewer.server import GeneratorViewer, ViewerConfig
from renderers.cameras import Cameras
from renderers.volume_renderer import VolumeRendererConfig


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
    output_dir: Path = Path("viewer_output")
    """Where saved views and meshes go (the trainer passes the run folder's viewer/ directory)."""


class LiveViewer:
    """Shows a training run's EMA generator in the browser.

    The trainer calls :meth:`start` once, :meth:`update_generator` once per tick from the training
    thread (an in-place copy of the weights under a lock; rendering uses the other buffer, so it never
    sees a half-updated model and training never waits for a frame) and :meth:`stop` at the end.
    """

    def __init__(
        self,
        generator: TriPlaneGenerator,
        renderer_config: VolumeRendererConfig | None = None,
        camera_config: CameraDistributionConfig | None = None,
        config: ViewerConfig | None = None,
        cameras: Cameras | None = None,
    ) -> None:
        self.config = LiveViewerConfig() if config is None else config
        self.viewer = GeneratorViewer(
            generator, renderer_config, camera_config, self.config, cameras=cameras, title="epigraf · live training"
        )
        self.ticks = 0

    @classmethod
    def from_pipeline(cls, pipeline: object, config: ViewerConfig | None = None, num_cameras: int = 32) -> LiveViewer:
        """A viewer on ``pipeline.G_ema`` with the pipeline's renderer config and cameras (patch-gan, eg3d)."""
        generator = getattr(pipeline, "G_ema", None)
        model = getattr(pipeline, "config", None)
        if generator is None or not hasattr(model, "renderer") or not hasattr(model, "cameras"):
            raise ValueError(
                f"LiveViewer.from_pipeline needs a pipeline with G_ema, config.renderer and config.cameras; "
                f"{type(pipeline).__name__} lacks one: build LiveViewer(generator, renderer_config, camera_config) instead"
            )
        cameras = pipeline.sample_cameras(num_cameras, torch.Generator().manual_seed(0)) if num_cameras > 0 else None
        return cls(generator, model.renderer, model.cameras, config, cameras)

    @property
    def url(self) -> str | None:
        return self.viewer.url

    def start(self) -> str:
        """Starts serving; returns the URL (also printed)."""
        return self.viewer.start()

    def update_generator(self, generator: TriPlaneGenerator) -> None:
        """New EMA weights (call once per tick from the training thread); connected browsers refresh."""
        self.ticks += 1
        self.viewer.update_generator(generator)

    def stop(self) -> None:
        self.viewer.stop()

    def __enter__(self) -> LiveViewer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


"""A generator ready to be evaluated or shown: latents from seeds, fields, and batched renders at any resolution."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from epigraf_field.generator import TriPlaneGenerator
from pipelines.bundle import GeneratorBundle
from pipelines.camera_distributions import CameraDistributionConfig, sample_cameras
from renderers.cameras import Cameras
from renderers.volume_renderer import RenderedImages, VolumeRenderer


@dataclass
class EvaluationModel:
    """A tri-plane generator with the renderer and camera distribution it was trained with.

    The metrics use only ``z_dim``, ``device``, ``sample_cameras``, ``fields`` and ``render``; another
    pipeline (e.g. one with a 2D upsampler) can pass any object with those members.
    """

    generator: TriPlaneGenerator
    renderer: VolumeRenderer
    cameras: CameraDistributionConfig
    truncation_psi: float = 1.0
    """Truncation towards the mean w (1: none)."""
    truncation_cutoff: int | None = None
    """Truncate only the first N ws (None: all)."""
    dataset: object | None = None
    """The training dataset, for camera distributions that draw the dataset's own poses."""

    @classmethod
    def from_bundle(cls, bundle: GeneratorBundle, truncation_psi: float = 1.0,
                    truncation_cutoff: int | None = None) -> EvaluationModel:
        return cls(bundle.generator, bundle.renderer, bundle.camera_config, truncation_psi, truncation_cutoff)

    @property
    def z_dim(self) -> int:
        return self.generator.config.z_dim

    @property
    def device(self) -> torch.device:
        return next(self.generator.parameters()).device

    @property
    def box_half_size(self) -> float:
        return self.generator.config.box_half_size

    def sample_cameras(self, count: int, generator: torch.Generator, dataset: object | None = None) -> Cameras:
        return sample_cameras(self.cameras, count, generator, self.device,
                              dataset if dataset is not None else self.dataset)

    def mapping(self, z: Tensor, cameras: Cameras | None = None) -> Tensor:
        """ws for latents ``z``; a camera-conditioned generator is conditioned on ``cameras`` (EG3D's pose label)."""
        c = None
        if self.generator.config.c_dim > 0:
            if cameras is None:
                raise ValueError("this generator is camera-conditioned: pass the conditioning cameras")
            c = cameras.to_label().to(self.device)
        return self.generator.mapping(z.to(self.device), c, self.truncation_psi, self.truncation_cutoff)

    def fields_from_ws(self, ws: Tensor):
        return self.generator.field(self.generator.synthesis(ws.to(self.device), noise_mode="const"))

    def fields(self, z: Tensor, cameras: Cameras | None = None):
        """One radiance field per latent (scene batch = len(z))."""
        return self.fields_from_ws(self.mapping(z, cameras))

    @torch.no_grad()
    def render(self, z: Tensor, cameras: Cameras, resolution: int, condition: Cameras | None = None,
               batch_size: int = 8) -> RenderedImages:
        """Renders latent i from camera i, ``batch_size`` scenes at a time; outputs on the CPU.

        ``condition`` are the cameras a camera-conditioned generator is conditioned on (default: ``cameras``).
        """
        condition = cameras if condition is None else condition
        return render_ws_batches(self, lambda sl: self.mapping(z[sl], condition[sl]), cameras, resolution, batch_size)


def render_ws_batches(model: EvaluationModel, ws_of, cameras: Cameras, resolution: int,
                      batch_size: int = 8) -> RenderedImages:
    """Renders scenes in batches; ``ws_of(slice)`` gives the ws of the scenes in that slice."""
    outputs = []
    for start in range(0, cameras.batch_size, batch_size):
        sl = slice(start, start + batch_size)
        with torch.no_grad():
            field = model.fields_from_ws(ws_of(sl))
            out = model.renderer.render_image(field, cameras[sl].to(model.device), resolution)
        outputs.append(out)
    cat = lambda name: torch.cat([getattr(o, name).cpu() for o in outputs])  # noqa: E731
    return RenderedImages(rgb=cat("rgb").clamp(0, 1), depth=cat("depth"), opacity=cat("opacity"),
                          num_field_evaluations=sum(o.num_field_evaluations for o in outputs))


def latents_from_seeds(seeds: list[int] | tuple[int, ...], z_dim: int) -> Tensor:
    """One z [len(seeds), z_dim] per seed, each from its own ``torch.Generator`` (a seed's latent never depends on the others)."""
    return torch.stack([torch.randn(z_dim, generator=torch.Generator().manual_seed(int(s))) for s in seeds])

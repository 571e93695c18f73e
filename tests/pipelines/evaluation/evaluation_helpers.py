"""Helpers of the evaluation tests: a textured analytic sphere and a tiny saved generator bundle."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from renderers.analytic import SphereField
from renderers.field import FieldValues


class TexturedSphere(SphereField):
    """The analytic sphere with a colour that varies over space, so a wrong warp shows up in the PSNR."""

    def __init__(self, radius: float = 0.3, frequency: float = 12.0, phase: float = 0.0) -> None:
        super().__init__(radius=radius, sigma=200.0)
        self.frequency, self.phase = frequency, phase

    def forward(self, points: Tensor, directions: Tensor | None = None) -> FieldValues:
        f = self.frequency
        rgb = torch.stack([
            0.5 + 0.4 * torch.sin(f * points[..., 0] + self.phase),
            0.5 + 0.4 * torch.sin(f * points[..., 1] + 1.0 + self.phase),
            0.5 + 0.4 * torch.cos(f * points[..., 2] + self.phase),
        ], dim=-1)
        return FieldValues(density=self.density(points), rgb=rgb)


def make_tiny_bundle(directory: Path, seed: int = 0) -> Path:
    """Saves a tiny random generator (planes 3 x 4 x 8 x 8) with an 8 + 8 sample renderer."""
    from epigraf_field.generator import TriPlaneGenerator, TriPlaneGeneratorConfig
    from pipelines.bundle import save_bundle
    from pipelines.camera_distributions import CameraDistribution, CameraDistributionConfig
    from renderers.volume_renderer import VolumeRendererConfig

    config = TriPlaneGeneratorConfig(
        z_dim=16, w_dim=16, mapping_layers=1, plane_resolution=8, plane_channels=4, channel_base=64,
        channel_max=16, decoder_hidden=16, decoder_backend="torch",
    )
    generator = TriPlaneGenerator(config, seed=seed)
    renderer = VolumeRendererConfig(sampler="importance", num_coarse=8, num_fine=8, background="white")
    cameras = CameraDistribution(CameraDistributionConfig.synthetic("360"))
    return save_bundle(directory, generator, renderer, cameras, "patch-gan", image_resolution=16)


def make_image_folder(directory: Path, count: int = 4, resolution: int = 16, meshes: int = 0, seed: int = 0) -> Path:
    """A folder of random PNGs; with ``meshes`` > 0 also ground-truth meshes and the metadata.json that lists them."""
    import json

    import numpy as np
    import trimesh
    from PIL import Image

    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(count):
        Image.fromarray((rng.random((resolution, resolution, 3)) * 255).astype(np.uint8)).save(directory / f"{i:03d}.png")
    if meshes:
        (directory / "meshes").mkdir(exist_ok=True)
        objects = []
        for i in range(meshes):
            name = f"meshes/obj{i:05d}.ply"
            trimesh.creation.box(extents=(0.4, 0.2 + 0.1 * i, 0.3)).export(directory / name)
            objects.append({"id": i, "mesh": name})
        (directory / "metadata.json").write_text(json.dumps({"objects": objects}))
    return directory


class AnalyticModel:
    """An analytic field behind the generator interface: every latent gives the same scene (z is ignored)."""

    pipeline = "analytic"
    truncation_psi, truncation_cutoff, image_resolution = 1.0, None, None
    renders_directly = True

    def __init__(self, field, renderer, cameras) -> None:
        from pipelines.camera_distributions import CameraDistribution

        self.analytic_field, self.renderer = field, renderer
        self.cameras = CameraDistribution(cameras)
        self.z_dim, self.device, self.box_half_size = 4, torch.device("cpu"), 0.5
        self.network = torch.nn.Module()

    def mapping(self, z: Tensor, condition=None) -> Tensor:
        return z[:, None, :]

    def synthesize(self, ws: Tensor) -> Tensor:
        return ws

    def field(self, scene: Tensor):
        return self.analytic_field

    def render_scene(self, scene: Tensor, ws: Tensor, cameras, resolution: int, renderer=None):
        return (renderer or self.renderer).render_image(self.analytic_field, cameras, resolution)

    def with_options(self, **changes: object):
        return self

    def save(self, directory):
        raise NotImplementedError("an analytic model has nothing to save")

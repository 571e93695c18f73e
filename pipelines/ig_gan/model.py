"""IG-GAN behind the generator interface: latents become voxel grids, volume-rendered as radiance fields."""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from torch import Tensor

from epigraf_field.config_io import config_to_dict
from pipelines.bundle import (
    BUNDLE_FORMAT_VERSION,
    PIPELINE_FILE,
    RENDERER_FILE,
    _read_config,
    enclosing_checkpoint,
    read_bundle_header,
    resolve_bundle_dir,
    verify_bundle_manifest,
    write_bundle_manifest,
)
from pipelines.camera_distributions import CameraDistribution
from pipelines.ig_gan.voxels import VoxelField, VoxelGenerator
from pipelines.model import DirectlyRenderedModel
from renderers.cameras import Cameras
from renderers.volume_renderer import VolumeRenderer, VolumeRendererConfig


@dataclass
class VoxelModel(DirectlyRenderedModel):
    """A :class:`VoxelGenerator` as every consumer takes it (snapshots, metrics, viewer, render and export).

    ws are the latents themselves ([b, 1, z_dim]: 3D-GAN has no mapping network), truncated towards
    the zero latent by ``truncation_psi``; the scene representation is the voxel grid; the field is
    the trilinear :class:`VoxelField` (zero outside the grid); final images are its volume renders.
    R's path-traced images need Mitsuba and exist only in training (and its snapshots).
    """

    generator: VoxelGenerator
    renderer: VolumeRenderer
    cameras: CameraDistribution
    pipeline: str = "ig-gan"
    truncation_psi: float = 1.0
    """Latents are scaled by this (1: none; 3D-GAN's latents have mean zero)."""
    truncation_cutoff: int | None = None
    """Unused (one latent per scene); kept for the common interface."""
    image_resolution: int | None = None

    def mapping(self, z: Tensor, condition: Cameras | None = None) -> Tensor:
        return (z.to(self.device) * self.truncation_psi)[:, None, :]

    def synthesize(self, ws: Tensor) -> Tensor:
        return self.generator(ws.to(self.device)[:, 0])

    def field(self, scene: Tensor) -> VoxelField:
        config = self.generator.config
        return VoxelField(scene, config.box_half_size, config.density_scale, config.surface_sharpness,
                          config.surface_threshold)

    def with_options(self, **changes: object) -> VoxelModel:
        unknown = set(changes) - {"truncation_psi", "truncation_cutoff", "renderer", "cameras", "image_resolution"}
        if unknown:
            raise ValueError(f"an ig-gan model has no option {', '.join(sorted(unknown))}")
        return replace(self, **changes)

    def save(self, directory: Path) -> Path:
        return save_voxel_bundle(directory, self.generator, self.renderer.config, self.cameras, self.pipeline,
                                 self.image_resolution)


def save_voxel_bundle(directory: Path, generator: VoxelGenerator, renderer_config: VolumeRendererConfig,
                      cameras: CameraDistribution, pipeline: str = "ig-gan", image_resolution: int | None = None) -> Path:
    """The bundle layout of pipelines/bundle.py with a voxel generator's config.json and weights.safetensors."""
    directory = Path(directory)
    generator.save(directory)
    (directory / RENDERER_FILE).write_text(json.dumps(config_to_dict(renderer_config), indent=2))
    cameras.save(directory)
    header = {"pipeline": pipeline, "format_version": BUNDLE_FORMAT_VERSION, "image_resolution": image_resolution,
              "num_classes": 0}
    (directory / PIPELINE_FILE).write_text(json.dumps(header, indent=2))
    write_bundle_manifest(directory)
    return directory


def load_model(directory: Path, device: torch.device | str = "cpu", backend: str | None = None) -> VoxelModel:
    """An ig-gan bundle (voxel generator, renderer, cameras) as its model; ``backend`` does not apply to voxels."""
    directory = resolve_bundle_dir(Path(directory))
    header = read_bundle_header(directory)
    generator = VoxelGenerator.load(directory, device=device).eval().requires_grad_(False)
    renderer_config = _read_config(directory / RENDERER_FILE, VolumeRendererConfig)
    cameras = CameraDistribution.load(directory)
    if enclosing_checkpoint(directory) is None:
        verify_bundle_manifest(directory)
    return VoxelModel(generator, VolumeRenderer(renderer_config), cameras, pipeline=header.pipeline,
                      image_resolution=header.image_resolution)

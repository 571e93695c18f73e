"""EG3D behind the generator interface: final images are the super-resolved renders."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from pipelines.eg3d.generator import Eg3dGenerator, load_eg3d_bundle, raw_feature_image, resize_images, save_eg3d_bundle
from pipelines.model import TriPlaneModel
from renderers.cameras import Cameras
from renderers.volume_renderer import RenderedImages, VolumeRenderer


@dataclass
class Eg3dModel(TriPlaneModel):
    """An EG3D generator: the tri-plane field rendered at the neural resolution, then super-resolved.

    ``generator`` is an :class:`Eg3dGenerator` (tri-plane generator + super-resolution network).
    Final images are the super-resolution output resized to the asked resolution; depth and opacity
    come from a volume render of the same field at that resolution (the upsampler makes no depth),
    so a multi-view metric compares the upsampled colours against the field's own geometry. Fields,
    meshes and occupancy are the tri-plane field's.
    """

    generator: Eg3dGenerator
    pipeline: str = "eg3d"
    neural_resolution: int = 64
    """Pixels per side of the volume render the upsampler starts from."""

    @property
    def renders_directly(self) -> bool:
        return False

    def render_scene(self, scene: Tensor, ws: Tensor, cameras: Cameras, resolution: int,
                     renderer: VolumeRenderer | None = None) -> RenderedImages:
        return render_super_resolved(self.generator, self.field(scene), ws, cameras.to(self.device), resolution,
                                     self.neural_resolution, renderer or self.renderer)

    def with_options(self, **changes: object) -> Eg3dModel:
        return replace(self, **changes)

    def save(self, directory: Path) -> Path:
        return save_eg3d_bundle(directory, self.generator, self.renderer.config, self.cameras, self.neural_resolution,
                                self.image_resolution, self.num_classes)


def render_super_resolved(generator: Any, field: Any, ws: Tensor, views: Cameras, resolution: int,
                          neural_resolution: int, renderer: VolumeRenderer) -> RenderedImages:
    """EG3D's final image: the raw render at ``neural_resolution`` through ``generator.superresolution``,
    resized to ``resolution``; depth and opacity come from a render at ``resolution``."""
    raw = renderer.render_image(field, views, neural_resolution)
    rgb, features = raw_feature_image(raw)
    image = generator.superresolution(rgb, features, ws.to(rgb.device), noise_mode="const")
    geometry = raw if resolution == neural_resolution else renderer.render_image(field, views, resolution)
    return RenderedImages(rgb=resize_images((image + 1.0) / 2.0, resolution).clamp(0, 1), depth=geometry.depth,
                          opacity=geometry.opacity, num_field_evaluations=raw.num_field_evaluations)


def load_model(directory: Path, device: torch.device | str = "cpu", backend: str | None = None) -> Eg3dModel:
    """An eg3d bundle (tri-plane generator, super-resolution network, renderer, cameras) as its model."""
    loaded = load_eg3d_bundle(directory, device=device, backend=backend)
    inner = loaded.bundle
    return Eg3dModel(generator=loaded.generator, renderer=inner.renderer, cameras=inner.cameras,
                     image_resolution=inner.image_resolution, neural_resolution=loaded.neural_resolution,
                     num_classes=inner.num_classes)

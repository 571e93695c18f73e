"""Mimic3D behind the generator interface: final images are direct 3D-branch renders (the 2D branch on request)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

import torch
from torch import Tensor

from pipelines.eg3d.model import render_super_resolved
from pipelines.mimic3d.generator import (
    Mimic3dGenerator,
    load_mimic3d_bundle,
    pack_planes,
    save_mimic3d_bundle,
    unpack_planes,
)
from pipelines.model import TriPlaneModel
from renderers.cameras import Cameras
from renderers.volume_renderer import RenderedImages, VolumeRenderer

Branch = Literal["3d", "2d"]
BRANCHES = ("3d", "2d")


@dataclass
class Mimic3dModel(TriPlaneModel):
    """A Mimic3D generator. ``branch="3d"`` (the default): final images, depth, fields and meshes come from a
    direct volume render of the coarse plus detail planes at the asked resolution, with no 2D network, so
    every view is consistent by construction (Mimic3D's inference). ``branch="2d"``: EG3D's output, the coarse
    planes rendered at the neural resolution and super-resolved (depth from the coarse field).

    A scene is both plane sets packed in one tensor (:func:`pipelines.mimic3d.generator.pack_planes`).
    """

    generator: Mimic3dGenerator
    pipeline: str = "mimic3d"
    neural_resolution: int = 64
    """Pixels per side of the 2D branch's volume render, which the upsampler starts from."""
    branch: Branch = "3d"
    """Which branch makes the final images: 3d (direct render) or 2d (render + super-resolution)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.branch not in BRANCHES:
            raise ValueError(f"branch must be one of {BRANCHES} (3d: the direct render, 2d: the super-resolved "
                             f"one), got {self.branch!r}")

    @property
    def renders_directly(self) -> bool:
        return self.branch == "3d"

    def synthesize(self, ws: Tensor) -> Tensor:
        coarse, detail = self.generator.synthesize_planes(ws.to(self.device), noise_mode="const")
        return pack_planes(coarse, detail)

    def planes(self, scene: Tensor) -> tuple[Tensor, Tensor]:
        """The coarse and detail planes of a scene."""
        config = self.generator.config
        return unpack_planes(scene, config.plane_channels, config.plane_resolution)

    def field(self, scene: Tensor) -> object:
        coarse, detail = self.planes(scene)
        if self.branch == "2d":
            return self.generator.field(coarse)
        return self.generator.detail_field(coarse, detail)

    def render_scene(self, scene: Tensor, ws: Tensor, cameras: Cameras, resolution: int,
                     renderer: VolumeRenderer | None = None) -> RenderedImages:
        renderer = renderer or self.renderer
        views = cameras.to(self.device)
        if self.branch == "3d":
            images = renderer.render_image(self.field(scene), views, resolution)
            return replace(images, rgb=images.rgb.clamp(0, 1))
        return render_super_resolved(self.generator, self.field(scene), ws, views, resolution,
                                     self.neural_resolution, renderer)

    def with_options(self, **changes: object) -> Mimic3dModel:
        return replace(self, **changes)

    def save(self, directory: Path) -> Path:
        return save_mimic3d_bundle(directory, self.generator, self.renderer.config, self.cameras,
                                   self.neural_resolution, self.image_resolution, self.num_classes)


def load_model(directory: Path, device: torch.device | str = "cpu", backend: str | None = None) -> Mimic3dModel:
    """A mimic3d bundle as its model; it shows the direct 3D render (``with_options(branch="2d")`` for the other)."""
    loaded = load_mimic3d_bundle(directory, device=device, backend=backend)
    inner = loaded.bundle
    return Mimic3dModel(generator=loaded.generator, renderer=inner.renderer, cameras=inner.cameras,
                        image_resolution=inner.image_resolution, neural_resolution=loaded.neural_resolution,
                        num_classes=inner.num_classes)

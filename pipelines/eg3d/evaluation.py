"""EG3D generators behind the evaluation interface, so the shared metrics score their super-resolved images."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from pipelines.eg3d.generator import Eg3dBundle, Eg3dGenerator, raw_feature_image, resize_images
from pipelines.evaluation.generation import EvaluationModel
from renderers.cameras import Cameras
from renderers.volume_renderer import RenderedImages


@dataclass
class Eg3dEvaluationModel(EvaluationModel):
    """An :class:`EvaluationModel` whose ``render`` returns EG3D's super-resolved images.

    The rgb is the super-resolution output resized to the asked resolution; depth and opacity come from
    a volume render of the same field at that resolution (the upsampler makes no depth), so a
    multi-view metric compares the upsampled colours against the field's own geometry. ``generator``
    is the tri-plane part, so ``fields`` (meshes, geometry metrics) work unchanged.
    """

    superresolution: torch.nn.Module | None = None
    """The trained super-resolution network."""
    neural_resolution: int = 64
    """Resolution of the volume render the upsampler starts from."""

    @classmethod
    def from_eg3d_bundle(cls, bundle: Eg3dBundle, truncation_psi: float = 1.0) -> Eg3dEvaluationModel:
        inner = bundle.bundle
        return cls(inner.generator, inner.renderer, inner.camera_config, truncation_psi, None,
                   superresolution=bundle.superresolution, neural_resolution=bundle.neural_resolution)

    @classmethod
    def from_generator(cls, generator: Eg3dGenerator, base: EvaluationModel, neural_resolution: int) -> Eg3dEvaluationModel:
        return cls(generator.triplane, base.renderer, base.cameras, base.truncation_psi, base.truncation_cutoff,
                   dataset=base.dataset, superresolution=generator.superresolution,
                   neural_resolution=neural_resolution)

    @torch.no_grad()
    def render(self, z: Tensor, cameras: Cameras, resolution: int, condition: Cameras | None = None,
               batch_size: int = 8) -> RenderedImages:
        if self.superresolution is None:
            raise ValueError("Eg3dEvaluationModel.superresolution is None; build it with from_eg3d_bundle")
        condition = cameras if condition is None else condition
        rgbs, depths, opacities, evaluations = [], [], [], 0
        for start in range(0, cameras.batch_size, batch_size):
            sl = slice(start, start + batch_size)
            ws = self.mapping(z[sl], condition[sl])
            field = self.fields_from_ws(ws)
            views = cameras[sl].to(self.device)
            raw = self.renderer.render_image(field, views, self.neural_resolution)
            rgb, features = raw_feature_image(raw)
            image = self.superresolution(rgb, features, ws, noise_mode="const")
            geometry = raw if resolution == self.neural_resolution else self.renderer.render_image(field, views, resolution)
            rgbs.append(resize_images((image + 1.0) / 2.0, resolution).clamp(0, 1).cpu())
            depths.append(geometry.depth.cpu())
            opacities.append(geometry.opacity.cpu())
            evaluations += raw.num_field_evaluations
        return RenderedImages(rgb=torch.cat(rgbs), depth=torch.cat(depths), opacity=torch.cat(opacities),
                              num_field_evaluations=evaluations)

"""What every nerfstudio model of ours shares: an ``EpigrafField`` rendered with nerfstudio's samplers and renderers."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Type

import torch
from torch import Tensor

from pipelines.nerfstudio.imports import require_nerfstudio

require_nerfstudio()

from nerfstudio.cameras.rays import RayBundle  # noqa: E402
from nerfstudio.field_components.field_heads import FieldHeadNames  # noqa: E402
from nerfstudio.model_components.ray_samplers import PDFSampler, UniformSampler  # noqa: E402
from nerfstudio.model_components.renderers import (  # noqa: E402
    AccumulationRenderer,
    DepthRenderer,
    NormalsRenderer,
    RGBRenderer,
)
from nerfstudio.models.base_model import Model, ModelConfig  # noqa: E402
from nerfstudio.utils import colormaps  # noqa: E402

from pipelines.model import GeneratorModel, ModelLoadError, open_model  # noqa: E402
from pipelines.nerfstudio.field import EpigrafField  # noqa: E402
from pipelines.nerfstudio.normals import normals_to_unit_interval  # noqa: E402
from renderers.rays import intersect_box  # noqa: E402

BACKGROUNDS = {"white": (1.0, 1.0, 1.0), "black": (0.0, 0.0, 0.0)}
SCENE_METADATA_KEY = "epigraf_scene_transform"
"""Dataparser metadata entry: the :class:`SceneTransformConfig` from the parsed scene to the dataset's world."""


def open_generator(path: Path, option: str, backend: str | None = None,
                   device: torch.device | str = "cpu") -> GeneratorModel:
    """``open_model(path)``, with an error that names the command-line ``option`` the path came from."""
    try:
        return open_model(path, device=device, backend=backend)
    except ModelLoadError as error:
        raise ModelLoadError(
            f"{option} {path}: {error}. Pass the directory of a trained generator (a run folder, one of its "
            "checkpoints, an exported bundle, or an official EG3D / EpiGRAF .pkl)"
        ) from error


@dataclass
class EpigrafFieldModelConfig(ModelConfig):
    """Sampling and outputs shared by ``epigraf-sample`` and ``epigraf-invert``."""

    _target: Type = field(default_factory=lambda: EpigrafFieldModel)
    enable_collider: bool = False
    """Near/far come from the generator's box, not from nerfstudio's collider."""
    num_coarse_samples: int = 48
    """Uniform samples per ray inside the box (EpiGRAF: 48)."""
    num_importance_samples: int = 48
    """Samples per ray drawn from the coarse weights and merged with the coarse ones (EpiGRAF: 48)."""
    background_color: Literal["white", "black", "random"] = "white"
    """Background composited behind the field (the generator's training background, usually white)."""


class EpigrafFieldModel(Model):
    """Renders ``self.field`` (an :class:`EpigrafField`, made by :meth:`make_field`) inside the generator's box.

    Outputs, per ray: ``rgb`` (over the background), ``accumulation`` (opacity), ``depth`` (median:
    where the transmittance falls to 1/2, the surface a point cloud or TSDF wants; a ray that stays
    mostly transparent reads its last sample, the box exit), ``expected_depth`` (weighted mean
    distance) and, when the model is not training, ``normals`` (``-normalize(grad sigma)``
    composited with the weights, in the scene's axes, mapped to [0, 1] as nerfstudio's viewer and
    ``ns-export --normal-method model_output`` read them). Depths are distances along the unit ray
    direction in scene units, as nerfstudio's exporters assume.
    """

    config: EpigrafFieldModelConfig
    field: EpigrafField

    def make_field(self) -> EpigrafField:
        """The field to render (subclasses open or receive the generator and pick the latent)."""
        raise NotImplementedError

    def populate_modules(self) -> None:
        super().populate_modules()
        cfg = self.config
        self.field = self.make_field()
        self.box_half_size = self.field.model.box_half_size
        self.sampler_uniform = UniformSampler(num_samples=cfg.num_coarse_samples)
        self.sampler_pdf = PDFSampler(num_samples=cfg.num_importance_samples, include_original=True)
        self.renderer_rgb = RGBRenderer(background_color=cfg.background_color)
        self.renderer_accumulation = AccumulationRenderer()
        self.renderer_depth = DepthRenderer(method="median")
        self.renderer_expected_depth = DepthRenderer(method="expected")
        self.renderer_normals = NormalsRenderer()

    def _clip_to_box(self, ray_bundle: RayBundle) -> RayBundle:
        """Near/far of every ray from its intersection with the generator's box (empty rays: near = far)."""
        transform = self.field.transform
        origins = transform.points_to_box(ray_bundle.origins)
        directions = transform.directions_to_box(ray_bundle.directions)
        t_enter, t_exit, hit = intersect_box(origins, directions, self.box_half_size)
        # Distances along a unit scene direction shrink by the scale in generator units.
        near = t_enter.clamp(min=0.0) / transform.scale
        far = torch.where(hit, t_exit / transform.scale, near)
        ray_bundle.nears, ray_bundle.fars = near[..., None], far[..., None]
        return ray_bundle

    def get_outputs(self, ray_bundle: RayBundle) -> dict[str, Tensor]:
        if torch.is_grad_enabled() and self.field.is_trainable:
            # A fresh autograd graph from the latent to the planes for every training step.
            self.field.invalidate_planes()
        ray_bundle = self._clip_to_box(ray_bundle)
        coarse = self.sampler_uniform(ray_bundle)
        density_coarse, _ = self.field.get_density(coarse)
        weights_coarse = coarse.get_weights(density_coarse)
        samples = self.sampler_pdf(ray_bundle, coarse, weights_coarse.detach())
        values = self.field(samples, compute_normals=not self.training)
        weights = samples.get_weights(values[FieldHeadNames.DENSITY])
        outputs = {
            "rgb": self.renderer_rgb(rgb=values[FieldHeadNames.RGB], weights=weights),
            "accumulation": self.renderer_accumulation(weights=weights),
            "depth": self.renderer_depth(weights=weights, ray_samples=samples),
            "expected_depth": self.renderer_expected_depth(weights=weights, ray_samples=samples),
        }
        if FieldHeadNames.NORMALS in values:
            normals = self.renderer_normals(normals=values[FieldHeadNames.NORMALS], weights=weights)
            outputs["normals"] = normals_to_unit_interval(normals)
        return outputs

    def get_rgba_image(self, outputs: dict[str, Tensor], output_name: str = "rgb") -> Tensor:
        """The field's own colour and its opacity [..., 4]: the background composited into ``rgb`` taken out again.

        nerfstudio's default gives every pixel alpha 1 unless the background is 'random', so
        ``ns-export pointcloud`` (which keeps points of alpha > 0.5) would keep the empty rays too.
        With a fixed background ``c_bg``, ``rgb = c + (1 - a) c_bg`` for the premultiplied colour
        ``c``, so the colour is ``(rgb - (1 - a) c_bg) / a``.
        """
        if self.config.background_color not in BACKGROUNDS:
            return super().get_rgba_image(outputs, output_name)
        rgb = outputs[output_name]
        accumulation = outputs[output_name.replace("rgb", "accumulation")]
        background = rgb.new_tensor(BACKGROUNDS[self.config.background_color])
        colour = (rgb - (1.0 - accumulation) * background) / accumulation.clamp(min=1e-6)
        return torch.cat([colour.clamp(0.0, 1.0), accumulation], dim=-1)

    def get_metrics_dict(self, outputs, batch) -> dict[str, Tensor]:
        return {"opacity": outputs["accumulation"].detach().mean()}

    def output_images(self, outputs: dict[str, Tensor]) -> dict[str, Tensor]:
        """Colour-mapped accumulation, depth and (when rendered) normals of one image."""
        images = {
            "accumulation": colormaps.apply_colormap(outputs["accumulation"]),
            "depth": colormaps.apply_depth_colormap(outputs["depth"], accumulation=outputs["accumulation"]),
        }
        if "normals" in outputs:
            images["normals"] = outputs["normals"]
        return images

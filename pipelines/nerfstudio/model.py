"""nerfstudio model ``epigraf-invert``: 3D GAN inversion of a trained generator into a posed capture."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Type

import torch
from torch.nn import Parameter

from pipelines.nerfstudio.imports import require_nerfstudio

require_nerfstudio()

from nerfstudio.cameras.rays import RayBundle  # noqa: E402
from nerfstudio.engine.callbacks import (  # noqa: E402
    TrainingCallback,
    TrainingCallbackAttributes,
    TrainingCallbackLocation,
)
from nerfstudio.field_components.field_heads import FieldHeadNames  # noqa: E402
from nerfstudio.model_components.losses import MSELoss  # noqa: E402
from nerfstudio.model_components.ray_samplers import PDFSampler, UniformSampler  # noqa: E402
from nerfstudio.model_components.renderers import AccumulationRenderer, DepthRenderer, RGBRenderer  # noqa: E402
from nerfstudio.models.base_model import Model, ModelConfig  # noqa: E402
from nerfstudio.utils import colormaps  # noqa: E402

from pipelines.model import GeneratorModel  # noqa: E402
from pipelines.nerfstudio.field import EpigrafField, mean_ws  # noqa: E402
from pipelines.nerfstudio.scene_transform import SceneTransformConfig  # noqa: E402
from renderers.rays import intersect_box  # noqa: E402


@dataclass
class EpigrafInvertModelConfig(ModelConfig):
    """Fit one scene of a trained EpiGRAF generator to a posed capture (3D GAN inversion).

    The latent (w or w+, starting from the generator's mean w or from a seed's z) is optimized
    against the capture's pixels; from ``plane_start_step`` on, the tri-planes themselves are
    optimized, starting from the fitted latent's planes (pivotal tuning). Rays are sampled with
    nerfstudio's uniform + PDF samplers inside the generator's box and composited with its renderers.
    """

    _target: Type = field(default_factory=lambda: EpigrafInvertModel)
    enable_collider: bool = False
    """Near/far come from the generator's box (see ``scene``), not from nerfstudio's collider."""
    generator_path: Path = Path("generator")
    """Trained generator of any pipeline: a bundle, checkpoint or run directory (as ``pipelines.model.open_model``
    reads). An eg3d generator's tri-plane field is fitted and rendered directly (no super-resolution)."""
    decoder_backend: Literal["auto", "torch", "tcnn"] = "auto"
    """Decoder implementation of the loaded generator."""
    latent: Literal["w", "w+"] = "w"
    """Optimized latent: one w shared by all synthesis layers, or one w per layer (w+)."""
    init: Literal["mean", "seed"] = "mean"
    """Starting latent: the generator's tracked mean w, or the w of z drawn from ``seed``
    (truncated by ``truncation_psi``; a pose-conditioned generator maps it under its centre pose)."""
    seed: int = 0
    """Seed of z when ``init`` is 'seed'."""
    truncation_psi: float = 0.7
    """Truncation of the seed's w towards the mean w when ``init`` is 'seed'."""
    plane_start_step: int = -1
    """Step from which the tri-planes are optimized instead of the latent (-1: never)."""
    latent_regularization: float = 0.0
    """Weight of the mean squared distance of w from the generator's mean w (keeps the fit on the prior)."""
    num_coarse_samples: int = 48
    """Uniform samples per ray inside the box (EpiGRAF: 48)."""
    num_importance_samples: int = 48
    """Samples per ray drawn from the coarse weights and merged with the coarse ones (EpiGRAF: 48)."""
    background_color: Literal["white", "black", "random"] = "white"
    """Background composited behind the field (the generator's training background, usually white)."""
    scene: SceneTransformConfig = field(default_factory=SceneTransformConfig)
    """Similarity from nerfstudio scene coordinates to the generator's world (scale, translation, rotation)."""


class EpigrafInvertModel(Model):
    """Renders an :class:`EpigrafField` with nerfstudio's samplers and renderers; losses on rgb."""

    config: EpigrafInvertModelConfig

    def populate_modules(self) -> None:
        super().populate_modules()
        from pipelines.model import ModelLoadError, open_model

        cfg = self.config
        try:
            generator = open_model(cfg.generator_path, backend=cfg.decoder_backend)
        except ModelLoadError as error:
            raise ModelLoadError(
                f"--pipeline.model.generator-path {cfg.generator_path}: {error}. Pass the directory of a trained "
                "generator (a run folder, one of its checkpoints, or an exported bundle)"
            ) from error
        self.box_half_size = generator.box_half_size
        self.field = EpigrafField(
            generator,
            self._initial_latent(generator),
            latent_kind=cfg.latent,
            transform=cfg.scene,
            trainable=True,
        )
        self.sampler_uniform = UniformSampler(num_samples=cfg.num_coarse_samples)
        self.sampler_pdf = PDFSampler(num_samples=cfg.num_importance_samples, include_original=True)
        self.renderer_rgb = RGBRenderer(background_color=cfg.background_color)
        self.renderer_accumulation = AccumulationRenderer()
        self.renderer_depth = DepthRenderer(method="expected")
        self.rgb_loss = MSELoss()

    def _initial_latent(self, generator: GeneratorModel) -> torch.Tensor:
        """ws [1, num_ws, w_dim] to start from, as the configured latent kind (w: its first row)."""
        cfg = self.config
        if cfg.init == "seed":
            # A pose-conditioned generator maps the seed's z under its centre pose.
            rng = torch.Generator().manual_seed(cfg.seed)
            z = torch.randn(1, generator.z_dim, generator=rng)
            with torch.no_grad():
                ws = generator.with_options(truncation_psi=cfg.truncation_psi).mapping(z).detach()
        else:
            ws = mean_ws(generator)
        return ws[:, 0] if cfg.latent == "w" else ws.contiguous()

    def get_param_groups(self) -> dict[str, list[Parameter]]:
        groups = {"latent": [self.field.latent]}
        if self.config.plane_start_step >= 0:
            groups["planes"] = [self.field.planes]
        return groups

    def get_training_callbacks(
        self, training_callback_attributes: TrainingCallbackAttributes
    ) -> list[TrainingCallback]:
        if self.config.plane_start_step < 0:
            return []

        def switch_to_planes(step: int) -> None:
            if not bool(self.field.uses_plane_parameters):
                self.field.use_plane_parameters()

        return [
            TrainingCallback(
                where_to_run=[TrainingCallbackLocation.BEFORE_TRAIN_ITERATION],
                func=switch_to_planes,
                iters=(self.config.plane_start_step,),
            )
        ]

    def _clip_to_box(self, ray_bundle: RayBundle) -> RayBundle:
        """Near/far of every ray from its intersection with the generator's box (empty rays: near = far)."""
        transform = self.config.scene
        origins = transform.points_to_box(ray_bundle.origins)
        directions = transform.directions_to_box(ray_bundle.directions)
        t_enter, t_exit, hit = intersect_box(origins, directions, self.box_half_size)
        # Distances along a unit scene direction shrink by the scale in generator units.
        near = t_enter.clamp(min=0.0) / transform.scale
        far = torch.where(hit, t_exit / transform.scale, near)
        ray_bundle.nears, ray_bundle.fars = near[..., None], far[..., None]
        return ray_bundle

    def get_outputs(self, ray_bundle: RayBundle) -> dict[str, torch.Tensor]:
        if torch.is_grad_enabled():
            # A fresh autograd graph from the latent to the planes for every training step.
            self.field.invalidate_planes()
        ray_bundle = self._clip_to_box(ray_bundle)
        coarse = self.sampler_uniform(ray_bundle)
        density_coarse, _ = self.field.get_density(coarse)
        weights_coarse = coarse.get_weights(density_coarse)
        samples = self.sampler_pdf(ray_bundle, coarse, weights_coarse.detach())
        values = self.field(samples)
        weights = samples.get_weights(values[FieldHeadNames.DENSITY])
        return {
            "rgb": self.renderer_rgb(rgb=values[FieldHeadNames.RGB], weights=weights),
            "accumulation": self.renderer_accumulation(weights=weights),
            "depth": self.renderer_depth(weights=weights, ray_samples=samples),
        }

    def get_metrics_dict(self, outputs, batch) -> dict[str, torch.Tensor]:
        image = self.renderer_rgb.blend_background(batch["image"].to(self.device))
        mse = torch.mean((outputs["rgb"].detach() - image) ** 2)
        return {"psnr": -10.0 * torch.log10(mse.clamp_min(1e-10))}

    def get_loss_dict(self, outputs, batch, metrics_dict=None) -> dict[str, torch.Tensor]:
        pred, target = self.renderer_rgb.blend_background_for_loss_computation(
            pred_image=outputs["rgb"],
            pred_accumulation=outputs["accumulation"],
            gt_image=batch["image"].to(self.device),
        )
        losses = {"rgb_loss": self.rgb_loss(target, pred)}
        if self.config.latent_regularization > 0 and not bool(self.field.uses_plane_parameters):
            distance = (self.field.ws() - self.field.mean_ws) ** 2
            losses["latent_loss"] = self.config.latent_regularization * distance.mean()
        return losses

    def get_image_metrics_and_images(self, outputs, batch) -> tuple[dict[str, float], dict[str, torch.Tensor]]:
        image = self.renderer_rgb.blend_background(batch["image"].to(outputs["rgb"].device))
        rgb = outputs["rgb"]
        mse = torch.mean((rgb - image) ** 2)
        metrics = {"psnr": float(-10.0 * torch.log10(mse.clamp_min(1e-10)))}
        images = {
            "img": torch.cat([image, rgb], dim=1),
            "accumulation": colormaps.apply_colormap(outputs["accumulation"]),
            "depth": colormaps.apply_depth_colormap(outputs["depth"], accumulation=outputs["accumulation"]),
        }
        return metrics, images

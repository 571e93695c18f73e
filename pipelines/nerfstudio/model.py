"""nerfstudio model ``epigraf-invert``: 3D GAN inversion of a trained generator into a posed capture."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Type

import torch
from torch.nn import Parameter

from pipelines.nerfstudio.imports import require_nerfstudio

require_nerfstudio()

from nerfstudio.engine.callbacks import (  # noqa: E402
    TrainingCallback,
    TrainingCallbackAttributes,
    TrainingCallbackLocation,
)
from nerfstudio.model_components.losses import MSELoss  # noqa: E402

from pipelines.model import GeneratorModel  # noqa: E402
from pipelines.nerfstudio.field import EpigrafField, mean_ws  # noqa: E402
from pipelines.nerfstudio.field_model import (  # noqa: E402
    SCENE_METADATA_KEY,
    EpigrafFieldModel,
    EpigrafFieldModelConfig,
    open_generator,
)
from pipelines.nerfstudio.scene_transform import SceneTransformConfig  # noqa: E402


@dataclass
class EpigrafInvertModelConfig(EpigrafFieldModelConfig):
    """Fit one scene of a trained EpiGRAF generator to a posed capture (3D GAN inversion).

    The latent (w or w+, starting from the generator's mean w or from a seed's z) is optimized
    against the capture's pixels; from ``plane_start_step`` on, the tri-planes themselves are
    optimized, starting from the fitted latent's planes (pivotal tuning). Rays are sampled with
    nerfstudio's uniform + PDF samplers inside the generator's box and composited with its renderers.
    """

    _target: Type = field(default_factory=lambda: EpigrafInvertModel)
    generator_path: Path = Path("generator")
    """Trained generator of any pipeline: a bundle, checkpoint or run directory, or an official EG3D / EpiGRAF .pkl
    (as ``pipelines.model.open_model`` reads). An eg3d generator's tri-plane field is fitted and rendered directly (no super-resolution)."""
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
    scene: SceneTransformConfig = field(default_factory=SceneTransformConfig)
    """Similarity from nerfstudio scene coordinates to the generator's world (scale, translation, rotation);
    used unless the dataparser records it (see ``scene_from_data``)."""
    scene_from_data: bool = True
    """Take the scene transform from the dataparser when it records one: ``eg3d-data`` does (its scene is the
    dataset's box scaled to [-1, 1]^3, z up), nerfstudio's own dataparsers do not. False: always ``scene``."""


class EpigrafInvertModel(EpigrafFieldModel):
    """Fits the latent (then optionally the planes) of an :class:`EpigrafField` to a capture; losses on rgb."""

    config: EpigrafInvertModelConfig

    def make_field(self) -> EpigrafField:
        cfg = self.config
        generator = open_generator(cfg.generator_path, "--pipeline.model.generator-path", cfg.decoder_backend)
        recorded = (self.kwargs.get("metadata") or {}).get(SCENE_METADATA_KEY)
        transform = recorded if cfg.scene_from_data and recorded is not None else cfg.scene
        self.rgb_loss = MSELoss()
        return EpigrafField(generator, self._initial_latent(generator), latent_kind=cfg.latent, transform=transform,
                            trainable=True)

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

    def get_metrics_dict(self, outputs, batch) -> dict[str, torch.Tensor]:
        image = self.renderer_rgb.blend_background(batch["image"].to(self.device))
        mse = torch.mean((outputs["rgb"].detach() - image) ** 2)
        return {**super().get_metrics_dict(outputs, batch), "psnr": -10.0 * torch.log10(mse.clamp_min(1e-10))}

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
        return metrics, {"img": torch.cat([image, rgb], dim=1), **self.output_images(outputs)}

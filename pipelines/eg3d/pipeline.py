"""EG3D: tri-plane field rendered at a low neural resolution, a 2D super-resolution network, dual discrimination."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import torch
from torch import Tensor

from epigraf_field.generator import TriPlaneGeneratorConfig
from pipelines.pipeline import Progress, TrainBatch
from pipelines.engine.distributed import DistributedContext
from pipelines.eg3d.generator import Eg3dGenerator, raw_feature_image, resize_images
from pipelines.eg3d.model import Eg3dModel
from pipelines.eg3d.superresolution import SuperResolutionConfig
from pipelines.gan.ada import AugmentConfig
from pipelines.gan.discriminator import DiscriminatorConfig
from pipelines.gan.losses import AdamConfig, is_regularization_step
from pipelines.gan.schedules import density_noise_std
from pipelines.camera_distributions import CameraDistributionConfig
from pipelines.patch_gan.pipeline import PatchGanLossConfig, PatchGanPipeline
from pipelines.engine.options import TrainConfig
from pipelines.engine.trainer import TrainerConfig
from renderers.cameras import LABEL_SIZE, Cameras
from renderers.patches import Patch
from renderers.volume_renderer import VolumeRendererConfig


@dataclass
class Eg3dLossConfig(PatchGanLossConfig):
    """Losses, regularizers and schedules of EG3D (its FFHQ values by default)."""

    r1_gamma: float = 1.0
    """R1 weight gamma (EG3D: 1 on FFHQ 512)."""
    density_noise: float = 0.0
    """Std of the noise added to raw density at the start (EG3D trains without it)."""
    pose_conditioning: bool = True
    """Condition the generator's mapping on the camera label, swapping in a random camera (EG3D)."""
    camera_conditioned_discriminator: bool = True
    """Condition the discriminator on the 25-float camera label (EG3D)."""
    density_reg: float = 0.25
    """Weight of the density regularization: L1 between raw densities at random points in twice the box and at
    points moved by N(0, density_reg_distance^2) (EG3D's 'l1' density_reg). It runs every
    g_optimizer.reg_interval minibatches."""
    density_reg_distance: float = 0.004
    """Std of the perturbation of the density regularization, in world units (EG3D: 0.004 in a box of side 1)."""
    density_reg_points: int = 1000
    """Random points per scene of the density regularization (EG3D: 1000)."""


def eg3d_generator_config() -> TriPlaneGeneratorConfig:
    """EG3D's tri-plane generator: planes 3 x 32 x 256^2, 2 mapping layers, 32 feature channels, density shift -1,
    a softplus decoder (EG3D's OSGDecoder: FC 64, Softplus, FC)."""
    return TriPlaneGeneratorConfig(plane_resolution=256, mapping_layers=2, num_feature_channels=32, density_shift=-1.0,
                                   decoder_activation="softplus")


def eg3d_discriminator_config() -> DiscriminatorConfig:
    """EG3D's dual discriminator: its camera-label mapping has 8 layers (StyleGAN2-ADA's mapping default)."""
    return DiscriminatorConfig(label_mapping_layers=8)


@dataclass
class Eg3dConfig:
    """Everything EG3D is made of."""

    generator: TriPlaneGeneratorConfig = field(default_factory=eg3d_generator_config)
    """The tri-plane generator; num_feature_channels is the feature image's depth (the first 3 are rgb)."""
    superresolution: SuperResolutionConfig = field(default_factory=SuperResolutionConfig)
    """The 2D upsampler (its output resolution follows --resolution, its input channels the generator)."""
    discriminator: DiscriminatorConfig = field(default_factory=eg3d_discriminator_config)
    """The full-image discriminator (6 input channels for dual discrimination; resolution follows --resolution)."""
    renderer: VolumeRendererConfig = field(default_factory=VolumeRendererConfig)
    """How the neural-resolution image is volume-rendered (EG3D: 48 + 48 samples)."""
    cameras: CameraDistributionConfig = field(default_factory=CameraDistributionConfig.from_dataset)
    """Cameras the generator is rendered from."""
    losses: Eg3dLossConfig = field(default_factory=Eg3dLossConfig)
    """Losses, regularizers and schedules."""
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    """Discriminator augmentation (ADA; EG3D uses it on AFHQ): one transform per dual image, both halves alike."""
    neural_resolution_final: int | None = None
    """Neural rendering resolution reached at the end of the blend (EG3D: 128 for its final FFHQ stage); None:
    always --patch-resolution."""
    neural_resolution_fade_kimg: float = 1000.0
    """kimg over which the neural rendering resolution blends from --patch-resolution to the final one."""
    g_optimizer: AdamConfig = field(default_factory=lambda: AdamConfig(lr=0.0025, reg_interval=4))
    """Generator optimizer; its reg_interval is the density regularization interval (EG3D: 4)."""
    d_optimizer: AdamConfig = field(default_factory=AdamConfig.epigraf_discriminator)
    """Discriminator optimizer (its reg_interval is the lazy R1 interval)."""


@dataclass
class Eg3dTrainConfig(TrainConfig):
    """`epigraf-train --pipeline eg3d` options (--patch-resolution is the neural rendering resolution)."""

    pipeline: str = "eg3d"
    """Which training method to run (see `epigraf-train --help` for the registered ones)."""
    recipe: str | None = None
    """A paper's configuration for a dataset, applied over the GPU preset before the other options (the recipes
    are listed in `epigraf-train --pipeline eg3d --help`); recorded here so the run says what it followed."""
    model: Eg3dConfig = field(default_factory=Eg3dConfig)
    """Networks, renderer, cameras and losses."""


def gpu_preset() -> Eg3dTrainConfig:
    """EG3D-like defaults at 256^2 (SuperresolutionHybrid4X), 64^2 neural rendering, batch 32 (EG3D's)."""
    return Eg3dTrainConfig(resolution=256, patch_resolution=64, batch=32, kimg=25000.0)


def cpu_preset() -> Eg3dTrainConfig:
    """The patch-gan CPU preset's sizes (64^2 images, 32^2 neural rendering, small widths) for EG3D.

    Schedules are compressed in proportion, as in patch-gan's CPU preset.
    """
    generator = TriPlaneGeneratorConfig(
        z_dim=64, w_dim=64, mapping_layers=2, plane_resolution=32, plane_channels=16,
        channel_base=2048, channel_max=64, decoder_hidden=32, num_feature_channels=32, density_shift=-1.0,
        decoder_activation="softplus",
    )
    return Eg3dTrainConfig(
        resolution=64,
        patch_resolution=32,
        batch=8,
        kimg=12.0,
        trainer=TrainerConfig(tick_kimg=0.4, snapshot_ticks=5, checkpoint_ticks=5, snapshot_grid=(8, 4)),
        model=Eg3dConfig(
            generator=generator,
            superresolution=SuperResolutionConfig(channels=32),
            discriminator=DiscriminatorConfig(channel_base=2048, channel_max=64, label_mapping_layers=8),
            renderer=VolumeRendererConfig(sampler="importance", num_coarse=24, num_fine=24, chunk_size=65536),
            losses=Eg3dLossConfig(r1_gamma=0.05, blur_sigma=2.0, blur_fade_kimg=3.0, ema_kimg=0.5),
            g_optimizer=AdamConfig(lr=0.0025, reg_interval=4),
            d_optimizer=AdamConfig(lr=0.002, reg_interval=16),
        ),
    )


def resolve_eg3d_config(config: Eg3dTrainConfig, num_classes: int = 0) -> Eg3dConfig:
    """Applies --resolution, the pose options and the dataset's ``num_classes`` (one-hot after the camera label)
    to the nested configs."""
    model = config.model
    losses = model.losses
    generator = replace(model.generator, c_dim=(LABEL_SIZE if losses.pose_conditioning else 0) + num_classes)
    superresolution = replace(
        model.superresolution, output_resolution=config.resolution, in_channels=generator.num_feature_channels
    )
    discriminator = replace(
        model.discriminator,
        resolution=config.resolution,
        image_resolution=config.resolution,
        in_channels=6,
        c_dim=(LABEL_SIZE if losses.camera_conditioned_discriminator else 0) + num_classes,
        patch_conditioning=False,
    )
    final = model.neural_resolution_final
    if final is not None and not 8 <= final <= config.resolution:
        raise ValueError(
            f"--model.neural-resolution-final must lie in [8, --resolution={config.resolution}], got {final}"
        )
    return replace(model, generator=generator, superresolution=superresolution, discriminator=discriminator)


def neural_resolution(kimg: float, initial: int, final: int | None, fade_kimg: float) -> int:
    """EG3D's blended neural rendering resolution: ``round(initial * (1 - a) + final * a)``, a = kimg / fade_kimg <= 1.

    Example: ``neural_resolution(500.0, 64, 128, 1000.0) == 96``.
    """
    if final is None or final == initial:
        return initial
    alpha = 1.0 if fade_kimg <= 0 else min(max(kimg, 0.0) / fade_kimg, 1.0)
    return int(round(initial * (1.0 - alpha) + final * alpha))


def dual_image(image: Tensor, raw_rgb: Tensor) -> Tensor:
    """EG3D's dual-discrimination input: the image [b, 3, R, R] and the bilinearly resized raw rgb, 6 channels."""
    return torch.cat([image, resize_images(raw_rgb, image.shape[-1]).to(image.dtype)], dim=1)


class Eg3dPipeline(PatchGanPipeline):
    """EG3D (Chan et al. 2022) on the shared field, renderer, discriminator and training phases of patch-gan.

    Per minibatch: the field is rendered at the neural resolution r (whole images), the super-resolution
    network lifts its 32-channel feature image to R, and the discriminator sees the super-resolved image
    with the upsampled raw rgb (dual discrimination), conditioned on the camera. The mapping network is
    conditioned on the camera, swapped for a random one with ``pose_swap_probability``; every
    ``g_optimizer.reg_interval`` minibatches a density regularization step smooths the field.
    """

    name = "eg3d"
    generator_phases_reach_part_of_G = True  # density regularization skips the super-resolution

    def __init__(self, config: Eg3dTrainConfig, device: torch.device, dataset: Any,
                 context: DistributedContext = DistributedContext()) -> None:
        self.kimg = 0.0
        """kimg of the last minibatch: sets the neural rendering resolution of renders and of the saved bundle."""
        super().__init__(config, device, dataset, context)

    # ----------------------------------------------------------------------------------- hooks
    def _resolve_config(self, config: Eg3dTrainConfig) -> Eg3dConfig:
        return resolve_eg3d_config(config, self.num_classes)

    def _build_generator(self, seed: int, device: torch.device) -> Eg3dGenerator:
        return Eg3dGenerator.build(self.config.generator, self.config.superresolution, seed=seed, device=device)

    def _sample_patch(self, kimg: float) -> Patch:
        return Patch.full(self.batch_size, self.device)

    def neural_resolution(self, kimg: float) -> int:
        """Pixels per side of the volume render at ``kimg``."""
        cfg = self.config
        return neural_resolution(kimg, self.train_config.patch_resolution, cfg.neural_resolution_final,
                                 cfg.neural_resolution_fade_kimg)

    def _mapping_network(self) -> torch.nn.Module:
        """The tri-plane generator's mapping network (the super-resolution network only reads ws)."""
        return self.G.triplane.mapping_network

    def render_views(self, generator: Eg3dGenerator, z: Tensor, cameras: Cameras, kimg: float,
                     classes: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Super-resolved images [b, 3, R, R] and raw rgb [b, 3, r, r], both in [-1, 1], of classes [b]
        (class-conditional datasets) (training randomness on)."""
        return self.render_views_from_ws(generator, self.map_latents(generator, z, cameras, classes), cameras, kimg)

    def render_views_from_ws(
        self, generator: Eg3dGenerator, ws: Tensor, cameras: Cameras, kimg: float
    ) -> tuple[Tensor, Tensor]:
        """:meth:`render_views` of training ws [b, num_ws, w_dim]."""
        autocast = torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.mixed_precision)
        losses = self.config.losses
        with autocast:
            planes = generator.synthesis(ws, noise_mode="random", rng=self.rng)
        noise = density_noise_std(kimg, losses.density_noise, losses.density_noise_kimg)
        field_ = generator.field(planes.float(), density_noise_std=noise, rng=self.rng)
        raw = self.renderer.render_image(field_, cameras, self.neural_resolution(kimg), None, self.rng)
        rgb, features = raw_feature_image(raw)
        with autocast:
            image = generator.superresolution(rgb, features, ws, noise_mode="random", rng=self.rng)
        return image.float(), rgb

    def render_patches_from_ws(
        self, generator: Eg3dGenerator, ws: Tensor, cameras: Cameras, patch: Patch, kimg: float
    ) -> Tensor:
        """The discriminator's fake input [b, 6, R, R]: dual image of the super-resolved and the raw render."""
        return dual_image(*self.render_views_from_ws(generator, ws, cameras, kimg))

    def _real_parts(self, images: Tensor, patch: Patch, kimg: float) -> tuple[Tensor, Tensor]:
        """Real images and their own 'raw' image at the neural resolution (EG3D): R1 differentiates against both."""
        return images, resize_images(images, self.neural_resolution(kimg))

    def _assemble_real(self, parts: tuple[Tensor, ...]) -> Tensor:
        """The dual image: the raw half is upsampled inside the graph, so R1 sees the low-resolution gradient."""
        return dual_image(*parts)

    def _generator_regularization_phase(self, step: int, kimg: float) -> dict[str, float]:
        """EG3D's density regularization: L1 between densities at random points and slightly moved ones."""
        losses, interval = self.config.losses, self.config.g_optimizer.reg_interval
        if not (is_regularization_step(step, interval) and losses.density_reg > 0):
            return {}
        self.G.requires_grad_(True)
        l1 = self.G_phase(self._density_regularization_loss)
        loss = l1 * losses.density_reg * interval  # lazy regularization: scaled by its interval
        self.opt_G.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_G.step()
        return {"G/density_reg": l1.item()}

    def _density_regularization_loss(self) -> Tensor:
        """Mean L1 between densities at random points and at slightly moved ones (EG3D)."""
        losses = self.config.losses
        b, n = self.batch_size, losses.density_reg_points
        z = torch.randn(b, self.z_dim, generator=self.rng, device=self.device)
        cameras = self.sample_cameras(b, self.camera_rng).to(self.device)
        classes = self.sample_classes(b)
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.mixed_precision):
            ws = self.G.mapping(z, self._generator_label(cameras, classes))
            planes = self.G.synthesis(ws, noise_mode="random", rng=self.rng)
        field_ = self.G.field(planes.float())
        # EG3D: points uniform in twice the box ([-1, 1]^3 for its box of side 1) and their neighbours, compared
        # on raw densities: empty space and the box's surroundings keep a gradient, so floaters are smoothed away.
        reach = 2.0 * self.config.generator.box_half_size
        points = (torch.rand(b, n, 3, generator=self.rng, device=self.device) * 2.0 - 1.0) * reach
        moved = points + torch.randn(b, n, 3, generator=self.rng, device=self.device) * losses.density_reg_distance
        density = field_.raw_density(torch.cat([points, moved], dim=1))
        return (density[:, :n] - density[:, n:]).abs().mean()

    def train_step(self, batch: TrainBatch, progress: Progress) -> dict[str, float]:
        self.kimg = progress.kimg
        metrics = super().train_step(batch, progress)
        metrics["schedule/neural_resolution"] = float(self.neural_resolution(progress.kimg))
        return metrics

    # ----------------------------------------------------------------------------------- outputs
    def model(self) -> Eg3dModel:
        """The EMA generator: super-resolved final images at the current neural resolution (shares the weights)."""
        return Eg3dModel(generator=self.G_ema, renderer=self.renderer, cameras=self.camera_distribution,
                         image_resolution=self.train_config.resolution,
                         neural_resolution=self.neural_resolution(self.kimg), num_classes=self.num_classes)

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "kimg": self.kimg}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.kimg = float(state["kimg"])

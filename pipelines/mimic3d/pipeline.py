"""Mimic3D (Chen et al., ICCV 2023): EG3D's 2D branch teaches a directly rendered 3D branch (3D-to-2D imitation)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from pipelines.eg3d.generator import raw_feature_image
from pipelines.eg3d.pipeline import (
    cpu_preset as eg3d_cpu_preset,
    Eg3dConfig,
    Eg3dLossConfig,
    Eg3dPipeline,
    dual_image,
    eg3d_discriminator_config,
    eg3d_generator_config,
    resolve_eg3d_config,
)
from pipelines.eg3d.superresolution import SuperResolutionConfig
from pipelines.engine.distributed import DistributedContext, broadcast_module, data_parallel
from pipelines.engine.options import TrainConfig
from pipelines.engine.trainer import TrainerConfig
from pipelines.gan.augment import blur_images
from pipelines.gan.discriminator import Discriminator, DiscriminatorConfig
from pipelines.gan.losses import (
    AdamConfig,
    discriminator_fake_loss,
    discriminator_real_loss,
    generator_loss,
    is_regularization_step,
    r1_loss,
    r1_penalty,
)
from pipelines.gan.schedules import blur_sigma, density_noise_std
from pipelines.mimic3d.generator import AwareBranchConfig, Mimic3dGenerator
from pipelines.mimic3d.imitation import Imitation, ImitationMode, resolve_imitation
from pipelines.mimic3d.model import Mimic3dModel
from pipelines.model import render
from pipelines.pipeline import Progress, TrainBatch
from renderers.cameras import Cameras
from renderers.patches import Patch, crop_patches
from renderers.volume_renderer import VolumeRendererConfig


@dataclass
class Mimic3dLossConfig(Eg3dLossConfig):
    """EG3D's losses for the 2D branch plus the 3D branch's imitation and patch adversarial losses (Mimic3D's FFHQ)."""

    imitation: ImitationMode = "auto"
    """3D-to-2D imitation loss: lpips (VGG, Mimic3D's default), feature_matching (L2 between normalized patch
    discriminator features, its weight-free option) or auto (lpips when its weight files are found, else
    feature_matching; the run's config.json records the choice)."""
    imitation_weight: float = 1.0
    """Weight of the imitation loss on G (Mimic3D: 1, no pixel loss)."""
    patch_adversarial_weight: float | None = None
    """Weight of the patch discriminator's loss on G; None: Mimic3D's 0.1 at 512^2 and above, 0.2 below."""
    r1_gamma_patch: float = 1.0
    """R1 gamma of the patch discriminator (Mimic3D: 1 on FFHQ, 5 on AFHQ), every d_patch_optimizer.reg_interval."""
    density_reg_distance_3d: float = 0.002
    """Density regularization distance in the 3D stage (Mimic3D halves EG3D's 0.004), on the coarse + detail field."""


def patch_discriminator_config() -> DiscriminatorConfig:
    """The 3D branch's discriminator: a plain StyleGAN2 D on r x r patches, no pose or patch conditioning."""
    return DiscriminatorConfig(patch_conditioning=False)


@dataclass
class Mimic3dConfig(Eg3dConfig):
    """Everything Mimic3D is made of: EG3D's parts, the 3D-aware branch, the patch discriminator, the stages."""

    losses: Mimic3dLossConfig = field(default_factory=Mimic3dLossConfig)
    """Losses, regularizers and schedules."""
    aware: AwareBranchConfig = field(default_factory=AwareBranchConfig)
    """The 3D-aware branch (its width is generator.plane_channels; the detail plane is 2 x plane_resolution)."""
    patch_discriminator: DiscriminatorConfig = field(default_factory=patch_discriminator_config)
    """The 3D branch's discriminator (its resolution follows --patch-resolution)."""
    d_patch_optimizer: AdamConfig = field(default_factory=AdamConfig.epigraf_discriminator)
    """Optimizer of the patch discriminator (its reg_interval is the patch R1 interval, Mimic3D: 16)."""
    stage_3d_kimg: float = 0.0
    """kimg at which the 3D stage (detail plane, 3D branch, imitation, patch discriminator) starts; before it
    the run is stage 1 (EG3D plus the 3D-aware branch). 0: the 3D stage from the first step, as after
    --init-from a stage-1 or eg3d run."""
    vgg_weights: Path | None = None
    """torchvision's VGG16 weights for LPIPS (else $EPIGRAF_VGG16_WEIGHTS or the torch hub cache)."""
    lpips_weights: Path | None = None
    """The lpips package's VGG linear heads (else $EPIGRAF_LPIPS_WEIGHTS, the torch hub cache or an installed lpips)."""


@dataclass
class Mimic3dTrainConfig(TrainConfig):
    """`epigraf-train --pipeline mimic3d` options (--patch-resolution is the neural rendering resolution and the 3D
    branch's patch size; the patch covers patch_resolution / resolution of the image side)."""

    pipeline: str = "mimic3d"
    """Which training method to run (see `epigraf-train --help` for the registered ones)."""
    recipe: str | None = None
    """A paper's configuration for a dataset, applied over the GPU preset before the other options."""
    model: Mimic3dConfig = field(default_factory=Mimic3dConfig)
    """Networks, renderer, cameras, losses and stages."""


def gpu_preset() -> Mimic3dTrainConfig:
    """Mimic3D's 256^2 setup (ffhq256_3d): EG3D's networks, 64^2 patches at scale 0.25, batch 32, patch
    adversarial weight 0.2. The 3D stage runs from the first step: pass --init-from with a stage-1 (set
    --model.stage-3d-kimg) or eg3d run as Mimic3D does, or train from scratch."""
    return Mimic3dTrainConfig(resolution=256, patch_resolution=64, batch=32, kimg=25000.0,
                              model=Mimic3dConfig(generator=eg3d_generator_config(),
                                                  discriminator=eg3d_discriminator_config()))


def cpu_preset() -> Mimic3dTrainConfig:
    """The eg3d CPU preset's sizes (64^2 images, 32^2 neural rendering and 3D patches at scale 0.5, planes 16 x 32^2,
    detail planes 64^2), both stages in one run: stage 1 to 3 kimg, then the 3D stage to 7 kimg.

    16 + 16 samples per ray instead of eg3d's 24 + 24: each step renders twice as many rays (the 2D
    branch and the 3D patch, in G and D), and the built-in objects are opaque. R1 gamma and blur as
    the eg3d CPU preset; the patch discriminator's gamma is the eg3d preset's too (Mimic3D's 1 was
    tuned for its full-width D at batch 32).

    Length: one thread's CPU time per step measured 0.87 s in stage 1 and 1.65 s in the 3D stage, so
    375 stage-1 and 500 3D-stage steps take about 19 minutes of one thread. The whole default run
    (turntable included) took 12.4 minutes alone on 2 cores, 21 minutes on one thread beside another
    training.
    """
    generator = eg3d_cpu_preset().model.generator  # the 2D branch is the eg3d CPU preset's generator
    small_d = dict(channel_base=2048, channel_max=64)
    return Mimic3dTrainConfig(
        resolution=64,
        patch_resolution=32,
        batch=8,
        kimg=7.0,
        trainer=TrainerConfig(tick_kimg=0.4, snapshot_ticks=5, checkpoint_ticks=5, snapshot_grid=(8, 4)),
        model=Mimic3dConfig(
            generator=generator,
            superresolution=SuperResolutionConfig(channels=32),
            discriminator=DiscriminatorConfig(**small_d, label_mapping_layers=8),
            patch_discriminator=DiscriminatorConfig(**small_d, patch_conditioning=False),
            renderer=VolumeRendererConfig(sampler="importance", num_coarse=16, num_fine=16, chunk_size=65536),
            losses=Mimic3dLossConfig(r1_gamma=0.05, r1_gamma_patch=0.05, blur_sigma=2.0, blur_fade_kimg=3.0,
                                     ema_kimg=0.5),
            g_optimizer=AdamConfig(lr=0.0025, reg_interval=4),
            d_optimizer=AdamConfig(lr=0.002, reg_interval=16),
            d_patch_optimizer=AdamConfig(lr=0.002, reg_interval=16),
            stage_3d_kimg=3.0,
        ),
    )


def resolve_mimic3d_config(config: Mimic3dTrainConfig, num_classes: int = 0) -> Mimic3dConfig:
    """EG3D's resolution of the nested configs, plus the patch discriminator at --patch-resolution."""
    model = resolve_eg3d_config(config, num_classes)
    r = config.patch_resolution
    patch_discriminator = replace(model.patch_discriminator, resolution=r, image_resolution=r, in_channels=3,
                                  c_dim=0, patch_conditioning=False)
    losses = model.losses
    if losses.patch_adversarial_weight is None:
        losses = replace(losses, patch_adversarial_weight=0.1 if config.resolution >= 512 else 0.2)
    return replace(model, patch_discriminator=patch_discriminator, losses=losses)


class Mimic3dPipeline(Eg3dPipeline):
    """Mimic3D on EG3D's pipeline: one generator, two branches.

    Stage 1 (before ``stage_3d_kimg``) is EG3D whose planes come from the 3D-aware branch. In the
    3D stage each generator step also volume-renders an r x r patch at full-image pixel density
    (scale r / R, on the pixel grid) from the coarse plus detail planes; it is trained by the patch
    discriminator (non-saturating, lazy R1) and by imitation of the same window of the detached
    super-resolved image. The dual discriminator sees only the 2D branch.
    """

    name = "mimic3d"

    def __init__(self, config: Mimic3dTrainConfig, device: torch.device, dataset: Any,
                 context: DistributedContext = DistributedContext()) -> None:
        super().__init__(config, device, dataset, context)
        cfg = self.config
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed + 3)
            self.D_patch = Discriminator(cfg.patch_discriminator).to(device).train()
        self.opt_D_patch = cfg.d_patch_optimizer.build(self.D_patch.parameters(), separate_regularization_step=False)
        broadcast_module(self.D_patch, context)
        self.D_patch_phase = data_parallel(self.D_patch, context, device)
        mode, line = resolve_imitation(cfg.losses.imitation, cfg.vgg_weights, cfg.lpips_weights)
        if context.is_main:
            print(line, flush=True)
        if mode != cfg.losses.imitation:  # the run's config.json records the loss it trains with
            config.model.losses = replace(config.model.losses, imitation=mode)
            self.config = replace(cfg, losses=replace(cfg.losses, imitation=mode))
        self.imitation = Imitation(mode, device, cfg.vgg_weights, cfg.lpips_weights)

    # ----------------------------------------------------------------------------------- hooks
    def _resolve_config(self, config: Mimic3dTrainConfig) -> Mimic3dConfig:
        return resolve_mimic3d_config(config, self.num_classes)

    def _build_generator(self, seed: int, device: torch.device) -> Mimic3dGenerator:
        cfg = self.config
        return Mimic3dGenerator.build(cfg.generator, cfg.superresolution, cfg.aware, seed=seed, device=device)

    def modules(self) -> list[torch.nn.Module]:
        patch = [self.D_patch] if hasattr(self, "D_patch") else []
        return super().modules() + patch

    def in_3d_stage(self, kimg: float) -> bool:
        """Whether the minibatch at ``kimg`` trains the 3D branch."""
        return kimg >= self.config.stage_3d_kimg

    @property
    def patch_adversarial_weight(self) -> float:
        return float(self.config.losses.patch_adversarial_weight)

    def sample_windows(self, count: int) -> Patch:
        """3D-branch windows: r x r pixels of the R x R image (scale r / R) at whole-pixel offsets, so the window
        of the super-resolved image is an exact crop."""
        big, small = self.train_config.resolution, self.train_config.patch_resolution
        corners = torch.randint(0, big - small + 1, (count, 2), generator=self.camera_rng)
        return Patch(torch.full((count,), small / big), corners.float() / big).to(self.device)

    # ----------------------------------------------------------------------------------- rendering
    def render_2d(self, generator: Mimic3dGenerator, planes: Tensor, ws: Tensor, cameras: Cameras,
                  kimg: float) -> tuple[Tensor, Tensor]:
        """The 2D branch of coarse planes: super-resolved images [b, 3, R, R] and raw rgb [b, 3, r', r'] in [-1, 1]."""
        losses = self.config.losses
        noise = density_noise_std(kimg, losses.density_noise, losses.density_noise_kimg)
        field_ = generator.field(planes.float(), density_noise_std=noise, rng=self.rng)
        raw = self.renderer.render_image(field_, cameras, self.neural_resolution(kimg), None, self.rng)
        rgb, features = raw_feature_image(raw)
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.mixed_precision):
            image = generator.superresolution(rgb, features, ws, noise_mode="random", rng=self.rng)
        return image.float(), rgb

    def render_3d(self, generator: Mimic3dGenerator, coarse: Tensor, detail: Tensor, cameras: Cameras,
                  windows: Patch, kimg: float) -> Tensor:
        """The 3D branch: r x r patches [b, 3, r, r] in [-1, 1] rendered directly from coarse + detail planes."""
        losses = self.config.losses
        noise = density_noise_std(kimg, losses.density_noise, losses.density_noise_kimg)
        field_ = generator.detail_field(coarse.float(), detail.float(), noise, self.rng)
        images = self.renderer.render_image(field_, cameras, self.train_config.patch_resolution, windows, self.rng)
        return images.rgb * 2.0 - 1.0

    def _synthesize(self, generator: Mimic3dGenerator, ws: Tensor) -> tuple[Tensor, Tensor]:
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.mixed_precision):
            coarse, detail = generator.synthesize_planes(ws, noise_mode="random", rng=self.rng)
        return coarse.float(), detail.float()

    def _branch_fakes(self, generator: Mimic3dGenerator, z: Tensor, cameras: Cameras, windows: Patch, kimg: float,
                      classes: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """The 3D stage's generator forward: dual images, 3D patches, their (detached) super-resolved windows and
        the local batch mean of w."""
        ws = self.map_latents(generator, z, cameras, classes)
        mean_w = ws[:, 0].detach().float().mean(dim=0)
        coarse, detail = self._synthesize(generator, ws)
        image, raw = self.render_2d(generator, coarse, ws, cameras, kimg)
        patches = self.render_3d(generator, coarse, detail, cameras, windows, kimg)
        targets = crop_patches(image.detach(), windows, self.train_config.patch_resolution)
        return dual_image(image, raw), patches, targets, mean_w

    def _discriminate_patches(self, images: Tensor, kimg: float) -> Tensor:
        """The patch discriminator's logits [b, 1]: the input blur of the main D, then ADA when it is on."""
        losses = self.config.losses
        images = blur_images(images, blur_sigma(kimg, losses.blur_sigma, losses.blur_fade_kimg))
        if self.config.augment.enabled:
            images = self.augment(images, self.rng)
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.mixed_precision):
            return self.D_patch(images).float()

    def _discriminate_patch_pair(self, fake: Tensor, real: Tensor, kimg: float) -> tuple[Tensor, Tensor]:
        return self._discriminate_patches(fake, kimg), self._discriminate_patches(real, kimg)

    # ----------------------------------------------------------------------------------- phases
    def _generator_phase(self, kimg: float) -> dict[str, float]:
        if not self.in_3d_stage(kimg):
            return super()._generator_phase(kimg)
        self.G.requires_grad_(True)
        self.D.requires_grad_(False)
        self.D_patch.requires_grad_(False)
        z, cameras, patch = self._sample_fake_inputs(kimg)
        classes = self.sample_classes(len(z))
        windows = self.sample_windows(len(z))
        dual, patches, targets, mean_w = self.G_phase(self._branch_fakes, self.G, z, cameras, windows, kimg, classes)
        self._track_w_avg(mean_w)
        logits = self._discriminate(dual, patch, self._discriminator_label(cameras.to_label(), classes), kimg)
        loss_2d = generator_loss(logits).mean()
        patch_logits = self._discriminate_patches(patches, kimg)
        loss_3d = generator_loss(patch_logits).mean()
        imitation = self.imitation(patches, targets, self.D_patch).mean()
        loss = loss_2d + self.patch_adversarial_weight * loss_3d + self.config.losses.imitation_weight * imitation
        self.opt_G.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_G.step()
        return {"G/loss": loss_2d.item(), "G/fake_logits": logits.mean().item(), "G3d/loss": loss_3d.item(),
                "G3d/fake_logits": patch_logits.mean().item(), "G3d/imitation": imitation.item()}

    def _discriminator_phase(self, batch: TrainBatch, step: int, kimg: float) -> dict[str, float]:
        metrics = super()._discriminator_phase(batch, step, kimg)
        if self.in_3d_stage(kimg):
            metrics.update(self._patch_discriminator_phase(batch, step, kimg))
        return metrics

    def _patch_discriminator_phase(self, batch: TrainBatch, step: int, kimg: float) -> dict[str, float]:
        """The patch discriminator: 3D patches against real patches cut at the same scale, lazy R1."""
        self.G.requires_grad_(False)
        self.D_patch.requires_grad_(True)
        z, cameras, _ = self._sample_fake_inputs(kimg)
        classes = self.sample_classes(len(z))
        windows = self.sample_windows(len(z))
        with torch.no_grad():
            ws = self.map_latents(self.G, z, cameras, classes)
            coarse, detail = self._synthesize(self.G, ws)
            fake = self.render_3d(self.G, coarse, detail, cameras, windows, kimg)
        gamma, interval = self.config.losses.r1_gamma_patch, self.config.d_patch_optimizer.reg_interval
        regularize = is_regularization_step(step, interval) and gamma > 0
        real = crop_patches(batch.images, self.sample_windows(len(batch.images)), self.train_config.patch_resolution)
        real = real.detach().requires_grad_(regularize)
        fake_logits, real_logits = self.D_patch_phase(self._discriminate_patch_pair, fake, real, kimg)
        loss = discriminator_fake_loss(fake_logits).mean() + discriminator_real_loss(real_logits).mean()
        metrics = {"D3d/loss": loss.item(), "D3d/real_logits": real_logits.mean().item()}
        if regularize:
            penalty = r1_penalty(real_logits, real)
            loss = loss + r1_loss(penalty, gamma, interval).mean()
            metrics["D3d/r1_penalty"] = penalty.mean().item()
        self.opt_D_patch.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_D_patch.step()
        return metrics

    def _density_regularization_loss(self) -> Tensor:
        """EG3D's density regularization; in the 3D stage on the coarse + detail field at Mimic3D's distance."""
        if not self.in_3d_stage(self.kimg):
            return super()._density_regularization_loss()
        losses = self.config.losses
        b, n = self.batch_size, losses.density_reg_points
        z = torch.randn(b, self.z_dim, generator=self.rng, device=self.device)
        cameras = self.sample_cameras(b, self.camera_rng).to(self.device)
        classes = self.sample_classes(b)
        ws = self.map_latents(self.G, z, cameras, classes)
        field_ = self.G.detail_field(*self._synthesize(self.G, ws))
        reach = 2.0 * self.config.generator.box_half_size
        points = (torch.rand(b, n, 3, generator=self.rng, device=self.device) * 2.0 - 1.0) * reach
        moved = points + torch.randn(b, n, 3, generator=self.rng, device=self.device) * losses.density_reg_distance_3d
        density = field_.raw_density(torch.cat([points, moved], dim=1))
        return (density[:, :n] - density[:, n:]).abs().mean()

    def train_step(self, batch: TrainBatch, progress: Progress) -> dict[str, float]:
        metrics = super().train_step(batch, progress)
        metrics["schedule/stage"] = 2.0 if self.in_3d_stage(progress.kimg) else 1.0
        return metrics

    # ----------------------------------------------------------------------------------- outputs
    def model(self) -> Mimic3dModel:
        """The EMA generator showing its direct 3D render (``with_options(branch="2d")``: the super-resolved one)."""
        return Mimic3dModel(generator=self.G_ema, renderer=self.renderer, cameras=self.camera_distribution,
                            image_resolution=self.train_config.resolution,
                            neural_resolution=self.neural_resolution(self.kimg), num_classes=self.num_classes)

    def snapshot_grids(self, z: Tensor, cameras: Cameras, resolution: int,
                       columns: int) -> dict[str, tuple[Tensor, int]]:
        """The trainer's extra snapshot grid: the 2D branch of the snapshot latents (``fakes-2d-*.png``)."""
        images = render(self.model().with_options(branch="2d"), z, cameras, resolution).rgb
        return {"fakes-2d": (images, columns)}

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "D_patch": self.D_patch.state_dict(),
                "opt_D_patch": self.opt_D_patch.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.D_patch.load_state_dict(state["D_patch"])
        self.opt_D_patch.load_state_dict(state["opt_D_patch"])

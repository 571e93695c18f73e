"""IG-GAN (Lunz et al. 2020): a voxel generator trained from 2D images through Mitsuba and a proxy neural renderer.

One training step (after f's pre-training steps)::

    z_R ─> G ─> voxels (no grad) ─> R = Mitsuba(binarized) ─> R(x) ──┬─> D fake     (D phase)
                                └──> f(x) ─> L2(f(x), R(x)) + DOM ───┘             (f phase)
    z_G ─> G ─> voxels ─> f ─> D ─> non-saturating loss                            (G phase)

R is called once per step, on the batch that both teaches f and shows D the true renders.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field, replace
from typing import Any

import torch
from torch import Tensor

from epigraf_field.ema import ema_update
from pipelines.camera_distributions import CameraDistribution, CameraDistributionConfig
from pipelines.engine.distributed import DistributedContext, all_reduce_mean, broadcast_module, data_parallel
from pipelines.engine.options import TrainConfig
from pipelines.engine.trainer import TrainerConfig
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
from pipelines.gan.schedules import ema_beta
from pipelines.ig_gan.losses import dom_loss, l2_loss
from pipelines.ig_gan.model import VoxelModel
from pipelines.ig_gan.proxy import ProxyRenderer, ProxyRendererConfig
from pipelines.ig_gan.random_shapes import random_voxel_shapes
from pipelines.ig_gan.renderer import MitsubaRendererConfig, MitsubaVoxelRenderer
from pipelines.ig_gan.voxels import VoxelGenerator, VoxelGeneratorConfig
from pipelines.pipeline import Pipeline, Progress, TrainBatch
from renderers.cameras import Cameras
from renderers.volume_renderer import VolumeRenderer, VolumeRendererConfig


@dataclass
class IgGanLossConfig:
    """Losses and schedules of IG-GAN."""

    dom_weight: float = 100.0
    """lambda of discriminator output matching, lambda * (log D(R(x)) - log D(f(x)))^2 (the unofficial code's 100;
    0 turns DOM off: f learns from L2 alone)."""
    proxy_pretrain_steps: int = 2000
    """Steps at the start that only pre-train f (L2 to R on random voxel shapes, see random_shapes.py) before
    the GAN starts; they count towards --kimg like any step."""
    r1_gamma: float = 1.0
    """R1 weight gamma on real images (lazy, every d_optimizer.reg_interval steps)."""
    ema_kimg: float | None = None
    """Half-life of the EMA generator in kimg; None: 10 * batch / 32 (StyleGAN2-ADA)."""
    ema_rampup: float | None = 0.05
    """EMA ramp-up: the half-life is at most this fraction of the images shown so far (None: off)."""
    d_accuracy_gate: float | None = None
    """3D-GAN's balance: D takes its step only when its accuracy on the batch (reals with a positive logit, R's
    renders with a negative one, averaged over processes) is at most this; None: D steps every time."""

    def __post_init__(self) -> None:
        if self.dom_weight < 0 or self.proxy_pretrain_steps < 0 or self.r1_gamma < 0:
            raise ValueError("IgGanLossConfig.dom_weight, proxy_pretrain_steps and r1_gamma must be >= 0")
        if self.d_accuracy_gate is not None and not 0.5 <= self.d_accuracy_gate <= 1.0:
            raise ValueError(f"IgGanLossConfig.d_accuracy_gate must lie in [0.5, 1] or be None, got "
                             f"{self.d_accuracy_gate}")


@dataclass
class IgGanConfig:
    """Everything IG-GAN is made of."""

    generator: VoxelGeneratorConfig = field(default_factory=VoxelGeneratorConfig)
    """The voxel generator (occupancy and colour per voxel)."""
    proxy: ProxyRendererConfig = field(default_factory=ProxyRendererConfig)
    """f, the proxy neural renderer G is trained through."""
    mitsuba: MitsubaRendererConfig = field(default_factory=MitsubaRendererConfig)
    """R, the off-the-shelf renderer D's fakes come from (Mitsuba 3, non-differentiable)."""
    discriminator: DiscriminatorConfig = field(
        default_factory=lambda: DiscriminatorConfig(patch_conditioning=False))
    """The image discriminator (whole images: its resolutions follow --resolution; no patch or camera input)."""
    renderer: VolumeRendererConfig = field(
        default_factory=lambda: VolumeRendererConfig(sampler="stratified", num_coarse=96))
    """How the voxel field is volume-rendered for snapshots, the viewer, metrics and commands (not in training)."""
    cameras: CameraDistributionConfig = field(default_factory=CameraDistributionConfig.from_dataset)
    """Cameras R and f render generated shapes from (the dataset's poses by default, or a parametric orbit)."""
    losses: IgGanLossConfig = field(default_factory=IgGanLossConfig)
    """Losses and schedules."""
    g_optimizer: AdamConfig = field(default_factory=lambda: AdamConfig(lr=0.0025, beta1=0.5, reg_interval=0))
    """Generator optimizer (3D-GAN: lr 0.0025, beta1 0.5)."""
    d_optimizer: AdamConfig = field(default_factory=lambda: AdamConfig(lr=0.002, reg_interval=16))
    """Discriminator optimizer (its reg_interval is the lazy R1 interval)."""
    f_optimizer: AdamConfig = field(default_factory=lambda: AdamConfig(lr=0.001, beta1=0.9, reg_interval=0))
    """Proxy renderer optimizer."""


@dataclass
class IgGanTrainConfig(TrainConfig):
    """`epigraf-train --pipeline ig-gan` options."""

    model: IgGanConfig = field(default_factory=IgGanConfig)
    """Networks, renderers, cameras and losses."""


PATCH_RESOLUTION_UNUSED = 8
"""ig-gan renders whole images (R, f and D all work at --resolution); --patch-resolution is left at the smallest
value the common options accept, so that any --resolution passes their check."""


def gpu_preset() -> IgGanTrainConfig:
    """IG-GAN-like defaults: 64^3 voxels, 128^2 images, batch 32, f pre-trained for 2,000 steps.

    It carries over what the CPU preset's runs showed (not trained on a GPU here): grids start as a ball,
    and G learns at 2.5e-4, slowly enough for f to keep up with its shapes."""
    return IgGanTrainConfig(
        pipeline="ig-gan", resolution=128, patch_resolution=PATCH_RESOLUTION_UNUSED, batch=32, kimg=5000.0,
        model=IgGanConfig(
            generator=VoxelGeneratorConfig(initial_radius=0.25),
            proxy=ProxyRendererConfig(frustum_resolution=64, frustum_depth=64),
            g_optimizer=AdamConfig(lr=0.00025, beta1=0.5, reg_interval=0),
        ),
    )


def cpu_preset() -> IgGanTrainConfig:
    """A run on a 2-core CPU in about 20 minutes on the built-in dataset: 32^3 voxels, 64^2 images, batch 8.

    f is pre-trained for 600 steps (4,800 random shapes; about 25 s per kimg alone on 2 cores), then
    the GAN runs for the rest of the 20 kimg (about 60 s per kimg). What the probe runs of this preset
    showed (each change below was the fix for a failure seen in R's and f's snapshots):

    * Grids start as a ball of radius 0.25 (``initial_radius``): from the network's noise alone the
      binarized grid is salt noise that f, pre-trained on solid shapes, could not render, and G
      filled the whole grid.
    * G learns at 2.5e-4 and D at 2.5e-4: with G at 1e-3, f's L2 on G's shapes rose from 0.01 to
      1-2 within 1.6 kimg (f fell behind G, and G's gradient through f stopped meaning anything).
    * DOM weight 1 instead of 10: at 10, with D confident, DOM was over 90% of f's loss and f's
      renders drifted from R's.
    * D steps every iteration: 3D-GAN's accuracy gate (``d_accuracy_gate`` 0.8) left D too weak to
      stop G from emptying the grid, after which neither moved.

    R (Mitsuba scalar_rgb, 4 samples per pixel) costs about 15 to 40 ms per 64^2 image here; f's
    3D convolutions on a 32 x 32 x 32 frustum and D are most of a step.
    """
    return IgGanTrainConfig(
        pipeline="ig-gan", resolution=64, patch_resolution=PATCH_RESOLUTION_UNUSED, batch=8, kimg=20.0,
        trainer=TrainerConfig(tick_kimg=0.4, snapshot_ticks=10, checkpoint_ticks=5, snapshot_grid=(8, 4)),
        model=IgGanConfig(
            generator=VoxelGeneratorConfig(z_dim=64, resolution=32, channels=(64, 32, 16), initial_radius=0.25),
            proxy=ProxyRendererConfig(frustum_resolution=32, frustum_depth=32, channels_3d=(8, 16),
                                      projection_channels=64, channels_2d=(64, 32, 16)),
            discriminator=DiscriminatorConfig(patch_conditioning=False, channel_base=512, channel_max=32),
            renderer=VolumeRendererConfig(sampler="stratified", num_coarse=64, chunk_size=65536),
            losses=IgGanLossConfig(dom_weight=1.0, proxy_pretrain_steps=600, r1_gamma=1.0, ema_kimg=0.25),
            g_optimizer=AdamConfig(lr=0.00025, beta1=0.5, reg_interval=0),
            d_optimizer=AdamConfig(lr=0.00025, reg_interval=16),
        ),
    )


def resolve_model_config(config: IgGanTrainConfig) -> IgGanConfig:
    """The nested config with --resolution applied: D sees whole images; the volume renderer's box is G's."""
    model = config.model
    discriminator = replace(model.discriminator, resolution=config.resolution, image_resolution=config.resolution,
                            c_dim=0, patch_conditioning=False)
    renderer = replace(model.renderer, box_half_size=model.generator.box_half_size)
    proxy = replace(model.proxy, hint_threshold=model.mitsuba.threshold)
    generator = replace(model.generator, surface_threshold=model.mitsuba.threshold)
    return replace(model, generator=generator, discriminator=discriminator, renderer=renderer, proxy=proxy)


def check_dataset(dataset: Any, cameras: CameraDistributionConfig) -> None:
    """IG-GAN renders its shapes from cameras like the dataset's: refuse a dataset without them, saying the fix."""
    if cameras.source == "dataset" and not bool(getattr(dataset, "has_labels", False)):
        raise ValueError(
            "the ig-gan pipeline renders generated shapes from the dataset's cameras, but the dataset has no camera "
            "labels (no dataset.json labels or transforms.json): add camera labels to the dataset, or give a "
            "parametric camera distribution that matches how its images were taken (--model.cameras.source "
            "parametric with --model.cameras.radius, --model.cameras.fov-degrees and the yaw/pitch options)"
        )


def discriminator_accuracy(real_logits: Tensor, fake_logits: Tensor, context: DistributedContext) -> float:
    """The share of a batch D classifies right (real logit > 0, fake logit < 0), averaged over processes."""
    right = torch.cat([(real_logits > 0).flatten(), (fake_logits < 0).flatten()]).float().mean()
    return float(all_reduce_mean(right, context))


class IgGanPipeline(Pipeline):
    """G makes voxels; R (Mitsuba) renders them for D; f imitates R so that G can learn through it."""

    name = "ig-gan"

    def __init__(self, config: IgGanTrainConfig, device: torch.device, dataset: Any,
                 context: DistributedContext = DistributedContext()) -> None:
        self.train_config = config
        self.config = resolve_model_config(config)
        check_dataset(dataset, self.config.cameras)
        self.device, self.context = device, context
        box = self.config.generator.box_half_size
        # Mitsuba is checked first: a missing or broken install stops the run before anything is written.
        self.R = MitsubaVoxelRenderer(self.config.mitsuba, config.resolution, box)
        num_classes = int(getattr(dataset, "num_classes", 0) or 0)
        if num_classes and context.is_main:  # IG-GAN is unconditional: say so rather than drop the classes silently
            print(f"ig-gan trains unconditionally: the dataset's {num_classes} classes are not used", flush=True)
        has_labels = bool(getattr(dataset, "has_labels", False))
        self.camera_distribution = CameraDistribution.for_training(
            self.config.cameras, dataset.labels if has_labels else None)
        self.batch_size = config.batch // context.world_size
        self.rng = torch.Generator(device).manual_seed(config.seed * 7919 + context.rank)
        self.camera_rng = torch.Generator().manual_seed(config.seed * 7919 + 1 + context.rank)
        self.shape_rng = torch.Generator().manual_seed(config.seed * 7919 + 2 + context.rank)
        self.G = VoxelGenerator(self.config.generator, seed=config.seed).to(device).train()
        self.G_ema = copy.deepcopy(self.G).eval().requires_grad_(False)
        self.f = ProxyRenderer(self.config.proxy, config.resolution, box, seed=config.seed + 2).to(device).train()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed + 1)
            self.D = Discriminator(self.config.discriminator).to(device).train()
        self.renderer = VolumeRenderer(self.config.renderer)
        self.opt_G = self.config.g_optimizer.build(self.G.parameters())
        self.opt_D = self.config.d_optimizer.build(self.D.parameters(), separate_regularization_step=False)
        self.opt_f = self.config.f_optimizer.build(self.f.parameters())
        for module in self.modules():
            broadcast_module(module, context)
        self.G_phase = data_parallel(self.G, context, device)
        self.D_phase = data_parallel(self.D, context, device)
        self.f_phase = data_parallel(self.f, context, device)

    @property
    def z_dim(self) -> int:
        return self.config.generator.z_dim

    def modules(self) -> list[torch.nn.Module]:
        return [self.G, self.G_ema, self.D, self.f]

    def sample_cameras(self, batch_size: int, rng: torch.Generator) -> Cameras:
        return self.camera_distribution.sample(batch_size, rng)

    def _render_seed(self, step: int) -> int:
        """Mitsuba's noise seed of a step (a function of seed, step and rank: a resumed run renders the same)."""
        world, rank = self.context.world_size, self.context.rank
        return (self.train_config.seed * 1_000_003 + (step * world + rank) * 65_537) % 2**30

    def _latents_and_cameras(self) -> tuple[Tensor, Cameras]:
        z = torch.randn(self.batch_size, self.z_dim, generator=self.rng, device=self.device)
        return z, self.sample_cameras(self.batch_size, self.camera_rng).to(self.device)

    # ----------------------------------------------------------------------------------- phases
    def _proxy_phase(self, voxels: Tensor, cameras: Cameras, renders: Tensor, dom_weight: float) -> dict[str, float]:
        """f's step: L2 to R's renders of ``voxels`` plus DOM with a frozen D (weight 0: L2 alone)."""
        self.f.requires_grad_(True)
        self.D.requires_grad_(False)

        def forward(voxels: Tensor, cameras: Cameras) -> Tensor:
            return self.f(voxels, cameras)

        proxy = self.f_phase(forward, voxels.detach(), cameras)
        l2 = l2_loss(proxy, renders).mean()
        loss = l2
        metrics = {"f/l2": l2.item()}
        if dom_weight > 0:
            with torch.no_grad():
                render_logits = self.D(renders)
            dom = dom_loss(render_logits, self.D(proxy)).mean()
            loss = loss + dom_weight * dom
            metrics["f/dom"] = dom.item()
        self.opt_f.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_f.step()
        metrics["f/loss"] = loss.item()
        return metrics

    def _pretrain_phase(self, step: int) -> dict[str, float]:
        """f pre-training: random voxel shapes rendered by R, L2 only (D has not started)."""
        voxels = random_voxel_shapes(self.batch_size, self.config.generator.resolution,
                                     self.config.generator.box_half_size, self.shape_rng).to(self.device)
        cameras = self.sample_cameras(self.batch_size, self.camera_rng).to(self.device)
        renders = self.R(voxels, cameras, self._render_seed(step))
        metrics = self._proxy_phase(voxels, cameras, renders, dom_weight=0.0)
        return {"pretrain/l2": metrics["f/l2"]}

    def _generator_phase(self) -> dict[str, float]:
        """G's step through f: the non-saturating loss of D(f(G(z)))."""
        self.G.requires_grad_(True)
        self.f.requires_grad_(False)
        self.D.requires_grad_(False)
        z, cameras = self._latents_and_cameras()
        fake = self.G_phase(lambda z, cameras: self.f(self.G(z), cameras), z, cameras)
        logits = self.D(fake)
        loss = generator_loss(logits).mean()
        self.opt_G.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_G.step()
        return {"G/loss": loss.item(), "G/fake_logits": logits.mean().item()}

    def _discriminator_phase(self, batch: TrainBatch, renders: Tensor, step: int) -> dict[str, float]:
        """D's step: real images against R's renders of generated shapes; lazy R1 on the reals."""
        self.D.requires_grad_(True)
        regularize = is_regularization_step(step, self.config.d_optimizer.reg_interval) and self.config.losses.r1_gamma > 0
        real = batch.images.to(self.device).detach().requires_grad_(regularize)
        fake_logits, real_logits = self.D_phase(lambda fake, real: (self.D(fake), self.D(real)), renders, real)
        loss = discriminator_fake_loss(fake_logits).mean() + discriminator_real_loss(real_logits).mean()
        accuracy = discriminator_accuracy(real_logits.detach(), fake_logits.detach(), self.context)
        metrics = {"D/loss": loss.item(), "D/real_logits": real_logits.mean().item(),
                   "D/fake_logits": fake_logits.mean().item(), "D/accuracy": accuracy}
        gate = self.config.losses.d_accuracy_gate
        steps = gate is None or accuracy <= gate
        metrics["D/stepped"] = float(steps)
        if not steps:
            return metrics  # every process skips alike: the accuracy is their mean
        if regularize:
            penalty = r1_penalty(real_logits, real)
            loss = loss + r1_loss(penalty, self.config.losses.r1_gamma, self.config.d_optimizer.reg_interval).mean()
            metrics["D/r1_penalty"] = penalty.mean().item()
        self.opt_D.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_D.step()
        return metrics

    def train_step(self, batch: TrainBatch, progress: Progress) -> dict[str, float]:
        r_seconds = self.R.seconds
        if progress.step < self.config.losses.proxy_pretrain_steps:
            metrics = self._pretrain_phase(progress.step)
        else:
            z, cameras = self._latents_and_cameras()
            with torch.no_grad():
                voxels = self.G(z)
            renders = self.R(voxels, cameras, self._render_seed(progress.step))
            metrics = self._proxy_phase(voxels, cameras, renders, self.config.losses.dom_weight)
            metrics.update(self._generator_phase())
            metrics.update(self._discriminator_phase(batch, renders, progress.step))
            metrics["G/occupied_fraction"] = (voxels[:, 0] > self.config.mitsuba.threshold).float().mean().item()
        losses = self.config.losses
        beta = ema_beta(self.train_config.batch, progress.nimg, losses.ema_kimg, losses.ema_rampup)
        ema_update(self.G_ema, self.G, beta)
        metrics["time/R_seconds"] = self.R.seconds - r_seconds
        return metrics

    # ----------------------------------------------------------------------------------- outputs
    @torch.no_grad()
    def snapshot_grids(self, z: Tensor, cameras: Cameras, resolution: int, columns: int) -> dict[str, tuple[Tensor, int]]:
        """R's render and f's render of each EMA snapshot shape side by side (R left), in [0, 1]."""
        voxels = self.G_ema(z.to(self.device))
        cameras = cameras.to(self.device)
        renders = self.R(voxels, cameras, seed=0)
        was_training = self.f.training
        proxy = self.f.eval()(voxels, cameras)
        self.f.train(was_training)
        pairs = torch.stack([renders, proxy], dim=1).flatten(0, 1)
        images = torch.nn.functional.interpolate(pairs, size=resolution, mode="bilinear", align_corners=False)
        return {"R-vs-f": ((images + 1) / 2, 2 * columns)}

    def model(self) -> VoxelModel:
        """The EMA generator with this run's volume renderer and camera distribution (shares the weights)."""
        return VoxelModel(self.G_ema, self.renderer, self.camera_distribution, pipeline=self.name,
                          image_resolution=self.train_config.resolution)

    def state_dict(self) -> dict[str, Any]:
        return {
            "G": self.G.state_dict(), "G_ema": self.G_ema.state_dict(), "D": self.D.state_dict(),
            "f": self.f.state_dict(), "opt_G": self.opt_G.state_dict(), "opt_D": self.opt_D.state_dict(),
            "opt_f": self.opt_f.state_dict(), "rng": self.rng.get_state(), "camera_rng": self.camera_rng.get_state(),
            "shape_rng": self.shape_rng.get_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for name in ("G", "G_ema", "D", "f"):
            getattr(self, name).load_state_dict(state[name])
        for name in ("opt_G", "opt_D", "opt_f"):
            getattr(self, name).load_state_dict(state[name])
        for name in ("rng", "camera_rng", "shape_rng"):
            getattr(self, name).set_state(state[name].cpu())

"""EpiGRAF's patch-wise GAN: a pure 3D tri-plane generator rendered patch by patch, no upsampler."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field, replace
from typing import Any

import torch
from torch import Tensor

from epigraf_field.ema import ema_update
from epigraf_field.generator import TriPlaneGenerator, TriPlaneGeneratorConfig
from pipelines.pipeline import Pipeline, Progress, TrainBatch
from pipelines.camera_distributions import CameraDistribution, CameraDistributionConfig
from pipelines.engine.distributed import DistributedContext, all_reduce_mean, broadcast_module, data_parallel
from pipelines.gan.ada import AdaptiveAugment, AugmentConfig
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
from pipelines.gan.schedules import blur_sigma, density_noise_std, ema_beta, pose_swap_probability
from pipelines.model import TriPlaneModel
from pipelines.patch_gan.patch_sampler import PatchSamplerConfig, sample_patches
from pipelines.engine.options import TrainConfig
from pipelines.engine.trainer import TrainerConfig
from renderers.cameras import LABEL_SIZE, Cameras
from renderers.patches import Patch, crop_patches
from renderers.volume_renderer import VolumeRenderer, VolumeRendererConfig


@dataclass
class PatchGanLossConfig:
    """Losses, regularizers and schedules of the patch-wise GAN (EpiGRAF's values by default)."""

    r1_gamma: float = 0.1
    """R1 weight gamma (EpiGRAF: 0.1 on FFHQ, 0.05 elsewhere)."""
    blur_sigma: float = 10.0
    """Discriminator input blur at the start, in pixels; it fades linearly to 0."""
    blur_fade_kimg: float = 200.0
    """kimg over which the discriminator input blur fades out."""
    density_noise: float = 1.0
    """Std of the Gaussian noise added to raw density at the start ("NeRF noise")."""
    density_noise_kimg: float = 5000.0
    """kimg over which the density noise decays linearly to 0."""
    ema_kimg: float | None = None
    """Half-life of the EMA generator in kimg; None: 10 * batch / 32 (StyleGAN2-ADA)."""
    ema_rampup: float | None = 0.05
    """EMA ramp-up: the half-life is at most this fraction of the images shown so far (None: off)."""
    pose_conditioning: bool = False
    """Condition the generator's mapping on the camera label (EG3D), swapping in a random camera."""
    pose_swap_probability: float = 0.5
    """With pose conditioning: probability of conditioning on a random other camera once faded in (EG3D: 0.5)."""
    pose_swap_fade_kimg: float = 1000.0
    """kimg over which the swap probability fades from 1.0 to pose_swap_probability (EG3D: 1,000; 0: no fade)."""
    camera_conditioned_discriminator: bool = False
    """Condition the discriminator on the 25-float camera label (EG3D)."""
    class_grouped_batches: bool = False
    """Class-conditional datasets: each minibatch-std group of the discriminator holds images of one class, the
    real ones and the fakes alike, so its statistic measures the variety within a class. In mixed groups, a
    generator that paints every object of a class in one colour looks as varied as the reals."""


@dataclass
class PatchGanConfig:
    """Everything the patch-wise GAN is made of."""

    generator: TriPlaneGeneratorConfig = field(default_factory=TriPlaneGeneratorConfig)
    """The tri-plane generator."""
    discriminator: DiscriminatorConfig = field(default_factory=DiscriminatorConfig)
    """The patch-aware discriminator (its resolutions follow --patch-resolution and --resolution)."""
    renderer: VolumeRendererConfig = field(default_factory=VolumeRendererConfig)
    """How patches are volume-rendered."""
    patches: PatchSamplerConfig = field(default_factory=PatchSamplerConfig)
    """Patch scale/offset distribution (its resolutions follow --patch-resolution and --resolution)."""
    cameras: CameraDistributionConfig = field(default_factory=CameraDistributionConfig.from_dataset)
    """Cameras the generator is rendered from."""
    losses: PatchGanLossConfig = field(default_factory=PatchGanLossConfig)
    """Losses, regularizers and schedules."""
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    """Discriminator augmentation (ADA) of real and fake patches; the patch parameters are left as they are."""
    g_optimizer: AdamConfig = field(default_factory=AdamConfig.epigraf_generator)
    """Generator optimizer."""
    d_optimizer: AdamConfig = field(default_factory=AdamConfig.epigraf_discriminator)
    """Discriminator optimizer (its reg_interval is the lazy R1 interval)."""


@dataclass
class PatchGanTrainConfig(TrainConfig):
    """`epigraf-train --pipeline patch-gan` options."""

    recipe: str | None = None
    """A paper's configuration for a dataset, applied over the GPU preset before the other options (the recipes
    are listed in `epigraf-train --help`); recorded here so the run says what it followed."""
    model: PatchGanConfig = field(default_factory=PatchGanConfig)
    """Networks, renderer, patches, cameras and losses."""


def gpu_preset() -> PatchGanTrainConfig:
    """Paper-like defaults (EpiGRAF at 256^2 with 64^2 patches, batch 64)."""
    return PatchGanTrainConfig(
        pipeline="patch-gan",
        resolution=256,
        patch_resolution=64,
        batch=64,
        kimg=25000.0,
        # EpiGRAF keeps 512^2 tri-planes at every image resolution (its planes are not tied to the image size).
        model=PatchGanConfig(generator=replace(TriPlaneGeneratorConfig(), plane_resolution=512, mapping_layers=2)),
    )


def cpu_preset() -> PatchGanTrainConfig:
    """A run that shows a real result in minutes on a laptop CPU: small widths, 64^2 images, 32^2 patches.

    Rendering uses 12 + 12 samples per ray: on a CPU, sampling the planes (grid_sample and its
    backward) is most of the cost of a step; 24 + 12 cost 10% more. The patch annealing keeps
    EpiGRAF's 10,000 kimg, so in a run this short patches stay close to whole images at 32^2, as in
    EpiGRAF's first phase; compressing it into the run made the shapes fall apart once patches
    shrank (at 12 kimg: 20 of 32 samples with floaters, none recognised as a dataset shape). The
    input blur fades within the run. R1 gamma 0.2 without density noise gave object-like shapes
    within 6 kimg; gamma 0.05 changed little at 12 kimg.

    The discriminator is twice as wide as the generator's widths would suggest (channel base 2048,
    at most 64 channels): at 12 kimg it left 2 of 32 samples with floaters where the narrower one
    left 7, at about 20% more time per kimg (doubling the generator's synthesis widths instead did
    not help). The EMA spans 2 kimg (with its ramp-up, 0.05 of the images seen so far) rather than
    0.25. 24 kimg take about 12 minutes on 2 quiet cores, turntable included.

    The built-in dataset records its four families as classes, so the default run is
    class-conditional (see pipelines.data.builtin): unconditionally, the generator drops chairs and
    tables (the discriminator scores real chairs and tables above the other families, yet a
    whole-batch minibatch-std, R1 gamma 1 or a mapping learning-rate multiplier of 1 kept them out
    at 10-12 kimg), while with the family as its class it draws table tops on legs and chairs with
    backs by 10 kimg.

    The final turntable shows 8 of the snapshot latents, 4 per row (one class per column), each at
    128^2: twice the training resolution, which a pure 3D generator renders without retraining. Its
    36 frames hold about 36 snapshot grids' worth of pixels, rendered once at the end of the run.
    """
    generator = TriPlaneGeneratorConfig(
        z_dim=64, w_dim=64, mapping_layers=2, plane_resolution=32, plane_channels=16,
        channel_base=1024, channel_max=32, decoder_hidden=32,
    )
    return PatchGanTrainConfig(
        pipeline="patch-gan",
        resolution=64,
        patch_resolution=32,
        batch=8,
        kimg=24.0,
        trainer=TrainerConfig(tick_kimg=0.4, snapshot_ticks=5, checkpoint_ticks=5, snapshot_grid=(8, 4),
                              turntable_samples=8, turntable_resolution=128, turntable_columns=4),
        model=PatchGanConfig(
            generator=generator,
            discriminator=DiscriminatorConfig(channel_base=2048, channel_max=64, hyper_mod_dim=32, patch_table_dim=16),
            renderer=VolumeRendererConfig(sampler="importance", num_coarse=12, num_fine=12, chunk_size=65536),
            patches=PatchSamplerConfig(),
            losses=PatchGanLossConfig(r1_gamma=0.2, blur_sigma=2.0, blur_fade_kimg=1.5, density_noise=0.0,
                                      density_noise_kimg=1.0, ema_kimg=2.0),
            g_optimizer=AdamConfig(lr=0.0025, reg_interval=0),
            d_optimizer=AdamConfig(lr=0.002, reg_interval=16),
        ),
    )


def resolve_model_config(config: PatchGanTrainConfig, num_classes: int = 0) -> PatchGanConfig:
    """Applies the top-level options (--resolution, --patch-resolution) and the dataset's ``num_classes`` to the
    nested configs: G and D are conditioned on the camera label (25, when on) followed by the one-hot class."""
    model = config.model
    label_dim = LABEL_SIZE
    patches = replace(model.patches, patch_resolution=config.patch_resolution, image_resolution=config.resolution)
    discriminator = replace(
        model.discriminator,
        resolution=config.patch_resolution,
        image_resolution=config.resolution,
        c_dim=(label_dim if model.losses.camera_conditioned_discriminator else 0) + num_classes,
        patch_conditioning=patches.mode != "full",
    )
    generator = replace(model.generator, c_dim=(label_dim if model.losses.pose_conditioning else 0) + num_classes)
    return replace(model, patches=patches, discriminator=discriminator, generator=generator)


def class_frequencies(dataset: Any, num_classes: int) -> Tensor:
    """Relative frequency [num_classes] of each class in ``dataset.class_labels`` (empty when unconditional).

    Example: class_labels ``[2, 0, 2, 2]`` with 3 classes give ``[0.25, 0.0, 0.75]``.
    """
    if num_classes == 0:
        return torch.zeros(0)
    class_labels = getattr(dataset, "class_labels", None)
    if class_labels is None or len(class_labels) == 0:
        raise ValueError(f"the dataset declares {num_classes} classes but has no class_labels: check its dataset.json")
    counts = torch.bincount(class_labels.long().cpu(), minlength=num_classes).float()
    return counts / counts.sum()


class PatchGanPipeline(Pipeline):
    """G renders an r x r patch of each fake image; D compares it with the same patch of a real image."""

    name = "patch-gan"
    generator_phases_reach_part_of_G = False
    """Whether a generator phase leaves some of G's parameters without gradient (data-parallel bookkeeping)."""

    def __init__(
        self,
        config: PatchGanTrainConfig,
        device: torch.device,
        dataset: Any,
        context: DistributedContext = DistributedContext(),
    ) -> None:
        self.train_config = config
        self.num_classes = int(getattr(dataset, "num_classes", 0) or 0)
        """Classes of a class-conditional dataset (0: unconditional); G and D see them one-hot."""
        self.class_frequencies = class_frequencies(dataset, self.num_classes)
        """Relative frequency [num_classes] of each class among the real images: fake classes are drawn from it."""
        self.config = self._resolve_config(config)
        self.device = device
        self.context = context
        self.kimg = getattr(self, "kimg", 0.0)
        """kimg before the current minibatch (schedules that are not passed it read it here)."""
        has_labels = bool(getattr(dataset, "has_labels", False))
        self.camera_distribution = CameraDistribution.for_training(
            self.config.cameras, dataset.labels if has_labels else None)
        """The cameras fakes are rendered from; recorded with the generator so every consumer frames it alike."""
        self.batch_size = config.batch // context.world_size
        self.mixed_precision = config.mixed_precision and device.type == "cuda"
        self.rng = torch.Generator(device).manual_seed(config.seed * 7919 + context.rank)
        self.camera_rng = torch.Generator().manual_seed(config.seed * 7919 + 1 + context.rank)
        self.G = self._build_generator(config.seed, device).train()
        self.G_ema = copy.deepcopy(self.G).eval().requires_grad_(False)
        init_rng = torch.random.fork_rng(devices=[])
        with init_rng:
            torch.manual_seed(config.seed + 1)
            self.D = Discriminator(self.config.discriminator).to(device).train()
        self.renderer = VolumeRenderer(self.config.renderer)
        self.augment = AdaptiveAugment(self.config.augment, config.batch, context, device)
        """ADA: augments every discriminator input from ``self.rng``; holds p and its r_t statistics."""
        self.opt_G = self.config.g_optimizer.build(self.G.parameters())
        # R1 is added to the main discriminator step's loss (no extra step): no lazy-step compensation.
        self.opt_D = self.config.d_optimizer.build(self.D.parameters(), separate_regularization_step=False)
        for module in self.modules():
            broadcast_module(module, context)
        # Each phase's forward runs through DistributedDataParallel over the network it trains.
        self.G_phase = data_parallel(self.G, context, device, self.generator_phases_reach_part_of_G)
        self.D_phase = data_parallel(self.D, context, device)

    # ----------------------------------------------------------------------------------- pieces
    def _resolve_config(self, config: PatchGanTrainConfig) -> PatchGanConfig:
        """The nested model config with the top-level options and classes applied (a hook for derived pipelines)."""
        return resolve_model_config(config, self.num_classes)

    def _build_generator(self, seed: int, device: torch.device) -> torch.nn.Module:
        """The trained generator (a hook: a derived pipeline may wrap the tri-plane generator)."""
        return TriPlaneGenerator(self.config.generator, seed=seed, device=device)

    @property
    def z_dim(self) -> int:
        return self.config.generator.z_dim

    def modules(self) -> list[torch.nn.Module]:
        return [self.G, self.G_ema, self.D]

    def sample_cameras(self, batch_size: int, rng: torch.Generator) -> Cameras:
        """Training cameras: the generator's camera distribution (the dataset's poses, or an orbit)."""
        return self.camera_distribution.sample(batch_size, rng)

    @property
    def real_class_group(self) -> int:
        """The minibatch-std group size with ``class_grouped_batches`` on a class-conditional dataset, else 1."""
        if self.num_classes == 0 or not self.config.losses.class_grouped_batches:
            return 1
        return min(self.config.discriminator.mbstd_group_size, self.batch_size)

    def sample_classes(self, batch_size: int) -> Tensor | None:
        """Fake classes [b] (int64) drawn from the real images' class frequencies (None: unconditional), one per
        run of :attr:`real_class_group` consecutive fakes."""
        if self.num_classes == 0:
            return None
        group = self.real_class_group
        draws = -(-batch_size // group)
        classes = torch.multinomial(self.class_frequencies, draws, replacement=True, generator=self.camera_rng)
        return classes.repeat_interleave(group)[:batch_size].to(self.device)

    def _class_condition(self, classes: Tensor | None, what: str) -> list[Tensor]:
        """The one-hot classes [b, num_classes] as the last part of a condition ([] when unconditional)."""
        if self.num_classes == 0:
            return []
        if classes is None:
            raise ValueError(f"{what}: the dataset has {self.num_classes} classes, but no class indices were given")
        return [torch.nn.functional.one_hot(classes.to(self.device), self.num_classes).float()]

    def _generator_label(self, cameras: Cameras, classes: Tensor | None = None) -> Tensor | None:
        """The mapping's condition: the camera label, swapped for a random camera with EG3D's probability (with
        pose conditioning), then the one-hot class (class-conditional datasets)."""
        parts = self._class_condition(classes, "the generator's condition")
        if self.config.losses.pose_conditioning:
            labels = cameras.to_label()
            losses = self.config.losses
            probability = pose_swap_probability(self.kimg, losses.pose_swap_probability, losses.pose_swap_fade_kimg)
            swap = torch.rand(len(cameras), generator=self.camera_rng) < probability
            others = self.sample_cameras(len(cameras), self.camera_rng).to(self.device).to_label()
            parts.insert(0, torch.where(swap.to(self.device)[:, None], others, labels))
        return torch.cat(parts, dim=1) if parts else None

    def _discriminator_label(self, labels: Tensor, classes: Tensor | None = None) -> Tensor | None:
        """D's condition: the camera label (camera-conditioned D), then the one-hot class (class-conditional)."""
        parts = self._class_condition(classes, "the discriminator's condition")
        if self.config.losses.camera_conditioned_discriminator:
            parts.insert(0, labels)
        return torch.cat(parts, dim=1) if parts else None

    def map_latents(self, generator: TriPlaneGenerator, z: Tensor, cameras: Cameras,
                    classes: Tensor | None = None) -> Tensor:
        """Training ws [b, num_ws, w_dim]: z mapped under the (possibly swapped) camera condition and the
        classes [b] (class-conditional datasets), untruncated."""
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.mixed_precision):
            return generator.mapping(z, self._generator_label(cameras, classes))

    def render_patches(
        self, generator: TriPlaneGenerator, z: Tensor, cameras: Cameras, patch: Patch, kimg: float,
        classes: Tensor | None = None,
    ) -> Tensor:
        """Fake patches [b, 3, r, r] in [-1, 1] of classes [b] (class-conditional) (training randomness on)."""
        ws = self.map_latents(generator, z, cameras, classes)
        return self.render_patches_from_ws(generator, ws, cameras, patch, kimg)

    def render_patches_from_ws(
        self, generator: TriPlaneGenerator, ws: Tensor, cameras: Cameras, patch: Patch, kimg: float
    ) -> Tensor:
        """Fake patches [b, 3, r, r] in [-1, 1] of training ws [b, num_ws, w_dim] (training randomness on)."""
        losses = self.config.losses
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.mixed_precision):
            planes = generator.synthesis(ws, noise_mode="random", rng=self.rng)
        noise = density_noise_std(kimg, losses.density_noise, losses.density_noise_kimg)
        field = generator.field(planes.float(), density_noise_std=noise, rng=self.rng)
        images = self.renderer.render_image(field, cameras, self.train_config.patch_resolution, patch, self.rng)
        return images.rgb * 2.0 - 1.0

    def _discriminate(self, images: Tensor, patch: Patch, labels: Tensor | None, kimg: float) -> Tensor:
        """D's logits of ``images``: blurred (the fading input blur), then augmented (ADA, when on; patch
        parameters unchanged, see pipelines.gan.ada), the order of StyleGAN3 / EpiGRAF."""
        losses = self.config.losses
        sigma = blur_sigma(kimg, losses.blur_sigma, losses.blur_fade_kimg)
        images = self.augment(blur_images(images, sigma), self.rng)
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.mixed_precision):
            return self.D(images, patch, labels).float()

    def _discriminate_fake_and_real(
        self, fake: Tensor, fake_patch: Patch, fake_labels: Tensor | None,
        real: Tensor, real_patch: Patch, real_labels: Tensor | None, kimg: float,
    ) -> tuple[Tensor, Tensor]:
        """The discriminator phase's forward: logits of the fakes and of the reals."""
        return self._discriminate(fake, fake_patch, fake_labels, kimg), self._discriminate(real, real_patch, real_labels, kimg)

    def _real_inputs(self, images: Tensor, patch: Patch, kimg: float) -> Tensor:
        """What the discriminator sees of real images [b, 3, R, R]."""
        return self._assemble_real(self._real_parts(images, patch, kimg))

    def _real_parts(self, images: Tensor, patch: Patch, kimg: float) -> tuple[Tensor, ...]:
        """The tensors R1 differentiates against: here the real patches, cut at r x r."""
        return (crop_patches(images, patch, self.train_config.patch_resolution),)

    def _assemble_real(self, parts: tuple[Tensor, ...]) -> Tensor:
        """The discriminator's real input made of :meth:`_real_parts` (parameter-free, differentiable)."""
        return parts[0]

    def _sample_fake_inputs(self, kimg: float) -> tuple[Tensor, Cameras, Patch]:
        b = self.batch_size
        z = torch.randn(b, self.z_dim, generator=self.rng, device=self.device)
        cameras = self.sample_cameras(b, self.camera_rng).to(self.device)
        patch = self._sample_patch(kimg)
        return z, cameras, patch

    def _sample_patch(self, kimg: float) -> Patch:
        group = min(self.config.discriminator.mbstd_group_size, self.batch_size)
        return sample_patches(self.config.patches, self.batch_size, kimg, self.camera_rng, group).to(self.device)

    def _mapping_network(self) -> torch.nn.Module:
        """G's mapping network, whose w_avg (the truncation centre) the generator phase tracks."""
        return self.G.mapping_network

    def _fakes_and_mean_w(
        self, generator: TriPlaneGenerator, z: Tensor, cameras: Cameras, patch: Patch, kimg: float,
        classes: Tensor | None = None,
    ) -> tuple[Tensor, Tensor]:
        """The generator phase's forward: fake patches and the local batch mean of their w [w_dim], detached."""
        ws = self.map_latents(generator, z, cameras, classes)
        mean_w = ws[:, 0].detach().float().mean(dim=0)
        return self.render_patches_from_ws(generator, ws, cameras, patch, kimg), mean_w

    def _track_w_avg(self, mean_w: Tensor) -> None:
        """StyleGAN2's running mean of w, one step towards the batch mean over every process."""
        global_mean_w = all_reduce_mean(mean_w, self.context)
        self._mapping_network().track_w_avg(global_mean_w, self.config.generator.w_avg_beta)

    # ----------------------------------------------------------------------------------- phases
    def _generator_phase(self, kimg: float) -> dict[str, float]:
        self.G.requires_grad_(True)
        self.D.requires_grad_(False)
        z, cameras, patch = self._sample_fake_inputs(kimg)
        classes = self.sample_classes(len(z))
        fake, mean_w = self.G_phase(self._fakes_and_mean_w, self.G, z, cameras, patch, kimg, classes)
        self._track_w_avg(mean_w)  # the one w_avg step of a training step
        logits = self._discriminate(fake, patch, self._discriminator_label(cameras.to_label(), classes), kimg)
        loss = generator_loss(logits).mean()
        self.opt_G.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_G.step()
        return {"G/loss": loss.item(), "G/fake_logits": logits.mean().item()}

    def _generator_regularization_phase(self, step: int, kimg: float) -> dict[str, float]:
        """Lazy generator regularizers (none for EpiGRAF; EG3D adds its density regularization)."""
        return {}

    def _discriminator_phase(self, batch: TrainBatch, step: int, kimg: float) -> dict[str, float]:
        self.G.requires_grad_(False)
        self.D.requires_grad_(True)
        z, cameras, patch = self._sample_fake_inputs(kimg)
        classes = self.sample_classes(len(z))
        with torch.no_grad():
            fake = self.render_patches(self.G, z, cameras, patch, kimg, classes)
        real_patch = self._sample_patch(kimg)
        regularize = is_regularization_step(step, self.config.d_optimizer.reg_interval) and self.config.losses.r1_gamma > 0
        real_parts = tuple(p.detach().requires_grad_(regularize)
                           for p in self._real_parts(batch.images, real_patch, kimg))
        real = self._assemble_real(real_parts)
        fake_logits, real_logits = self.D_phase(
            self._discriminate_fake_and_real,
            fake, patch, self._discriminator_label(cameras.to_label(), classes),
            real, real_patch, self._discriminator_label(batch.labels, batch.classes), kimg,
        )
        loss = discriminator_fake_loss(fake_logits).mean() + discriminator_real_loss(real_logits).mean()
        metrics = {"D/loss": loss.item(), "D/real_logits": real_logits.mean().item()}
        if self.config.augment.enabled:  # ADA's overfitting statistic r_t (of the augmented reals)
            metrics["D/real_sign"] = self.augment.accumulate(real_logits)
        if regularize:
            penalty = r1_penalty(real_logits, *real_parts)
            loss = loss + r1_loss(penalty, self.config.losses.r1_gamma, self.config.d_optimizer.reg_interval).mean()
            metrics["D/r1_penalty"] = penalty.mean().item()
        self.opt_D.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_D.step()
        return metrics

    def train_step(self, batch: TrainBatch, progress: Progress) -> dict[str, float]:
        kimg = self.kimg = progress.kimg
        ada_p = self.augment.p  # the strength this minibatch is augmented with
        metrics = self._generator_phase(kimg)
        metrics.update(self._generator_regularization_phase(progress.step, kimg))
        metrics.update(self._discriminator_phase(batch, progress.step, kimg))
        losses = self.config.losses
        beta = ema_beta(self.train_config.batch, progress.nimg, losses.ema_kimg, losses.ema_rampup)
        ema_update(self.G_ema, self.G, beta)
        metrics["schedule/blur_sigma"] = blur_sigma(kimg, losses.blur_sigma, losses.blur_fade_kimg)
        metrics["schedule/density_noise"] = density_noise_std(kimg, losses.density_noise, losses.density_noise_kimg)
        if self.config.augment.enabled:
            metrics["schedule/ada_p"] = ada_p
            self.augment.step(progress.step)
        return metrics

    # ----------------------------------------------------------------------------------- outputs
    def model(self) -> TriPlaneModel:
        """The EMA generator with this run's renderer and camera distribution (shares the weights)."""
        return TriPlaneModel(self.G_ema, self.renderer, self.camera_distribution, pipeline=self.name,
                             image_resolution=self.train_config.resolution, num_classes=self.num_classes)

    def state_dict(self) -> dict[str, Any]:
        return {
            "G": self.G.state_dict(),
            "G_ema": self.G_ema.state_dict(),
            "D": self.D.state_dict(),
            "opt_G": self.opt_G.state_dict(),
            "opt_D": self.opt_D.state_dict(),
            "rng": self.rng.get_state(),
            "camera_rng": self.camera_rng.get_state(),
            "augment": self.augment.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.G.load_state_dict(state["G"])
        self.G_ema.load_state_dict(state["G_ema"])
        self.D.load_state_dict(state["D"])
        self.opt_G.load_state_dict(state["opt_G"])
        self.opt_D.load_state_dict(state["opt_D"])
        # Generator states are CPU byte tensors whatever the device (a checkpoint loaded to CUDA moves them).
        self.rng.set_state(state["rng"].cpu())
        self.camera_rng.set_state(state["camera_rng"].cpu())
        if "augment" in state:  # checkpoints written before ADA existed start from the configured p
            self.augment.load_state_dict(state["augment"])

"""A tiny ig-gan configuration for unit tests: 8^3 voxels, 16^2 images, batch 2, one pre-training step."""

from __future__ import annotations

from pathlib import Path

from pipelines.camera_distributions import CameraDistributionConfig
from pipelines.engine.trainer import TrainerConfig
from pipelines.gan.discriminator import DiscriminatorConfig
from pipelines.ig_gan.pipeline import IgGanConfig, IgGanLossConfig, IgGanTrainConfig
from pipelines.ig_gan.proxy import ProxyRendererConfig
from pipelines.ig_gan.renderer import MitsubaRendererConfig
from pipelines.ig_gan.voxels import VoxelGeneratorConfig
from renderers.volume_renderer import VolumeRendererConfig


def tiny_ig_gan_config(out: Path | None = None, **overrides) -> IgGanTrainConfig:
    config = IgGanTrainConfig(
        pipeline="ig-gan", out=out, resolution=16, patch_resolution=16, batch=2, kimg=0.008, device="cpu",
        trainer=TrainerConfig(tick_kimg=0.002, snapshot_ticks=2, checkpoint_ticks=2, keep_checkpoints=10,
                              snapshot_grid=(2, 1), turntable_samples=2, turntable_frames=3,
                              tensorboard=False, progress_bar=False),
        model=IgGanConfig(
            generator=VoxelGeneratorConfig(z_dim=8, resolution=8, channels=(8,), density_scale=50.0),
            proxy=ProxyRendererConfig(frustum_resolution=8, frustum_depth=8, channels_3d=(4, 4),
                                      projection_channels=8, channels_2d=(8, 4)),
            mitsuba=MitsubaRendererConfig(spp=1),
            discriminator=DiscriminatorConfig(patch_conditioning=False, channel_base=64, channel_max=8,
                                              mbstd_group_size=2),
            renderer=VolumeRendererConfig(sampler="stratified", num_coarse=8),
            cameras=CameraDistributionConfig.from_dataset(),
            losses=IgGanLossConfig(dom_weight=10.0, proxy_pretrain_steps=1, ema_kimg=0.01),
        ),
    )
    for key, value in overrides.items():
        setattr(config, key, value)
    return config

"""Tiny configurations and an in-memory dataset shared by the pipeline tests."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import torch

from epigraf_field.generator import TriPlaneGeneratorConfig
from pipelines.camera_distributions import CameraDistributionConfig, sample_cameras
from pipelines.gan.discriminator import DiscriminatorConfig
from pipelines.patch_gan.pipeline import PatchGanConfig, PatchGanLossConfig, PatchGanTrainConfig
from pipelines.patch_gan.patch_sampler import PatchSamplerConfig
from pipelines.engine.trainer import TrainerConfig
from renderers.volume_renderer import VolumeRendererConfig


class TinyDataset(torch.utils.data.Dataset):
    """Coloured discs on white with labels from the synthetic camera distribution."""

    def __init__(self, size: int = 8, resolution: int = 32, seed: int = 0) -> None:
        rng = torch.Generator().manual_seed(seed)
        coords = (torch.arange(resolution) + 0.5) / resolution - 0.5
        radius2 = coords[None, :] ** 2 + coords[:, None] ** 2
        colours = torch.rand(size, 3, 1, 1, generator=rng) * 2 - 1
        disc = (radius2 < 0.1).float()
        self.images = disc * colours + (1 - disc) * torch.ones(size, 3, 1, 1)
        cameras = sample_cameras(CameraDistributionConfig.synthetic("frontal"), size, rng)
        self.labels = cameras.to_label()
        self.has_labels = True

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int):
        return self.images[index], self.labels[index]


def tiny_train_config(out: Path | None = None, **overrides) -> PatchGanTrainConfig:
    """A patch-gan run small enough for a unit test: 32^2 images, 16^2 patches, batch 2."""
    generator = replace(
        TriPlaneGeneratorConfig.small(), z_dim=8, w_dim=8, plane_resolution=8, plane_channels=4,
        channel_base=64, channel_max=8, decoder_hidden=8,
    )
    config = PatchGanTrainConfig(
        pipeline="patch-gan",
        out=out,
        resolution=32,
        patch_resolution=16,
        batch=2,
        kimg=0.008,
        device="cpu",
        trainer=TrainerConfig(tick_kimg=0.002, snapshot_ticks=2, checkpoint_ticks=2, keep_checkpoints=10,
                              snapshot_grid=(2, 1), turntable_samples=2, turntable_frames=3,
                              tensorboard=False, progress_bar=False),
        model=PatchGanConfig(
            generator=generator,
            discriminator=DiscriminatorConfig(channel_base=64, channel_max=8, hyper_mod_dim=8, patch_table_dim=4,
                                              mbstd_group_size=2),
            renderer=VolumeRendererConfig(sampler="importance", num_coarse=4, num_fine=4),
            patches=PatchSamplerConfig(anneal_kimg=0.01),
            cameras=CameraDistributionConfig.from_dataset(),
            losses=PatchGanLossConfig(blur_sigma=1.0, blur_fade_kimg=0.004, density_noise_kimg=0.01),
        ),
    )
    for key, value in overrides.items():
        setattr(config, key, value)
    return config

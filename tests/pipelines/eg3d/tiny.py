"""A tiny eg3d configuration built from the shared tiny patch-gan one (same sizes, 8 feature channels)."""

from __future__ import annotations

import dataclasses
from dataclasses import replace
from pathlib import Path

from pipelines.eg3d.pipeline import Eg3dConfig, Eg3dLossConfig, Eg3dTrainConfig
from pipelines.eg3d.superresolution import SuperResolutionConfig
from pipelines.gan.losses import AdamConfig
from pipelines.engine.options import TrainConfig
from tests.pipelines.tiny import tiny_train_config


def tiny_eg3d_config(out: Path | None = None, **overrides) -> Eg3dTrainConfig:
    """32^2 images, 16^2 neural rendering, batch 2, planes 3 x 4 x 8^2, 8 samples per ray."""
    base = tiny_train_config(out=out)
    common = {f.name: getattr(base, f.name) for f in dataclasses.fields(TrainConfig)}
    common["pipeline"] = "eg3d"
    config = Eg3dTrainConfig(
        **common,
        model=Eg3dConfig(
            generator=replace(base.model.generator, num_feature_channels=8, density_shift=-1.0),
            superresolution=SuperResolutionConfig(channels=8),
            discriminator=base.model.discriminator,
            renderer=base.model.renderer,
            cameras=base.model.cameras,
            losses=Eg3dLossConfig(blur_sigma=1.0, blur_fade_kimg=0.004, density_reg_points=64),
            g_optimizer=AdamConfig(lr=0.0025, reg_interval=4),
            d_optimizer=AdamConfig(lr=0.002, reg_interval=16),
        ),
    )
    for key, value in overrides.items():
        setattr(config, key, value)
    return config

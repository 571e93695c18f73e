"""A tiny mimic3d configuration built from the tiny eg3d one (same sizes; 3D patches 16^2 at scale 0.5)."""

from __future__ import annotations

import dataclasses
from dataclasses import replace
from pathlib import Path

from pipelines.engine.options import TrainConfig
from pipelines.gan.losses import AdamConfig
from pipelines.mimic3d.pipeline import Mimic3dConfig, Mimic3dLossConfig, Mimic3dTrainConfig
from tests.pipelines.eg3d.tiny import tiny_eg3d_config


def tiny_mimic3d_config(out: Path | None = None, stage_3d_kimg: float = 0.0, **overrides) -> Mimic3dTrainConfig:
    """32^2 images, 16^2 neural rendering and 3D patches, batch 2, planes 3 x 4 x 8^2 (detail 16^2), feature
    matching imitation (no LPIPS weights in tests), the 3D stage from ``stage_3d_kimg``."""
    base = tiny_eg3d_config(out=out)
    common = {f.name: getattr(base, f.name) for f in dataclasses.fields(TrainConfig)}
    common["pipeline"] = "mimic3d"
    model = base.model
    config = Mimic3dTrainConfig(
        **common,
        model=Mimic3dConfig(
            generator=model.generator,
            superresolution=model.superresolution,
            discriminator=model.discriminator,
            patch_discriminator=replace(model.discriminator, patch_conditioning=False),
            renderer=model.renderer,
            cameras=model.cameras,
            losses=Mimic3dLossConfig(blur_sigma=1.0, blur_fade_kimg=0.004, density_reg_points=64,
                                     imitation="feature_matching"),
            g_optimizer=AdamConfig(lr=0.0025, reg_interval=4),
            d_optimizer=AdamConfig(lr=0.002, reg_interval=16),
            d_patch_optimizer=AdamConfig(lr=0.002, reg_interval=16),
            stage_3d_kimg=stage_3d_kimg,
        ),
    )
    for key, value in overrides.items():
        setattr(config, key, value)
    return config

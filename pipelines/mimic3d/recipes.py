"""Mimic3D's training configurations per dataset, as recipes of the mimic3d pipeline (`--recipe NAME`).

Sources: Mimic3D's repository (github SeanChenxy/Mimic3D): ``configs/ffhq512_3d.yaml`` and
``configs/afhq512_3d.yaml`` (batch 32, tri-planes 3 x 32 x 256^2 with the 3D-aware branch at
4..256, patch scale 0.125 at 512^2, LPIPS imitation, patch adversarial weight 0.1, density
regularization distance 0.002; AFHQ: gamma 5 and patch gamma 5 with ADA), ``configs/default.yaml``
(gamma and patch gamma 1, generator pose conditioning with swap probability 0.5, density
regularization 0.25 every 4 minibatches, channel base 32768 for both discriminators, 25,000 kimg)
and ``train.py`` (FFHQ's and AFHQ's rendering options are EG3D's: rays 2.25-3.3, box side 1,
48 + 48 samples; the patch discriminator learns at the main one's 0.002; a resumed run drops the
blur and the swap fade, has no EMA ramp-up and adjusts ADA over 100 kimg).

Both recipes are Mimic3D's second ("3d") stage: its configs resume from a first-stage run (EG3D plus
the 3D-aware branch, ``*_2d.yaml``). Here the 3D stage runs from the first step: pass
``--init-from`` with a stage-1 mimic3d run or an eg3d run (or set --model.stage-3d-kimg to train
both stages in one run, with --model.losses.blur-sigma 10 for stage 1's blur). The paper reports FID
5.4 on FFHQ 512 and 4.3 on AFHQv2 Cats 512 from direct 3D renders at 512^2.

The imitation loss is LPIPS as in the paper: the run stops with an error naming the weight files
when they are missing (--model.losses.imitation auto falls back to feature matching). Mirroring
as in the eg3d recipes: EG3D's zips already hold mirrored copies, so pass --no-mirror with them.
"""

from __future__ import annotations

from typing import Any

from pipelines.eg3d.recipes import eg3d, scene
from pipelines.gan.ada import AugmentConfig
from pipelines.mimic3d.pipeline import Mimic3dTrainConfig
from pipelines.recipes import Recipe

PATCH_RESOLUTION = 64
"""The 3D branch's patch side (and the 2D branch's neural rendering resolution): scale 64 / 512 = 0.125."""


def mimic3d(config: Mimic3dTrainConfig, changes: dict[str, Any]) -> Mimic3dTrainConfig:
    """Mimic3D's 512^2 second stage (EG3D's setup plus the 3D branch's) with a dataset's ``changes`` on top."""
    return eg3d(config, {
        "resolution": 512,
        "patch_resolution": PATCH_RESOLUTION,
        "mirror": True,
        "model.losses.pose_conditioning": True,
        "model.losses.pose_swap_probability": 0.5,
        "model.neural_resolution_final": None,
        # A resumed run in Mimic3D's train.py: no blur, no swap fade, no EMA ramp-up.
        "model.losses.blur_sigma": 0.0,
        "model.losses.pose_swap_fade_kimg": 0.0,
        "model.losses.ema_rampup": None,
        "model.losses.imitation": "lpips",
        "model.losses.imitation_weight": 1.0,
        "model.losses.patch_adversarial_weight": 0.1,
        "model.losses.density_reg_distance_3d": 0.002,
        "model.patch_discriminator.channel_base": 32768,
        "model.d_patch_optimizer.lr": 0.002,
        "model.d_patch_optimizer.reg_interval": 16,
        "model.stage_3d_kimg": 0.0,
        **scene(2.25, 3.3, 0.5, 48, "black"),
        **changes,
    })


def ffhq(config: Mimic3dTrainConfig) -> Mimic3dTrainConfig:
    """FFHQ 512^2 (ffhq512_3d): gamma 1 and patch gamma 1, no augmentation."""
    return mimic3d(config, {
        "model.losses.r1_gamma": 1.0,
        "model.losses.r1_gamma_patch": 1.0,
        "model.augment": AugmentConfig(mode="none"),
    })


def afhq(config: Mimic3dTrainConfig) -> Mimic3dTrainConfig:
    """AFHQv2 Cats 512^2 (afhq512_3d): gamma 5 and patch gamma 5, ADA (target 0.6, adjusted over 100 kimg as on a
    resumed run); FFHQ's rays, box and swap probability 0.5 (Mimic3D keeps the default, where EG3D used 0.8)."""
    return mimic3d(config, {
        "model.losses.r1_gamma": 5.0,
        "model.losses.r1_gamma_patch": 5.0,
        "model.augment": AugmentConfig(mode="ada", target=0.6, ada_kimg=100.0),
    })


RECIPES = (
    Recipe("ffhq", "FFHQ 512^2, Mimic3D's stage-2 config (3D patches 64^2 at scale 0.125, LPIPS imitation, patch "
           "weight 0.1, gamma 1 / patch 1); --init-from a stage-1 or eg3d run; FID 5.4 from direct renders", ffhq),
    Recipe("afhq", "AFHQv2 Cats 512^2, Mimic3D's stage-2 config (as ffhq with gamma 5 / patch 5 and ADA); "
           "--init-from a stage-1 or eg3d run; FID 4.3 from direct renders", afhq),
)

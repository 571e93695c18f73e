"""EG3D's training configurations per dataset, as recipes of the eg3d pipeline (`--recipe NAME`).

Sources: EG3D's repository (github NVlabs/eg3d): the training commands of its README and
docs/models.md (batch 32; FFHQ gamma 1 with generator pose conditioning; AFHQ gamma 5, ADA,
swap probability 0.8, neural rendering resolution raised to 128; ShapeNet Cars 128^2 gamma 0.3) and
``eg3d/train.py`` (rendering options per dataset, 25,000 kimg, channel base 32768, neural
rendering 64^2 blended to the final resolution over 1,000 kimg, density regularization 0.25 at
distance 0.004 every 4 minibatches, softplus decoder, D label mapping of 8 layers).

What one run cannot reproduce: EG3D's FFHQ model of 4.7 FID is a second stage, resumed from the
64^2 model with ``--neural_rendering_resolution_final=128`` for 2,000 kimg (its resumed runs also
drop the blur and the swap fade); the ``ffhq`` recipe is its first stage, and ``afhq``, which EG3D
fine-tunes from that FFHQ model, trains from scratch here.

Mirroring: EG3D's FFHQ and AFHQ zips already hold a mirrored copy of every image (its
``dataset_preprocessing/mirror_dataset.py``) and it trains with ``--mirror=False``; these recipes
mirror on the fly (--mirror) for a zip without the copies. With EG3D's own zip pass --no-mirror.
"""

from __future__ import annotations

from typing import Any

from pipelines.camera_distributions import CameraDistributionConfig
from pipelines.eg3d.pipeline import Eg3dTrainConfig
from pipelines.gan.ada import AugmentConfig
from pipelines.recipes import Recipe, replace_options


def eg3d(config: Eg3dTrainConfig, changes: dict[str, Any]) -> Eg3dTrainConfig:
    """EG3D's training setup (the same for every dataset) with a dataset's ``changes`` on top."""
    return replace_options(config, {
        "patch_resolution": 64,  # the neural rendering resolution at the start
        "batch": 32,
        "kimg": 25000.0,
        "model.generator.plane_resolution": 256,
        "model.generator.mapping_layers": 2,
        "model.generator.num_feature_channels": 32,
        "model.generator.density_shift": -1.0,
        "model.generator.decoder_activation": "softplus",
        # EG3D's D is a full-width StyleGAN2 D (cbase 32768), not EpiGRAF's half-width one.
        "model.discriminator.channel_base": 32768,
        "model.discriminator.label_mapping_layers": 8,
        "model.losses.camera_conditioned_discriminator": True,
        "model.losses.density_reg": 0.25,
        "model.losses.density_reg_distance": 0.004,
        "model.g_optimizer.reg_interval": 4,
        "model.neural_resolution_fade_kimg": 1000.0,
        "model.renderer.sampler": "importance",
        **changes,
    })


def scene(near: float, far: float, box_half_size: float, samples: int, background: str) -> dict[str, Any]:
    """A dataset's rendering options in EG3D's train.py: ray_start/ray_end, box_warp / 2, samples, white_back."""
    return {
        "model.cameras": CameraDistributionConfig.from_dataset(near=near, far=far),
        "model.generator.box_half_size": box_half_size,
        "model.renderer.box_half_size": box_half_size,
        "model.renderer.num_coarse": samples,
        "model.renderer.num_fine": samples,
        "model.renderer.background": background,
    }


def ffhq(config: Eg3dTrainConfig) -> Eg3dTrainConfig:
    """FFHQ 512^2, EG3D's first stage (ffhq512-64): gamma 1, generator pose conditioning (swap 0.5), 64^2
    neural rendering, rays 2.25-3.3 in a box of side 1, black background, no augmentation."""
    return eg3d(config, {
        "resolution": 512,
        "mirror": True,
        "model.losses.r1_gamma": 1.0,
        "model.losses.pose_conditioning": True,
        "model.losses.pose_swap_probability": 0.5,
        "model.augment": AugmentConfig(mode="none"),
        "model.neural_resolution_final": None,
        **scene(2.25, 3.3, 0.5, 48, "black"),
    })


def afhq(config: Eg3dTrainConfig) -> Eg3dTrainConfig:
    """AFHQv2 Cats 512^2 (afhqcats512-128): gamma 5, ADA, pose conditioning with swap probability 0.8, neural
    rendering 64^2 -> 128^2 over 1,000 kimg, FFHQ's rays and box (EG3D fine-tunes it from FFHQ; here from scratch)."""
    return eg3d(config, {
        "resolution": 512,
        "mirror": True,
        "model.losses.r1_gamma": 5.0,
        "model.losses.pose_conditioning": True,
        "model.losses.pose_swap_probability": 0.8,
        "model.augment": AugmentConfig(mode="ada", target=0.6),
        "model.neural_resolution_final": 128,
        **scene(2.25, 3.3, 0.5, 48, "black"),
    })


def shapenet(config: Eg3dTrainConfig) -> Eg3dTrainConfig:
    """ShapeNet Cars 128^2 (shapenetcars128-64): gamma 0.3, no generator pose conditioning (EG3D's command leaves
    --gen_pose_cond off), rays 0.1-2.6 in a box of side 1.6 with 64 + 64 samples, white background, no mirroring."""
    return eg3d(config, {
        "resolution": 128,
        "mirror": False,
        "model.losses.r1_gamma": 0.3,
        "model.losses.pose_conditioning": False,
        "model.augment": AugmentConfig(mode="none"),
        "model.neural_resolution_final": None,
        **scene(0.1, 2.6, 0.8, 64, "white"),
    })


RECIPES = (
    Recipe("ffhq", "FFHQ 512^2, EG3D's first stage (gamma 1, pose conditioning, 64^2 neural rendering; "
           "EG3D's 4.7 FID needs its 128^2 second stage)", ffhq),
    Recipe("afhq", "AFHQv2 Cats 512^2, EG3D's config (gamma 5, ADA, swap 0.8, neural rendering 64 -> 128; "
           "FID 2.77 after FFHQ pre-training)", afhq),
    Recipe("shapenet", "ShapeNet Cars 128^2, EG3D's config (gamma 0.3, box side 1.6, 64 + 64 samples, white)",
           shapenet),
)

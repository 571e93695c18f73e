"""EpiGRAF's training configurations per dataset, as recipes of the patch-gan pipeline (`--recipe NAME`).

Sources: EpiGRAF's repository (github universome/epigraf): ``configs/training/base.yaml`` (batch 64,
50,000 kimg, x-flip mirroring, ADA with target 0.6 and its x-flip probability 0, 64^2 patches
annealed over 10,000 kimg), ``configs/model/epigraf.yaml`` (512^2 tri-planes, 48 + 48 samples,
density noise 1.0 over 5,000 kimg, blur 10 over 200 kimg), ``configs/dataset/*.yaml`` (cameras,
``cube_scale``, ``white_back``) and its README (R1 gamma 0.1 on FFHQ, 0.05 elsewhere).

Scene scale: EpiGRAF divides every point by ``cube_scale`` before sampling the planes with
``grid_sample`` on [-1, 1] (``tri_plane_renderer`` in ``src/training/networks_epigraf.py``), so
its tri-plane spans [-cube_scale, cube_scale]^3: ``cube_scale`` is our ``box_half_size``, set on
the generator (where the planes are) and on the renderer (its box for occupancy and box-bounded rays).
"""

from __future__ import annotations

from typing import Any

from pipelines.camera_distributions import CameraDistributionConfig
from pipelines.gan.ada import COLOUR_TRANSFORMS, GEOMETRIC_TRANSFORMS, AugmentConfig
from pipelines.patch_gan.pipeline import PatchGanTrainConfig
from pipelines.recipes import Recipe, replace_options

FACES_SCENE_SCALE = 0.2
"""EpiGRAF's ``cube_scale`` for FFHQ and cats (configs/dataset/ffhq_posed.yaml, cats_aligned.yaml)."""
MEGASCANS_SCENE_SCALE = 0.475
"""EpiGRAF's ``cube_scale`` for Megascans Plants and Food (configs/dataset/megascans_*.yaml)."""
SHAPENET_SCENE_SCALE = 0.8
"""Half of EG3D's ShapeNet ``box_warp`` of 1.6 (its train.py), the scene of EG3D's ShapeNet Cars dataset."""
EPIGRAF_AUGMENT = tuple(t for t in GEOMETRIC_TRANSFORMS + COLOUR_TRANSFORMS if t != "xflip")
"""EpiGRAF's ADA transforms: StyleGAN2-ADA's 'bgc' set with x-flip probability 0 (mirroring does the flips)."""


def epigraf(config: PatchGanTrainConfig, changes: dict[str, Any]) -> PatchGanTrainConfig:
    """EpiGRAF's training setup (the same for every dataset) with a dataset's ``changes`` on top."""
    return replace_options(config, {
        "patch_resolution": 64,
        "batch": 64,
        "kimg": 50000.0,
        "mirror": True,
        "model.generator.plane_resolution": 512,
        "model.generator.mapping_layers": 2,
        "model.renderer.sampler": "importance",
        "model.renderer.num_coarse": 48,
        "model.renderer.num_fine": 48,
        "model.augment": AugmentConfig(mode="ada", target=0.6, transforms=EPIGRAF_AUGMENT),
        **changes,
    })


def scene(box_half_size: float, cameras: CameraDistributionConfig, background: str) -> dict[str, Any]:
    """The options of a dataset's scene: tri-plane box (generator and renderer), cameras, background."""
    return {
        "model.generator.box_half_size": box_half_size,
        "model.renderer.box_half_size": box_half_size,
        "model.renderer.background": background,
        "model.cameras": cameras,
    }


def ffhq(config: PatchGanTrainConfig) -> PatchGanTrainConfig:
    """FFHQ 512^2 (EpiGRAF's released checkpoint): faces cameras, scene scale 0.2, its learned far-sample
    backdrop (white_back false, no background model: the last sample's delta is 1e10), R1 gamma 0.1."""
    return epigraf(config, {
        "resolution": 512,
        "model.losses.r1_gamma": 0.1,
        **scene(FACES_SCENE_SCALE, CameraDistributionConfig.faces(), "last_sample"),
    })


def afhq(config: PatchGanTrainConfig) -> PatchGanTrainConfig:
    """Cats 256^2 (EpiGRAF's cats_aligned: GRAM's cat faces, its default resolution 256): faces cameras, scene
    scale 0.2, the far-sample backdrop, R1 gamma 0.05."""
    return epigraf(config, {
        "resolution": 256,
        "model.losses.r1_gamma": 0.05,
        **scene(FACES_SCENE_SCALE, CameraDistributionConfig.faces(), "last_sample"),
    })


def megascans(config: PatchGanTrainConfig) -> PatchGanTrainConfig:
    """Megascans Plants / Food 256^2: cameras uniform on the sphere (fov 30, near 0.75, far 1.25), scene scale
    0.475, white background, R1 gamma 0.05. EpiGRAF's Plants model is class-conditional (198 classes): a dataset
    whose dataset.json has class indices trains class-conditionally, one without trains unconditionally."""
    return epigraf(config, {
        "resolution": 256,
        "model.losses.r1_gamma": 0.05,
        **scene(MEGASCANS_SCENE_SCALE, CameraDistributionConfig.objects_360(), "white"),
    })


def shapenet(config: PatchGanTrainConfig) -> PatchGanTrainConfig:
    """ShapeNet Cars 128^2 as EG3D prepares it (dataset.json camera labels, white background): EpiGRAF has no
    ShapeNet configuration, so EpiGRAF's training setup runs on EG3D's ShapeNet scene (box side 1.6, 64 + 64
    samples), rays bounded by that box, with EpiGRAF's R1 gamma for datasets other than FFHQ (0.05; its 'auto'
    rule 0.0002 R^2 / batch gives 0.051 at 128^2 and batch 64)."""
    return epigraf(config, {
        "resolution": 128,
        "model.losses.r1_gamma": 0.05,
        "model.renderer.num_coarse": 64,
        "model.renderer.num_fine": 64,
        **scene(SHAPENET_SCENE_SCALE, CameraDistributionConfig.from_dataset(), "white"),
    })


RECIPES = (
    Recipe("ffhq", "FFHQ 512^2, EpiGRAF's config (faces cameras, scene scale 0.2, gamma 0.1, ADA; FID 9.87)", ffhq),
    Recipe("afhq", "cats 256^2, EpiGRAF's cats config (faces cameras, scene scale 0.2, gamma 0.05, ADA)", afhq),
    Recipe("megascans", "Megascans Plants/Food 256^2, EpiGRAF's config (sphere cameras, fov 30, scene scale 0.475, "
           "white background, gamma 0.05; FID 18.64 / 19.95)", megascans),
    Recipe("shapenet", "ShapeNet Cars 128^2 (EG3D's dataset and scene, EpiGRAF's training, gamma 0.05)", shapenet),
)

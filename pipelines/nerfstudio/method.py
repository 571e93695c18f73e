"""The ``epigraf-invert`` method for ``ns-train`` (registered through the ``nerfstudio.method_configs`` entry point)."""

from __future__ import annotations

from pipelines.nerfstudio.imports import require_nerfstudio

require_nerfstudio()

from nerfstudio.configs.base_config import ViewerConfig  # noqa: E402
from nerfstudio.data.datamanagers.base_datamanager import VanillaDataManagerConfig  # noqa: E402
from nerfstudio.data.dataparsers.nerfstudio_dataparser import NerfstudioDataParserConfig  # noqa: E402
from nerfstudio.engine.optimizers import AdamOptimizerConfig  # noqa: E402
from nerfstudio.engine.trainer import TrainerConfig  # noqa: E402
from nerfstudio.pipelines.base_pipeline import VanillaPipelineConfig  # noqa: E402
from nerfstudio.plugins.types import MethodSpecification  # noqa: E402

from pipelines.nerfstudio.model import EpigrafInvertModelConfig  # noqa: E402
from pipelines.nerfstudio.schedulers import LogLinearDecaySchedulerConfig  # noqa: E402

MAX_STEPS = 3000


def invert_config() -> TrainerConfig:
    """Default ``ns-train epigraf-invert`` settings (override any of them on the command line).

    The capture is read by nerfstudio's ``nerfstudio-data`` parser with its poses kept as written
    (no re-orientation, re-centring or re-scaling): ``--pipeline.model.scene.*`` then says where
    the capture sits in the generator's world. Use nerfstudio's normalisation instead by passing
    ``nerfstudio-data --orientation-method up --center-method poses --auto-scale-poses True`` and
    a matching scene transform (e.g. rotation ``Z_UP_TO_Y_UP``, scale 0.5).
    """
    return TrainerConfig(
        method_name="epigraf-invert",
        steps_per_eval_batch=500,
        steps_per_eval_image=500,
        steps_per_save=1000,
        max_num_iterations=MAX_STEPS,
        mixed_precision=False,
        pipeline=VanillaPipelineConfig(
            datamanager=VanillaDataManagerConfig(
                dataparser=NerfstudioDataParserConfig(
                    orientation_method="none", center_method="none", auto_scale_poses=False
                ),
                train_num_rays_per_batch=4096,
                eval_num_rays_per_batch=4096,
            ),
            model=EpigrafInvertModelConfig(eval_num_rays_per_chunk=1 << 13),
        ),
        optimizers={
            "latent": {
                "optimizer": AdamOptimizerConfig(lr=1e-2, eps=1e-8),
                "scheduler": LogLinearDecaySchedulerConfig(lr_final=1e-3, max_steps=MAX_STEPS),
            },
            "planes": {
                "optimizer": AdamOptimizerConfig(lr=1e-3, eps=1e-8),
                "scheduler": None,
            },
        },
        viewer=ViewerConfig(num_rays_per_chunk=1 << 13),
        vis="viewer",
    )


epigraf_invert = MethodSpecification(
    config=invert_config(),
    description="EpiGRAF 3D GAN inversion: fit a trained generator's latent (w / w+, then optionally its "
    "tri-planes) to a posed capture",
)

"""The ``epigraf-sample`` and ``epigraf-invert`` methods of ``ns-train`` (``nerfstudio.method_configs``)."""

from __future__ import annotations

import torch

from pipelines.nerfstudio.imports import require_nerfstudio

require_nerfstudio()

from nerfstudio.configs.base_config import MachineConfig, ViewerConfig  # noqa: E402
from nerfstudio.data.datamanagers.base_datamanager import VanillaDataManagerConfig  # noqa: E402
from nerfstudio.data.dataparsers.nerfstudio_dataparser import NerfstudioDataParserConfig  # noqa: E402
from nerfstudio.engine.optimizers import AdamOptimizerConfig  # noqa: E402
from nerfstudio.engine.trainer import TrainerConfig  # noqa: E402
from nerfstudio.pipelines.base_pipeline import VanillaPipelineConfig  # noqa: E402
from nerfstudio.plugins.types import MethodSpecification  # noqa: E402

from pipelines.nerfstudio.model import EpigrafInvertModelConfig  # noqa: E402
from pipelines.nerfstudio.random_cameras import GeneratorCamerasDataManagerConfig  # noqa: E402
from pipelines.nerfstudio.sample_model import EpigrafSampleModelConfig  # noqa: E402
from pipelines.nerfstudio.sample_pipeline import EpigrafSamplePipelineConfig  # noqa: E402
from pipelines.nerfstudio.schedulers import LogLinearDecaySchedulerConfig  # noqa: E402

MAX_STEPS = 3000
SAMPLE_STEPS = 1
"""epigraf-sample fits nothing; its one step renders a batch (a smoke check) before the checkpoint is written."""


def machine() -> MachineConfig:
    """One CUDA device when torch sees one, else the CPU (nerfstudio's default, CUDA, fails on a CPU-only torch)."""
    return MachineConfig(device_type="cuda" if torch.cuda.is_available() else "cpu")


def viewer() -> ViewerConfig:
    """nerfstudio's viewer on this machine only (127.0.0.1, as epigraf-view); reach it from elsewhere through
    an ssh tunnel, or pass --viewer.websocket-host 0.0.0.0."""
    return ViewerConfig(num_rays_per_chunk=1 << 13, websocket_host="127.0.0.1")


def sample_config() -> TrainerConfig:
    """Default ``ns-train epigraf-sample`` settings: one generated object, shown by nerfstudio's viewer.

    No data: cameras are drawn from the generator's own camera distribution. One step renders a
    batch of random rays and writes the checkpoint that ``ns-render``, ``ns-export`` and
    ``ns-viewer`` load (the generator's weights are in it); more steps change nothing.
    """
    return TrainerConfig(
        method_name="epigraf-sample",
        steps_per_eval_batch=500,
        steps_per_eval_image=500,
        steps_per_save=1000,
        max_num_iterations=SAMPLE_STEPS,
        mixed_precision=False,
        machine=machine(),
        pipeline=EpigrafSamplePipelineConfig(
            datamanager=GeneratorCamerasDataManagerConfig(),
            model=EpigrafSampleModelConfig(eval_num_rays_per_chunk=1 << 13),
        ),
        optimizers={},
        viewer=viewer(),
        vis="viewer",
    )


def invert_config() -> TrainerConfig:
    """Default ``ns-train epigraf-invert`` settings (override any of them on the command line).

    The capture is read by nerfstudio's ``nerfstudio-data`` parser with its poses kept as written
    (no re-orientation, re-centring or re-scaling): ``--pipeline.model.scene.*`` then says where
    the capture sits in the generator's world. Use nerfstudio's normalisation instead by passing
    ``nerfstudio-data --orientation-method up --center-method poses --auto-scale-poses True`` and
    a matching scene transform (e.g. rotation ``Z_UP_TO_Y_UP``, scale 0.5). The ``eg3d-data``
    dataparser records its scene transform, which the model then uses (``scene_from_data``).
    """
    return TrainerConfig(
        method_name="epigraf-invert",
        steps_per_eval_batch=500,
        steps_per_eval_image=500,
        steps_per_save=1000,
        max_num_iterations=MAX_STEPS,
        mixed_precision=False,
        machine=machine(),
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
        viewer=viewer(),
        vis="viewer",
    )


epigraf_invert = MethodSpecification(
    config=invert_config(),
    description="EpiGRAF 3D GAN inversion: fit a trained generator's latent (w / w+, then optionally its "
    "tri-planes) to a posed capture",
)

epigraf_sample = MethodSpecification(
    config=sample_config(),
    description="EpiGRAF generated object: one latent (seed or file) of a trained generator, seen from random "
    "cameras of its training distribution, for nerfstudio's viewer, ns-render and ns-export",
)

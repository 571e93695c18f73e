"""The ``epigraf-sample`` pipeline: opens the generator once and hands it to the cameras and to the model."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Type

import torch

from pipelines.nerfstudio.imports import require_nerfstudio

require_nerfstudio()

from nerfstudio.pipelines.base_pipeline import VanillaPipeline, VanillaPipelineConfig  # noqa: E402

from pipelines.nerfstudio.field_model import open_generator  # noqa: E402
from pipelines.nerfstudio.random_cameras import GeneratorCamerasDataManagerConfig  # noqa: E402
from pipelines.nerfstudio.sample_model import EpigrafSampleModelConfig  # noqa: E402


@dataclass
class EpigrafSamplePipelineConfig(VanillaPipelineConfig):
    """A generated object seen from random cameras of its generator."""

    _target: Type = field(default_factory=lambda: EpigrafSamplePipeline)
    datamanager: GeneratorCamerasDataManagerConfig = field(default_factory=GeneratorCamerasDataManagerConfig)
    """Cameras drawn from the generator's camera distribution."""
    model: EpigrafSampleModelConfig = field(default_factory=EpigrafSampleModelConfig)
    """The generated object."""


class EpigrafSamplePipeline(VanillaPipeline):
    """A ``VanillaPipeline`` whose data manager and model share one opened generator.

    The cameras need the generator's camera distribution and box, the model its weights and
    latent mapping: opening it here once gives both (``VanillaPipeline`` builds them independently).
    Everything after construction is ``VanillaPipeline``'s.
    """

    config: EpigrafSamplePipelineConfig

    def __init__(
        self,
        config: EpigrafSamplePipelineConfig,
        device: str,
        test_mode: Literal["test", "val", "inference"] = "val",
        world_size: int = 1,
        local_rank: int = 0,
        grad_scaler: torch.cuda.amp.GradScaler | None = None,
    ) -> None:
        super(VanillaPipeline, self).__init__()  # nn.Module's: VanillaPipeline.__init__ would build its own parts
        if world_size > 1:
            raise ValueError(f"epigraf-sample fits nothing, so it runs on one device (--machine.num-devices 1), "
                             f"not {world_size}")
        self.config = config
        self.test_mode = test_mode
        generator = open_generator(config.model.generator, "--pipeline.model.generator", config.model.decoder_backend,
                                   device=device)
        self.datamanager = config.datamanager.setup(device=device, test_mode=test_mode, world_size=world_size,
                                                    local_rank=local_rank, generator=generator,
                                                    generator_path=config.model.generator)
        self.datamanager.to(device)
        dataset = self.datamanager.train_dataset
        self._model = config.model.setup(scene_box=dataset.scene_box, num_train_data=len(dataset),
                                         metadata=dataset.metadata, device=device, grad_scaler=grad_scaler,
                                         generator=generator)
        self.model.to(device)
        self.world_size = world_size

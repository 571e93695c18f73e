"""A dataset-free nerfstudio data manager: rays from random cameras of the distribution a generator learned."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Type

import numpy as np
import torch
from torch.nn import Parameter

from pipelines.nerfstudio.imports import require_nerfstudio

require_nerfstudio()

from nerfstudio.cameras.cameras import Cameras as NerfstudioCameras  # noqa: E402
from nerfstudio.cameras.rays import RayBundle  # noqa: E402
from nerfstudio.data.datamanagers.base_datamanager import DataManager, DataManagerConfig  # noqa: E402
from nerfstudio.data.datamanagers.random_cameras_datamanager import RandomCamerasDataManager  # noqa: E402
from nerfstudio.data.dataparsers.base_dataparser import DataparserOutputs  # noqa: E402
from nerfstudio.data.datasets.base_dataset import InputDataset  # noqa: E402
from nerfstudio.data.scene_box import SceneBox  # noqa: E402
from nerfstudio.data.utils.dataloaders import FixedIndicesEvalDataloader  # noqa: E402

from pipelines.model import GeneratorModel  # noqa: E402
from pipelines.nerfstudio.cameras import to_nerfstudio_cameras  # noqa: E402
from pipelines.nerfstudio.scene_transform import SceneTransformConfig, nerfstudio_scene  # noqa: E402

DEFAULT_RESOLUTION = 64
"""Image size of the views when the generator does not record its training resolution."""


@dataclass
class GeneratorCamerasDataManagerConfig(DataManagerConfig):
    """Cameras drawn from the generator's own camera distribution (``GeneratorModel.cameras``); no images are read."""

    _target: Type = field(default_factory=lambda: GeneratorCamerasDataManager)
    resolution: int | None = None
    """Image size of every camera in pixels; None: the generator's training resolution (64 if it records none)."""
    num_views: int = 16
    """Fixed views drawn once: the frustums nerfstudio's viewer draws, the eval images, the poses that
    ns-render interpolate / spiral follow and the depth maps ns-export tsdf fuses."""
    train_num_rays_per_batch: int = 4096
    """Rays per training batch, each from its own random camera and pixel (ns-export pointcloud sets its own)."""
    eval_num_rays_per_batch: int = 4096
    """Rays per evaluation batch."""
    camera_seed: int = 0
    """Seed of the fixed views and of the random rays (the batches of a run are reproducible from it)."""


@dataclass
class RandomRaysSampler:
    """How many random rays a batch holds; nerfstudio's exporters resize batches through ``num_rays_per_batch``."""

    num_rays_per_batch: int


class GeneratedViewsDataset(InputDataset):
    """The fixed views as a nerfstudio dataset: cameras with blank (white) images, since nothing is captured."""

    def __init__(self, dataparser_outputs: DataparserOutputs) -> None:
        super().__init__(dataparser_outputs)

    def get_numpy_image(self, image_idx: int) -> np.ndarray:
        height, width = int(self.cameras.height[image_idx]), int(self.cameras.width[image_idx])
        return np.full((height, width, 3), 255, dtype=np.uint8)


class GeneratorCamerasDataManager(RandomCamerasDataManager):
    """Rays from random cameras of a generator's camera distribution, in the scene ``nerfstudio_scene`` defines.

    Every training (or evaluation) ray comes from its own camera drawn from ``generator.cameras``
    (yaw, pitch, radius and field of view as in training, or a recorded dataset pose) at a uniformly
    random position in the image, so a batch covers every side the generator was trained to show.
    It is a ``RandomCamerasDataManager`` with a ``train_pixel_sampler`` because that is what
    nerfstudio's ``ns-export pointcloud`` and ``ns-render spiral`` accept and resize.
    """

    config: GeneratorCamerasDataManagerConfig

    def __init__(
        self,
        config: GeneratorCamerasDataManagerConfig,
        device: torch.device | str = "cpu",
        test_mode: Literal["test", "val", "inference"] = "val",
        world_size: int = 1,
        local_rank: int = 0,
        generator: GeneratorModel | None = None,
        **kwargs,
    ) -> None:
        if generator is None:
            raise ValueError("GeneratorCamerasDataManager needs the generator whose cameras it draws (generator=...); "
                             "use the epigraf-sample method, whose pipeline passes it")
        if config.data is not None:
            raise ValueError(f"epigraf-sample reads no dataset (--data {config.data} was given): its object comes "
                             "from --pipeline.model.generator")
        for name in ("num_views", "train_num_rays_per_batch", "eval_num_rays_per_batch"):
            if getattr(config, name) < 1:
                raise ValueError(f"--pipeline.datamanager.{name.replace('_', '-')} must be positive, "
                                 f"got {getattr(config, name)}")
        self.config = config
        self.device = device
        self.world_size, self.local_rank = world_size, local_rank
        self.test_mode = test_mode
        self.test_split = "test" if test_mode in ("test", "inference") else "val"
        self.sampler = None
        self.generator_path = kwargs.get("generator_path")
        self.camera_distribution = generator.cameras
        self.transform: SceneTransformConfig = nerfstudio_scene(generator.box_half_size)
        self.resolution = int(config.resolution or generator.image_resolution or DEFAULT_RESOLUTION)
        if self.resolution < 1:
            raise ValueError(f"--pipeline.datamanager.resolution must be positive, got {self.resolution}")
        self.rng = torch.Generator().manual_seed(config.camera_seed)
        self.train_dataparser_outputs = self._views(config.num_views, generator.box_half_size)
        self.train_dataset = GeneratedViewsDataset(self.train_dataparser_outputs)
        self.eval_dataset = self.train_dataset
        self.train_pixel_sampler = RandomRaysSampler(config.train_num_rays_per_batch)
        self.eval_pixel_sampler = RandomRaysSampler(config.eval_num_rays_per_batch)
        self.eval_dataloader = FixedIndicesEvalDataloader(input_dataset=self.eval_dataset, device=device)
        self.fixed_indices_eval_dataloader = self.eval_dataloader
        DataManager.__init__(self)

    def _views(self, count: int, box_half_size: float) -> DataparserOutputs:
        """The fixed views as dataparser outputs (scene box: the generator's box; transform: its world -> scene)."""
        cameras = self._scene_cameras(count)
        matrix, scale = self.transform.scene_from_box_matrix()
        extent = box_half_size / self.transform.scale
        return DataparserOutputs(
            image_filenames=[Path(f"generated/view_{i:05d}.png") for i in range(count)],
            cameras=cameras,
            scene_box=SceneBox(aabb=torch.tensor([[-extent] * 3, [extent] * 3])),
            dataparser_transform=matrix,
            dataparser_scale=scale,
        )

    def _scene_cameras(self, count: int) -> NerfstudioCameras:
        ours = self.camera_distribution.sample(count, self.rng)
        return to_nerfstudio_cameras(ours, self.resolution, self.resolution, self.transform)

    def _random_rays(self, count: int) -> RayBundle:
        """``count`` rays, ray k from a fresh random camera through a uniformly random point of its image."""
        cameras = self._scene_cameras(count)
        coords = torch.rand(count, 2, generator=self.rng) * self.resolution  # (row, column) in pixels
        rays = cameras.generate_rays(camera_indices=torch.arange(count)[:, None], coords=coords)
        return rays.to(self.device)

    def setup_train(self) -> None:
        """Nothing to load: the views are drawn in the constructor."""

    def setup_eval(self) -> None:
        """Nothing to load: the views are drawn in the constructor."""

    def next_train(self, step: int) -> tuple[RayBundle, dict]:
        self.train_count += 1
        return self._random_rays(self.train_pixel_sampler.num_rays_per_batch), {}

    def next_eval(self, step: int) -> tuple[RayBundle, dict]:
        self.eval_count += 1
        return self._random_rays(self.eval_pixel_sampler.num_rays_per_batch), {}

    def next_eval_image(self, step: int) -> tuple[NerfstudioCameras, dict]:
        """The fixed views in turn."""
        index = step % len(self.eval_dataset)
        return self.eval_dataloader.get_camera(index)

    def get_train_rays_per_batch(self) -> int:
        return self.train_pixel_sampler.num_rays_per_batch

    def get_eval_rays_per_batch(self) -> int:
        return self.eval_pixel_sampler.num_rays_per_batch

    def get_datapath(self) -> Path:
        return Path(self.generator_path) if self.generator_path is not None else Path(".")

    def get_param_groups(self) -> dict[str, list[Parameter]]:
        return {}


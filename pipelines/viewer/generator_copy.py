"""The viewer's private, double-buffered copy of a generator model, and its per-latent caches."""

from __future__ import annotations

import copy
import threading
from collections import OrderedDict

import torch
from torch import Tensor

from pipelines.model import GeneratorModel
from renderers.cameras import Cameras
from renderers.occupancy import OccupancyGrid, default_step_size
from renderers.volume_renderer import VolumeRenderer, VolumeRendererConfig

CACHE_SIZE = 4


def _private_copy(model: GeneratorModel, device: torch.device) -> GeneratorModel:
    """A deep copy of the model whose weights live on ``device``, frozen for rendering."""
    copied = copy.deepcopy(model)
    copied.network.to(device).eval().requires_grad_(False)
    return copied


class GeneratorCopy:
    """Two copies of the model's weights: the render worker reads one while the trainer writes the other.

    :meth:`update` (trainer thread) copies the weights into the back copy under a lock that the
    worker only takes for a pointer swap in :meth:`acquire`, so training never waits for a render
    and a render never sees a half-updated model. The copy is in place (no allocation per tick).
    """

    def __init__(self, model: GeneratorModel, device: torch.device | str | None = None) -> None:
        self.device = torch.device(device) if device is not None else model.device
        self._front = _private_copy(model, self.device)
        self._back: GeneratorModel | None = None
        self._lock = threading.Lock()
        self._front_version = 0
        self._back_version = 0

    @property
    def model(self) -> GeneratorModel:
        """The copy shown now (for settings that do not change with the weights: cameras, renderer, sizes)."""
        return self._front

    @property
    def version(self) -> int:
        """Number of updates received so far."""
        return self._back_version

    @torch.no_grad()
    def update(self, model: GeneratorModel) -> None:
        """Copies ``model``'s current weights (called from the training thread)."""
        with self._lock:
            if self._back is None:
                self._back = _private_copy(model, self.device)
            else:
                source = model.network.state_dict()
                target = self._back.network.state_dict()
                if source.keys() != target.keys():
                    raise ValueError(
                        "update_model got a generator with different weights than the viewer was started "
                        "with; pass the same (EMA) generator every tick"
                    )
                for name, value in target.items():
                    value.copy_(source[name], non_blocking=True)
            if self.device.type == "cuda":
                torch.cuda.current_stream(self.device).synchronize()
            self._back_version += 1

    def acquire(self) -> tuple[GeneratorModel, int]:
        """The newest complete copy and its version (render-worker thread only)."""
        with self._lock:
            if self._back is not None and self._back_version != self._front_version:
                self._front, self._back = self._back, self._front
                self._front_version = self._back_version
            return self._front, self._front_version


def seed_latent(seed: int, z_dim: int, device: torch.device) -> Tensor:
    """The latent z [1, z_dim] of a seed (its own torch.Generator; the global RNG is untouched)."""
    rng = torch.Generator().manual_seed(int(seed))
    return torch.randn(1, z_dim, generator=rng).to(device)


class LatentCache:
    """Scene representations (with their ws) and occupancy grids of the last few latents."""

    def __init__(self, size: int = CACHE_SIZE) -> None:
        self.size = size
        self._scenes: OrderedDict[tuple, tuple[Tensor, Tensor]] = OrderedDict()
        self._grids: OrderedDict[tuple, OccupancyGrid] = OrderedDict()

    def _remember(self, store: OrderedDict, key: tuple, value: object) -> None:
        store[key] = value
        store.move_to_end(key)
        while len(store) > self.size:
            store.popitem(last=False)

    @torch.inference_mode()
    def scene(
        self,
        model: GeneratorModel,
        version: int,
        latent_key: tuple[int, int, float, float, int],
        condition: Cameras | None,
    ) -> tuple[Tensor, Tensor]:
        """(scene representation, ws) for (seed, seed_b, mix, psi, class); mixing is linear in w (StyleGAN).

        Class -1 leaves each seed in its own class; another class applies to a class-conditional generator."""
        key = (version, latent_key)
        if key in self._scenes:
            self._scenes.move_to_end(key)
            return self._scenes[key]
        seed, seed_b, mix, psi, class_index = latent_key
        pinned = {"class_index": class_index} if class_index >= 0 and getattr(model, "num_classes", 0) else {}
        truncated = model.with_options(truncation_psi=psi, **pinned)
        ws = truncated.mapping(seed_latent(seed, model.z_dim, model.device), condition)
        if mix > 0:
            ws_b = truncated.mapping(seed_latent(seed_b, model.z_dim, model.device), condition)
            ws = torch.lerp(ws, ws_b, mix)
        value = (model.synthesize(ws), ws)
        self._remember(self._scenes, key, value)
        return value

    @torch.inference_mode()
    def occupancy(
        self, field: object, version: int, latent_key: tuple, config: VolumeRendererConfig
    ) -> OccupancyGrid:
        """The occupancy grid of one latent's field, built once and reused while the latent is shown."""
        key = (version, latent_key, config.occupancy_resolution, config.occupancy_threshold,
               config.occupancy_dilation, config.march_steps, config.box_half_size)
        if key in self._grids:
            self._grids.move_to_end(key)
            return self._grids[key]
        grid = VolumeRenderer(config).build_occupancy(field, 1)
        self._remember(self._grids, key, grid)
        return grid

    @torch.inference_mode()
    def preview_grid(
        self, field: object, version: int, latent_key: tuple, config: VolumeRendererConfig, resolution: int,
        num_samples: int,
    ) -> OccupancyGrid:
        """The occupancy grid a fast preview samples in, built once per latent.

        Cells are probed with the preview's own sample spacing, so a cell is left out only when one
        preview sample there would be nearly transparent (opacity at most the renderer's occupancy threshold).
        """
        key = ("preview", version, latent_key, resolution, num_samples, config.occupancy_threshold,
               config.occupancy_dilation, config.box_half_size)
        if key in self._grids:
            self._grids.move_to_end(key)
            return self._grids[key]
        step = default_step_size(config.box_half_size, num_samples)
        grid = OccupancyGrid.from_field(
            field, 1, resolution=resolution, box_half_size=config.box_half_size, step_size=step,
            alpha_threshold=config.occupancy_threshold, dilation=config.occupancy_dilation, device=_device_of(field),
        )
        self._remember(self._grids, key, grid)
        return grid


def _device_of(field: object) -> torch.device:
    planes = getattr(field, "planes", None)
    return planes.device if isinstance(planes, Tensor) else torch.device("cpu")

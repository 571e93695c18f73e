"""The viewer's private, double-buffered copy of a generator, and its per-latent caches."""

from __future__ import annotations

import copy
import threading
from collections import OrderedDict

import torch
from torch import Tensor

from epigraf_field.generator import TriPlaneGenerator
from renderers.cameras import Cameras
from renderers.occupancy import OccupancyGrid
from renderers.volume_renderer import VolumeRenderer, VolumeRendererConfig

CACHE_SIZE = 4


def _private_copy(generator: TriPlaneGenerator, device: torch.device) -> TriPlaneGenerator:
    return copy.deepcopy(generator).to(device).eval().requires_grad_(False)


class GeneratorCopy:
    """Two copies of the generator's weights: the render worker reads one while the trainer writes the other.

    :meth:`update` (trainer thread) copies the weights into the back copy under a lock that the
    worker only takes for a pointer swap in :meth:`acquire`, so training never waits for a render
    and a render never sees a half-updated model. The copy is in place (no allocation per tick).
    """

    def __init__(self, generator: TriPlaneGenerator, device: torch.device | str | None = None) -> None:
        self.device = torch.device(device) if device is not None else _module_device(generator)
        self._front = _private_copy(generator, self.device)
        self._back: TriPlaneGenerator | None = None
        self._lock = threading.Lock()
        self._front_version = 0
        self._back_version = 0

    @property
    def config(self):
        return self._front.config

    @property
    def version(self) -> int:
        """Number of updates received so far."""
        return self._back_version

    @torch.no_grad()
    def update(self, generator: TriPlaneGenerator) -> None:
        """Copies ``generator``'s current weights (called from the training thread)."""
        with self._lock:
            if self._back is None:
                self._back = _private_copy(generator, self.device)
            else:
                source = generator.state_dict()
                target = self._back.state_dict()
                if source.keys() != target.keys():
                    raise ValueError(
                        "update_generator got a generator with different weights than the viewer was started "
                        "with; pass the same (EMA) generator every tick"
                    )
                for name, value in target.items():
                    value.copy_(source[name], non_blocking=True)
            if self.device.type == "cuda":
                torch.cuda.current_stream(self.device).synchronize()
            self._back_version += 1

    def acquire(self) -> tuple[TriPlaneGenerator, int]:
        """The newest complete copy and its version (render-worker thread only)."""
        with self._lock:
            if self._back is not None and self._back_version != self._front_version:
                self._front, self._back = self._back, self._front
                self._front_version = self._back_version
            return self._front, self._front_version


def _module_device(module: torch.nn.Module) -> torch.device:
    for tensor in module.parameters():
        return tensor.device
    return torch.device("cpu")


def seed_latent(seed: int, z_dim: int, device: torch.device) -> Tensor:
    """The latent z [1, z_dim] of a seed (its own torch.Generator; the global RNG is untouched)."""
    rng = torch.Generator().manual_seed(int(seed))
    return torch.randn(1, z_dim, generator=rng).to(device)


class LatentCache:
    """Tri-planes and occupancy grids of the last few latents, keyed by generator version and latent."""

    def __init__(self, size: int = CACHE_SIZE) -> None:
        self.size = size
        self._planes: OrderedDict[tuple, Tensor] = OrderedDict()
        self._grids: OrderedDict[tuple, OccupancyGrid] = OrderedDict()

    def _remember(self, store: OrderedDict, key: tuple, value: object) -> None:
        store[key] = value
        store.move_to_end(key)
        while len(store) > self.size:
            store.popitem(last=False)

    @torch.inference_mode()
    def planes(
        self,
        generator: TriPlaneGenerator,
        version: int,
        latent_key: tuple[int, int, float, float],
        condition: Cameras | None,
    ) -> Tensor:
        """Tri-planes [1, 3, c, r, r] for (seed, seed_b, mix, psi); mixing is linear in w (StyleGAN)."""
        key = (version, latent_key)
        if key in self._planes:
            self._planes.move_to_end(key)
            return self._planes[key]
        seed, seed_b, mix, psi = latent_key
        device = _module_device(generator)
        c = generator_condition(generator, condition, device)
        ws = generator.mapping(seed_latent(seed, generator.config.z_dim, device), c, truncation_psi=psi)
        if mix > 0:
            ws_b = generator.mapping(seed_latent(seed_b, generator.config.z_dim, device), c, truncation_psi=psi)
            ws = torch.lerp(ws, ws_b, mix)
        planes = generator.synthesis(ws, noise_mode="const")
        self._remember(self._planes, key, planes)
        return planes

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


def generator_condition(generator: TriPlaneGenerator, condition: Cameras | None, device: torch.device) -> Tensor | None:
    """The mapping's camera label for a pose-conditioned generator (EG3D): the dataset-like front camera."""
    c_dim = generator.config.c_dim
    if c_dim == 0:
        return None
    if condition is not None and c_dim == 25:
        return condition.to_label()[:1].to(device)
    return torch.zeros(1, c_dim, device=device)

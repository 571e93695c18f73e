"""R, IG-GAN's off-the-shelf renderer: Mitsuba 3 path-traces the binarized voxel grid, non-differentiably."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from pipelines.ig_gan.voxel_mesh import voxel_surface_mesh
from pipelines.ig_gan.voxels import binarize
from renderers.cameras import Cameras


@dataclass
class MitsubaRendererConfig:
    """How R renders generated shapes (the synthetic dataset's scene: lighting, camera model, white background)."""

    spp: int = 4
    """Path-tracing samples per pixel (the dataset uses 16; R runs every step, so fewer: 4 is stratified 2 x 2)."""
    variant: str = "auto"
    """Mitsuba variant: 'auto' (scalar_rgb up to 128 px, see pipelines/data/mitsuba_renderer.py), or one by name.
    Only non-differentiable use is made of it: no gradient ever flows through R."""
    threshold: float = 0.5
    """Voxels with occupancy above this are solid, the others empty (IG-GAN's binarization)."""
    max_depth: int = 3
    """Path length (the dataset's)."""
    background: tuple[float, float, float] = (1.0, 1.0, 1.0)
    """sRGB background behind the shape (the built-in dataset's white)."""

    def __post_init__(self) -> None:
        self.background = tuple(float(c) for c in self.background)
        if self.spp <= 0 or self.max_depth <= 0:
            raise ValueError("MitsubaRendererConfig.spp and max_depth must be positive")
        if not 0.0 <= self.threshold < 1.0:
            raise ValueError(f"MitsubaRendererConfig.threshold must lie in [0, 1), got {self.threshold}")


class MitsubaUnavailableError(OSError):
    """Mitsuba is missing or cannot render: a problem of the environment, reported in one line with the fix."""


_CHECKED: set[str] = set()


def check_mitsuba(variant: str = "scalar_rgb") -> None:
    """Imports Mitsuba and renders an 8 x 8 test scene once per process and variant; a
    :class:`MitsubaUnavailableError` naming the package and how to install it when Mitsuba is missing or
    broken (the pipeline calls it before anything is trained or written)."""
    if variant in _CHECKED:
        return
    from pipelines.data.mitsuba_renderer import MITSUBA_INSTALL_HINT

    fix = (f"install it with {MITSUBA_INSTALL_HINT}; if it is installed, reinstall it (pip install --force-reinstall "
           "mitsuba) or pick another variant with --model.mitsuba.variant scalar_rgb")
    try:
        import mitsuba as mi
    except Exception as error:  # noqa: BLE001 - an import that fails for any reason is the same problem
        raise MitsubaUnavailableError(f"the ig-gan pipeline renders its shapes with Mitsuba 3 (package 'mitsuba'), which cannot "
                           f"be imported ({error}): {fix}") from error
    try:
        mi.set_variant(variant)
        scene = mi.load_dict({"type": "scene", "ball": {"type": "sphere"}, "integrator": {"type": "path"}, "sensor": {
            "type": "perspective", "film": {"type": "hdrfilm", "width": 8, "height": 8}}})
        if not np.isfinite(np.array(mi.render(scene, spp=1))).all():
            raise ValueError("the test render holds non-finite values")
    except Exception as error:  # noqa: BLE001 - any failure here means R cannot work
        raise MitsubaUnavailableError(f"the ig-gan pipeline renders its shapes with Mitsuba 3 (package 'mitsuba', variant "
                           f"{variant!r}), which is installed but cannot render ({error}): {fix}") from error
    _CHECKED.add(variant)


class MitsubaVoxelRenderer:
    """R(x): images [b, 3, R, R] in [-1, 1] of the binarized grids ``x``, path-traced by Mitsuba (no gradient).

    ``seconds`` accumulates the wall time spent here, so a run can report R's share of a step.
    """

    def __init__(self, config: MitsubaRendererConfig, resolution: int, box_half_size: float) -> None:
        from pipelines.data.mitsuba_renderer import MeshBatchRenderer, choose_variant

        self.config, self.resolution, self.box_half_size = config, resolution, box_half_size
        variant = choose_variant(config.variant, resolution)
        check_mitsuba(variant)
        self.backend = MeshBatchRenderer(resolution, config.spp, variant, config.max_depth)
        self.seconds = 0.0
        self.images = 0

    @property
    def variant(self) -> str:
        return self.backend.variant

    def meshes(self, voxels: Tensor) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """The voxel-face meshes of the binarized grids [b, 4, D, D, D]."""
        solid = binarize(voxels.detach().float(), self.config.threshold).cpu().numpy()
        return [voxel_surface_mesh(grid[0] > 0.5, grid[1:4], self.box_half_size) for grid in solid]

    @torch.no_grad()
    def __call__(self, voxels: Tensor, cameras: Cameras, seed: int) -> Tensor:
        start = time.perf_counter()
        images = self.backend.render(self.meshes(voxels), cameras.to("cpu"), seed, self.config.background)
        out = torch.from_numpy(images).permute(0, 3, 1, 2).to(voxels.device) * 2.0 - 1.0
        self.seconds += time.perf_counter() - start
        self.images += len(images)
        return out

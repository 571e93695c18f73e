"""Occupancy grids per scene and the marching sampler that only places samples in occupied cells."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from jaxtyping import Bool, Float, Int64
from torch import Tensor

from renderers.field import check_field
from renderers.rays import RayBundle
from renderers.samplers import RaySamples

# nerfacc's kernel starts its voxel walk this far inside the segment (float32 constant in grid.cu).
_TRAVERSAL_EPS = 1e-6
# Midpoints closer than this (in t) to a cell boundary get their cell from a replay of the kernel's
# float32 walk; elsewhere the position's cell is the same. The walk's accumulated rounding is far smaller.
_BOUNDARY_MARGIN = 1e-4
_BACKENDS = ("auto", "torch", "nerfacc")


@dataclass
class OccupancyGrid:
    """A coarse binary occupancy grid per scene over the box ``[-h, h]^3``.

    ``binaries[i, x, y, z]`` is True when cell (x, y, z) of scene i may hold density; cell (x, y, z)
    covers ``[-h + x * 2h / G, -h + (x + 1) * 2h / G]`` on the x axis, likewise for y and z. It is a
    plain object: build it once per latent for viewing and keep it, or rebuild it from the current
    field during training (see :meth:`from_field`).
    """

    binaries: Bool[Tensor, "b g g g"]
    """Occupied cells per scene, indexed [scene, x, y, z]."""
    box_half_size: float = 0.5
    """Half the side of the scene box the grid covers."""

    def __post_init__(self) -> None:
        if self.binaries.dtype != torch.bool or self.binaries.ndim != 4:
            raise ValueError(f"OccupancyGrid.binaries must be a bool tensor [b, G, G, G], got {self.binaries.dtype} "
                             f"{list(self.binaries.shape)}")
        if not self.box_half_size > 0:
            raise ValueError(f"OccupancyGrid.box_half_size must be positive, got {self.box_half_size}")

    @property
    def batch_size(self) -> int:
        return int(self.binaries.shape[0])

    @property
    def resolution(self) -> int:
        return int(self.binaries.shape[1])

    def occupied_fraction(self) -> Float[Tensor, " b"]:
        """Fraction of occupied cells per scene."""
        return self.binaries.flatten(1).float().mean(dim=1)

    def to(self, device: torch.device | str) -> OccupancyGrid:
        return OccupancyGrid(self.binaries.to(device), self.box_half_size)

    @classmethod
    @torch.no_grad()
    def from_field(
        cls,
        field: object,
        batch_size: int,
        resolution: int = 64,
        box_half_size: float = 0.5,
        step_size: float | None = None,
        alpha_threshold: float = 0.01,
        dilation: int = 1,
        rng: torch.Generator | None = None,
        device: torch.device | str | None = None,
        chunk_size: int = 1 << 18,
    ) -> OccupancyGrid:
        """Builds the grid from one cheap density query per cell.

        Each cell is probed at its centre (or, with an ``rng``, at a uniformly jittered point in
        it, as nerfacc's grid updates do) and counts as occupied when the opacity of one marching
        step there, ``1 - exp(-density * step_size)``, exceeds ``alpha_threshold``. The result is
        then dilated by ``dilation`` cells (a max-pool) so thin structures between probes and the
        rims of surfaces are not lost.
        """
        check_field(field)
        if isinstance(resolution, bool) or not isinstance(resolution, int) or resolution <= 0:
            raise ValueError(f"occupancy resolution must be a positive int, got {resolution!r}")
        if dilation < 0:
            raise ValueError(f"occupancy dilation must be >= 0 cells, got {dilation}")
        if not 0 <= alpha_threshold < 1:
            raise ValueError(f"occupancy alpha_threshold must lie in [0, 1), got {alpha_threshold}")
        step_size = default_step_size(box_half_size) if step_size is None else step_size
        if not step_size > 0:
            raise ValueError(f"occupancy step_size must be positive, got {step_size}")
        g = resolution
        cell = 2.0 * box_half_size / g
        index = torch.stack(
            torch.meshgrid(*(torch.arange(g, device=device, dtype=torch.float32),) * 3, indexing="ij"), dim=-1
        ).reshape(1, g**3, 3)
        if rng is None:
            offsets = torch.full((batch_size, g**3, 3), 0.5, device=device)
        else:
            offsets = torch.rand((batch_size, g**3, 3), generator=rng, device=rng.device).to(device)
        points = -box_half_size + (index + offsets) * cell
        densities = torch.cat(
            [field.density(points[:, i : i + chunk_size]) for i in range(0, g**3, chunk_size)], dim=1
        )
        if densities.shape != (batch_size, g**3, 1):
            raise ValueError(
                f"field.density returned shape {list(densities.shape)} for points [{batch_size}, {g**3}, 3]; "
                "expected [b, n, 1]"
            )
        alpha = 1.0 - torch.exp(-densities.clamp_min(0.0) * step_size)
        occupied = (alpha > alpha_threshold).reshape(batch_size, 1, g, g, g).float()
        if dilation > 0:
            occupied = F.max_pool3d(occupied, kernel_size=2 * dilation + 1, stride=1, padding=dilation)
        return cls(occupied[:, 0] > 0, box_half_size)


def default_step_size(box_half_size: float, march_steps: int = 256) -> float:
    """Marching step: the box diagonal divided by ``march_steps``."""
    return 2.0 * box_half_size * math.sqrt(3.0) / march_steps


@dataclass
class PackedIntervals:
    """Variable numbers of intervals per ray, flattened and ordered by ray then distance."""

    t_starts: Float[Tensor, " m"]
    t_ends: Float[Tensor, " m"]
    ray_indices: Int64[Tensor, " m"]

    @classmethod
    def empty(cls, like: Tensor) -> PackedIntervals:
        """No intervals, with ``like``'s float dtype and device."""
        none = like.new_zeros(0)
        return cls(none, none, torch.zeros(0, dtype=torch.long, device=like.device))


def traverse_occupancy_grid(
    origins: Float[Tensor, "n 3"],
    directions: Float[Tensor, "n 3"],
    binaries: Bool[Tensor, "b g g g"],
    scene_indices: Int64[Tensor, " n"],
    box_half_size: float,
    near: Float[Tensor, " n"],
    far: Float[Tensor, " n"],
    step_size: float,
    backend: str = "auto",
) -> PackedIntervals:
    """Marches rays through the occupancy grid of their own scene; returns the kept intervals.

    Semantics of nerfacc 0.5's ``traverse_grids`` with ``cone_angle = 0`` (which is what runs on
    CUDA): each ray walks the lattice ``t_k = near + k * step`` (``t_{k+1} = t_k + step`` accumulated
    in float32, as the kernel does) and keeps ``[t_k, t_{k+1}]`` when its midpoint lies in the ray's
    part of the box, ``[max(t_enter, near), min(t_exit, far))``, and in an occupied cell. The cell of
    a midpoint is the one the kernel's voxel walk is in at that distance: boundaries accumulated
    from the entry cell in float32, a midpoint on a boundary belonging to the cell being entered,
    and the walk ending at the exit cell. The torch version reproduces this arithmetic; it can
    differ from the compiled kernel only where the compiler rounds differently (fused multiply-adds)
    and a midpoint sits within that rounding of a cell boundary.

    ``backend``: 'nerfacc' calls nerfacc's CUDA ``traverse_grids`` once per scene (CUDA tensors
    only), 'torch' runs the vectorized torch implementation on any device, 'auto' picks nerfacc
    for CUDA tensors when its extension loads and torch otherwise. Not differentiable.

    A batch of scenes: nerfacc's traversal is written for one scene (several grids passed to it are
    overlapping levels of one scene, and every ray meets all of them), so it is called once per scene
    on that scene's rays. Laying the scenes side by side in one call would need box and origin
    shifts that grow with the batch and the far plane and cost float precision in the marching;
    a few kernel launches cost far less than the field evaluations that follow. The torch backend
    handles all scenes in one vectorized pass.

    Example:
        >>> grid = torch.ones(1, 2, 2, 2, dtype=torch.bool)
        >>> o, d = torch.tensor([[0.0, 0.0, -2.0]]), torch.tensor([[0.0, 0.0, 1.0]])
        >>> out = traverse_occupancy_grid(o, d, grid, torch.zeros(1, dtype=torch.long), 0.5,
        ...                               torch.zeros(1), torch.full((1,), 10.0), step_size=0.25)
        >>> out.t_starts, out.t_ends
        (tensor([1.5000, 1.7500, 2.0000, 2.2500]), tensor([1.7500, 2.0000, 2.2500, 2.5000]))
    """
    if backend not in _BACKENDS:
        raise ValueError(f"backend must be one of {_BACKENDS}, got {backend!r}")
    if not step_size > 0:
        raise ValueError(f"step_size must be positive, got {step_size}")
    use_nerfacc = backend == "nerfacc" or (backend == "auto" and origins.is_cuda and nerfacc_cuda_available())
    if use_nerfacc:
        if not origins.is_cuda:
            raise ValueError("backend='nerfacc' needs CUDA tensors; use backend='torch' or 'auto' on CPU")
        return _traverse_nerfacc(origins, directions, binaries, scene_indices, box_half_size, near, far, step_size)
    return _traverse_torch(origins, directions, binaries, scene_indices, box_half_size, near, far, step_size)


_NERFACC_CUDA: bool | None = None


def nerfacc_cuda_available() -> bool:
    """Whether nerfacc's CUDA extension loads (checked once; it may compile itself the first time)."""
    global _NERFACC_CUDA
    if _NERFACC_CUDA is None:
        try:
            from nerfacc.cuda._backend import _C

            _NERFACC_CUDA = _C is not None and torch.cuda.is_available()
        except Exception:  # noqa: BLE001 - any failure to build or load means: use torch
            _NERFACC_CUDA = False
    return _NERFACC_CUDA


def _traverse_nerfacc(
    origins: Tensor,
    directions: Tensor,
    binaries: Tensor,
    scene_indices: Tensor,
    box_half_size: float,
    near: Tensor,
    far: Tensor,
    step_size: float,
) -> PackedIntervals:
    from nerfacc.grid import traverse_grids

    h = float(box_half_size)
    aabb = torch.tensor([[-h, -h, -h, h, h, h]], device=origins.device, dtype=torch.float32)
    starts, ends, indices = [], [], []
    for scene in range(binaries.shape[0]):
        rays = torch.nonzero(scene_indices == scene).flatten()
        if rays.numel() == 0:
            continue
        intervals, _, _ = traverse_grids(
            origins[rays].float().contiguous(),
            directions[rays].float().contiguous(),
            binaries[scene : scene + 1].contiguous(),
            aabb,
            near_planes=near[rays].float().contiguous(),
            far_planes=far[rays].float().contiguous(),
            step_size=float(step_size),
            cone_angle=0.0,
        )
        starts.append(intervals.vals[intervals.is_left])
        ends.append(intervals.vals[intervals.is_right])
        indices.append(rays[intervals.ray_indices[intervals.is_left].long()])
    if not starts:
        return PackedIntervals.empty(origins)
    ray_indices = torch.cat(indices)
    # Scenes were traversed one after another: restore the ray-major order (stable keeps distances sorted).
    order = torch.sort(ray_indices, stable=True).indices
    return PackedIntervals(torch.cat(starts)[order], torch.cat(ends)[order], ray_indices[order])


def _traverse_torch(
    origins: Tensor,
    directions: Tensor,
    binaries: Tensor,
    scene_indices: Tensor,
    box_half_size: float,
    near: Tensor,
    far: Tensor,
    step_size: float,
) -> PackedIntervals:
    """Vectorized torch version of the marching (float32 arithmetic in the kernel's order)."""
    o, d = origins.float(), directions.float()
    near, far = near.float(), far.float()
    g = binaries.shape[1]
    h = torch.tensor(box_half_size, dtype=torch.float32, device=o.device)
    low, high = -h, h
    dt = torch.tensor(step_size, dtype=torch.float32, device=o.device)

    # Ray/box intersection without near/far, then clipped to the ray's own [near, far].
    inv = 1.0 / d
    t_a, t_b = (low - o) * inv, (high - o) * inv
    t_enter = torch.minimum(t_a, t_b).amax(dim=-1)
    t_exit = torch.maximum(t_a, t_b).amin(dim=-1)
    hit = (t_enter <= t_exit) & (t_exit > 0)
    seg_min = torch.maximum(t_enter, near)
    seg_max = torch.minimum(t_exit, far)
    active = hit & (seg_min < seg_max)
    if not active.any():
        return PackedIntervals.empty(o)
    keep = torch.nonzero(active).flatten()
    o, d, inv = o[keep], d[keep], inv[keep]
    near, seg_min, seg_max, scenes = near[keep], seg_min[keep], seg_max[keep], scene_indices[keep]

    # Voxel walk set-up as in the kernel: entry and exit cells of the ray's part of the box.
    size = high - low
    voxel = size / g
    start = o + d * (seg_min + _TRAVERSAL_EPS)[:, None]
    end = o + d * (seg_max - _TRAVERSAL_EPS)[:, None]
    current = (((start - low) / size) * g).to(torch.int64).clamp(0, g - 1)
    final = (((end - low) / size) * g).to(torch.int64).clamp(0, g - 1)
    step = torch.sign(d).to(torch.int64)
    flat = d == 0

    # Only the stretch of each ray inside its scene's occupied bounding box (grown by a cell, so
    # rounding at its faces cannot matter) can hold samples: examine that window only.
    box_lo, box_hi = _occupied_bounds(binaries, low, voxel)
    w_a, w_b = (box_lo[scenes] - o) * inv, (box_hi[scenes] - o) * inv
    window_lo = torch.maximum(torch.nan_to_num(torch.minimum(w_a, w_b), nan=-float("inf")).amax(-1), seg_min)
    window_hi = torch.minimum(torch.nan_to_num(torch.maximum(w_a, w_b), nan=float("inf")).amin(-1), seg_max)
    useful = torch.nonzero(window_lo < window_hi).flatten()
    if useful.numel() == 0:
        return PackedIntervals.empty(o)
    window_lo, window_hi, near_u = window_lo[useful], window_hi[useful], near[useful]

    # The lattice t_k, accumulated one step at a time like the kernel's `t_last += dt`, kept over
    # the window only.
    first_step = (torch.floor((window_lo - near_u) / dt) - 1).clamp_min(0).to(torch.int64)
    width = int(torch.ceil(((window_hi - window_lo) / dt).max()).item()) + 3
    num_steps = int(first_step.max().item()) + width + 1
    lattice = torch.empty(num_steps + 1, near_u.shape[0], dtype=near_u.dtype, device=near_u.device)
    lattice[0] = near_u
    for k in range(num_steps):
        torch.add(lattice[k], dt, out=lattice[k + 1])
    steps = first_step[:, None] + torch.arange(width + 1, device=o.device)
    t = lattice.T.contiguous().gather(1, steps)  # [useful rays, width + 1]
    mids = t[:, :-1] + dt * 0.5
    # Candidates: midpoints inside the window, as flat (ray, step) pairs.
    rows, cols = torch.nonzero((mids >= window_lo[:, None]) & (mids < window_hi[:, None]), as_tuple=True)
    m = mids[rows, cols]
    rays = useful[rows]  # index into the kept rays

    # The kernel finds a midpoint's cell by walking boundaries accumulated in float32; away from
    # boundaries that is simply the cell containing the midpoint's position. Only midpoints within
    # _BOUNDARY_MARGIN (in t) of a boundary, where the two can round differently, replay the walk.
    per_ray = torch.cat(
        [(o - low) / voxel, d / voxel, torch.minimum(current, final).float(), torch.maximum(current, final).float()],
        dim=1,
    )[rays]  # one gather: [candidates, 12]
    scaled = per_ray[:, 0:3] + per_ray[:, 3:6] * m[:, None]
    cells = scaled.floor()
    offset = scaled - cells
    near_boundary = (torch.minimum(offset, 1.0 - offset) < _BOUNDARY_MARGIN * per_ray[:, 3:6].abs()).any(dim=1)
    if near_boundary.any():
        which = torch.nonzero(near_boundary).flatten()
        cells[which] = _walk_cells(
            m[which], rays[which], o, d, inv, seg_min, seg_max, current, step, flat, low, voxel, g
        ).float()
    # The walk stops once any axis steps past its exit cell: cells outside [current, final] are never reached.
    reachable = ((cells >= per_ray[:, 6:9]) & (cells <= per_ray[:, 9:12])).all(dim=1)
    cells = cells.clamp(0, g - 1).to(torch.int64)
    cell = (cells[:, 0] * g + cells[:, 1]) * g + cells[:, 2]
    occupied = binaries.reshape(binaries.shape[0], -1)[scenes[rays], cell]
    valid = reachable & occupied
    rows, cols, rays = rows[valid], cols[valid], rays[valid]
    return PackedIntervals(t[rows, cols], t[rows, cols + 1], keep[rays])


def _occupied_bounds(binaries: Tensor, low: Tensor, voxel: Tensor) -> tuple[Tensor, Tensor]:
    """Per scene, the world box [b, 3] (low and high corners) of its occupied cells grown by one cell;
    an empty scene gets an empty box."""
    b, g = binaries.shape[0], binaries.shape[1]
    index = torch.arange(g, device=binaries.device)
    lows, highs = [], []
    for axis in range(3):
        others = tuple(a for a in (1, 2, 3) if a != axis + 1)
        used = binaries.any(dim=others)  # [b, G]: some occupied cell in this slice
        first = torch.where(used, index, g).amin(dim=1)
        last = torch.where(used, index, -1).amax(dim=1)
        lows.append((first - 1).clamp(min=0))
        highs.append((last + 2).clamp(max=g))
    lo_cells, hi_cells = torch.stack(lows, dim=1), torch.stack(highs, dim=1)
    empty = ~binaries.reshape(b, -1).any(dim=1)
    hi_cells = torch.where(empty[:, None], lo_cells, hi_cells)
    return low + lo_cells.float() * voxel, low + hi_cells.float() * voxel


def _walk_cells(
    m: Tensor, rows: Tensor, o: Tensor, d: Tensor, inv: Tensor, seg_min: Tensor, seg_max: Tensor,
    current: Tensor, step: Tensor, flat: Tensor, low: Tensor, voxel: Tensor, g: int,
) -> Tensor:
    """Cells [k, 3] of midpoints ``m`` as the kernel's voxel walk assigns them: on each axis the walk
    has stepped once per cell boundary at or before the midpoint, with boundaries accumulated
    (``tdist += delta``) from the entry cell in float32, exactly as the kernel computes them."""
    ray_ids, local = torch.unique(rows, return_inverse=True)
    o, d, inv = o[ray_ids], d[ray_ids], inv[ray_ids]
    seg_lo, seg_hi = seg_min[ray_ids, None], seg_max[ray_ids, None]
    start = o + d * (seg_lo + _TRAVERSAL_EPS)
    entry = current[ray_ids]
    first_index = entry + (d > 0).to(torch.int64)
    first = ((low + (first_index.float() * voxel - start)) * inv) + seg_lo
    spacing = voxel * inv * step[ray_ids].float()
    first = torch.where(flat[ray_ids], seg_hi, first)
    spacing = torch.where(flat[ray_ids], seg_hi, spacing)
    bounds = torch.empty(g + 1, *first.shape, dtype=first.dtype, device=first.device)
    bounds[0] = first
    for k in range(g):
        torch.add(bounds[k], spacing, out=bounds[k + 1])
    bounds = bounds.permute(1, 2, 0).reshape(-1)  # flat [rays, 3, G + 1], increasing along the last axis
    # Boundaries at or before m: an arithmetic estimate, corrected against the accumulated values
    # (rounding can put it one off where m sits on a boundary).
    base = (local[:, None] * 3 + torch.arange(3, device=m.device)) * (g + 1)  # [k, 3]
    m3 = m[:, None]
    passed = (torch.floor((m3 - first[local]) / spacing[local]) + 1).clamp(0, g + 1).to(torch.int64)
    for _ in range(2):
        passed += ((passed <= g) & (bounds[base + passed.clamp(max=g)] <= m3)).to(torch.int64)
        passed -= ((passed >= 1) & (bounds[base + (passed - 1).clamp(min=0)] > m3)).to(torch.int64)
    passed = passed[..., None]
    # Not clamped: a cell past the exit cell means the walk had stopped (the caller checks).
    return entry[local] + step[ray_ids][local] * passed[..., 0]


def pad_intervals(
    packed: PackedIntervals, num_rays: int, fill: Float[Tensor, " n"]
) -> tuple[Float[Tensor, "n s"], Float[Tensor, "n s"], Bool[Tensor, "n s"]]:
    """Packed intervals to ``[n_rays, s_max]`` with zero-length padding at ``fill`` (e.g. the far plane)."""
    device = fill.device
    counts = torch.bincount(packed.ray_indices, minlength=num_rays) if packed.ray_indices.numel() else torch.zeros(
        num_rays, dtype=torch.long, device=device
    )
    s_max = int(counts.max().item()) if num_rays else 0
    first = torch.cumsum(counts, 0) - counts
    slot = torch.arange(packed.ray_indices.numel(), device=device) - first[packed.ray_indices]
    starts = fill[:, None].expand(num_rays, s_max).clone()
    ends = starts.clone()
    mask = torch.zeros(num_rays, s_max, dtype=torch.bool, device=device)
    starts[packed.ray_indices, slot] = packed.t_starts.to(starts.dtype)
    ends[packed.ray_indices, slot] = packed.t_ends.to(ends.dtype)
    mask[packed.ray_indices, slot] = True
    return starts, ends, mask


@torch.no_grad()
def occupancy_samples(
    rays: RayBundle,
    grid: OccupancyGrid,
    step_size: float,
    rng: torch.Generator | None = None,
    backend: str = "auto",
) -> RaySamples:
    """Samples only inside occupied cells, padded to ``[b, r, s_max]`` with a mask.

    With an ``rng`` (training) the lattice of every ray is shifted by a uniform fraction of a
    step, as nerfacc's stratified marching does, so the sample positions are not fixed in space.
    """
    b, r = rays.origins.shape[:2]
    if grid.batch_size != b:
        raise ValueError(
            f"occupancy grid holds {grid.batch_size} scenes but the rays belong to {b}; build one grid per scene"
        )
    near, far = rays.near[..., 0].reshape(-1), rays.far[..., 0].reshape(-1)
    if rng is not None:
        shift = torch.rand(near.shape, generator=rng, device=rng.device).to(near.device)
        near = near + shift.to(near.dtype) * step_size
    scenes = torch.arange(b, device=rays.device).repeat_interleave(r)
    packed = traverse_occupancy_grid(
        rays.origins.reshape(-1, 3),
        rays.directions.reshape(-1, 3),
        grid.binaries.to(rays.device),
        scenes,
        grid.box_half_size,
        near,
        far,
        step_size,
        backend,
    )
    starts, ends, mask = pad_intervals(packed, b * r, far)
    s = starts.shape[-1]
    return RaySamples(
        starts.reshape(b, r, s).to(rays.origins.dtype), ends.reshape(b, r, s).to(rays.origins.dtype),
        mask=mask.reshape(b, r, s),
    )

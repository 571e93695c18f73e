"""Fast renders for interactive views: samples only where an occupancy grid says the field can be seen."""

from __future__ import annotations

import torch
from jaxtyping import Bool, Float
from torch import Tensor

from renderers.compositing import BACKDROP, composite
from renderers.field import check_field
from renderers.occupancy import OccupancyGrid, default_step_size
from renderers.rays import RayBundle
from renderers.samplers import RaySamples
from renderers.volume_renderer import RenderOutput, _append_backdrop, _evaluate


def preview_step_size(grid: OccupancyGrid, num_samples: int) -> float:
    """The widest sample spacing of :func:`grid_samples`: ``num_samples`` over the box diagonal (the
    longest chord); shorter chords through the occupied box are sampled more finely.

    Build the grid with this step (``OccupancyGrid.from_field(..., step_size=...)``): its threshold is
    then at least the opacity any skipped sample could have had.
    """
    return default_step_size(grid.box_half_size, num_samples)


def occupied_box(grid: OccupancyGrid) -> tuple[Float[Tensor, "b 3"], Float[Tensor, "b 3"]]:
    """Per scene, the (low, high) world corners of the box around its occupied cells.

    An empty scene gets an empty box (low == high at the box's low corner).

    Example:
        >>> binaries = torch.zeros(1, 4, 4, 4, dtype=torch.bool)
        >>> binaries[0, 1, 2, 2] = True
        >>> occupied_box(OccupancyGrid(binaries, 0.5))
        (tensor([[-0.2500,  0.0000,  0.0000]]), tensor([[0.0000, 0.2500, 0.2500]]))
    """
    binaries = grid.binaries
    b, g = binaries.shape[0], binaries.shape[1]
    index = torch.arange(g, device=binaries.device)
    lows, highs = [], []
    for axis in range(3):
        others = tuple(a for a in (1, 2, 3) if a != axis + 1)
        used = binaries.any(dim=others)  # [b, g]
        lows.append(torch.where(used, index, g).amin(dim=1))
        highs.append(torch.where(used, index + 1, 0).amax(dim=1))
    low_cells, high_cells = torch.stack(lows, dim=1), torch.stack(highs, dim=1)
    empty = ~binaries.reshape(b, -1).any(dim=1)
    low_cells = torch.where(empty[:, None], torch.zeros_like(low_cells), low_cells)
    high_cells = torch.where(empty[:, None], low_cells, high_cells)
    cell = 2.0 * grid.box_half_size / g
    return -grid.box_half_size + low_cells.float() * cell, -grid.box_half_size + high_cells.float() * cell


def lookup_occupancy(grid: OccupancyGrid, points: Float[Tensor, "b n 3"]) -> Bool[Tensor, "b n"]:
    """Whether each point lies in an occupied cell of its scene's grid (False outside the box).

    Example:
        >>> grid = OccupancyGrid(torch.tensor([[[[False, True]]]]).expand(1, 2, 2, 2), 0.5)
        >>> lookup_occupancy(grid, torch.tensor([[[0.0, 0.0, -0.25], [0.0, 0.0, 0.25], [0.0, 0.0, 0.9]]]))
        tensor([[False,  True, False]])
    """
    b, n = points.shape[:2]
    g, h = grid.resolution, grid.box_half_size
    scaled = (points + h) * (g / (2.0 * h))
    inside = ((scaled >= 0) & (scaled < g)).all(dim=-1)
    cells = scaled.floor().clamp(0, g - 1).long()
    flat = (cells[..., 0] * g + cells[..., 1]) * g + cells[..., 2]
    occupied = grid.binaries.to(points.device).reshape(b, -1).gather(1, flat)
    return occupied & inside


def grid_samples(rays: RayBundle, grid: OccupancyGrid, num_samples: int) -> RaySamples:
    """``num_samples`` intervals tiling each ray's chord through its scene's occupied box, masked to
    the occupied cells.

    The chord is the ray's stretch inside the box around the occupied cells (clipped to its
    near/far); rays that miss it have zero-length intervals. A sample is real when its interval has
    length and its midpoint lies in an occupied cell, so the field is only queried there. The
    intervals are those of :func:`renderers.samplers.stratified_samples` on the chord (no jitter:
    the picture stays still while the camera does); a tight occupied box gives finer steps than the
    scene box would.
    """
    if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples <= 0:
        raise ValueError(f"num_samples must be a positive int, got {num_samples!r}")
    b, r = rays.batch_size, rays.num_rays
    if grid.batch_size != b:
        raise ValueError(f"occupancy grid holds {grid.batch_size} scenes but the rays belong to {b}")
    low, high = (corner.to(rays.device, rays.origins.dtype) for corner in occupied_box(grid))
    inv = 1.0 / rays.directions
    t_low = torch.nan_to_num((low[:, None] - rays.origins) * inv, nan=-float("inf"))
    t_high = torch.nan_to_num((high[:, None] - rays.origins) * inv, nan=float("inf"))
    t_enter = torch.maximum(torch.minimum(t_low, t_high).amax(dim=-1, keepdim=True), rays.near)
    t_exit = torch.minimum(torch.maximum(t_low, t_high).amin(dim=-1, keepdim=True), rays.far)
    t_exit = torch.maximum(t_exit, t_enter)  # a miss becomes a zero-length chord
    fraction = torch.arange(num_samples + 1, device=rays.device, dtype=rays.origins.dtype) / num_samples
    edges = t_enter + (t_exit - t_enter) * fraction
    t_starts, t_ends = edges[..., :-1].contiguous(), edges[..., 1:].contiguous()
    mids = 0.5 * (t_starts + t_ends)
    points = rays.points_at(mids).reshape(b, r * num_samples, 3)
    mask = (t_ends > t_starts) & lookup_occupancy(grid, points).reshape(b, r, num_samples)
    return RaySamples(t_starts, t_ends, t_points=mids, mask=mask)


def render_rays_in_grid(
    field: object,
    rays: RayBundle,
    grid: OccupancyGrid,
    num_samples: int,
    background: str | tuple[float, float, float] = "white",
    chunk_size: int = 65536,
) -> RenderOutput:
    """Renders ``rays`` with :func:`grid_samples`: the field is queried only in occupied cells.

    What a cached grid buys an interactive view: no samples outside the occupied box, and none in
    its empty cells. The result equals a render of the same samples with every one evaluated as
    long as the grid holds every cell with visible density (build it from the field with the
    sample spacing, :func:`preview_step_size`, and a small threshold). ``background`` is a colour
    name, an (r, g, b) colour or 'last_sample' (the backdrop is queried at the far end of the ray's
    original near/far, as :class:`VolumeRenderer` does). Deterministic; not meant for training.
    """
    check_field(field)
    b, r = rays.batch_size, rays.num_rays
    rays_per_chunk = max(1, chunk_size // (b * num_samples))
    outputs = []
    with torch.no_grad():
        for start in range(0, r, rays_per_chunk):
            chunk = rays.slice(start, start + rays_per_chunk)
            samples = grid_samples(chunk, grid, num_samples)
            values = _evaluate(field, chunk, samples)
            if background == BACKDROP:
                samples, values = _append_backdrop(field, chunk, samples, values)
            out = composite(samples.t_starts, samples.t_ends, values.density, values.rgb, background=background,
                            t_points=samples.t_points, features=values.features, empty_depth=chunk.far)
            outputs.append(RenderOutput(rgb=out.rgb, depth=out.depth, opacity=out.opacity, weights=out.weights,
                                        features=out.features, samples=samples,
                                        num_field_evaluations=values.count))
    if len(outputs) == 1:
        return outputs[0]
    cat = lambda name: torch.cat([getattr(o, name) for o in outputs], dim=1)  # noqa: E731
    samples = RaySamples(_cat_samples(outputs, "t_starts"), _cat_samples(outputs, "t_ends"),
                         t_points=_cat_samples(outputs, "positions"), mask=_cat_samples(outputs, "mask"))
    return RenderOutput(
        rgb=cat("rgb"), depth=cat("depth"), opacity=cat("opacity"), weights=cat("weights"),
        features=None if outputs[0].features is None else cat("features"), samples=samples,
        num_field_evaluations=sum(o.num_field_evaluations for o in outputs),
    )


def _cat_samples(outputs: list[RenderOutput], name: str) -> Tensor:
    """One per-sample tensor of several chunks joined along the rays (every chunk has the same samples per ray)."""
    return torch.cat([getattr(o.samples, name) for o in outputs], dim=1)

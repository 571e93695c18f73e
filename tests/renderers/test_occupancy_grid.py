"""Occupancy grids and grid traversal: hand-checked cases, a scalar reference, nerfacc on CUDA."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from renderers.analytic import SphereField
from renderers.occupancy import (
    OccupancyGrid,
    PackedIntervals,
    occupancy_samples,
    pad_intervals,
    traverse_occupancy_grid,
)
from renderers.rays import RayBundle

F32 = np.float32


def reference_march(o, d, grid, half, near, far, dt):
    """One ray at a time, in float32: the voxel walk plus lattice marching of nerfacc's kernel
    (cone_angle 0), written as plain loops. Returns a list of (t_start, t_end)."""
    g = grid.shape[0]
    o, d = o.astype(F32), d.astype(F32)
    near, far, dt, half = F32(near), F32(far), F32(dt), F32(half)
    low, high = -half, half
    with np.errstate(divide="ignore", invalid="ignore"):
        inv = F32(1.0) / d
    t_in, t_out = F32(-np.inf), F32(np.inf)
    for a in range(3):
        ta, tb = (low - o[a]) * inv[a], (high - o[a]) * inv[a]
        if inv[a] < 0:
            ta, tb = tb, ta
        if t_in > tb or ta > t_out:
            return []
        t_in, t_out = max(t_in, ta), min(t_out, tb)
    if t_out <= 0:
        return []
    seg_lo, seg_hi = max(t_in, near), min(t_out, far)
    if seg_lo >= seg_hi:
        return []
    half_dt = dt * F32(0.5)
    t = near
    while t + half_dt < seg_lo:
        t = F32(t + dt)
    size = high - low
    voxel = size / F32(g)
    start = o + d * F32(seg_lo + F32(1e-6))
    end = o + d * F32(seg_hi - F32(1e-6))
    cur = [min(max(int(((start[a] - low) / size) * F32(g)), 0), g - 1) for a in range(3)]
    fin = [min(max(int(((end[a] - low) / size) * F32(g)), 0), g - 1) for a in range(3)]
    step = [0 if d[a] == 0 else (1 if d[a] > 0 else -1) for a in range(3)]
    nxt, delta = [], []
    for a in range(3):
        if d[a] == 0:
            nxt.append(seg_hi)
            delta.append(seg_hi)
        else:
            first = cur[a] + (1 if d[a] > 0 else 0)
            nxt.append(F32((low + (F32(first) * voxel - start[a])) * inv[a]) + seg_lo)
            delta.append(F32(voxel * inv[a] * F32(step[a])))
    out = []
    while True:
        exit_t = min(min(nxt), seg_hi)
        if grid[cur[0], cur[1], cur[2]]:
            while t + half_dt < exit_t:
                out.append((float(t), float(F32(t + dt))))
                t = F32(t + dt)
        else:
            while t + half_dt < exit_t:
                t = F32(t + dt)
        if nxt[0] < nxt[1] and nxt[0] < nxt[2]:
            a = 0
        elif nxt[1] < nxt[2]:
            a = 1
        else:
            a = 2
        cur[a] += step[a]
        nxt[a] = F32(nxt[a] + delta[a])
        if cur[a] == fin[a] + step[a]:
            return out


def random_rays(n: int, rng: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Rays from around and inside the box, some axis-aligned, with assorted near/far planes."""
    origins = (torch.rand(n, 3, generator=rng) - 0.5) * 4.0
    origins[: n // 8] *= 0.2  # some start inside the box
    targets = (torch.rand(n, 3, generator=rng) - 0.5) * 1.2
    directions = torch.nn.functional.normalize(targets - origins, dim=-1)
    axis = torch.randint(0, 3, (n // 8,), generator=rng)
    aligned = torch.zeros(n // 8, 3)
    aligned[torch.arange(n // 8), axis] = torch.where(torch.rand(n // 8, generator=rng) < 0.5, -1.0, 1.0)
    directions[n // 8 : n // 4] = aligned
    origins[n // 8 : n // 4] = (torch.rand(n // 8, 3, generator=rng) - 0.5) * 1.0
    origins[n // 8 : n // 4][torch.arange(n // 8), axis] = -2.0 * aligned[torch.arange(n // 8), axis]
    near = torch.rand(n, generator=rng) * 1.5
    far = near + 0.5 + torch.rand(n, generator=rng) * 3.0
    return origins, directions, near, far


@pytest.mark.parametrize("layout", ["dense", "sparse"])
def test_torch_traversal_matches_scalar_reference(rng, layout):
    n, g, dt = 400, 8, 0.037
    origins, directions, near, far = random_rays(n, rng)
    grid = torch.rand(2, g, g, g, generator=rng) < 0.5
    if layout == "sparse":  # occupied cells only in a corner block of each scene
        grid[0, :, :, 4:] = False
        grid[0, 3:] = False
        grid[1, :5] = False
        grid[1, :, 6:] = False
    scenes = torch.randint(0, 2, (n,), generator=rng)
    packed = traverse_occupancy_grid(origins, directions, grid, scenes, 0.5, near, far, dt, backend="torch")
    total = 0
    for i in range(n):
        expected = reference_march(
            origins[i].numpy(), directions[i].numpy(), grid[scenes[i]].numpy(), 0.5, near[i].item(), far[i].item(), dt
        )
        mine = packed.ray_indices == i
        got = list(zip(packed.t_starts[mine].tolist(), packed.t_ends[mine].tolist()))
        assert got == expected, f"ray {i}"
        total += len(expected)
    assert total > 300  # the rays really crossed occupied cells


def test_midpoints_exactly_on_cell_boundaries_follow_the_kernel():
    # Axis-aligned rays whose lattice midpoints land exactly on the cell faces (z = -0.5, -0.25, ...):
    # the kernel's walk assigns such a midpoint to the cell it is entering.
    g, dt = 4, 0.25
    grid = torch.zeros(1, g, g, g, dtype=torch.bool)
    grid[0, :, :, 1] = True  # only z in [-0.25, 0) is occupied
    grid[0, :, :, 3] = True  # and z in [0.25, 0.5)
    origins = torch.tensor([[0.1, 0.1, -2.0], [0.1, 0.1, 2.0], [-0.3, 0.2, -2.0]])
    directions = torch.tensor([[0.0, 0.0, 1.0], [0.0, 0.0, -1.0], [0.0, 0.0, 1.0]])
    near, far = torch.tensor([0.125, 0.125, 0.0]), torch.full((3,), 5.0)
    packed = traverse_occupancy_grid(origins, directions, grid, torch.zeros(3, dtype=torch.long), 0.5, near, far,
                                     dt, backend="torch")
    for i in range(3):
        expected = reference_march(origins[i].numpy(), directions[i].numpy(), grid[0].numpy(), 0.5,
                                   near[i].item(), far[i].item(), dt)
        mine = packed.ray_indices == i
        assert list(zip(packed.t_starts[mine].tolist(), packed.t_ends[mine].tolist())) == expected, f"ray {i}"
    # Ray 0: midpoints z = -0.5, -0.25, 0, 0.25 (t = 1.5 ... 2.25); the faces at -0.25 and 0.25 open
    # occupied cells, so the intervals around t = 1.75 and 2.25 are kept.
    assert packed.t_starts[packed.ray_indices == 0].tolist() == [1.625, 2.125]


def test_full_grid_gives_the_lattice_inside_the_box():
    grid = torch.ones(1, 4, 4, 4, dtype=torch.bool)
    origins = torch.tensor([[0.1, -0.2, -3.0]])
    directions = torch.tensor([[0.0, 0.0, 1.0]])
    out = traverse_occupancy_grid(origins, directions, grid, torch.zeros(1, dtype=torch.long), 0.5,
                                  torch.tensor([0.3]), torch.tensor([10.0]), step_size=0.1, backend="torch")
    # Box from t = 2.5 to 3.5; lattice 0.3 + 0.1 k; kept when the midpoint lies in [2.5, 3.5).
    k = torch.arange(22, 32, dtype=torch.float32)
    expected_starts = 0.3 + 0.1 * k
    assert out.t_starts.shape == (10,)
    assert torch.allclose(out.t_starts, expected_starts, atol=1e-5)
    assert torch.allclose(out.t_ends - out.t_starts, torch.full((10,), 0.1), atol=1e-5)
    assert out.t_starts[0] + 0.05 >= 2.5 and out.t_ends[-1] - 0.05 < 3.5


def test_only_occupied_cells_are_sampled():
    # Only the cell column z in [0, 0.25) at x, y in the central cells is occupied.
    grid = torch.zeros(1, 4, 4, 4, dtype=torch.bool)
    grid[0, 1:3, 1:3, 2] = True
    origins = torch.tensor([[0.1, 0.1, -2.0], [0.4, 0.4, -2.0]])
    directions = torch.tensor([[0.0, 0.0, 1.0], [0.0, 0.0, 1.0]])
    out = traverse_occupancy_grid(origins, directions, grid, torch.zeros(2, dtype=torch.long), 0.5,
                                  torch.zeros(2), torch.full((2,), 5.0), step_size=0.05, backend="torch")
    assert (out.ray_indices == 0).all()  # the second ray passes only through empty cells
    mids = 0.5 * (out.t_starts + out.t_ends) - 2.0  # z of the midpoints
    assert len(mids) == 5 and (mids >= 0).all() and (mids < 0.25).all()


def test_each_scene_only_meets_its_own_grid():
    grids = torch.zeros(2, 4, 4, 4, dtype=torch.bool)
    grids[0] = True
    origins = torch.tensor([[0.0, 0.0, -2.0]]).repeat(2, 1)
    directions = torch.tensor([[0.0, 0.0, 1.0]]).repeat(2, 1)
    out = traverse_occupancy_grid(origins, directions, grids, torch.tensor([0, 1]), 0.5,
                                  torch.zeros(2), torch.full((2,), 5.0), step_size=0.1, backend="torch")
    assert len(out.t_starts) == 10 and (out.ray_indices == 0).all()


def test_pad_intervals_uses_zero_length_padding():
    packed = PackedIntervals(torch.tensor([1.0, 1.5, 2.0]), torch.tensor([1.5, 2.0, 2.5]), torch.tensor([0, 0, 2]))
    starts, ends, mask = pad_intervals(packed, 3, fill=torch.tensor([9.0, 8.0, 7.0]))
    assert mask.tolist() == [[True, True], [False, False], [True, False]]
    assert starts.tolist() == [[1.0, 1.5], [8.0, 8.0], [2.0, 7.0]]
    assert ((ends - starts)[~mask] == 0).all()


def test_grid_from_sphere_covers_the_sphere_and_little_else():
    radius, g = 0.3, 16
    field = SphereField(radius=torch.tensor([radius, 0.2]))
    grid = OccupancyGrid.from_field(field, 2, resolution=g, dilation=0)
    centers = -0.5 + (torch.stack(torch.meshgrid(*(torch.arange(g),) * 3, indexing="ij"), -1) + 0.5) / g
    dist = centers.norm(dim=-1)
    assert torch.equal(grid.binaries[0], dist <= radius)
    assert torch.equal(grid.binaries[1], dist <= 0.2)
    dilated = OccupancyGrid.from_field(field, 2, resolution=g, dilation=1)
    cell = 1.0 / g
    # Every cell the sphere surface passes through is kept after dilation, and nothing far away is.
    touches = (dist - radius).abs() <= cell * math.sqrt(3) / 2
    assert dilated.binaries[0][touches].all()
    assert not dilated.binaries[0][dist > radius + 2 * cell * math.sqrt(3)].any()
    assert (dilated.occupied_fraction() > grid.occupied_fraction()).all()


def test_grid_threshold_is_on_one_step_opacity():
    from renderers.analytic import ConstantField

    step = 0.01
    # Density 0.5 over a step of 0.01 has opacity 0.005: below 0.01, so empty; density 2 is above.
    low = OccupancyGrid.from_field(ConstantField(sigma=0.5), 1, resolution=4, step_size=step, alpha_threshold=0.01)
    high = OccupancyGrid.from_field(ConstantField(sigma=2.0), 1, resolution=4, step_size=step, alpha_threshold=0.01)
    assert not low.binaries.any() and high.binaries.all()


def test_jittered_grid_probes_are_reproducible():
    field = SphereField(radius=0.27)
    a = OccupancyGrid.from_field(field, 1, resolution=8, dilation=0, rng=torch.Generator().manual_seed(1))
    b = OccupancyGrid.from_field(field, 1, resolution=8, dilation=0, rng=torch.Generator().manual_seed(1))
    assert torch.equal(a.binaries, b.binaries)


def test_occupancy_samples_are_padded_per_ray():
    grid = OccupancyGrid(torch.ones(1, 4, 4, 4, dtype=torch.bool))
    rays = RayBundle(
        origins=torch.tensor([[[0.0, 0.0, -2.0], [0.0, 3.0, -2.0]]]),
        directions=torch.tensor([[[0.0, 0.0, 1.0], [0.0, 0.0, 1.0]]]),
        near=torch.tensor([[[1.5], [1.0]]]),
        far=torch.tensor([[[2.5], [1.0]]]),
    )
    samples = occupancy_samples(rays, grid, step_size=0.1, backend="torch")
    assert samples.t_starts.shape == (1, 2, 10)
    assert samples.mask[0, 0].all() and not samples.mask[0, 1].any()
    assert ((samples.t_ends - samples.t_starts)[~samples.mask] == 0).all()


@pytest.mark.cuda
def test_torch_traversal_matches_nerfacc_cuda(rng):
    from renderers.occupancy import nerfacc_cuda_available

    if not nerfacc_cuda_available():
        pytest.fail("nerfacc's CUDA extension did not load on a CUDA machine")
    n, g = 4000, 32
    origins, directions, near, far = (x.cuda() for x in random_rays(n, rng))
    grid = (torch.rand(2, g, g, g, generator=rng) < 0.5).cuda()
    scenes = torch.randint(0, 2, (n,), generator=rng).cuda()
    step = 2 * math.sqrt(3) / 256
    args = (origins, directions, grid, scenes, 0.5, near, far, step)
    ours = traverse_occupancy_grid(*args, backend="torch")
    theirs = traverse_occupancy_grid(*args, backend="nerfacc")
    ours_pad = pad_intervals(ours, n, far)
    theirs_pad = pad_intervals(theirs, n, far)
    # The two implementations round differently only where a midpoint sits within float error of a
    # cell boundary; everywhere else the intervals are the same.
    same_rays = (ours_pad[2].sum(1) == theirs_pad[2].sum(1))
    assert same_rays.float().mean() > 0.995
    assert len(theirs.t_starts) > 10000
    s = min(ours_pad[0].shape[1], theirs_pad[0].shape[1])
    for a, b in zip(ours_pad[:2], theirs_pad[:2]):
        assert torch.allclose(a[same_rays, :s], b[same_rays, :s], atol=1e-5)

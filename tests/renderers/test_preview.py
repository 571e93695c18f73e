"""Grid previews: samples only in occupied cells, the same picture as evaluating every sample."""

from __future__ import annotations

import math

import pytest
import torch

from renderers.analytic import SphereField
from renderers.cameras import Cameras
from renderers.compositing import composite
from renderers.occupancy import OccupancyGrid
from renderers.preview import grid_samples, lookup_occupancy, occupied_box, preview_step_size, render_rays_in_grid
from renderers.rays import RayBundle, generate_rays
from renderers.samplers import RaySamples, sample_points
from renderers.volume_renderer import VolumeRenderer, VolumeRendererConfig, _append_backdrop, _evaluate
from tests.renderers.helpers import RandomTriPlaneField


def orbit_rays(batch: int, resolution: int = 16, radius: float = 2.0) -> RayBundle:
    yaw = torch.linspace(0.3, 2.0, batch)
    cameras = Cameras.from_spherical(yaw, 0.2 * torch.ones(batch), radius, 35.0)
    return generate_rays(cameras, resolution, box_half_size=0.5)


def preview_grid(field, batch: int, num_samples: int, resolution: int = 16) -> OccupancyGrid:
    """A grid that surely holds all density: probed four times per cell and axis, then grown by a cell."""
    step = 2 * 0.5 * math.sqrt(3) / num_samples
    fine = OccupancyGrid.from_field(field, batch, resolution=4 * resolution, box_half_size=0.5, step_size=step,
                                    alpha_threshold=0.0, dilation=0)
    blocks = fine.binaries.float().reshape(batch, resolution, 4, resolution, 4, resolution, 4)
    coarse = blocks.amax(dim=(2, 4, 6))[:, None]
    grown = torch.nn.functional.max_pool3d(coarse, kernel_size=3, stride=1, padding=1)[:, 0] > 0
    return OccupancyGrid(grown, 0.5)


def test_occupied_box_spans_the_occupied_cells_and_is_empty_without_any():
    binaries = torch.zeros(2, 8, 8, 8, dtype=torch.bool)
    binaries[0, 2, 5, 1] = True
    binaries[0, 3, 6, 4] = True
    low, high = occupied_box(OccupancyGrid(binaries, 0.5))
    cell = 1.0 / 8
    torch.testing.assert_close(low[0], torch.tensor([-0.5 + 2 * cell, -0.5 + 5 * cell, -0.5 + 1 * cell]))
    torch.testing.assert_close(high[0], torch.tensor([-0.5 + 4 * cell, -0.5 + 7 * cell, -0.5 + 5 * cell]))
    torch.testing.assert_close(low[1], high[1])  # scene 1 has nothing


def test_lookup_finds_the_cell_of_each_point_and_nothing_outside_the_box():
    binaries = torch.zeros(1, 4, 4, 4, dtype=torch.bool)
    binaries[0, 3, 0, 1] = True  # x in [0.25, 0.5], y in [-0.5, -0.25], z in [-0.25, 0]
    points = torch.tensor([[[0.3, -0.4, -0.1], [0.3, -0.4, 0.1], [0.6, -0.4, -0.1], [-0.3, -0.4, -0.1]]])
    assert lookup_occupancy(OccupancyGrid(binaries, 0.5), points).tolist() == [[True, False, False, False]]


def test_samples_are_evenly_spaced_inside_the_occupied_box_and_masked_to_occupied_cells():
    binaries = torch.zeros(1, 4, 4, 4, dtype=torch.bool)
    binaries[0, 1:3, 1:3, 1:3] = True  # the central cube [-0.25, 0.25]^3
    binaries[0, 1, 1, 1] = False
    grid = OccupancyGrid(binaries, 0.5)
    origins = torch.tensor([[[0.1, 0.1, 2.0], [0.1, 0.1, 2.0]]])
    directions = torch.tensor([[[0.0, 0.0, -1.0], [0.0, 1.0, 0.0]]])  # through the cube; away from it
    rays = RayBundle(origins, directions, torch.zeros(1, 2, 1), torch.full((1, 2, 1), 10.0))
    samples = grid_samples(rays, grid, num_samples=20)
    # The first ray's chord through the cube runs from its face z = 0.25 (t = 1.75) to z = -0.25 (t = 2.25).
    torch.testing.assert_close(samples.t_starts[0, 0], 1.75 + 0.025 * torch.arange(20.0))
    torch.testing.assert_close(samples.t_ends[0, 0], 1.775 + 0.025 * torch.arange(20.0))
    assert samples.mask[0, 0].all()  # every cell on it is occupied
    assert not samples.mask[0, 1].any()  # the second ray never meets the cube
    assert (samples.t_ends[0, 1] == samples.t_starts[0, 1]).all()
    points = sample_points(rays, samples)[0, 0]
    assert lookup_occupancy(grid, points[None])[0].equal(samples.mask[0, 0])
    assert preview_step_size(grid, 20) >= 0.025  # the grid's threshold step is never finer than a sample


@pytest.mark.parametrize("background", ["white", (0.2, 0.3, 0.4), "last_sample"])
def test_equals_evaluating_every_sample_when_the_grid_holds_all_density(background):
    rng = torch.Generator().manual_seed(3)
    field = RandomTriPlaneField(2, rng)
    rays = orbit_rays(2)
    grid = preview_grid(field, 2, 24)
    assert 0.02 < float(grid.occupied_fraction().mean()) < 0.9  # there is empty space to skip
    out = render_rays_in_grid(field, rays, grid, 24, background)

    masked = grid_samples(rays, grid, 24)
    every = RaySamples(masked.t_starts, masked.t_ends, t_points=masked.t_points)  # no mask: all evaluated
    values = _evaluate(field, rays, every)
    if background == "last_sample":
        every, values = _append_backdrop(field, rays, every, values)
    expected = composite(every.t_starts, every.t_ends, values.density, values.rgb, background,
                         t_points=every.t_points, empty_depth=rays.far)
    torch.testing.assert_close(out.rgb, expected.rgb, atol=1e-5, rtol=0)
    torch.testing.assert_close(out.opacity, expected.opacity, atol=1e-5, rtol=0)
    torch.testing.assert_close(out.depth, expected.depth, atol=1e-4, rtol=0)
    assert float(expected.opacity.max().detach()) > 0.5  # the field is visible
    assert out.num_field_evaluations < 0.8 * values.count  # and most samples were skipped


def test_matches_a_dense_stratified_render_of_a_sphere_and_skips_most_samples():
    field = SphereField(radius=0.3, color=(0.2, 0.5, 0.9), sigma=60.0)
    rays = orbit_rays(1, resolution=24)
    grid = preview_grid(field, 1, 32)
    preview = render_rays_in_grid(field, rays, grid, 32, "white")
    dense = VolumeRenderer(VolumeRendererConfig(sampler="stratified", num_coarse=256)).render_rays(field, rays)
    assert float((preview.rgb - dense.rgb).abs().mean().detach()) < 0.01
    assert float((preview.opacity - dense.opacity).abs().max().detach()) < 0.15  # silhouette pixels: coarser steps
    assert preview.num_field_evaluations < 0.5 * rays.num_rays * 32


def test_an_empty_grid_renders_background_without_querying_the_field():
    field = SphereField(radius=0.3)
    rays = orbit_rays(1)
    grid = OccupancyGrid(torch.zeros(1, 8, 8, 8, dtype=torch.bool), 0.5)
    out = render_rays_in_grid(field, rays, grid, 16, (0.1, 0.2, 0.3))
    assert out.num_field_evaluations == 0
    torch.testing.assert_close(out.rgb, torch.tensor([0.1, 0.2, 0.3]).expand_as(out.rgb))
    torch.testing.assert_close(out.depth, rays.far)


def test_chunks_give_the_same_picture_as_one_pass_and_grids_must_match_the_scenes():
    rng = torch.Generator().manual_seed(5)
    field = RandomTriPlaneField(2, rng)
    rays = orbit_rays(2)
    grid = preview_grid(field, 2, 16)
    whole = render_rays_in_grid(field, rays, grid, 16, "black")
    chunked = render_rays_in_grid(field, rays, grid, 16, "black", chunk_size=16 * 2 * 37)
    torch.testing.assert_close(chunked.rgb, whole.rgb)
    torch.testing.assert_close(chunked.depth, whole.depth)
    with pytest.raises(ValueError, match="occupancy grid holds 1 scenes"):
        render_rays_in_grid(field, rays, OccupancyGrid(grid.binaries[:1], 0.5), 16)
    with pytest.raises(ValueError, match="num_samples"):
        grid_samples(rays, grid, 0)

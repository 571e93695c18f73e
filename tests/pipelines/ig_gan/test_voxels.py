"""The voxel generator and the voxel grid as a radiance field."""

from __future__ import annotations

import pytest
import torch

from epigraf_field.config_io import config_from_dict, config_to_dict
from pipelines.ig_gan.voxels import VoxelField, VoxelGenerator, VoxelGeneratorConfig, blur_3d, sample_grid
from renderers.field import RadianceField


def test_generator_makes_occupancy_and_colour_grids_of_its_resolution():
    for resolution, channels in ((8, (8,)), (32, (16, 8, 4))):
        generator = VoxelGenerator(VoxelGeneratorConfig(z_dim=8, resolution=resolution, channels=channels))
        voxels = generator(torch.randn(3, 8, generator=torch.Generator().manual_seed(0)))
        assert voxels.shape == (3, 4, resolution, resolution, resolution)
        assert voxels.min() >= 0 and voxels.max() <= 1
        assert voxels[0].std() > 0 and not torch.equal(voxels[0], voxels[1])


def test_voxel_field_has_zero_density_outside_the_grid():
    grid = torch.ones(1, 4, 8, 8, 8)
    field = VoxelField(grid, box_half_size=0.5, density_scale=100.0)
    assert isinstance(field, RadianceField)
    outside = torch.tensor([[[0.51, 0.0, 0.0], [0.0, -0.7, 0.0], [0.0, 0.0, 3.0], [0.6, 0.6, 0.6]]])
    assert torch.equal(field.density(outside), torch.zeros(1, 4, 1))
    assert torch.equal(field(outside).density, torch.zeros(1, 4, 1))
    inside = torch.tensor([[[0.0, 0.0, 0.0], [0.3, -0.2, 0.1]]])
    torch.testing.assert_close(field.density(inside), torch.full((1, 2, 1), 100.0))


def test_field_values_are_trilinear_in_the_grid_layout():
    """Index [d, h, w] is world (z, y, x): a grid that varies along w varies along x only."""
    d = 4
    grid = torch.zeros(1, 4, d, d, d)
    grid[:, 0] = torch.arange(d, dtype=torch.float32)[None, None, :] / (d - 1)  # occupancy ramps along w
    centres = (torch.arange(d) + 0.5) / d - 0.5  # voxel centres in a box of half-size 0.5
    points = torch.stack([centres, torch.zeros(d), torch.zeros(d)], dim=-1)[None]
    torch.testing.assert_close(sample_grid(grid, points, 0.5)[0, :, 0], grid[0, 0, 0, 0])
    halfway = torch.tensor([[[(centres[1] + centres[2]) / 2, 0.0, 0.0]]])
    torch.testing.assert_close(sample_grid(grid, halfway, 0.5)[0, 0, 0], torch.tensor(0.5))
    along_y = torch.stack([torch.zeros(d), centres, torch.zeros(d)], dim=-1)[None]
    assert sample_grid(grid, along_y, 0.5)[0, :, 0].unique().numel() == 1


def test_generator_files_round_trip(tmp_path):
    config = VoxelGeneratorConfig(z_dim=8, resolution=8, channels=(8,), density_scale=42.0)
    assert config_from_dict(VoxelGeneratorConfig, config_to_dict(config)) == config
    generator = VoxelGenerator(config, seed=3)
    generator.save(tmp_path)
    loaded = VoxelGenerator.load(tmp_path)
    z = torch.randn(2, 8)
    assert loaded.config == config and torch.equal(loaded(z), generator(z))
    (tmp_path / "config.json").write_text("{broken")
    with pytest.raises(ValueError, match="config.json is not a voxel generator config"):
        VoxelGenerator.load(tmp_path)


def test_bad_configs_are_refused():
    with pytest.raises(ValueError, match="resolution must be a power of two"):
        VoxelGeneratorConfig(resolution=12)


def test_initial_radius_adds_a_ball_to_the_occupancy_logit():
    plain_config = VoxelGeneratorConfig(z_dim=8, resolution=16, channels=(8, 8))
    ball_config = VoxelGeneratorConfig(z_dim=8, resolution=16, channels=(8, 8), initial_radius=0.25)
    z = torch.randn(2, 8, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        plain = VoxelGenerator(plain_config, seed=3)(z)
        ball = VoxelGenerator(ball_config, seed=3)(z)  # same weights: only the fixed prior differs
    offset = torch.logit(ball[:, 0].double()) - torch.logit(plain[:, 0].double())
    voxel = 1.0 / 16
    coords = (torch.arange(16, dtype=torch.float64) + 0.5) * voxel - 0.5
    z_, y_, x_ = torch.meshgrid(coords, coords, coords, indexing="ij")
    radius = (x_.square() + y_.square() + z_.square()).sqrt()
    expected = ((0.25 - radius) / voxel).clamp(max=3)
    torch.testing.assert_close(offset, expected.expand_as(offset), atol=1e-3, rtol=0)
    assert offset[0, 8, 8, 8] == pytest.approx(3.0, abs=1e-4)
    corner = (0.25 - 0.75**0.5 * 15 / 16) / voxel  # the corner voxel's centre lies at sqrt(3) * 15/32
    assert offset[0, 0, 0, 0] == pytest.approx(corner, abs=1e-3) and corner < -8.9
    torch.testing.assert_close(ball[:, 1:], plain[:, 1:])  # colours untouched
    with pytest.raises(ValueError, match="initial_radius"):
        VoxelGeneratorConfig(initial_radius=0.6)


def test_a_sharp_surface_hides_occupancy_below_the_threshold():
    """With surface_sharpness the field shows the binarized shape R renders: no fog of low occupancy."""
    grid = torch.zeros(1, 4, 8, 8, 8)
    grid[:, 0, :, :, :4] = 0.3  # x < 0: below the threshold
    grid[:, 0, :, :, 4:] = 0.7  # x > 0: above it
    points = torch.tensor([[[-0.3, 0.0, 0.0], [0.3, 0.0, 0.0], [0.9, 0.0, 0.0]]])
    sharp = VoxelField(grid, 0.5, 100.0, surface_sharpness=40.0, surface_threshold=0.5).density(points)[0, :, 0]
    assert sharp[0] < 0.1 and sharp[1] > 99.0 and sharp[2] == 0.0
    linear = VoxelField(grid, 0.5, 100.0).density(points)[0, :, 0]
    torch.testing.assert_close(linear, torch.tensor([30.0, 70.0, 0.0]))
    lower = VoxelField(grid, 0.5, 100.0, surface_sharpness=40.0, surface_threshold=0.2).density(points)[0, :, 0]
    assert lower[0] > 98.0  # the threshold moves the surface: sigmoid(40 * 0.1) = 0.982


def test_blur_keeps_constants_and_removes_the_checkerboard():
    constant = torch.full((1, 2, 6, 6, 6), 0.7)
    torch.testing.assert_close(blur_3d(constant), constant)
    index = torch.arange(6)
    parity = (index[:, None, None] + index[None, :, None] + index[None, None, :]) % 2
    checkerboard = parity.float()[None, None] * 2 - 1  # +-1 alternating along every axis
    interior = blur_3d(checkerboard)[0, 0, 1:-1, 1:-1, 1:-1]
    torch.testing.assert_close(interior, torch.zeros_like(interior))
    ramp = index.float()[None, None, :, None, None].expand(1, 1, 6, 6, 6)
    torch.testing.assert_close(blur_3d(ramp)[0, 0, 1:-1], ramp[0, 0, 1:-1])  # linear: unchanged inside
    z = torch.randn(2, 8, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        sharp = VoxelGenerator(VoxelGeneratorConfig(z_dim=8, resolution=16, channels=(8, 8), blur=False), seed=1)(z)
        smooth = VoxelGenerator(VoxelGeneratorConfig(z_dim=8, resolution=16, channels=(8, 8)), seed=1)(z)
    def roughness(grid):  # mean squared difference of neighbours along x
        return (grid[:, :, :, :, 1:] - grid[:, :, :, :, :-1]).square().mean()
    assert roughness(smooth) < 0.5 * roughness(sharp)

"""The voxel generator and the voxel grid as a radiance field."""

from __future__ import annotations

import pytest
import torch

from epigraf_field.config_io import config_from_dict, config_to_dict
from pipelines.ig_gan.voxels import VoxelField, VoxelGenerator, VoxelGeneratorConfig, sample_grid
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

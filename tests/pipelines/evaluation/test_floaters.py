"""Floaters: matter apart from an object's largest connected body, in density grids and image masks."""

from __future__ import annotations

import numpy as np
import torch

from pipelines.evaluation.floaters import detached_density, detached_pixel_shares, detached_share


def _ball(n: int = 24, radius: float = 6.0) -> torch.Tensor:
    axis = torch.arange(n, dtype=torch.float32) - (n - 1) / 2
    x, y, z = torch.meshgrid(axis, axis, axis, indexing="ij")
    return (x**2 + y**2 + z**2 <= radius**2).float() * 50.0


def test_one_body_has_no_detached_share_and_a_speck_counts_by_its_size():
    blob = np.zeros((8, 8), dtype=bool)
    blob[1:3, 1:6] = True  # 10 pixels
    assert detached_share(blob) == 0.0
    blob[6, 6:8] = True  # a 2-pixel speck apart from it
    assert abs(detached_share(blob) - 2 / 12) < 1e-9
    assert detached_share(np.zeros((4, 4), dtype=bool)) == 0.0


def test_cells_touching_by_a_corner_are_one_body():
    diagonal = np.eye(5, dtype=bool)  # a thin diagonal streak, pixels touch only at corners
    assert detached_share(diagonal) == 0.0
    cube = np.zeros((4, 4, 4), dtype=bool)
    cube[0, 0, 0] = cube[1, 1, 1] = True
    assert detached_share(cube) == 0.0


def test_a_sheet_on_the_plus_z_face_is_detached_at_that_face():
    grid = _ball()
    ball_voxels = int((grid > 10).sum())
    assert detached_density(grid, 10.0).share == 0.0
    grid[8:16, 10:14, -1] = 30.0  # one voxel thick, on the +z face, apart from the ball
    found = detached_density(grid, 10.0)
    assert abs(found.share - 32 / (ball_voxels + 32)) < 1e-9
    assert found.at_faces == 1.0
    assert found.faces == (0, 0, 0, 0, 0, 32)


def test_matter_below_the_level_does_not_count_and_a_detached_speck_inside_is_not_at_a_face():
    grid = _ball()
    grid[2:4, 2:4, 20:22] = 5.0  # below the level: no floater
    assert detached_density(grid, 10.0).share == 0.0
    grid[3, 3, 12] = 40.0  # a speck away from the ball and from every face
    found = detached_density(grid, 10.0)
    assert found.share > 0 and found.at_faces == 0.0 and found.faces == (0,) * 6


def test_pixel_shares_per_image():
    masks = torch.zeros(2, 16, 16, dtype=torch.bool)
    masks[:, 4:12, 4:12] = True  # 64 pixels each
    masks[1, 0, 15] = True
    shares = detached_pixel_shares(masks)
    assert shares.shape == (2,)
    assert shares[0] == 0.0 and abs(float(shares[1]) - 1 / 65) < 1e-6

"""Marching cubes on a field's density: position of the surface, outward faces, colours, saving."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pipelines.viewer.mesh import density_grid, extract_mesh
from renderers.analytic import SphereField


def test_sphere_surface_lies_at_its_radius_with_outward_faces(tmp_path: Path):
    field = SphereField(radius=0.3, sigma=100.0, color=(0.2, 0.6, 0.9))
    mesh = extract_mesh(field, resolution=32, threshold=50.0, box_half_size=0.5)
    radii = np.linalg.norm(mesh.vertices, axis=1)
    cell = 1.0 / 32
    assert np.abs(radii - 0.3).max() < 1.5 * cell
    triangles = mesh.vertices[mesh.faces]
    normals = np.cross(triangles[:, 1] - triangles[:, 0], triangles[:, 2] - triangles[:, 0])
    outward = (normals * triangles.mean(axis=1)).sum(axis=1) > 0
    assert outward.mean() > 0.99, "faces must face away from the inside"
    np.testing.assert_array_equal(mesh.colors[0], [51, 153, 230])
    path = mesh.save(tmp_path / "sphere.ply")
    import trimesh

    loaded = trimesh.load(path)
    assert len(loaded.faces) == len(mesh.faces)
    assert loaded.volume == pytest.approx(4 / 3 * np.pi * 0.3**3, rel=0.1)


def test_density_grid_is_indexed_x_y_z():
    field = SphereField(radius=0.2, center=(0.25, 0.0, 0.0), sigma=1.0)
    grid = density_grid(field, 8, 0.5)
    # Cell centres along x are at (i + 0.5) / 8 - 0.5; the ball sits on the +x side.
    assert grid[6, 4, 4] == 1.0 and grid[1, 4, 4] == 0.0 and grid[4, 6, 4] == 0.0


def test_empty_level_set_names_the_density_range():
    with pytest.raises(ValueError, match=r"density range \[0, 100\]"):
        extract_mesh(SphereField(radius=0.3, sigma=100.0), resolution=8, threshold=500.0)

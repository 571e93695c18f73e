"""Meshes from density fields: the analytic sphere's radius, orientation, closedness, colours, grid layout, chunking, level checks and file formats."""

import numpy as np
import pytest
import torch
import trimesh

from pipelines.evaluation.meshes import MeshExtractionConfig, check_level_in_range, density_grid, extract_meshes, save_mesh
from renderers.analytic import SphereField


def test_sphere_mesh_has_the_right_radius_and_is_watertight():
    field = SphereField(radius=0.3, sigma=200.0, color=(0.9, 0.4, 0.1))
    config = MeshExtractionConfig(resolution=48, level=100.0, chunk_size=5000)
    mesh = extract_meshes(field, 1, config)[0]
    radii = np.linalg.norm(mesh.vertices, axis=1)
    spacing = 1.0 / 47
    # The density is a step, so vertices sit halfway between grid points: within half a spacing.
    assert abs(radii.mean() - 0.3) < spacing / 2
    assert np.abs(radii - 0.3).max() < spacing
    assert mesh.is_watertight
    assert mesh.volume == pytest.approx(4 / 3 * np.pi * 0.3**3, rel=0.05)  # positive: faces point outwards
    np.testing.assert_array_equal(mesh.visual.vertex_colors[0], [230, 102, 26, 255])


def test_soft_level_sphere_lies_at_its_radius_with_outward_faces_and_saves_as_ply(tmp_path):
    field = SphereField(radius=0.3, sigma=100.0, color=(0.2, 0.6, 0.9))
    mesh = extract_meshes(field, 1, MeshExtractionConfig(resolution=32, level=50.0, box_half_size=0.5))[0]
    radii = np.linalg.norm(mesh.vertices, axis=1)
    cell = 1.0 / 32
    assert np.abs(radii - 0.3).max() < 1.5 * cell
    triangles = mesh.vertices[mesh.faces]
    normals = np.cross(triangles[:, 1] - triangles[:, 0], triangles[:, 2] - triangles[:, 0])
    outward = (normals * triangles.mean(axis=1)).sum(axis=1) > 0
    assert outward.mean() > 0.99, "faces must face away from the inside"
    np.testing.assert_array_equal(mesh.visual.vertex_colors[0, :3], [51, 153, 230])
    path = save_mesh(mesh, tmp_path / "sphere.ply")
    loaded = trimesh.load(path)
    assert len(loaded.faces) == len(mesh.faces)
    assert loaded.volume == pytest.approx(4 / 3 * np.pi * 0.3**3, rel=0.1)


def test_density_grid_is_indexed_x_y_z():
    field = SphereField(radius=0.2, center=(0.25, 0.0, 0.0), sigma=1.0)
    grid = density_grid(field, 1, MeshExtractionConfig(resolution=8, box_half_size=0.5))[0]
    # Grid points along x are at -0.5 + i / 7 (corners included); the ball sits on the +x side.
    assert grid[6, 4, 4] == 1.0 and grid[1, 4, 4] == 0.0 and grid[4, 6, 4] == 0.0


def test_level_outside_the_density_range_is_named_when_a_surface_is_required():
    field = SphereField(radius=0.3, sigma=100.0)
    with pytest.raises(ValueError, match=r"density range \[0, 100\]"):
        extract_meshes(field, 1, MeshExtractionConfig(resolution=8, level=500.0), require_surface=True)
    with pytest.raises(ValueError, match=r"level 0.5 is outside the density range \[1, 2\]"):
        check_level_in_range(np.array([1.0, 2.0]), 0.5)
    check_level_in_range(np.array([1.0, 2.0]), 1.5)


def test_shapes_touching_the_box_are_closed_and_scenes_are_separate():
    field = SphereField(radius=torch.tensor([[0.7], [0.2]]), sigma=200.0)
    meshes = extract_meshes(field, 2, MeshExtractionConfig(resolution=32, level=100.0, colors=False))
    assert all(m.is_watertight for m in meshes)
    # The big ball is clipped by the box: at most the box's volume; the small one is whole.
    assert meshes[0].volume <= 1.0 + 1e-6 and meshes[0].volume > 0.9
    assert meshes[1].volume == pytest.approx(4 / 3 * np.pi * 0.2**3, rel=0.1)


def test_chunking_does_not_change_the_grid():
    field = SphereField(radius=0.25)
    small = density_grid(field, 1, MeshExtractionConfig(resolution=12, chunk_size=97))
    whole = density_grid(field, 1, MeshExtractionConfig(resolution=12, chunk_size=10**6))
    torch.testing.assert_close(small, whole)
    assert small.shape == (1, 12, 12, 12)


def test_empty_meshes_warn_with_the_density_found():
    with pytest.warns(UserWarning, match="lower --level"):
        mesh = extract_meshes(SphereField(sigma=5.0), 1, MeshExtractionConfig(resolution=8, level=10.0))[0]
    assert len(mesh.faces) == 0


def test_level_must_be_positive():
    with pytest.raises(ValueError, match="level"):
        MeshExtractionConfig(level=0.0)


@pytest.mark.parametrize("suffix", ["ply", "obj", "glb"])
def test_mesh_files_read_back(tmp_path, suffix):
    mesh = extract_meshes(SphereField(radius=0.3), 1, MeshExtractionConfig(resolution=16, level=100.0))[0]
    path = save_mesh(mesh, tmp_path / f"ball.{suffix}")
    loaded = trimesh.load(path, force="mesh")
    assert len(loaded.faces) == len(mesh.faces)
    if suffix == "ply":
        np.testing.assert_array_equal(loaded.visual.vertex_colors[:, :3], mesh.visual.vertex_colors[:, :3])


def test_unknown_mesh_format_is_named(tmp_path):
    mesh = trimesh.creation.box()
    with pytest.raises(ValueError, match="stl"):
        save_mesh(mesh, tmp_path / "box.stl")

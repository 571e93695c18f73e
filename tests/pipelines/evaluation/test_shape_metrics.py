"""Chamfer distance, COV, MMD and 1-NNA on identical and disjoint sets with known answers."""

import json

import numpy as np
import pytest
import torch
import trimesh

from pipelines.evaluation.shape_metrics import (
    chamfer_distance_matrix,
    compare_shapes,
    find_reference_meshes,
    normalize_point_clouds,
    sample_surface_points,
    shape_metrics_from_distances,
)


def distinct_shapes() -> list:
    """Shapes that differ after normalization (bounding-box centre, unit sphere)."""
    return [
        trimesh.creation.icosphere(subdivisions=2, radius=0.3),
        trimesh.creation.box(extents=(0.4, 0.4, 0.4)),
        trimesh.creation.box(extents=(0.6, 0.1, 0.1)),
        trimesh.creation.cylinder(radius=0.05, height=0.6),
        trimesh.creation.annulus(r_min=0.2, r_max=0.3, height=0.05),
    ]


def test_chamfer_of_single_points_is_twice_the_squared_distance():
    a = torch.tensor([[[0.0, 0.0, 0.0]]])
    b = torch.tensor([[[0.0, 3.0, 4.0]]])
    assert chamfer_distance_matrix(a, b)[0, 0] == pytest.approx(2 * 25.0)
    assert chamfer_distance_matrix(a, a)[0, 0] == 0.0


def test_surface_samples_lie_on_the_surface_and_spread_by_area(rng):
    square = trimesh.Trimesh(vertices=[[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0]], faces=[[0, 1, 2], [0, 2, 3]])
    points = sample_surface_points(square, 4000, rng)
    assert points.shape == (4000, 3)
    assert (points[:, 2] == 0).all() and (points[:, :2] >= 0).all() and (points[:, :2] <= 1).all()
    torch.testing.assert_close(points[:, :2].mean(dim=0), torch.tensor([0.5, 0.5]), atol=0.02, rtol=0)


def test_normalization_centres_and_scales_each_cloud(rng):
    clouds = torch.rand(3, 100, 3, generator=rng) * torch.tensor([1.0, 5.0, 0.1]).reshape(1, 1, 3) + 7.0
    normalized = normalize_point_clouds(clouds)
    torch.testing.assert_close(normalized.norm(dim=-1).amax(dim=1), torch.ones(3))
    centre = (normalized.amax(dim=1) + normalized.amin(dim=1)) / 2
    torch.testing.assert_close(centre, torch.zeros(3, 3), atol=1e-6, rtol=0)


def test_identical_sets_cover_everything_at_zero_distance(rng):
    clouds = normalize_point_clouds(torch.stack([sample_surface_points(m, 256, rng) for m in distinct_shapes()]))
    d = chamfer_distance_matrix(clouds, clouds)
    metrics = shape_metrics_from_distances(d, d, d)
    assert metrics.coverage == 1.0 and metrics.mmd == pytest.approx(0.0, abs=1e-6)
    # Every shape's nearest other shape is its copy in the other set: the classifier is always wrong.
    assert metrics.one_nna == 0.0


def test_resampled_identical_meshes_versus_disjoint_sets(rng):
    shapes = distinct_shapes()
    same = compare_shapes(shapes, shapes, 512, rng)
    assert same.coverage == 1.0
    assert same.one_nna <= 0.2
    balls = [trimesh.creation.icosphere(subdivisions=2, radius=0.3) for _ in range(4)]
    rods = [trimesh.creation.box(extents=(0.8, 0.05 + 0.01 * i, 0.05)) for i in range(4)]
    apart = compare_shapes(rods, balls, 512, rng)
    assert apart.one_nna == 1.0  # the two sets are told apart perfectly
    assert apart.mmd > 10 * same.mmd
    assert apart.coverage <= 0.5  # all rods map to few balls


def test_reference_meshes_come_from_metadata(tmp_path):
    (tmp_path / "meshes").mkdir()
    trimesh.creation.box().export(tmp_path / "meshes" / "obj00000.ply")
    (tmp_path / "metadata.json").write_text(json.dumps({"objects": [{"mesh": "meshes/obj00000.ply"}]}))
    (tmp_path / "dataset.zip").write_bytes(b"")
    assert find_reference_meshes(tmp_path / "dataset.zip") == [tmp_path / "meshes" / "obj00000.ply"]
    with pytest.raises(ValueError, match="metadata.json"):
        find_reference_meshes(tmp_path / "elsewhere" / "dataset.zip")


def test_empty_meshes_become_the_origin(rng):
    points = sample_surface_points(trimesh.Trimesh(), 10, rng)
    assert np.allclose(points.numpy(), 0.0)


def test_kd_tree_chamfer_equals_the_dense_one(rng):
    from pipelines.evaluation.shape_metrics import _chamfer_dense

    a = torch.rand(3, 200, 3, generator=rng)
    b = torch.rand(4, 150, 3, generator=rng)
    torch.testing.assert_close(chamfer_distance_matrix(a, b), _chamfer_dense(a, b, chunk=3), atol=1e-6, rtol=1e-5)


def test_kd_tree_chamfer_with_repeated_points_equals_the_dense_one(rng):
    """Clouds of an empty mesh (every point at the origin) and clouds with repeated points give the dense answer."""
    from pipelines.evaluation.shape_metrics import _chamfer_dense

    empty = torch.zeros(2, 300, 3)
    repeated = torch.rand(2, 50, 3, generator=rng).repeat(1, 6, 1)
    a = torch.cat([empty, repeated, torch.rand(1, 300, 3, generator=rng)])
    b = torch.cat([torch.rand(3, 200, 3, generator=rng), torch.zeros(1, 200, 3)])
    torch.testing.assert_close(chamfer_distance_matrix(a, b), _chamfer_dense(a, b, chunk=3), atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(chamfer_distance_matrix(a, a), _chamfer_dense(a, a, chunk=2), atol=1e-6, rtol=1e-5)

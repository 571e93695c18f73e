"""R, the Mitsuba renderer of binarized voxel grids: silhouettes, threshold, mesh, errors, the shared dataset module."""

from __future__ import annotations

import hashlib
import math

import numpy as np
import pytest
import torch

from pipelines.ig_gan.renderer import (
    MitsubaRendererConfig,
    MitsubaUnavailableError,
    MitsubaVoxelRenderer,
    check_mitsuba,
)
from pipelines.ig_gan.voxel_mesh import voxel_surface_mesh
from pipelines.ig_gan.voxels import VoxelField, binarize
from renderers.cameras import Cameras
from renderers.volume_renderer import VolumeRenderer, VolumeRendererConfig

pytest.importorskip("mitsuba", reason="R needs Mitsuba 3 (pip install mitsuba)")

RESOLUTION = 64
RADIUS, FOV = 1.3, 40.0


def _grid(d: int = 16) -> torch.Tensor:
    grid = torch.zeros(1, 4, d, d, d)
    grid[:, 1:] = torch.tensor([0.8, 0.3, 0.2])[:, None, None, None]
    return grid


def _front_camera() -> Cameras:
    return Cameras.from_spherical(torch.zeros(1), torch.zeros(1), RADIUS, FOV)


def _mask(images: torch.Tensor) -> torch.Tensor:
    """Pixels that are not the white background (R's images in [-1, 1])."""
    return ((images + 1) / 2 - 1).abs().amax(dim=1) > 0.05


def _iou(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a & b).sum() / (a | b).sum())


def test_a_cube_renders_to_its_silhouette_from_a_known_camera():
    grid = _grid()
    grid[:, 0, 4:12, 4:12, 4:12] = 1.0  # the cube [-0.25, 0.25]^3
    images = MitsubaVoxelRenderer(MitsubaRendererConfig(), RESOLUTION, 0.5)(grid, _front_camera(), seed=0)
    assert images.shape == (1, 3, RESOLUTION, RESOLUTION) and images.requires_grad is False
    # Seen head-on from +z, the silhouette is the front face (z = 0.25, at distance 1.05): a centred square whose
    # half-width in image units is 0.5 * (0.25 / 1.05) / tan(20 deg).
    half = 0.5 * (0.25 / (RADIUS - 0.25)) / math.tan(math.radians(FOV / 2))
    centres = (torch.arange(RESOLUTION) + 0.5) / RESOLUTION - 0.5
    square = (centres[:, None].abs() < half) & (centres[None, :].abs() < half)
    mask = _mask(images)[0]
    assert _iou(mask, square) > 0.95
    assert int(mask.sum()) == pytest.approx(int(square.sum()), rel=0.06)


def test_r_and_the_volume_renderer_agree_on_where_an_asymmetric_shape_is():
    """Axis conventions: an L-shape seen obliquely covers the same pixels in R and in the voxel field's render."""
    d = 32
    grid = _grid(d)
    grid[:, 0, 4:28, 4:12, 4:28] = 1.0  # a slab at the bottom (index [z, y, x])
    grid[:, 0, 4:12, 12:28, 4:12] = 1.0  # a post at low x, low z
    cameras = Cameras.from_spherical(torch.tensor([0.7]), torch.tensor([0.4]), RADIUS, FOV)
    rendered = _mask(MitsubaVoxelRenderer(MitsubaRendererConfig(), RESOLUTION, 0.5)(grid, cameras, seed=0))
    field = VoxelField(binarize(grid), 0.5, 2000.0)
    volume = VolumeRenderer(VolumeRendererConfig(sampler="stratified", num_coarse=256)).render_image(
        field, cameras, RESOLUTION)
    assert _iou(rendered, volume.opacity[:, 0] > 0.5) > 0.85
    mirrored = _mask(MitsubaVoxelRenderer(MitsubaRendererConfig(), RESOLUTION, 0.5)(grid.flip(-1), cameras, seed=0))
    assert _iou(mirrored, volume.opacity[:, 0] > 0.5) < 0.7  # the test can tell x from -x


def test_binarization_threshold_is_respected():
    grid = _grid(8)
    grid[:, 0] = 0.2
    grid[:, 0, 3:5, 3:5, 3:5] = 0.5  # at the threshold: empty (occupancy must be above it)
    renderer = MitsubaVoxelRenderer(MitsubaRendererConfig(threshold=0.5), RESOLUTION, 0.5)
    assert renderer.meshes(grid)[0][1].shape[0] == 0
    assert not _mask(renderer(grid, _front_camera(), seed=0)).any()
    grid[:, 0, 3:5, 3:5, 3:5] = 0.51
    assert _mask(renderer(grid, _front_camera(), seed=0)).any()
    strict = MitsubaVoxelRenderer(MitsubaRendererConfig(threshold=0.6), RESOLUTION, 0.5)
    assert strict.meshes(grid)[0][1].shape[0] == 0
    assert torch.equal(binarize(grid, 0.5)[:, 0].unique(), torch.tensor([0.0, 1.0]))


def test_voxel_faces_of_one_voxel_and_of_two_neighbours():
    occupied = np.zeros((4, 4, 4), bool)
    occupied[1, 2, 3] = True  # z=1, y=2, x=3
    colors = np.zeros((3, 4, 4, 4), np.float32)
    colors[:, 1, 2, 3] = [0.1, 0.2, 0.3]
    vertices, faces, vertex_colors = voxel_surface_mesh(occupied, colors, 0.5)
    assert (len(vertices), len(faces)) == (24, 12)
    np.testing.assert_allclose(vertices.min(0), [0.25, 0.0, -0.25])
    np.testing.assert_allclose(vertices.max(0), [0.5, 0.25, 0.0])
    np.testing.assert_allclose(vertex_colors, np.tile([0.1, 0.2, 0.3], (24, 1)), rtol=1e-6)
    # Outward normals: each triangle's normal points away from the voxel centre.
    centre = np.array([0.375, 0.125, -0.125])
    tri = vertices[faces]
    normals = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    assert (np.einsum("ij,ij->i", normals, tri.mean(1) - centre) > 0).all()
    occupied[1, 2, 2] = True  # a neighbour along x hides one face of each
    assert len(voxel_surface_mesh(occupied, colors, 0.5)[1]) == 20


def test_missing_mitsuba_is_named_with_the_install_command(monkeypatch):
    import builtins

    import pipelines.ig_gan.renderer as renderer_module

    real_import = builtins.__import__

    def no_mitsuba(name, *args, **kwargs):
        if name == "mitsuba" or name.startswith("mitsuba."):
            raise ImportError("No module named 'mitsuba'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(renderer_module, "_CHECKED", set())
    monkeypatch.setattr(builtins, "__import__", no_mitsuba)
    with pytest.raises(MitsubaUnavailableError, match=r"Mitsuba 3 \(package 'mitsuba'\).*pip install mitsuba"):
        check_mitsuba("scalar_rgb")


def test_a_broken_variant_is_named(monkeypatch):
    import pipelines.ig_gan.renderer as renderer_module

    monkeypatch.setattr(renderer_module, "_CHECKED", set())
    with pytest.raises(MitsubaUnavailableError, match=r"variant 'no_such_variant'.*cannot render.*pip install"):
        check_mitsuba("no_such_variant")


BUILDER_SHA256 = "156fcdb8193d1478e049cd6b401893e62861925b7bd576dc3ade1b9b1f4a5db9"
"""dataset.zip of the tiny build below, measured with Mitsuba 3.9.1 before the scene code was shared with R."""


def test_the_dataset_builder_is_unchanged_by_the_shared_scene_code(tmp_path):
    import mitsuba

    if mitsuba.__version__ != "3.9.1":
        pytest.skip(f"the reference hash was measured with Mitsuba 3.9.1, this is {mitsuba.__version__}")
    from pipelines.data.synthetic import SynthConfig, build_synthetic_dataset

    archive = build_synthetic_dataset(SynthConfig(out=tmp_path, num_objects=4, views_per_object=2, resolution=16,
                                                  spp=4, progress=False, variant="scalar_rgb"))
    assert hashlib.sha256(archive.read_bytes()).hexdigest() == BUILDER_SHA256

"""Views of a generator whose final images are not direct renders (eg3d's super-resolved ones)."""

from __future__ import annotations

import math

import torch

from pipelines.eg3d.pipeline import Eg3dPipeline
from pipelines.viewer.camera_conversion import ViewCamera, cameras_from_view, view_from_cameras
from pipelines.viewer.frame import render_final_view, render_view, square_view_cameras
from renderers.cameras import Cameras
from tests.pipelines.eg3d.tiny import tiny_eg3d_config
from tests.pipelines.tiny import TinyDataset


def _eg3d_scene():
    model = Eg3dPipeline(tiny_eg3d_config(), torch.device("cpu"), TinyDataset()).model()
    ws = model.mapping(torch.randn(1, model.z_dim, generator=torch.Generator().manual_seed(0)))
    return model, model.synthesize(ws), ws


def _view(aspect: float) -> ViewCamera:
    camera = Cameras.from_spherical(torch.tensor([0.4]), torch.tensor([0.2]), 1.3, 40.0)
    view = view_from_cameras(camera)
    return ViewCamera(view.wxyz, view.position, view.fov, aspect)


def test_a_square_view_is_the_models_final_image():
    model, scene, ws = _eg3d_scene()
    view = _view(1.0)
    final = render_final_view(model, scene, ws, view, 24, model.renderer)
    expected = model.render_scene(scene, ws, cameras_from_view(view), 24)
    torch.testing.assert_close(final.rgb, expected.rgb)
    direct = render_view(model.field(scene), view, 24, model.renderer.config)
    assert not torch.allclose(final.rgb, direct.rgb, atol=1e-3)  # the super-resolved image, not the field's


def test_a_wide_view_is_the_middle_band_of_a_square_with_the_same_pixels():
    model, scene, ws = _eg3d_scene()
    view = _view(2.0)
    final = render_final_view(model, scene, ws, view, 16, model.renderer)
    assert final.rgb.shape == (1, 3, 16, 32)
    square, side = square_view_cameras(view, 16, 32, torch.device("cpu"))
    assert side == 32
    # The square camera keeps the view's pixel size: its vertical fov covers 32 rows of the view's pixels.
    focal_rows = 0.5 / math.tan(view.fov / 2) * 16
    torch.testing.assert_close(float(square.intrinsics[0, 1, 1]) * 32, focal_rows, rtol=1e-6, atol=0)
    full = model.render_scene(scene, ws, square, 32)
    torch.testing.assert_close(final.rgb, full.rgb[..., 8:24, :])
    torch.testing.assert_close(final.depth, full.depth[..., 8:24, :])

"""Multi-view consistency: projection round trip, a 3D field scores high, inconsistent pairs score low."""

import pytest
import torch

from pipelines.evaluation.consistency import multiview_psnr, project_points, rotate_cameras_about_y
from renderers.cameras import Cameras
from renderers.rays import generate_rays
from renderers.volume_renderer import VolumeRenderer, VolumeRendererConfig

from tests.pipelines.evaluation.evaluation_helpers import TexturedSphere

RESOLUTION = 24


def cameras_pair(yaw_step: float = 5.0) -> tuple[Cameras, Cameras]:
    first = Cameras.from_spherical(torch.tensor([0.3, -1.0]), torch.tensor([0.2, -0.1]), 1.3, 40.0)
    return first, rotate_cameras_about_y(first, yaw_step)


def render(field, cameras):
    renderer = VolumeRenderer(VolumeRendererConfig(sampler="importance", num_coarse=24, num_fine=24))
    with torch.no_grad():
        return renderer.render_image(field, cameras, RESOLUTION)


def test_projection_inverts_ray_casting():
    cameras, _ = cameras_pair()
    rays = generate_rays(cameras, 4)
    points = rays.origins + 0.9 * rays.directions
    uv, distance, in_front = project_points(points, cameras)
    centres = (torch.arange(4) + 0.5) / 4
    expected = torch.stack(torch.meshgrid(centres, centres, indexing="ij")[::-1], dim=-1).reshape(1, 16, 2)
    torch.testing.assert_close(uv, expected.expand(2, 16, 2))
    torch.testing.assert_close(distance, torch.full((2, 16), 0.9))
    assert in_front.all()


def test_rotation_about_y_turns_the_yaw():
    cameras, turned = cameras_pair(10.0)
    yaw_a, pitch_a, radius_a = cameras.to_spherical()
    yaw_b, pitch_b, radius_b = turned.to_spherical()
    torch.testing.assert_close(torch.rad2deg(yaw_b - yaw_a), torch.full((2,), 10.0))
    torch.testing.assert_close(pitch_b, pitch_a)
    torch.testing.assert_close(radius_b, radius_a)


def test_a_3d_field_is_consistent_and_a_different_image_is_not():
    field = TexturedSphere()
    cams_a, cams_b = cameras_pair()
    a, b = render(field, cams_a), render(field, cams_b)
    good = multiview_psnr(a.rgb, a.depth, cams_a, b.rgb, b.depth, cams_b, a.opacity, b.opacity)
    assert (good.psnr > 35.0).all(), good.psnr
    assert (good.valid_fraction > 0.15).all()  # the sphere fills a good part of the frame
    # View B with a texture that disagrees with view A (a 2D generator inventing detail per view).
    other = render(TexturedSphere(phase=1.5), cams_b)
    bad = multiview_psnr(a.rgb, a.depth, cams_a, other.rgb, b.depth, cams_b, a.opacity, b.opacity)
    assert (bad.psnr < 20.0).all(), bad.psnr
    # Image B shifted by two pixels: the geometry no longer lines up.
    shifted = multiview_psnr(a.rgb, a.depth, cams_a, torch.roll(b.rgb, 2, dims=-1), b.depth, cams_b,
                             a.opacity, b.opacity)
    assert (shifted.psnr < good.psnr - 10.0).all()


def test_same_view_is_perfect_and_empty_masks_give_nan():
    field = TexturedSphere()
    cams, _ = cameras_pair()
    a = render(field, cams)
    same = multiview_psnr(a.rgb, a.depth, cams, a.rgb, a.depth, cams, a.opacity, a.opacity)
    assert (same.psnr > 60.0).all()
    nothing = multiview_psnr(a.rgb, a.depth, cams, a.rgb, a.depth, cams, a.opacity, torch.zeros_like(a.opacity))
    assert torch.isnan(nothing.psnr).all() and (nothing.valid_fraction == 0).all()


def test_mismatched_inputs_are_named():
    cams, _ = cameras_pair()
    images, depths = torch.zeros(2, 3, 8, 8), torch.ones(2, 1, 4, 4)
    with pytest.raises(ValueError, match="view A"):
        multiview_psnr(images, depths, cams, images, depths, cams)

"""Viewer frame values on an analytic sphere: depth, silhouette and the depth display image."""

import math

import pytest
import torch

from pipelines.viewer.camera_conversion import cameras_from_view, view_from_cameras, view_rays
from pipelines.viewer.frame import render_view, to_display_image
from pipelines.viewer.settings import ViewSettings
from renderers.analytic import SphereField
from renderers.cameras import Cameras
from renderers.volume_renderer import VolumeRendererConfig

RADIUS = 0.3
DISTANCE = 1.5
FOV_DEGREES = 30.0
HEIGHT = 33  # odd: the centre pixel's ray is the optical axis, through the sphere's centre
SAMPLES = 256
# Opaque at the first sample inside (alpha = 1 - exp(-1e4 / 256) = 1 to float precision), so the
# rendered depth is that sample's position: within one sample spacing behind the surface.
FIELD = SphereField(radius=RADIUS, sigma=1e4)
RENDERER = VolumeRendererConfig(sampler="stratified", num_coarse=SAMPLES)


@pytest.fixture(scope="module")
def camera():
    cameras = Cameras.from_spherical(torch.zeros(1), torch.zeros(1), radius=DISTANCE, fov_degrees=FOV_DEGREES)
    return view_from_cameras(cameras, aspect=1.0)


@pytest.fixture(scope="module")
def frame(camera):
    return render_view(FIELD, camera, HEIGHT, RENDERER)


def _silhouette_radius_pixels() -> float:
    """Pinhole image of the sphere: its tangent cone has half-angle asin(R / d), so the disc radius is
    tan(asin(R / d)) = R / sqrt(d^2 - R^2) in focal lengths, and the focal length is
    (H / 2) / tan(fov / 2) pixels."""
    focal_pixels = HEIGHT / 2 / math.tan(math.radians(FOV_DEGREES) / 2)
    return focal_pixels * RADIUS / math.sqrt(DISTANCE**2 - RADIUS**2)


def _pixel_radius() -> torch.Tensor:
    """Distance [h, w] of each pixel centre from the image centre, in pixels."""
    coords = torch.arange(HEIGHT, dtype=torch.float64) - (HEIGHT - 1) / 2
    return torch.sqrt(coords[:, None] ** 2 + coords[None, :] ** 2)


def test_the_frame_has_the_asked_size(frame):
    assert frame.depth.shape == (1, 1, HEIGHT, HEIGHT) and frame.opacity.shape == (1, 1, HEIGHT, HEIGHT)


def test_the_centre_pixel_sees_the_nearest_point_of_the_sphere(frame):
    centre = HEIGHT // 2
    # The axis ray runs through the box [-0.5, 0.5]^3 from d - 0.5 to d + 0.5: spacing 1 / 256.
    spacing = 1.0 / SAMPLES
    offset = frame.depth[0, 0, centre, centre].item() - (DISTANCE - RADIUS)
    assert -1e-5 <= offset <= spacing + 1e-5
    assert frame.opacity[0, 0, centre, centre].item() == pytest.approx(1.0, abs=1e-6)


def test_every_hit_pixel_has_the_depth_of_its_ray_sphere_intersection(frame, camera):
    rays = view_rays(cameras_from_view(camera), HEIGHT, HEIGHT, RENDERER.box_half_size)
    origins, directions = rays.origins[0].double(), rays.directions[0].double()
    # |o + t d|^2 = R^2 with |d| = 1: t = -(o.d) - sqrt((o.d)^2 - |o|^2 + R^2), the nearer root.
    half_b = (origins * directions).sum(-1)
    discriminant = half_b**2 - (origins**2).sum(-1) + RADIUS**2
    hit = frame.opacity[0, 0].reshape(-1) > 0.5
    assert bool((discriminant[hit] > 0).all())
    t_surface = -half_b[hit] - torch.sqrt(discriminant[hit])
    spacing = ((rays.far - rays.near)[0, :, 0].double() / SAMPLES)[hit]
    offset = frame.depth[0, 0].reshape(-1)[hit].double() - t_surface
    assert bool((offset >= -1e-5).all()) and bool((offset <= spacing + 1e-5).all())


def test_pixels_outside_the_silhouette_are_empty_and_inside_are_opaque(frame):
    radius = _silhouette_radius_pixels()
    distance, opacity = _pixel_radius(), frame.opacity[0, 0].double()
    outside, inside = distance > radius + 0.5, distance < radius - 0.5
    assert outside.sum() > 0 and inside.sum() > 0
    assert opacity[outside].max() < 1e-6
    assert opacity[inside].min() > 1 - 1e-6


def test_the_silhouette_radius_is_the_pinhole_projection_of_the_tangent_cone(frame):
    radius = _silhouette_radius_pixels()
    hit = frame.opacity[0, 0] > 0.5
    centre = HEIGHT // 2
    # Pixel j of the middle row is covered when |j - centre| < radius: 2 floor(radius) + 1 pixels.
    for extent in (hit[centre].sum().item(), hit[:, centre].sum().item()):
        assert abs(extent - 2 * radius) <= 1.0
    # The covered area, as the radius of a disc of that many pixels (pixel-grid error ~ r^(2/3) / (2 pi r)).
    assert math.sqrt(hit.sum().item() / math.pi) == pytest.approx(radius, abs=0.25)


def test_the_depth_display_is_brightest_at_the_centre_and_darkens_towards_the_rim(frame):
    image = to_display_image(frame, ViewSettings(output="depth", background=(0, 0, 0)))
    assert image.shape == (HEIGHT, HEIGHT, 3)
    centre = HEIGHT // 2
    row = torch.from_numpy(image[centre, :, 0].copy()).int()
    hit = (frame.opacity[0, 0, centre] > 0.5).nonzero().flatten()
    rim = hit.max().item()
    assert row[centre] > row[rim] > 0  # near is bright; the rim is still shaded, not background
    outward = row[centre : rim + 1]
    assert bool((outward[1:] <= outward[:-1]).all())
    assert image[0, 0].tolist() == [0, 0, 0]  # the corner shows the background

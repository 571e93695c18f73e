"""Patches, pixel centres, rays and box intersection."""

from __future__ import annotations

import math

import pytest
import torch

from renderers.cameras import Cameras
from renderers.patches import Patch, crop_patches, pixel_centers
from renderers.rays import generate_rays, intersect_box


def cameras(b: int = 2, radius: float = 2.0, fov: float = 30.0) -> Cameras:
    yaw = torch.linspace(-0.7, 1.1, b)
    pitch = torch.linspace(0.3, -0.2, b)
    return Cameras.from_spherical(yaw, pitch, radius=radius, fov_degrees=fov)


def test_pixel_centres_are_row_major_at_half_pixel_offsets():
    uv = pixel_centers(4, 1)[0]
    assert uv.shape == (16, 2)
    for i in range(4):
        for j in range(4):
            assert uv[i * 4 + j].tolist() == [(j + 0.5) / 4, (i + 0.5) / 4]


def test_patch_pixel_centres_follow_scale_and_offset():
    patch = Patch(torch.tensor([0.25]), torch.tensor([[0.5, 0.125]]))
    uv = pixel_centers(2, 1, patch)[0]
    expected = [[0.5 + 0.25 * (j + 0.5) / 2, 0.125 + 0.25 * (i + 0.5) / 2] for i in range(2) for j in range(2)]
    assert torch.allclose(uv, torch.tensor(expected), atol=1e-7)


@pytest.mark.parametrize("offset", [(0.0, 0.0), (0.5, 0.0), (0.0, 0.5), (0.5, 0.5)])
@pytest.mark.parametrize("fixed_bounds", [False, True])
def test_patch_rays_equal_the_matching_sub_grid_of_a_full_image(offset, fixed_bounds):
    r = 8
    cams = cameras(radius=1.6, fov=50.0)  # wide enough that corner rays miss the box
    if fixed_bounds:
        cams = cams.with_bounds(0.9, 2.3)
    full = generate_rays(cams, 2 * r)
    patch = Patch(torch.full((2,), 0.5), torch.tensor([offset, offset]))
    part = generate_rays(cams, r, patch)
    rows = slice(int(offset[1] * 2 * r), int(offset[1] * 2 * r) + r)
    cols = slice(int(offset[0] * 2 * r), int(offset[0] * 2 * r) + r)
    for name in ("origins", "directions", "near", "far"):
        whole = getattr(full, name).reshape(2, 2 * r, 2 * r, -1)[:, rows, cols].reshape(2, r * r, -1)
        assert torch.equal(getattr(part, name), whole), name


def test_ray_directions_follow_the_opencv_camera():
    cams = Cameras.look_at(torch.tensor([[0.0, 0.0, 2.0]]), fov_degrees=60.0)
    rays = generate_rays(cams, 3)
    d = rays.directions[0]
    assert torch.allclose(d.norm(dim=-1), torch.ones(9), atol=1e-6)
    assert torch.allclose(d[4], torch.tensor([0.0, 0.0, -1.0]), atol=1e-6)  # centre pixel looks at the target
    top_left = d[0]
    assert top_left[0] < 0 and top_left[1] > 0  # image u to the right is world +x, v down is world -y here
    # The pixel centre (0.5/3) sits at angle atan((0.5/3 - 0.5) / fx) from the axis.
    fx = 0.5 / math.tan(math.radians(30.0))
    expected = math.atan((1 / 6 - 0.5) / fx)
    assert math.isclose(math.atan2(top_left[0].item(), -top_left[2].item()), expected, abs_tol=1e-6)


def test_box_intersection_on_hand_checked_rays():
    origins = torch.tensor([[0.0, 0.0, 2.0], [0.0, 0.0, 0.0], [-1.0, -1.0, -1.0], [2.0, 2.0, 2.0], [0.0, 0.0, 2.0]])
    directions = torch.tensor([[0.0, 0.0, -1.0], [1.0, 0.0, 0.0], [1.0, 1.0, 1.0], [0.0, 0.0, -1.0], [0.0, 0.0, 1.0]])
    directions = directions / directions.norm(dim=-1, keepdim=True)
    t_enter, t_exit, hit = intersect_box(origins, directions, 0.5)
    s3 = math.sqrt(3.0)
    assert hit.tolist() == [True, True, True, False, False]  # outside the slab; box behind the camera
    assert torch.allclose(t_enter[:3], torch.tensor([1.5, -0.5, 0.5 * s3]), atol=1e-6)
    assert torch.allclose(t_exit[:3], torch.tensor([2.5, 0.5, 1.5 * s3]), atol=1e-6)


def test_rays_that_miss_the_box_are_empty_and_others_span_it():
    cams = Cameras.look_at(torch.tensor([[0.0, 0.0, 1.2]]), fov_degrees=100.0)
    rays = generate_rays(cams, 9, box_half_size=0.5)
    empty = (rays.far == rays.near)[0, :, 0]
    assert empty[0] and empty[8] and not empty[40]  # corners miss, the centre hits
    assert torch.allclose(rays.near[0, 40], torch.tensor([0.7])) and torch.allclose(rays.far[0, 40], torch.tensor([1.7]))
    points = rays.origins + rays.directions * rays.far
    assert (points[0, ~empty].abs().amax(dim=-1) <= 0.5 + 1e-5).all()


def test_fixed_bounds_come_from_the_cameras():
    rays = generate_rays(cameras().with_bounds(0.75, 1.25), 4)
    assert (rays.near == 0.75).all() and (rays.far == 1.25).all()


def test_crop_of_full_patch_returns_the_image(rng):
    image = torch.rand(2, 3, 8, 8, generator=rng)
    assert torch.allclose(crop_patches(image, Patch.full(2), 8), image, atol=1e-6)


def test_crop_agrees_with_pixel_centres(rng):
    image = torch.rand(2, 3, 16, 16, generator=rng)
    patch = Patch(torch.tensor([0.5, 0.5]), torch.tensor([[0.5, 0.0], [0.0, 0.5]]))
    crops = crop_patches(image, patch, 8)
    assert torch.allclose(crops[0], image[0, :, :8, 8:], atol=1e-6)
    assert torch.allclose(crops[1], image[1, :, 8:, :8], atol=1e-6)
    # A linear ramp is reproduced exactly by bilinear resampling at any scale.
    ramp = torch.linspace(0.5 / 16, 15.5 / 16, 16).expand(1, 1, 16, 16)  # value = u of each pixel centre
    patch = Patch(torch.tensor([0.3]), torch.tensor([[0.2, 0.6]]))
    expected = pixel_centers(5, 1, patch)[0, :, 0].reshape(5, 5)
    assert torch.allclose(crop_patches(ramp, patch, 5)[0, 0], expected, atol=1e-6)


def test_patch_full_and_params():
    patch = Patch.full(3)
    assert patch.scales.tolist() == [1.0] * 3 and patch.offsets.abs().sum() == 0
    assert patch.as_params().shape == (3, 3)

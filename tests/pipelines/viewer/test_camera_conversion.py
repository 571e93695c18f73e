"""viser client camera <-> Cameras: axes, intrinsics, round trips and the rays of a non-square view."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from pipelines.viewer.camera_conversion import (
    ViewCamera,
    cameras_from_view,
    look_at_pose,
    matrix_to_quaternion,
    quaternion_to_matrix,
    view_from_cameras,
    view_image_size,
    view_rays,
)
from renderers.cameras import Cameras
from renderers.rays import generate_rays


def random_rotations(count: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        q, r = np.linalg.qr(rng.normal(size=(3, 3)))
        q = q * np.sign(np.diag(r))
        if np.linalg.det(q) < 0:
            q[:, 0] = -q[:, 0]
        out.append(q)
    return out


def test_quaternion_round_trip_and_agreement_with_viser_transforms():
    import viser.transforms as vtf

    for rotation in random_rotations(20):
        wxyz = matrix_to_quaternion(rotation)
        np.testing.assert_allclose(quaternion_to_matrix(wxyz), rotation, atol=1e-10)
        # viser reads wxyz with the same (w, x, y, z) order and handedness.
        np.testing.assert_allclose(vtf.SO3(wxyz).as_matrix(), rotation, atol=1e-10)
        assert wxyz[0] >= 0


def test_quaternion_of_half_turns_is_stable():
    for rotation in (np.diag([1.0, -1.0, -1.0]), np.diag([-1.0, 1.0, -1.0]), np.diag([-1.0, -1.0, 1.0])):
        np.testing.assert_allclose(quaternion_to_matrix(matrix_to_quaternion(rotation)), rotation, atol=1e-12)


def front_view(aspect: float = 1.0, fov_degrees: float = 40.0) -> ViewCamera:
    """A browser camera at (0, 0, 2) looking at the origin with world +y up (viser's OpenCV axes)."""
    right, down, forward = np.array([1.0, 0, 0]), np.array([0, -1.0, 0]), np.array([0, 0, -1.0])
    rotation = np.stack([right, down, forward], axis=1)
    return ViewCamera(tuple(matrix_to_quaternion(rotation)), (0.0, 0.0, 2.0), math.radians(fov_degrees), aspect)


def test_viser_camera_becomes_opencv_cam2world_with_world_y_up():
    cameras = cameras_from_view(front_view())
    expected = Cameras.look_at(torch.tensor([[0.0, 0.0, 2.0]]), 40.0)
    torch.testing.assert_close(cameras.cam2world, expected.cam2world, atol=1e-6, rtol=0)
    torch.testing.assert_close(cameras.intrinsics, expected.intrinsics, atol=1e-6, rtol=0)
    rays = view_rays(cameras, 4, 4)
    directions = rays.directions[0].reshape(4, 4, 3)
    # Row 0 is the top of the image: it looks up (+y); column 3 is on the right: +x.
    assert (directions[0, :, 1] > 0).all() and (directions[3, :, 1] < 0).all()
    assert (directions[:, 3, 0] > 0).all() and (directions[:, 0, 0] < 0).all()
    assert (directions[..., 2] < 0).all()


def test_non_square_view_keeps_square_pixels():
    fov, aspect = 30.0, 2.0
    cameras = cameras_from_view(front_view(aspect, fov))
    k = cameras.intrinsics[0]
    assert float(k[0, 0]) == pytest.approx(float(k[1, 1]) / aspect)
    height, width = view_image_size(10, aspect)
    assert (height, width) == (10, 20)
    rays = view_rays(cameras, height, width)
    directions = rays.directions[0].reshape(height, width, 3)
    # The outermost pixel centres sit half a pixel inside the frustum edges.
    vertical = math.atan(math.tan(math.radians(fov) / 2) * (1 - 1 / height))
    horizontal = math.atan(aspect * math.tan(math.radians(fov) / 2) * (1 - 1 / width))
    top = directions[0, width // 2 - 1]
    right = directions[height // 2 - 1, -1]
    assert math.atan2(float(top[1]), -float(top[2])) == pytest.approx(vertical, abs=0.02)
    assert math.atan2(float(right[0]), -float(right[2])) == pytest.approx(horizontal, abs=0.02)


def test_view_image_size_caps_the_width():
    assert view_image_size(100, 4.0, max_width=250) == (62, 250)
    with pytest.raises(ValueError, match="at least 1 pixel"):
        view_image_size(0, 1.0)


def test_square_view_rays_equal_generate_rays():
    cameras = Cameras.from_spherical(torch.tensor([0.4]), torch.tensor([0.2]), 1.3, 40.0)
    ours = view_rays(cameras, 6, 6)
    reference = generate_rays(cameras, 6)
    for name in ("origins", "directions", "near", "far"):
        torch.testing.assert_close(getattr(ours, name), getattr(reference, name), atol=1e-6, rtol=0)


def test_round_trip_through_view_camera():
    for yaw, pitch in ((0.0, 0.0), (2.5, -0.4), (-1.2, 1.1)):
        cameras = Cameras.from_spherical(torch.tensor([yaw]), torch.tensor([pitch]), 1.7, 25.0)
        back = cameras_from_view(view_from_cameras(cameras))
        torch.testing.assert_close(back.cam2world, cameras.cam2world, atol=1e-5, rtol=0)
        torch.testing.assert_close(back.intrinsics, cameras.intrinsics, atol=1e-5, rtol=0)


def test_look_at_pose_rebuilds_the_rotation_the_way_viser_does():
    for rotation in random_rotations(5, seed=3):
        view = ViewCamera(tuple(matrix_to_quaternion(rotation)), (0.3, -1.0, 2.0), 0.7, 1.5)
        position, look_at, up = look_at_pose(view)
        # viser's orbit camera: z = towards the look-at point, y = -up made orthogonal to z, x = y cross z.
        z = (look_at - position) / np.linalg.norm(look_at - position)
        y = -(up - np.dot(up, z) * z)
        y /= np.linalg.norm(y)
        np.testing.assert_allclose(np.stack([np.cross(y, z), y, z], axis=1), rotation, atol=1e-9)


def test_view_camera_reads_a_viser_camera_handle_and_validates():
    class Handle:  # the attributes viser 0.2.x and 1.x camera handles share
        wxyz = np.array([1.0, 0.0, 0.0, 0.0])
        position = np.array([0.0, 0.0, -2.0])
        fov = 0.8
        aspect = 1.25

    view = ViewCamera.from_viser(Handle())
    assert view.position == (0.0, 0.0, -2.0) and view.aspect == 1.25
    with pytest.raises(ValueError, match="fov"):
        ViewCamera((1.0, 0, 0, 0), (0, 0, 0), 0.0, 1.0)
    with pytest.raises(ValueError, match="aspect"):
        ViewCamera((1.0, 0, 0, 0), (0, 0, 0), 1.0, 0.0)

"""Cameras: the 25-float label, look-at orientation (OpenCV axes, world +y up), spherical poses,
intrinsics from a field of view and the horizontal mirror."""

from __future__ import annotations

import math

import jaxtyping
import pytest
import torch

from renderers.cameras import LABEL_SIZE, Cameras, intrinsics_from_fov


def project(cameras: Cameras, points: torch.Tensor) -> torch.Tensor:
    """Image position (u, v) in [0, 1] units of world points [b, 3]: p_cam = R^T (p - t), u = fx x / z + cx."""
    rotation, center = cameras.cam2world[:, :3, :3], cameras.cam2world[:, :3, 3]
    p_cam = torch.einsum("bji,bj->bi", rotation, points - center)
    k = cameras.intrinsics
    u = k[:, 0, 0] * p_cam[:, 0] / p_cam[:, 2] + k[:, 0, 2]
    v = k[:, 1, 1] * p_cam[:, 1] / p_cam[:, 2] + k[:, 1, 2]
    return torch.stack([u, v], dim=-1)


def test_label_of_a_hand_built_camera():
    f = 0.5 / math.tan(math.radians(30.0) / 2)
    pose = torch.eye(4)
    pose[:3, 3] = torch.tensor([1.0, 2.0, 3.0])
    cams = Cameras(pose[None], intrinsics_from_fov(30.0, 1))
    label = cams.to_label()
    assert LABEL_SIZE == 25
    assert label.shape == (1, LABEL_SIZE)
    expected_pose = [1, 0, 0, 1, 0, 1, 0, 2, 0, 0, 1, 3, 0, 0, 0, 1]  # row-major 4x4
    expected_intrinsics = [f, 0, 0.5, 0, f, 0.5, 0, 0, 1]  # row-major 3x3
    torch.testing.assert_close(label[0], torch.tensor(expected_pose + expected_intrinsics, dtype=torch.float32))


def test_label_round_trip():
    cams = Cameras.from_spherical(torch.tensor([0.3, -1.0]), torch.tensor([0.2, -0.4]), radius=2.7, fov_degrees=18.0)
    back = Cameras.from_label(cams.to_label())
    assert torch.equal(back.cam2world, cams.cam2world)
    assert torch.equal(back.intrinsics, cams.intrinsics)


def test_from_label_rejects_a_wrong_length():
    # As users run the library: without the test-only shape checks, which would raise a TypeError first.
    jaxtyping.config.update("jaxtyping_disable", True)
    try:
        with pytest.raises(ValueError, match=rf"shape \[b, {LABEL_SIZE}\]"):
            Cameras.from_label(torch.zeros(1, 24))
    finally:
        jaxtyping.config.update("jaxtyping_disable", False)


def test_front_camera_looks_at_the_origin_with_world_up_as_image_up():
    cams = Cameras.from_spherical(torch.zeros(1), torch.zeros(1), radius=2.0, fov_degrees=30.0)
    pose = cams.cam2world[0]
    torch.testing.assert_close(pose[:3, 3], torch.tensor([0.0, 0.0, 2.0]))  # on +z
    # Columns: camera axes in world space. OpenCV: +x right, +y down, +z forward.
    torch.testing.assert_close(pose[:3, 2], torch.tensor([0.0, 0.0, -1.0]))  # looks towards the origin
    torch.testing.assert_close(pose[:3, 1], torch.tensor([0.0, -1.0, 0.0]))  # camera y is world down
    torch.testing.assert_close(pose[:3, 0], torch.tensor([1.0, 0.0, 0.0]))  # camera x is world +x
    torch.testing.assert_close(pose[3], torch.tensor([0.0, 0.0, 0.0, 1.0]))
    assert torch.linalg.det(pose[:3, :3]) == pytest.approx(1.0)
    # The origin is at the image centre; a point above it (world +y) is higher in the image (smaller v).
    centre, above = project(cams, torch.zeros(1, 3)), project(cams, torch.tensor([[0.0, 0.1, 0.0]]))
    torch.testing.assert_close(centre, torch.tensor([[0.5, 0.5]]))
    assert above[0, 1] < 0.5
    torch.testing.assert_close(above[0, 0], torch.tensor(0.5))


def test_yaw_and_pitch_move_the_camera_as_documented():
    cams = Cameras.from_spherical(
        torch.tensor([math.pi / 2, 0.0]), torch.tensor([0.0, math.pi / 6]), radius=2.0, fov_degrees=30.0
    )
    # Yaw +90 deg: on +x, looking along -x.
    torch.testing.assert_close(cams.centers[0], torch.tensor([2.0, 0.0, 0.0]), atol=1e-6, rtol=0)
    torch.testing.assert_close(cams.cam2world[0, :3, 2], torch.tensor([-1.0, 0.0, 0.0]), atol=1e-6, rtol=0)
    # Pitch +30 deg: above the xz plane at height r sin 30 = 1, looking down.
    torch.testing.assert_close(cams.centers[1], torch.tensor([0.0, 1.0, math.sqrt(3.0)]))
    assert cams.cam2world[1, 1, 2] < 0


def test_spherical_round_trip():
    yaw = torch.tensor([0.3, -2.0, 1.0, 3.0])
    pitch = torch.tensor([0.2, -0.5, 1.2, 0.0])
    radius = torch.tensor([2.7, 1.0, 3.0, 1.5])
    target = (0.1, -0.2, 0.3)
    cams = Cameras.from_spherical(yaw, pitch, radius, fov_degrees=20.0, target=target)
    yaw_back, pitch_back, radius_back = cams.to_spherical(target)
    torch.testing.assert_close(yaw_back, yaw)
    torch.testing.assert_close(pitch_back, pitch)
    torch.testing.assert_close(radius_back, radius)


@pytest.mark.parametrize(("fov", "focal"), [(90.0, 0.5), (60.0, 0.5 * math.sqrt(3.0))])
def test_intrinsics_from_fov(fov, focal):
    intrinsics = intrinsics_from_fov(fov, 2)
    expected = torch.tensor([[focal, 0.0, 0.5], [0.0, focal, 0.5], [0.0, 0.0, 1.0]])
    torch.testing.assert_close(intrinsics, expected.expand(2, 3, 3))
    cams = Cameras(torch.eye(4).repeat(2, 1, 1), intrinsics)
    torch.testing.assert_close(cams.fov_degrees, torch.full((2,), fov))


def test_intrinsics_reject_a_bad_fov():
    with pytest.raises(ValueError, match="fov_degrees must lie in"):
        intrinsics_from_fov(180.0, 1)


def test_mirror_x_maps_a_projection_to_the_mirrored_pixel():
    cams = Cameras.from_spherical(torch.tensor([0.4, -1.1]), torch.tensor([0.2, -0.3]), radius=2.5, fov_degrees=25.0)
    cams.intrinsics[:, 0, 2] = 0.45  # an off-centre principal point moves to 1 - 0.45 in the mirror
    points = torch.tensor([[0.1, 0.2, -0.05], [-0.2, 0.05, 0.15]])
    mirrored_points = points * torch.tensor([-1.0, 1.0, 1.0])
    uv = project(cams, points)
    uv_mirror = project(cams.mirror_x(), mirrored_points)
    torch.testing.assert_close(uv_mirror[:, 0], 1.0 - uv[:, 0])
    torch.testing.assert_close(uv_mirror[:, 1], uv[:, 1])


def test_mirror_x_negates_the_yaw_and_keeps_a_proper_rotation():
    cams = Cameras.from_spherical(torch.tensor([0.4]), torch.tensor([0.2]), radius=2.5, fov_degrees=25.0)
    mirrored = cams.mirror_x()
    yaw, pitch, radius = mirrored.to_spherical()
    torch.testing.assert_close(yaw, torch.tensor([-0.4]))
    torch.testing.assert_close(pitch, torch.tensor([0.2]))
    torch.testing.assert_close(radius, torch.tensor([2.5]))
    assert torch.linalg.det(mirrored.cam2world[0, :3, :3]) == pytest.approx(1.0)

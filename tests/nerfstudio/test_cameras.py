"""Our cameras as nerfstudio cameras: the same rays, the same pixels, in the scene the generator's box becomes."""

from __future__ import annotations

import pytest
import torch

from tests.nerfstudio.conftest import NERFSTUDIO_SKIP_REASON

pytest.importorskip("nerfstudio", reason=NERFSTUDIO_SKIP_REASON)

from pipelines.nerfstudio.cameras import to_nerfstudio_cameras  # noqa: E402
from pipelines.nerfstudio.scene_transform import nerfstudio_scene  # noqa: E402
from renderers.cameras import Cameras  # noqa: E402
from renderers.rays import generate_rays  # noqa: E402


def project(cameras: Cameras, points: torch.Tensor, width: int, height: int) -> torch.Tensor:
    """Pixel positions (column, row) [b, n, 2] of world points [n, 3] through our cameras (renderers/cameras.py)."""
    rotation, centre = cameras.cam2world[:, :3, :3], cameras.centers
    local = (points[None] - centre[:, None]) @ rotation  # OpenCV camera coordinates
    k = cameras.intrinsics
    u = k[:, None, 0, 0] * local[..., 0] / local[..., 2] + k[:, None, 0, 2]
    v = k[:, None, 1, 1] * local[..., 1] / local[..., 2] + k[:, None, 1, 2]
    return torch.stack([u * width, v * height], dim=-1)


def distance_to_rays(points: torch.Tensor, origins: torch.Tensor, directions: torch.Tensor) -> torch.Tensor:
    """Distance of each point [n, 3] from its (unit-direction) ray."""
    offset = points - origins
    along = (offset * directions).sum(-1, keepdim=True)
    return (offset - along * directions).norm(dim=-1)


def test_hand_checked_camera() -> None:
    # Our camera on +z at 2.7 looking at the origin; the scene is the box scaled by 2, z up.
    ours = Cameras.from_spherical(torch.zeros(1), torch.zeros(1), radius=2.7, fov_degrees=18.0)
    theirs = to_nerfstudio_cameras(ours, 64, 48, nerfstudio_scene(0.5))
    c2w = theirs.camera_to_worlds[0]
    assert torch.allclose(c2w[:, 3], torch.tensor([0.0, -5.4, 0.0]), atol=1e-5)
    assert torch.allclose(-c2w[:, 2], torch.tensor([0.0, 1.0, 0.0]), atol=1e-6)  # OpenGL cameras look along -z
    assert torch.allclose(c2w[:, 1], torch.tensor([0.0, 0.0, 1.0]), atol=1e-6)  # image up is the scene's up (+z)
    focal = 0.5 / torch.tan(torch.deg2rad(torch.tensor(9.0)))
    assert torch.allclose(theirs.fx[0], focal * 64) and torch.allclose(theirs.fy[0], focal * 48)
    assert float(theirs.cx[0]) == 32.0 and float(theirs.cy[0]) == 24.0
    assert int(theirs.width[0]) == 64 and int(theirs.height[0]) == 48


def test_every_pixel_has_the_same_ray(rng) -> None:
    ours = Cameras.from_spherical(torch.tensor([0.3, -2.0, 2.9]), torch.tensor([0.2, -0.5, 1.1]), radius=1.7,
                                  fov_degrees=35.0)
    ours.intrinsics[:, 0, 2], ours.intrinsics[:, 1, 2] = 0.45, 0.55  # off-centre principal points
    transform = nerfstudio_scene(0.5)
    resolution = 9
    theirs = to_nerfstudio_cameras(ours, resolution, resolution, transform)
    expected = generate_rays(ours, resolution)
    for index in range(3):
        rays = theirs.generate_rays(camera_indices=index, keep_shape=True)  # [h, w] row-major, as ours
        origins = transform.points_to_box(rays.origins.reshape(-1, 3))
        directions = transform.directions_to_box(rays.directions.reshape(-1, 3))
        assert torch.allclose(origins, expected.origins[index], atol=1e-5)
        assert torch.allclose(directions, expected.directions[index], atol=1e-5)


def test_a_world_point_lands_on_the_same_pixel(rng) -> None:
    ours = Cameras.from_spherical(torch.rand(4, generator=rng) * 6.0 - 3.0, torch.rand(4, generator=rng) - 0.5,
                                  radius=1.3, fov_degrees=40.0)
    width, height = 40, 30
    transform = nerfstudio_scene(0.5)
    theirs = to_nerfstudio_cameras(ours, width, height, transform)
    points = (torch.rand(25, 3, generator=rng) - 0.5) * 0.9  # inside the box
    pixels = project(ours, points, width, height)
    for index in range(4):
        # nerfstudio's coords are (row, column) pixel positions; its ray through them must hit the point.
        coords = pixels[index].flip(-1)
        rays = theirs.generate_rays(camera_indices=torch.full((25, 1), index), coords=coords)
        scene_points = transform.points_from_box(points)
        assert distance_to_rays(scene_points, rays.origins, rays.directions).max() < 1e-4

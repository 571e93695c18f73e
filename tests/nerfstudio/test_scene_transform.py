"""The similarity between nerfstudio scene coordinates and the generator's world (no nerfstudio needed)."""

from __future__ import annotations

import math

import pytest
import torch

from pipelines.nerfstudio.scene_transform import Z_UP_TO_Y_UP, SceneTransformConfig
from renderers.cameras import Cameras


@pytest.fixture
def transform() -> SceneTransformConfig:
    return SceneTransformConfig(scale=0.5, translation=(0.1, -0.2, 0.05), rotation=Z_UP_TO_Y_UP)


def test_hand_checked_point(transform: SceneTransformConfig) -> None:
    # Scene z is up: the scene point (0, 0, 1) lies on the generator's +y axis, at 0.5 units, then shifted.
    point = torch.tensor([[0.0, 0.0, 1.0]])
    assert torch.allclose(transform.points_to_box(point), torch.tensor([[0.1, 0.3, 0.05]]))
    # Scene +y (forward in a z-up scene) becomes the generator's -z.
    forward = transform.directions_to_box(torch.tensor([[0.0, 1.0, 0.0]]))
    assert torch.allclose(forward, torch.tensor([[0.0, 0.0, -1.0]]))


def test_points_and_directions_round_trip(transform: SceneTransformConfig, rng: torch.Generator) -> None:
    points = torch.randn(2, 7, 3, generator=rng)
    assert torch.allclose(transform.points_from_box(transform.points_to_box(points)), points, atol=1e-6)
    directions = torch.nn.functional.normalize(torch.randn(2, 7, 3, generator=rng), dim=-1)
    mapped = transform.directions_to_box(directions)
    assert torch.allclose(mapped.norm(dim=-1), torch.ones(2, 7), atol=1e-6)
    assert torch.allclose(transform.directions_from_box(mapped), directions, atol=1e-6)


def test_distances_scale_and_density_compensates(transform: SceneTransformConfig) -> None:
    a, b = torch.tensor([0.3, -0.1, 0.7]), torch.tensor([-0.4, 0.2, 0.1])
    scene_length = (a - b).norm()
    box_length = (transform.points_to_box(a) - transform.points_to_box(b)).norm()
    assert torch.allclose(box_length, transform.scale * scene_length)
    # Same opacity over the same stretch of space, measured in either unit (NeRF eq. 3).
    sigma_box = torch.tensor(3.0)
    alpha_box = 1 - torch.exp(-sigma_box * box_length)
    alpha_scene = 1 - torch.exp(-transform.density_to_scene(sigma_box) * scene_length)
    assert torch.allclose(alpha_box, alpha_scene)


def test_cam2world_from_box_keeps_the_rays(transform: SceneTransformConfig) -> None:
    cams = Cameras.from_spherical(torch.tensor([0.3, -1.2]), torch.tensor([0.2, 0.5]), radius=1.5, fov_degrees=30.0)
    scene = transform.cam2world_from_box(cams.cam2world)
    assert torch.allclose(transform.points_to_box(scene[:, :3, 3]), cams.centers, atol=1e-6)
    # Each camera axis maps back to the same world axis, and the rotation stays proper.
    axes = transform.directions_to_box(scene[:, :3, :3].transpose(1, 2)).transpose(1, 2)
    assert torch.allclose(axes, cams.cam2world[:, :3, :3], atol=1e-6)
    assert torch.allclose(torch.det(scene[:, :3, :3]), torch.ones(2), atol=1e-5)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"scale": 0.0}, "scale"),
        ({"scale": math.nan}, "scale"),
        ({"translation": (0.0, 1.0)}, "translation"),
        ({"rotation": (1.0, 0, 0, 0, 1, 0, 0, 0, -1)}, "proper rotation"),
        ({"rotation": (2.0, 0, 0, 0, 1, 0, 0, 0, 1)}, "proper rotation"),
        ({"rotation": (1.0, 0, 0)}, "9 numbers"),
    ],
)
def test_invalid_transforms_are_named(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SceneTransformConfig(**kwargs)

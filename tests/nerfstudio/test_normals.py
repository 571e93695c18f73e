"""Normals from the density gradient (no nerfstudio needed): a soft ball's normals point out of it."""

from __future__ import annotations

import torch

from pipelines.nerfstudio.normals import density_normals, normals_to_unit_interval
from renderers.analytic import SphereField


class SoftSphereField(SphereField):
    """A ball whose density falls from sigma to 0 over ``softness`` around the radius, so it has a gradient."""

    def __init__(self, softness: float = 0.02, **kwargs) -> None:
        super().__init__(**kwargs)
        self.softness = softness

    def inside(self, points: torch.Tensor) -> torch.Tensor:
        distance = (points - self.center[:, None, :]).norm(dim=-1, keepdim=True)
        return torch.sigmoid((self.radius[:, None, :] - distance) / self.softness)


def test_hand_checked_normal_on_each_axis() -> None:
    ball = SoftSphereField(radius=0.3)
    points = torch.tensor([[0.29, 0.0, 0.0], [0.0, -0.29, 0.0], [0.0, 0.0, 0.31]])
    density, normals = density_normals(lambda p: ball.density(p[None])[0], points)
    expected = torch.tensor([[1.0, 0.0, 0.0], [0.0, -1.0, 0.0], [0.0, 0.0, 1.0]])
    assert torch.allclose(normals, expected, atol=1e-5)
    assert density.shape == (3, 1) and (density > 0).all()


def test_normals_point_outward_everywhere_near_the_surface(rng) -> None:
    ball = SoftSphereField(radius=0.25, center=(0.1, -0.05, 0.0))
    directions = torch.nn.functional.normalize(torch.randn(200, 3, generator=rng), dim=-1)
    radii = 0.25 + (torch.rand(200, 1, generator=rng) - 0.5) * 0.04
    points = ball.center + directions * radii
    _, normals = density_normals(lambda p: ball.density(p[None])[0], points)
    assert torch.allclose(normals, directions, atol=1e-4)


def test_empty_space_has_zero_normals_and_no_graph_under_no_grad() -> None:
    ball = SphereField(radius=0.3)  # a hard ball: its density is flat (zero gradient) away from the edge
    points = torch.tensor([[0.0, 0.0, 0.9], [0.0, 0.1, 0.0]])
    with torch.no_grad():
        density, normals = density_normals(lambda p: ball.density(p[None])[0], points)
    assert not density.requires_grad
    assert torch.equal(normals, torch.zeros(2, 3))
    # nerfstudio's images map n in [-1, 1] to [0, 1]; no surface reads 0.5.
    assert torch.equal(normals_to_unit_interval(normals), torch.full((2, 3), 0.5))

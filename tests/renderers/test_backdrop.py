"""The learned backdrop (background 'last_sample'): opaque rays, the far sample's colour, gradients, every sampler."""

from __future__ import annotations

import json
import math

import jaxtyping
import pytest
import torch
from torch import Tensor, nn

from epigraf_field.config_io import config_from_dict, config_to_dict
from renderers.cameras import Cameras
from renderers.compositing import composite, resolve_background
from renderers.field import FieldValues
from renderers.rays import RayBundle, generate_rays
from renderers.volume_renderer import VolumeRenderer, VolumeRendererConfig, backdrop_distances

SAMPLERS = ["stratified", "importance", "occupancy"]


class PaintedSphere(nn.Module):
    """A ball of density ``sigma`` (0: an empty field) whose colour varies with position everywhere:
    ``rgb = sigmoid(points @ mix + bias)``, features ``[rgb, 1]``. ``bias`` is a parameter."""

    def __init__(self, sigma: float = 200.0, radius: float = 0.25) -> None:
        super().__init__()
        self.sigma, self.radius = sigma, radius
        self.register_buffer("mix", torch.tensor([[2.0, -1.0, 0.5], [0.5, 3.0, -1.0], [-1.5, 0.5, 2.5]]))
        self.bias = nn.Parameter(torch.tensor([0.1, -0.2, 0.3]))

    def color(self, points: Tensor) -> Tensor:
        return torch.sigmoid(points @ self.mix + self.bias)

    def density(self, points: Tensor) -> Tensor:
        return self.sigma * (points.norm(dim=-1, keepdim=True) <= self.radius).to(points.dtype)

    def forward(self, points: Tensor, directions: Tensor | None = None) -> FieldValues:
        rgb = self.color(points)
        return FieldValues(self.density(points), rgb, torch.cat([rgb, torch.ones_like(rgb[..., :1])], dim=-1))


def cameras(bounded: bool = True) -> Cameras:
    cams = Cameras.from_spherical(torch.tensor([0.3, 2.1]), torch.tensor([0.25, -0.3]), radius=2.0, fov_degrees=40.0)
    return cams.with_bounds(1.4, 2.6) if bounded else cams


def renderer(sampler: str, background: str = "last_sample", **kwargs: object) -> VolumeRenderer:
    options = {"num_coarse": 16, "num_fine": 8, "march_steps": 64, "occupancy_resolution": 16, **kwargs}
    return VolumeRenderer(VolumeRendererConfig(sampler=sampler, background=background, **options))


def test_composite_gives_the_last_sample_all_remaining_light():
    starts, ends = torch.tensor([[[0.0, 1.0, 2.0]]]), torch.tensor([[[1.0, 2.0, 2.5]]])
    sigma = torch.tensor([[[0.3, 0.5, 0.0]]])  # the last sample has no density and still becomes opaque
    rgb = torch.tensor([[[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]]])
    out = composite(starts, ends, sigma, rgb, "last_sample")
    a0, a1 = 1.0 - math.exp(-0.3), 1.0 - math.exp(-0.5)
    expected = torch.tensor([a0, (1.0 - a0) * a1, (1.0 - a0) * (1.0 - a1)])
    assert torch.allclose(out.weights.flatten(), expected, atol=1e-6)
    assert torch.allclose(out.rgb.flatten(), expected, atol=1e-6)  # no background colour added
    assert math.isclose(out.opacity.item(), 1.0, abs_tol=1e-6)
    assert math.isclose(out.depth.item(), float((expected * torch.tensor([0.5, 1.5, 2.25])).sum()), rel_tol=1e-6)


def test_composite_backdrop_needs_a_sample_and_has_no_colour():
    with pytest.raises(ValueError, match="needs at least one sample"):
        none = torch.zeros(1, 2, 0)
        composite(none, none, none, torch.zeros(1, 2, 0, 3), "last_sample")
    with pytest.raises(ValueError, match="has no colour"):
        resolve_background("last_sample", (1, 1), torch.device("cpu"))


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_empty_field_shows_the_field_colour_at_the_far_end(sampler):
    field = PaintedSphere(sigma=0.0)
    rays = generate_rays(cameras(), 6)
    out = renderer(sampler).render_rays(field, rays)
    far_colour = field.color(rays.points_at(rays.far)[:, :, 0])
    assert torch.allclose(out.opacity, torch.ones_like(out.opacity), atol=1e-6)
    assert torch.allclose(out.rgb, far_colour, atol=1e-6)
    assert torch.allclose(out.features[..., :3], far_colour, atol=1e-6)
    assert torch.allclose(out.depth, rays.far, atol=1e-5)  # the backdrop sits at the far distance
    assert torch.allclose(out.weights.sum(-1), torch.ones(2, 36), atol=1e-6)


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_sphere_in_front_of_the_backdrop_keeps_its_colour(sampler):
    field = PaintedSphere()
    rays = generate_rays(cameras(), 12)
    backdrop = renderer(sampler).render_rays(field, rays)
    white = renderer(sampler, "white").render_rays(field, rays)
    inside = white.opacity[..., 0] > 0.999
    outside = white.opacity[..., 0] < 1e-6
    assert inside.sum() > 10 and outside.sum() > 10
    assert torch.allclose(backdrop.opacity, torch.ones_like(backdrop.opacity), atol=1e-6)
    assert torch.allclose(backdrop.rgb[inside], white.rgb[inside], atol=2e-3)
    assert torch.allclose(backdrop.depth[inside], white.depth[inside], atol=2e-3)
    far_colour = field.color(rays.points_at(rays.far)[:, :, 0])
    assert torch.allclose(backdrop.rgb[outside], far_colour[outside], atol=1e-6)
    assert (backdrop.rgb[outside] - white.rgb[outside]).abs().amax() > 0.05  # the backdrop is not white


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_gradient_reaches_the_backdrop_colour(sampler):
    field = PaintedSphere(sigma=0.0)
    rays = generate_rays(cameras(), 4)
    out = renderer(sampler).render_rays(field, rays)
    out.rgb.sum().backward()
    # d rgb / d bias = sigmoid'(far point): every ray's backdrop weight is 1.
    far_colour = field.color(rays.points_at(rays.far)[:, :, 0]).detach()
    expected = (far_colour * (1.0 - far_colour)).sum(dim=(0, 1))
    assert torch.allclose(field.bias.grad, expected, rtol=1e-5)


def test_gradient_splits_between_a_thin_slab_and_the_backdrop():
    # A half-transparent front sample and the backdrop share the light: both colours get gradient.
    starts, ends = torch.tensor([[[0.0, 1.0]]]), torch.tensor([[[1.0, 1.0]]])
    rgb = torch.full((1, 1, 2, 3), 0.5, requires_grad=True)
    composite(starts, ends, torch.tensor([[[math.log(2.0), 0.0]]]), rgb, "last_sample").rgb.sum().backward()
    assert torch.allclose(rgb.grad[0, 0, :, 0], torch.tensor([0.5, 0.5]), atol=1e-6)


def test_occupancy_rays_without_samples_and_box_misses_have_no_holes():
    # Box-bounded rays: some cross the occupied sphere, some cross only empty cells, some miss the box.
    field = PaintedSphere(radius=0.15)
    cams = Cameras.from_spherical(torch.tensor([0.3]), torch.tensor([0.2]), radius=1.6, fov_degrees=70.0)
    rays = generate_rays(cams, 12)
    missed = (rays.near == rays.far)[..., 0]
    assert missed.any() and (~missed).any()
    out = renderer("occupancy", march_steps=128, occupancy_resolution=32).render_rays(field, rays)
    assert out.samples.mask is not None and (out.samples.mask.sum(-1) == 1).any()  # rays with only the backdrop
    assert torch.allclose(out.opacity, torch.ones_like(out.opacity), atol=1e-6)
    t_back = backdrop_distances(rays)
    assert torch.allclose(t_back[~missed], rays.far[~missed])
    closest = -(rays.origins * rays.directions).sum(-1, keepdim=True)
    assert torch.allclose(t_back[missed], closest[missed])
    white = renderer("occupancy", "white", march_steps=128, occupancy_resolution=32).render_rays(field, rays)
    empty = white.opacity[..., 0] < 1e-6
    colour_back = field.color(rays.points_at(t_back)[:, :, 0])
    assert torch.allclose(out.rgb[empty], colour_back[empty], atol=1e-6)
    dense = renderer("stratified", num_coarse=256).render_rays(field, rays)
    assert (out.rgb - dense.rgb).abs().mean() < 0.02


def test_chunks_and_one_pass_agree_with_the_backdrop():
    field = PaintedSphere()
    rays = generate_rays(cameras(), 8)
    whole = renderer("occupancy").render_rays(field, rays)
    chunked = renderer("occupancy", chunk_size=10).render_rays(field, rays)
    assert torch.allclose(whole.rgb, chunked.rgb, atol=1e-6) and torch.allclose(whole.depth, chunked.depth, atol=1e-6)
    assert whole.num_field_evaluations >= 2 * 64  # the backdrop costs one query per ray


def test_backdrop_adds_one_field_query_per_ray():
    rays = generate_rays(cameras(), 4)
    plain = renderer("importance", "white").render_rays(PaintedSphere(), rays)
    backdrop = renderer("importance").render_rays(PaintedSphere(), rays)
    assert backdrop.num_field_evaluations == plain.num_field_evaluations + 2 * 16
    assert backdrop.weights.shape[-1] == plain.weights.shape[-1] + 1


def test_last_sample_round_trips_through_json():
    config = VolumeRendererConfig(sampler="occupancy", background="last_sample")
    data = json.loads(json.dumps(config_to_dict(config)))
    assert data["background"] == "last_sample"
    assert config_from_dict(VolumeRendererConfig, data) == config


def test_unknown_background_lists_last_sample():
    # Without the test-only annotation checks, as users run it: the config's own error is what is seen.
    jaxtyping.config.update("jaxtyping_disable", True)
    try:
        with pytest.raises(ValueError, match="VolumeRendererConfig.background must be one of .*'last_sample'"):
            VolumeRendererConfig(background="far")
    finally:
        jaxtyping.config.update("jaxtyping_disable", False)


def test_backdrop_distance_of_a_ray_pointing_away_is_its_far_end():
    rays = RayBundle(torch.tensor([[[0.0, 0.0, 2.0]]]), torch.tensor([[[0.0, 0.0, 1.0]]]),
                     torch.zeros(1, 1, 1), torch.zeros(1, 1, 1))
    assert backdrop_distances(rays).item() == 0.0


def test_the_viewer_keeps_a_learned_backdrop():
    from pipelines.viewer.settings import ViewSettings

    settings = ViewSettings(background=(0, 0, 255))
    assert settings.renderer_config(VolumeRendererConfig(background="last_sample")).background == "last_sample"
    assert settings.renderer_config(VolumeRendererConfig(background="black")).background == "color"

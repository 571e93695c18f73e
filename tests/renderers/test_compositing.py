"""Compositing: closed-form transmittance, depth, features and backgrounds."""

from __future__ import annotations

import math

import pytest
import torch

from renderers.analytic import ConstantField, SlabField
from renderers.cameras import Cameras
from renderers.compositing import composite, resolve_background
from renderers.volume_renderer import VolumeRenderer, VolumeRendererConfig


def test_constant_density_has_closed_form_weights(rng):
    sigma = 3.0
    edges = torch.sort(torch.rand(1, 2, 9, generator=rng), dim=-1).values
    starts, ends = edges[..., :-1], edges[..., 1:]
    delta = ends - starts
    out = composite(starts, ends, torch.full((1, 2, 8), sigma), torch.ones(1, 2, 8, 3), "black")
    alpha = 1.0 - torch.exp(-sigma * delta)
    transmittance = torch.exp(-sigma * (torch.cumsum(delta, -1) - delta))
    assert torch.allclose(out.weights, transmittance * alpha, atol=1e-6)
    total = edges[..., -1] - edges[..., 0]
    assert torch.allclose(out.opacity[..., 0], 1.0 - torch.exp(-sigma * total), atol=1e-6)


def test_slab_render_along_its_axis_has_the_closed_form_opacity():
    # Camera on +z looking at the origin with near/far chosen so the slab faces fall on interval edges.
    sigma, low, high = 4.0, -0.1, 0.1
    cams = Cameras.look_at(torch.tensor([[0.0, 0.0, 2.0]]), fov_degrees=20.0).with_bounds(1.5, 2.5)
    renderer = VolumeRenderer(VolumeRendererConfig(sampler="stratified", num_coarse=10, background="black"))
    field = SlabField(low, high, axis=2, sigma=sigma, color=(0.2, 0.4, 0.6))
    out = renderer.render_image(field, cams, resolution=1)
    opacity = 1.0 - math.exp(-sigma * (high - low))
    assert math.isclose(out.opacity.item(), opacity, rel_tol=1e-5)
    assert torch.allclose(out.rgb.flatten(), torch.tensor([0.2, 0.4, 0.6]) * opacity, atol=1e-6)
    # Depth: weights of the two slab intervals (midpoints at t = 1.95 and 2.05) normalized by opacity.
    a = 1.0 - math.exp(-sigma * 0.1)
    depth = (a * 1.95 + (1 - a) * a * 2.05) / opacity
    assert math.isclose(out.depth.item(), depth, rel_tol=1e-5)


def test_depth_is_normalized_by_opacity_and_empty_rays_get_far():
    starts, ends = torch.tensor([[[1.0, 2.0], [1.0, 2.0]]]), torch.tensor([[[2.0, 3.0], [2.0, 3.0]]])
    density = torch.tensor([[[0.0, 0.5], [0.0, 0.0]]])
    out = composite(starts, ends, density, torch.zeros(1, 2, 2, 3), "white", empty_depth=torch.tensor([[[7.0], [7.0]]]))
    assert math.isclose(out.depth[0, 0].item(), 2.5, rel_tol=1e-6)  # only the second interval has weight
    assert out.depth[0, 1].item() == 7.0 and out.opacity[0, 1].item() == 0.0


@pytest.mark.parametrize(
    ("background", "color"), [("white", (1.0, 1.0, 1.0)), ("black", (0.0, 0.0, 0.0)), ((0.1, 0.7, 0.3), (0.1, 0.7, 0.3))]
)
def test_background_is_composited_over_one_minus_opacity(background, color):
    sigma, length = 0.7, 1.0
    starts, ends = torch.tensor([[[0.0, 0.5]]]), torch.tensor([[[0.5, 1.0]]])
    fg = torch.tensor([0.9, 0.2, 0.4])
    out = composite(starts, ends, torch.full((1, 1, 2), sigma), fg.expand(1, 1, 2, 3), background)
    opacity = 1.0 - math.exp(-sigma * length)
    expected = fg * opacity + torch.tensor(color) * (1.0 - opacity)
    assert torch.allclose(out.rgb.flatten(), expected, atol=1e-6)


def test_random_background_is_reproducible_and_per_ray():
    empty = ConstantField(sigma=0.0)
    cams = Cameras.look_at(torch.tensor([[0.0, 0.0, 2.0]]), fov_degrees=30.0)
    renderer = VolumeRenderer(VolumeRendererConfig(sampler="stratified", num_coarse=4, background="random"))
    a = renderer.render_image(empty, cams, 4, rng=torch.Generator().manual_seed(1)).rgb
    b = renderer.render_image(empty, cams, 4, rng=torch.Generator().manual_seed(1)).rgb
    c = renderer.render_image(empty, cams, 4, rng=torch.Generator().manual_seed(2)).rgb
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.std() > 0.1 and (a >= 0).all() and (a <= 1).all()


def test_colour_background_from_config():
    renderer = VolumeRenderer(VolumeRendererConfig(sampler="stratified", num_coarse=4, background="color",
                                                   background_color=(0.25, 0.5, 0.75)))
    cams = Cameras.look_at(torch.tensor([[0.0, 0.0, 2.0]]), fov_degrees=30.0)
    rgb = renderer.render_image(ConstantField(sigma=0.0), cams, 2).rgb
    assert torch.allclose(rgb, torch.tensor([0.25, 0.5, 0.75])[None, :, None, None].expand(1, 3, 2, 2))


def test_features_are_composited_without_background():
    features = torch.tensor([2.0, -1.0, 0.5, 4.0])
    field = ConstantField(sigma=1.5, features=features)
    cams = Cameras.look_at(torch.tensor([[0.0, 0.0, 2.0]]), fov_degrees=30.0).with_bounds(1.0, 2.0)
    out = VolumeRenderer(VolumeRendererConfig(sampler="stratified", num_coarse=8)).render_image(field, cams, 2)
    opacity = 1.0 - math.exp(-1.5)
    assert out.features.shape == (1, 4, 2, 2)
    assert torch.allclose(out.features, features[None, :, None, None] * opacity, atol=1e-5)


def test_resolve_background_rejects_unknown_names():
    with pytest.raises(ValueError, match="background must be one of"):
        resolve_background("grey", (1, 1), torch.device("cpu"))
    with pytest.raises(ValueError, match="needs a torch.Generator"):
        resolve_background("random", (1, 1), torch.device("cpu"))

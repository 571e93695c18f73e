"""f, the proxy renderer, and its losses: shapes, where gradients go, DOM."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from pipelines.gan.discriminator import Discriminator, DiscriminatorConfig
from pipelines.ig_gan.losses import dom_loss, l2_loss
from pipelines.ig_gan.proxy import ProxyRenderer, ProxyRendererConfig, composite_front_to_back, frustum_points
from pipelines.ig_gan.random_shapes import random_voxel_shapes
from pipelines.ig_gan.renderer import MitsubaRendererConfig, MitsubaVoxelRenderer
from pipelines.ig_gan.voxels import VoxelGenerator, VoxelGeneratorConfig
from renderers.cameras import Cameras

CONFIG = ProxyRendererConfig(frustum_resolution=8, frustum_depth=8, channels_3d=(4, 4), projection_channels=8,
                             channels_2d=(8, 4))


def _cameras(count: int = 2) -> Cameras:
    return Cameras.from_spherical(torch.linspace(0, 2, count), torch.full((count,), 0.3), 1.3, 40.0)


def test_proxy_output_shape_and_frustum_covers_the_box():
    f = ProxyRenderer(CONFIG, image_resolution=32, box_half_size=0.5)
    assert f(torch.rand(2, 4, 8, 8, 8), _cameras()).shape == (2, 3, 32, 32)
    points = frustum_points(_cameras(), 8, 8, 0.5)
    assert points.shape == (2, 8, 8, 8, 3)
    depth = (points - _cameras().centers[:, None, None, None]).norm(dim=-1)
    assert depth.min() < 1.3 - 0.5 and depth.max() > 1.3 + 0.5  # the whole box lies within the depth range
    with pytest.raises(ValueError, match="divided by a power of two"):
        ProxyRenderer(CONFIG, image_resolution=24, box_half_size=0.5)


def test_gradients_reach_the_generator_through_f_but_never_r():
    pytest.importorskip("mitsuba", reason="R needs Mitsuba 3")
    generator = VoxelGenerator(VoxelGeneratorConfig(z_dim=8, resolution=8, channels=(8,)))
    f = ProxyRenderer(CONFIG, image_resolution=16, box_half_size=0.5)
    R = MitsubaVoxelRenderer(MitsubaRendererConfig(spp=1), 16, 0.5)
    voxels = generator(torch.randn(2, 8))
    renders = R(voxels, _cameras(), seed=0)
    assert renders.grad_fn is None and not renders.requires_grad  # R is outside autograd
    proxy = f(voxels, _cameras())
    assert proxy.shape == renders.shape
    (proxy - renders).square().mean().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in generator.parameters())


def test_dom_is_zero_for_equal_outputs_and_matches_its_formula():
    logits = torch.randn(4, 1)
    assert torch.equal(dom_loss(logits, logits.clone()), torch.zeros(4))
    value = dom_loss(torch.zeros(1, 1), torch.full((1, 1), torch.log(torch.tensor(3.0))))
    expected = (torch.log(torch.tensor(0.5)) - torch.log(torch.tensor(0.75))) ** 2
    torch.testing.assert_close(value, expected[None])


def test_dom_gradient_reaches_f_only():
    D = Discriminator(DiscriminatorConfig(resolution=16, image_resolution=16, patch_conditioning=False,
                                          channel_base=64, channel_max=8, mbstd_group_size=2)).requires_grad_(False)
    f = ProxyRenderer(CONFIG, image_resolution=16, box_half_size=0.5)
    voxels = torch.rand(2, 4, 8, 8, 8)
    renders = (torch.rand(2, 3, 16, 16) * 2 - 1).requires_grad_(True)  # a stand-in that could carry gradient
    loss = dom_loss(D(renders), D(f(voxels, _cameras()))).mean()
    assert loss > 0
    loss.backward()
    assert renders.grad is None
    assert all(p.grad is None for p in D.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in f.parameters())


def test_l2_detaches_the_render():
    proxy = torch.zeros(1, 3, 2, 2, requires_grad=True)
    target = torch.ones(1, 3, 2, 2, requires_grad=True)
    l2_loss(proxy, target).sum().backward()
    assert target.grad is None and proxy.grad.abs().sum() > 0


def test_random_shapes_are_soft_coloured_and_from_the_rng_only():
    a = random_voxel_shapes(3, 16, 0.5, torch.Generator().manual_seed(0))
    b = random_voxel_shapes(3, 16, 0.5, torch.Generator().manual_seed(0))
    assert torch.equal(a, b) and a.shape == (3, 4, 16, 16, 16)
    solid = a[:, 0] > 0.5
    assert solid.flatten(1).any(dim=1).all() and (~solid).flatten(1).any(dim=1).all()
    assert ((a[:, 0] > 0.05) & (a[:, 0] < 0.95)).any()  # continuous occupancies near the surfaces
    assert not torch.equal(a, random_voxel_shapes(3, 16, 0.5, torch.Generator().manual_seed(1)))


def test_colour_of_empty_voxels_does_not_reach_f():
    """R shows no colour where there is no matter; f sees colour premultiplied by occupancy, so neither does it."""
    f = ProxyRenderer(CONFIG, image_resolution=16, box_half_size=0.5)
    grid = torch.rand(2, 4, 8, 8, 8, generator=torch.Generator().manual_seed(0))
    grid[:, 0, :4] = 0.0  # half of the grid empty
    repainted = grid.clone()
    repainted[:, 1:, :4] = torch.rand(2, 3, 4, 8, 8, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(f(repainted, _cameras()), f(grid, _cameras()))
    recoloured = grid.clone()
    recoloured[:, 1:, 4:] = 1.0 - recoloured[:, 1:, 4:]  # where there is matter, colour does matter
    assert not torch.allclose(f(recoloured, _cameras()), f(grid, _cameras()))


def test_front_to_back_compositing_matches_the_closed_form():
    alpha = torch.tensor([0.5, 0.5, 1.0, 0.7])[None, :, None, None]  # one ray, 4 depth samples
    values = torch.tensor([1.0, 2.0, 3.0, 9.0])[None, None, :, None, None]
    composited, opacity, depth = composite_front_to_back(alpha, values)
    # weights 0.5, 0.25, 0.25, 0: nothing behind the opaque third sample is seen
    assert composited.item() == pytest.approx(0.5 * 1 + 0.25 * 2 + 0.25 * 3)
    assert opacity.item() == pytest.approx(1.0)
    assert depth.item() == pytest.approx(0.5 * 0.125 + 0.25 * 0.375 + 0.25 * 0.625)
    _, empty_opacity, empty_depth = composite_front_to_back(torch.zeros(1, 4, 1, 1), values)
    assert empty_opacity.item() == 0.0 and empty_depth.item() == 1.0  # the background is depth 1


def test_hints_show_a_cube_facing_the_camera():
    size = 16
    grid = torch.zeros(1, 4, size, size, size)
    grid[:, 0, 4:12, 4:12, 4:12] = 1.0  # a cube of half-size 0.25 in a box of half-size 0.5
    grid[:, 1:] = torch.tensor([0.9, 0.2, 0.1])[:, None, None, None]
    config = ProxyRendererConfig(frustum_resolution=16, frustum_depth=32, channels_3d=(4,), projection_channels=8,
                                 channels_2d=(8,))
    f = ProxyRenderer(config, image_resolution=16, box_half_size=0.5)
    cameras = Cameras.from_spherical(torch.zeros(1), torch.zeros(1), 1.5, 30.0)
    hints = f.hints(grid, cameras)[0]  # [8, h, w]
    colour, opacity, normal, depth = hints[:3], hints[3], hints[4:7], hints[7]
    assert opacity[8, 8] > 0.99 and opacity[0, 0] < 0.01 and opacity[15, 15] < 0.01
    torch.testing.assert_close(colour[:, 8, 8], torch.tensor([0.9, 0.2, 0.1]), atol=0.02, rtol=0)
    towards_camera = cameras.centers[0] / cameras.centers[0].norm()
    assert torch.dot(normal[:, 8, 8] / normal[:, 8, 8].norm(), towards_camera) > 0.95
    assert depth[8, 8] < 0.5 < depth[0, 0]  # the cube's front face lies before the middle of the depth range
    # without hints the projection unit sees the folded depth alone
    plain = ProxyRenderer(replace(config, composite_hints=False), image_resolution=16, box_half_size=0.5)
    assert plain.projection.in_channels == f.projection.in_channels - 8


def test_supersampled_hints_do_not_step_over_a_thin_wall():
    cameras = Cameras.from_spherical(torch.zeros(1), torch.zeros(1), 1.5, 30.0)
    opacity = {}
    for supersampling in (1, 4):  # frustum steps of 2 sqrt(3) h / 16 = 0.108 and 0.027
        config = ProxyRendererConfig(frustum_resolution=16, frustum_depth=16, channels_3d=(4,),
                                     projection_channels=8, channels_2d=(8,), hint_supersampling=supersampling)
        f = ProxyRenderer(config, image_resolution=16, box_half_size=0.5)
        opacity[supersampling] = []
        for index in range(12, 20):  # walls one voxel (1/32) thin at several depths, facing the camera
            thin = torch.zeros(1, 4, 32, 32, 32)
            thin[:, 0, index, 8:24, 8:24] = 1.0  # index d is world z
            opacity[supersampling].append(f.hints(thin, cameras)[0, 3, 6:10, 6:10].min().item())
    assert min(opacity[1]) < 0.1  # one sample per 3.5 voxels steps over most of them
    assert min(opacity[4]) > 0.9

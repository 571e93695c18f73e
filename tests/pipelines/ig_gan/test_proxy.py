"""f, the proxy renderer, and its losses: shapes, where gradients go, DOM."""

from __future__ import annotations

import pytest
import torch

from pipelines.gan.discriminator import Discriminator, DiscriminatorConfig
from pipelines.ig_gan.losses import dom_loss, l2_loss
from pipelines.ig_gan.proxy import ProxyRenderer, ProxyRendererConfig, frustum_points
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

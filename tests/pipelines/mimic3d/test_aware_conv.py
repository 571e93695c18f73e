"""3D-aware convolutions: pooling axes for our plane order (xy, xz, yz) and the plain-convolution limit."""

import pytest
import torch

from epigraf_field.synthesis import SynthesisLayer, ToPlanes
from pipelines.mimic3d.aware_conv import AwareBranch, PlaneLayer, pool_other_planes

R = 8
CENTRES = (torch.arange(R) + 0.5) * 2 / R - 1  # texel centres in [-1, 1] (align_corners=False)
# F(x, y, z) = u(x) + v(y) + w(z): three different functions, so a swapped axis shows.
U, V, W = (lambda x: torch.sin(3 * x)), (lambda y: y**3 + 0.5 * y), (lambda z: torch.cos(2 * z))
AXIS_TERMS = {"x": U(CENTRES), "y": V(CENTRES), "z": W(CENTRES)}
# (width axis, height axis) of each plane: the first coordinate runs along the columns.
PLANE_AXES = {"xy": ("x", "y"), "xz": ("x", "z"), "yz": ("y", "z")}


def _plane_of(name: str, layout: dict = PLANE_AXES) -> torch.Tensor:
    """Plane ``name`` [R, R] holding F averaged over the axis the plane lacks (row = height, column = width)."""
    width, height = layout[name]
    missing = ({"x", "y", "z"} - {width, height}).pop()
    return AXIS_TERMS[width][None, :] + AXIS_TERMS[height][:, None] + AXIS_TERMS[missing].mean()


def _expected_pooled(target: str, other: str, layout: dict = PLANE_AXES) -> torch.Tensor:
    """``other`` pooled onto ``target``: F averaged over every axis but the shared one, at the target's texels."""
    shared = (set(layout[target]) & set(layout[other])).pop()
    rest = sum(AXIS_TERMS[a].mean() for a in ("x", "y", "z") if a != shared)
    width, height = layout[target]
    line = AXIS_TERMS[shared] + rest
    return line[None, :].expand(R, R) if shared == width else line[:, None].expand(R, R)


def test_each_plane_gets_the_other_two_pooled_along_the_axis_it_lacks():
    planes = torch.stack([_plane_of(name) for name in ("xy", "xz", "yz")])[None, :, None]  # [1, 3, 1, R, R]
    pooled = pool_other_planes(planes)
    assert pooled.shape == (1, 3, 3, R, R)
    for index, target in enumerate(("xy", "xz", "yz")):
        others = [name for name in ("xy", "xz", "yz") if name != target]
        torch.testing.assert_close(pooled[0, index, 0], planes[0, index, 0])  # the plane itself comes first
        for slot, other in enumerate(others, start=1):
            torch.testing.assert_close(pooled[0, index, slot], _expected_pooled(target, other), atol=1e-5, rtol=0)


def test_pooling_is_per_channel_and_per_scene():
    planes = torch.randn(2, 3, 4, R, R, generator=torch.Generator().manual_seed(0))
    pooled = pool_other_planes(planes)
    assert pooled.shape == (2, 3, 12, R, R)
    single = pool_other_planes(planes[1:, :, 2:3])
    torch.testing.assert_close(pooled[1:, :, [2, 6, 10]], single)


@pytest.mark.parametrize("up", [1, 2])
def test_with_the_pooled_weights_zeroed_the_layer_is_a_plain_modulated_convolution(up):
    """Weights shared by the planes, one style per plane: zero the weights on the pooled channels and each plane
    goes through StyleGAN2's synthesis layer with that plane's slice of the styles."""
    c, w_dim = 4, 6
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(1)
        layer = PlaneLayer(c, 5, w_dim, R * up, up=up, aware=True, use_noise=False)
        layer.bias.data.normal_()
    rng = torch.Generator().manual_seed(2)
    planes, w = torch.randn(2, 3, c, R, R, generator=rng), torch.randn(2, w_dim, generator=rng)
    full = layer(planes, w, noise_mode="none")
    with torch.no_grad():
        layer.weight[:, c:] = 0
    zeroed = layer(planes, w, noise_mode="none")
    assert not torch.allclose(full, zeroed, atol=1e-3)  # the pooled channels did contribute
    for p in range(3):
        plain = SynthesisLayer(c, 5, w_dim, R * up, up=up, use_noise=False)
        rows = slice(p * 3 * c, p * 3 * c + c)  # plane p's styles of its own channels
        with torch.no_grad():
            plain.conv.weight.copy_(layer.weight[:, :c])
            plain.conv.affine.weight.copy_(layer.affine.weight[rows])
            plain.conv.affine.bias.copy_(layer.affine.bias[rows])
            plain.bias.copy_(layer.bias)
        torch.testing.assert_close(zeroed[:, p], plain(planes[:, p], w, noise_mode="none"), atol=1e-5, rtol=1e-5)


def test_to_planes_layer_without_pooling_is_stylegan2_to_rgb_per_plane():
    c, w_dim = 4, 6
    layer = PlaneLayer(c, 3, w_dim, R, aware=False, demodulate=False)
    rng = torch.Generator().manual_seed(3)
    planes, w = torch.randn(2, 3, c, R, R, generator=rng), torch.randn(2, w_dim, generator=rng)
    out = layer(planes, w)
    for p in range(3):
        plain = ToPlanes(c, 3, w_dim)
        with torch.no_grad():
            plain.conv.weight.copy_(layer.weight)
            plain.conv.affine.weight.copy_(layer.affine.weight[p * c:(p + 1) * c])
            plain.conv.affine.bias.copy_(layer.affine.bias[p * c:(p + 1) * c])
        torch.testing.assert_close(out[:, p], plain(planes[:, p], w), atol=1e-5, rtol=1e-5)


def test_branch_returns_coarse_planes_and_detail_planes_at_twice_the_resolution():
    branch = AwareBranch(channels=4, w_dim=6, plane_resolution=R)
    rng = torch.Generator().manual_seed(4)
    skips = [torch.randn(2, 3, 4, r, r, generator=rng) for r in branch.resolutions]
    ws = [torch.randn(2, 6, generator=rng) for _ in branch.resolutions]
    coarse = branch.coarse(skips, ws, "random", rng)
    assert coarse.shape == (2, 3, 4, R, R)
    assert branch.detail(coarse, ws[-1], "const", None).shape == (2, 3, 4, 2 * R, 2 * R)
    with pytest.raises(ValueError, match="expected 2 skip images"):
        branch.coarse(skips[:1], ws[:1], "const", None)

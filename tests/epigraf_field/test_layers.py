"""StyleGAN2 building blocks against plain reference implementations."""

import math

import pytest
import torch
import torch.nn.functional as F

from epigraf_field.layers import (
    EqualizedConv2d,
    EqualizedLinear,
    ModulatedConv2d,
    apply_activation,
    blur_2d,
    downsample_2d,
    lowpass_filter,
    modulated_conv2d,
    resampled_conv2d,
    upsample_2d,
)


def reference_upfirdn(x, taps, up, down, pad0, pad1, gain=1.0):
    """Zero insertion, zero padding, full 2D FIR, decimation: the textbook definition."""
    b, c, h, w = x.shape
    if up > 1:
        z = x.new_zeros(b, c, h * up, w * up)
        z[:, :, ::up, ::up] = x
        x = z
    x = F.pad(x, (pad0, pad1, pad0, pad1))
    kernel = torch.outer(taps, taps).flip(0, 1) * gain
    y = F.conv2d(x.reshape(b * c, 1, *x.shape[2:]), kernel[None, None])
    y = y[:, :, ::down, ::down]
    return y.reshape(b, c, *y.shape[2:])


def test_lowpass_filter_is_normalized_binomial():
    f = lowpass_filter()
    assert torch.allclose(f, torch.tensor([1.0, 3.0, 3.0, 1.0]) / 8)


@pytest.mark.parametrize("size", [4, 7])
def test_resampling_matches_reference(rng, size):
    x = torch.randn(2, 3, size, size, generator=rng)
    f = lowpass_filter()
    assert torch.allclose(upsample_2d(x), reference_upfirdn(x, f, 2, 1, 2, 1, 4.0), atol=1e-6)
    assert torch.allclose(blur_2d(x, padding=(2, 1)), reference_upfirdn(x, f, 1, 1, 2, 1), atol=1e-6)
    if size % 2 == 0:
        assert torch.allclose(downsample_2d(x), reference_upfirdn(x, f, 1, 2, 1, 1), atol=1e-6)


def test_upsample_keeps_constants_in_the_interior():
    y = upsample_2d(torch.full((1, 2, 6, 6), 3.0))
    assert y.shape == (1, 2, 12, 12)
    assert torch.allclose(y[:, :, 1:-1, 1:-1], torch.tensor(3.0))
    assert y[0, 0, 0, 0] < 3.0  # zero padding outside the image


def test_lrelu_gain():
    y = apply_activation(torch.tensor([-1.0, 2.0]), "lrelu")
    assert torch.allclose(y, torch.tensor([-0.2, 2.0]) * math.sqrt(2))
    with pytest.raises(ValueError, match="activation"):
        apply_activation(torch.zeros(1), "gelu")


def test_equalized_linear_uses_runtime_gain(rng):
    layer = EqualizedLinear(8, 4, lr_multiplier=0.01, bias_init=1.0)
    x = torch.randn(3, 8, generator=rng)
    expected = x @ (layer.weight * 0.01 / math.sqrt(8)).t() + layer.bias * 0.01
    assert torch.allclose(layer(x), expected, atol=1e-6)


def test_equalized_conv_down_is_blur_then_strided_conv(rng):
    conv = EqualizedConv2d(3, 5, 3, down=2)
    x = torch.randn(2, 3, 8, 8, generator=rng)
    y = conv(x)
    assert y.shape == (2, 5, 4, 4)
    weight = conv.weight * conv.weight_gain
    ref = F.conv2d(reference_upfirdn(x, lowpass_filter(), 1, 1, 2, 2), weight, stride=2) + conv.bias.view(1, -1, 1, 1)
    assert torch.allclose(y, ref, atol=1e-5)


@pytest.mark.parametrize("kernel", [1, 3])
def test_equalized_conv_up_and_skip_shapes(rng, kernel):
    x = torch.randn(2, 4, 4, 4, generator=rng)
    assert EqualizedConv2d(4, 6, kernel, up=2)(x).shape == (2, 6, 8, 8)
    assert EqualizedConv2d(4, 6, kernel, down=2, bias=False)(x).shape == (2, 6, 2, 2)


def test_upsampling_conv_equals_upsample_then_conv_in_the_interior(rng):
    x = torch.randn(2, 6, 8, 8, generator=rng)
    w = torch.randn(5, 6, 3, 3, generator=rng)
    fused = resampled_conv2d(x, w, up=2)
    plain = F.conv2d(upsample_2d(x), w, padding=1)
    assert fused.shape == plain.shape == (2, 5, 16, 16)
    assert torch.allclose(fused[:, :, 3:-3, 3:-3], plain[:, :, 3:-3, 3:-3], atol=1e-4)


@pytest.mark.parametrize("up", [1, 2])
def test_fused_and_unfused_modulated_conv_agree(rng, up):
    x = torch.randn(3, 8, 6, 6, generator=rng)
    weight = torch.randn(4, 8, 3, 3, generator=rng)
    styles = torch.randn(3, 8, generator=rng)
    a = modulated_conv2d(x, weight, styles, up=up, fused=True)
    b = modulated_conv2d(x, weight, styles, up=up, fused=False)
    assert a.shape == (3, 4, 6 * up, 6 * up)
    assert torch.allclose(a, b, atol=1e-4)


def test_demodulation_gives_unit_output_std(rng):
    torch.manual_seed(0)  # module init only; data below uses the explicit rng
    conv = ModulatedConv2d(64, 64, 3, style_dim=16)
    x = torch.randn(4, 64, 16, 16, generator=rng)
    w = torch.randn(4, 16, generator=rng) * 3.0
    y = conv(x, w)[:, :, 1:-1, 1:-1]
    assert 0.85 < y.std().item() < 1.15
    undemodulated = ModulatedConv2d(64, 64, 3, style_dim=16, demodulate=False)
    undemodulated.load_state_dict(conv.state_dict())
    assert undemodulated(x, w).std().item() > 1.5  # styles of scale ~3 are not normalized away


def test_modulated_conv_gradients(rng):
    conv = ModulatedConv2d(4, 4, 3, style_dim=8, up=2)
    x = torch.randn(2, 4, 4, 4, generator=rng, requires_grad=True)
    w = torch.randn(2, 8, generator=rng, requires_grad=True)
    conv(x, w).square().mean().backward()
    for tensor in (x, w, conv.weight, conv.affine.weight):
        assert tensor.grad is not None and torch.isfinite(tensor.grad).all() and tensor.grad.abs().sum() > 0


@pytest.mark.parametrize("size", [5, 8])
def test_depthwise_resampling_matches_reference_for_asymmetric_taps(rng, size):
    """An asymmetric filter catches a flipped kernel or a swapped axis in the depthwise FIR paths."""
    x = torch.randn(2, 5, size, size, generator=rng)
    f = torch.tensor([1.0, 2.0, 4.0, 1.0]) / 8
    assert torch.allclose(upsample_2d(x, filter=f), reference_upfirdn(x, f, 2, 1, 2, 1, 4.0), atol=1e-6)
    assert torch.allclose(blur_2d(x, f, padding=(2, 1)), reference_upfirdn(x, f, 1, 1, 2, 1), atol=1e-6)
    assert torch.allclose(blur_2d(x, f, padding=(1, 1), gain=3.0), reference_upfirdn(x, f, 1, 1, 1, 1, 3.0), atol=1e-5)
    if size % 2 == 0:
        assert torch.allclose(downsample_2d(x, filter=f), reference_upfirdn(x, f, 1, 2, 1, 1), atol=1e-6)
    # Every channel is filtered alike and on its own: a one-channel run gives the same plane.
    assert torch.allclose(upsample_2d(x[:, 3:4], filter=f), upsample_2d(x, filter=f)[:, 3:4], atol=1e-6)


@pytest.mark.parametrize("up", [1, 2])
def test_modulated_conv_parts_compose_to_the_modulated_conv(rng, up):
    from epigraf_field.layers import modulated_conv2d_parts

    x = torch.randn(3, 4, 6, 6, generator=rng)
    weight = torch.randn(5, 4, 3, 3, generator=rng)
    styles = torch.randn(3, 4, generator=rng)
    y, dcoefs = modulated_conv2d_parts(x, weight, styles, up=up, fused=False)
    assert dcoefs.shape == (3, 5)
    expected = modulated_conv2d(x, weight, styles, up=up, fused=True)
    assert torch.allclose(y * dcoefs[:, :, None, None], expected, atol=1e-5)
    y_fused, none = modulated_conv2d_parts(x, weight, styles, up=up, fused=True)
    assert none is None and torch.allclose(y_fused, expected, atol=1e-5)
    y_plain, none = modulated_conv2d_parts(x, weight, styles, demodulate=False, fused=False)
    assert none is None and not torch.allclose(y_plain, modulated_conv2d(x, weight, styles, fused=False))

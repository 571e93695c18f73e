"""StyleGAN2 building blocks: equalized-lr layers, modulated convolution and FIR resampling."""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from jaxtyping import Float
from torch import Tensor, nn

from epigraf_field.winograd import use_winograd, winograd_conv2d_3x3

Activation = Literal["linear", "lrelu"]

LRELU_SLOPE = 0.2
# StyleGAN2 keeps activations at unit variance: sqrt(2) after a leaky ReLU (Karras et al. 2020, App. B).
ACTIVATION_GAINS = {"linear": 1.0, "lrelu": math.sqrt(2.0)}
DEFAULT_TAPS = (1.0, 3.0, 3.0, 1.0)


def _check_activation(activation: str) -> None:
    if activation not in ACTIVATION_GAINS:
        raise ValueError(f"activation must be one of {sorted(ACTIVATION_GAINS)}, got {activation!r}")


def apply_activation(
    x: Tensor, activation: str = "linear", gain: float = 1.0, clamp: float | None = None
) -> Tensor:
    """Activation followed by StyleGAN2's gain and an optional symmetric clamp.

    Example: ``apply_activation(torch.tensor([-1.0, 1.0]), "lrelu")`` gives
    ``[-0.2 * sqrt(2), sqrt(2)]``.
    """
    _check_activation(activation)
    if activation == "lrelu":
        x = F.leaky_relu(x, LRELU_SLOPE)
    total_gain = ACTIVATION_GAINS[activation] * gain
    if total_gain != 1.0:
        x = x * total_gain
    if clamp is not None:
        x = x.clamp(-clamp, clamp)
    return x


def lowpass_filter(
    taps: tuple[float, ...] = DEFAULT_TAPS,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> Float[Tensor, " k"]:
    """The 1D factor of a separable low-pass FIR filter, normalized to sum 1.

    The 2D filter is ``outer(f, f)``; the default taps are StyleGAN2's binomial ``[1, 3, 3, 1]``.

    Example: ``lowpass_filter()`` is ``tensor([0.125, 0.375, 0.375, 0.125])``.
    """
    f = torch.as_tensor(taps, dtype=dtype, device=device)
    if f.ndim != 1 or f.numel() == 0:
        raise ValueError(f"taps must be a non-empty 1D sequence, got {taps!r}")
    return f / f.sum()


def _fir_kernel(f: Tensor, channels: int, dtype: torch.dtype, device: torch.device, gain: float = 1.0) -> Tensor:
    """The 2D filter ``outer(f, f) * gain`` as a depthwise weight [channels, 1, k, k] (a view, no copy)."""
    k = f.to(dtype=dtype, device=device)
    kernel = torch.outer(k, k) * gain if gain != 1.0 else torch.outer(k, k)
    return kernel[None, None].expand(channels, 1, -1, -1)


def _depthwise_fir(x: Tensor, f: Tensor, stride: int = 1, padding: tuple[int, int] = (0, 0), gain: float = 1.0) -> Tensor:
    """2D FIR filter ``outer(f, f)`` of every channel alike, zero padding ``(before, after)``, optional stride.

    One depthwise convolution (groups = channels) with the full 2D kernel: on CPU this is several
    times faster, forward and backward, than folding channels into the batch and filtering
    single-channel planes (oneDNN's depthwise kernels vectorize over channels), and faster than two
    separable depthwise passes, which write an intermediate tensor. Symmetric padding goes into the
    convolution itself, which saves the copy of ``F.pad``.
    """
    c = x.shape[1]
    # conv2d is a correlation; flip to get a true convolution (a no-op for symmetric taps).
    kernel = _fir_kernel(f.flip(0), c, x.dtype, x.device, gain)
    p0, p1 = padding
    if p0 == p1:
        return F.conv2d(x, kernel, stride=stride, padding=p0, groups=c)
    return F.conv2d(F.pad(x, (p0, p1, p0, p1)), kernel, stride=stride, groups=c)


def blur_2d(
    x: Float[Tensor, "b c h w"],
    filter: Float[Tensor, " k"] | None = None,
    padding: int | tuple[int, int] = 0,
    gain: float = 1.0,
) -> Float[Tensor, "b c h2 w2"]:
    """Separable FIR low-pass filter of every channel, zero padding ``(before, after)`` per axis.

    With the default 4-tap filter and ``padding=(2, 1)`` the output has the input's size.

    Example: ``blur_2d(torch.ones(1, 1, 4, 4), padding=(2, 1))`` is 1 in the interior and
    smaller at the zero-padded borders.
    """
    f = lowpass_filter(device=x.device, dtype=x.dtype) if filter is None else filter
    p0, p1 = (padding, padding) if isinstance(padding, int) else padding
    return _depthwise_fir(x, f, padding=(p0, p1), gain=gain)


def upsample_2d(
    x: Float[Tensor, "b c h w"],
    factor: int = 2,
    filter: Float[Tensor, " k"] | None = None,
    gain: float = 1.0,
) -> Float[Tensor, "b c h2 w2"]:
    """Upsample by an integer ``factor``: zero insertion, then the FIR low-pass (StyleGAN2 upfirdn).

    The output is ``factor`` times larger on each axis; the filter is scaled by ``factor**2`` so a
    constant image stays constant away from the border (zero padding outside the image).

    Example: ``upsample_2d(torch.ones(1, 1, 4, 4)).shape == (1, 1, 8, 8)``, with value 1 in the
    interior.
    """
    if factor < 1:
        raise ValueError(f"factor must be a positive integer, got {factor}")
    if factor == 1:
        return x * gain if gain != 1.0 else x
    f = lowpass_filter(device=x.device, dtype=x.dtype) if filter is None else filter
    b, c, h, w = x.shape
    taps = f.shape[0]
    # Zero insertion + filtering as one strided depthwise transposed convolution (groups = channels).
    kernel = _fir_kernel(f, c, x.dtype, x.device, gain=float(factor * factor) * gain)
    # Same centring as upfirdn2d with pad (taps + factor - 1) // 2 before and (taps - factor) // 2 after.
    pad0 = (taps + factor - 1) // 2
    crop0 = taps - 1 - pad0
    y = F.conv_transpose2d(x, kernel, stride=factor, groups=c)
    return y[:, :, crop0 : crop0 + h * factor, crop0 : crop0 + w * factor]


def downsample_2d(
    x: Float[Tensor, "b c h w"],
    factor: int = 2,
    filter: Float[Tensor, " k"] | None = None,
    gain: float = 1.0,
) -> Float[Tensor, "b c h2 w2"]:
    """Downsample by an integer ``factor``: FIR low-pass, then keep every ``factor``-th sample.

    Example: ``downsample_2d(torch.ones(1, 1, 8, 8)).shape == (1, 1, 4, 4)``.
    """
    if factor < 1:
        raise ValueError(f"factor must be a positive integer, got {factor}")
    if factor == 1:
        return x * gain if gain != 1.0 else x
    f = lowpass_filter(device=x.device, dtype=x.dtype) if filter is None else filter
    taps = f.shape[0]
    pad0 = (taps - factor + 1) // 2
    pad1 = (taps - factor) // 2
    return _depthwise_fir(x, f, stride=factor, padding=(pad0, pad1), gain=gain)


class EqualizedLinear(nn.Module):
    """Fully connected layer with equalized learning rate (StyleGAN, Karras et al. 2019, Sec. 4.1).

    Weights are stored as N(0, 1) / lr_multiplier and scaled at run time by
    ``lr_multiplier / sqrt(in_features)``, so every layer learns at the same speed under Adam.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        lr_multiplier: float = 1.0,
        activation: Activation = "linear",
        bias_init: float = 0.0,
    ) -> None:
        super().__init__()
        _check_activation(activation)
        self.in_features = in_features
        self.out_features = out_features
        self.activation = activation
        self.weight = nn.Parameter(torch.randn(out_features, in_features) / lr_multiplier)
        self.bias = nn.Parameter(torch.full((out_features,), float(bias_init))) if bias else None
        self.weight_gain = lr_multiplier / math.sqrt(in_features)
        self.bias_gain = lr_multiplier

    def forward(self, x: Float[Tensor, "*batch cin"]) -> Float[Tensor, "*batch cout"]:
        weight = self.weight * self.weight_gain
        bias = None if self.bias is None else (self.bias * self.bias_gain if self.bias_gain != 1 else self.bias)
        x = F.linear(x, weight.to(x.dtype), None if bias is None else bias.to(x.dtype))
        return apply_activation(x, self.activation)

    def extra_repr(self) -> str:
        return f"in={self.in_features}, out={self.out_features}, activation={self.activation}"


class EqualizedConv2d(nn.Module):
    """2D convolution with equalized learning rate and FIR-filtered up/downsampling (StyleGAN2).

    ``up=2`` upsamples with the low-pass filter before the convolution; ``down=2`` blurs and then
    convolves with stride 2 (Karras et al. 2020, "Analyzing and Improving ...", App. B).
    Output size: ``h * up // down`` for odd kernels.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        activation: Activation = "linear",
        up: int = 1,
        down: int = 1,
        bias: bool = True,
        conv_clamp: float | None = None,
        lr_multiplier: float = 1.0,
    ) -> None:
        super().__init__()
        _check_activation(activation)
        if kernel_size % 2 != 1:
            raise ValueError(f"kernel_size must be odd (same-size output), got {kernel_size}")
        if up > 1 and down > 1:
            raise ValueError(f"use either up or down, got up={up}, down={down}")
        self.in_channels, self.out_channels, self.kernel_size = in_channels, out_channels, kernel_size
        self.activation, self.up, self.down, self.conv_clamp = activation, up, down, conv_clamp
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size) / lr_multiplier)
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        self.weight_gain = lr_multiplier / math.sqrt(in_channels * kernel_size * kernel_size)
        self.bias_gain = lr_multiplier
        self.register_buffer("filter", lowpass_filter(), persistent=False)

    def forward(self, x: Float[Tensor, "b cin h w"], gain: float = 1.0) -> Float[Tensor, "b cout h2 w2"]:
        weight = (self.weight * self.weight_gain).to(x.dtype)
        bias = None if self.bias is None else (self.bias * self.bias_gain).to(x.dtype)
        x = resampled_conv2d(x, weight, up=self.up, down=self.down, filter=self.filter)
        if bias is not None:
            x = x + bias.view(1, -1, 1, 1)
        clamp = None if self.conv_clamp is None else self.conv_clamp * gain
        return apply_activation(x, self.activation, gain=gain, clamp=clamp)

    def extra_repr(self) -> str:
        return (
            f"in={self.in_channels}, out={self.out_channels}, kernel={self.kernel_size}, "
            f"activation={self.activation}, up={self.up}, down={self.down}"
        )


def _upsampling_conv2d(x: Tensor, weight: Tensor, up: int, filter: Tensor | None, groups: int) -> Tensor:
    """Zero insertion + convolution as one strided transposed convolution, then the FIR low-pass.

    The transposed convolution touches each input pixel once, so this costs a quarter of
    "upsample, then convolve at the output resolution" for ``up=2`` (StyleGAN2's fused path).
    """
    f = lowpass_filter(device=x.device, dtype=x.dtype) if filter is None else filter
    cout, cin_g, k, _ = weight.shape
    # conv_transpose2d wants [cin, cout/groups, k, k] and correlates with the flipped kernel; the
    # flip makes it equal to a plain convolution of the zero-inserted input with ``weight``.
    w_t = weight.reshape(groups, cout // groups, cin_g, k, k).transpose(1, 2)
    w_t = w_t.reshape(groups * cin_g, cout // groups, k, k).flip(2, 3)
    y = F.conv_transpose2d(x, w_t, stride=up, groups=groups)
    # (h - 1) * up + k samples; the blur pad brings them to exactly h * up.
    total = up - k + f.shape[0] - 1
    return blur_2d(y, f, padding=((total + 1) // 2, total // 2), gain=float(up * up))


def resampled_conv2d(
    x: Float[Tensor, "b cin h w"],
    weight: Float[Tensor, "cout cin_g k k"],
    up: int = 1,
    down: int = 1,
    filter: Float[Tensor, " t"] | None = None,
    groups: int = 1,
) -> Float[Tensor, "b cout h2 w2"]:
    """Same-padded convolution with optional FIR upsampling before or FIR downsampling around it.

    For ``down`` the blur and the stride-``down`` convolution are fused into one padded pass (the
    blur pad makes the output exactly ``h // down``); for 1x1 kernels the cheaper order is used
    (resample the side with fewer channels).
    """
    k = weight.shape[-1]
    if up > 1:
        if k == 1:
            if weight.shape[0] < x.shape[1]:
                return upsample_2d(F.conv2d(x, weight, groups=groups), up, filter)
            return F.conv2d(upsample_2d(x, up, filter), weight, groups=groups)
        return _upsampling_conv2d(x, weight, up, filter, groups)
    if down > 1:
        if k == 1:
            if weight.shape[0] < x.shape[1]:
                return downsample_2d(F.conv2d(x, weight, groups=groups), down, filter)
            return F.conv2d(downsample_2d(x, down, filter), weight, groups=groups)
        f = lowpass_filter(device=x.device, dtype=x.dtype) if filter is None else filter
        taps = f.shape[0]
        # Blur pad p gives h + 2p - taps + 1 samples; the valid strided conv then yields h // down.
        total = (taps - down) + (k - 1)
        p0, p1 = (total + 1) // 2, total // 2
        return F.conv2d(blur_2d(x, f, padding=(p0, p1)), weight, stride=down, groups=groups)
    if use_winograd(x, weight, groups):
        return winograd_conv2d_3x3(x, weight)
    return F.conv2d(x, weight, padding=k // 2, groups=groups)


def modulated_conv2d_parts(
    x: Float[Tensor, "b cin h w"],
    weight: Float[Tensor, "cout cin k k"],
    styles: Float[Tensor, "b cin"],
    demodulate: bool = True,
    up: int = 1,
    filter: Float[Tensor, " t"] | None = None,
    fused: bool | None = None,
    eps: float = 1e-8,
) -> tuple[Float[Tensor, "b cout h2 w2"], Float[Tensor, "b cout"] | None]:
    """:func:`modulated_conv2d` with the demodulation left to the caller: ``(y, dcoefs)``.

    The modulated convolution is ``y * dcoefs[:, :, None, None]`` (``dcoefs`` None: ``y`` itself).
    Returning the factor lets a caller fold it into its own bias/noise/activation pass instead of
    spending a separate pass over the activations on it (the unfused, shared-weight path).
    With ``fused`` the demodulation is part of the per-sample weights and ``dcoefs`` is None.
    """
    b, cin, h, w = x.shape
    cout = weight.shape[0]
    styles = styles.to(x.dtype)
    weight = weight.to(x.dtype)
    dcoefs = None
    if demodulate:
        # sum over (cin, k, k) of (s_i w_oik)^2 = sum_i s_i^2 * (sum_k w_oik^2)
        dcoefs = torch.rsqrt(styles.square() @ weight.square().sum(dim=(2, 3)).t() + eps)  # [b, cout]
    if fused is None:
        fused = b == 1
    if not fused:
        x = x * styles.view(b, cin, 1, 1)
        return resampled_conv2d(x, weight, up=up, filter=filter), dcoefs
    w_batch = weight.unsqueeze(0) * styles.view(b, 1, cin, 1, 1)
    if dcoefs is not None:
        w_batch = w_batch * dcoefs.view(b, cout, 1, 1, 1)
    x = x.reshape(1, b * cin, h, w)
    x = resampled_conv2d(x, w_batch.reshape(b * cout, cin, *weight.shape[2:]), up=up, filter=filter, groups=b)
    return x.reshape(b, cout, x.shape[-2], x.shape[-1]), None


def modulated_conv2d(
    x: Float[Tensor, "b cin h w"],
    weight: Float[Tensor, "cout cin k k"],
    styles: Float[Tensor, "b cin"],
    demodulate: bool = True,
    up: int = 1,
    filter: Float[Tensor, " t"] | None = None,
    fused: bool | None = None,
    eps: float = 1e-8,
) -> Float[Tensor, "b cout h2 w2"]:
    """StyleGAN2 modulated convolution with weight demodulation (Karras et al. 2020, Eqs. 1-3).

    ``w'_ijk = s_i * w_ijk`` and, if ``demodulate``, ``w''_ijk = w'_ijk / sqrt(sum_ik w'_ijk^2 + eps)``,
    so unit-variance inputs give unit-variance outputs. ``weight`` already includes the
    equalized-lr gain. ``fused=True`` builds one weight per sample and runs a single grouped
    convolution (batch folded into groups); ``fused=False`` scales the activations instead
    (mathematically identical, one shared-weight convolution: usually faster for training on CPU,
    where grouped convolutions with large groups are slow). ``None`` picks fused for batch 1.
    """
    y, dcoefs = modulated_conv2d_parts(x, weight, styles, demodulate, up, filter, fused, eps)
    return y * dcoefs[:, :, None, None] if dcoefs is not None else y


class ModulatedConv2d(nn.Module):
    """Modulated (and by default demodulated) convolution whose styles come from a latent ``w``.

    Holds the equalized-lr conv weight and the affine map ``w -> styles`` (bias initialised to 1,
    as in StyleGAN2). No bias or activation: the synthesis layer adds noise, bias and activation.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        style_dim: int,
        demodulate: bool = True,
        up: int = 1,
        fused: bool | None = None,
    ) -> None:
        super().__init__()
        if kernel_size % 2 != 1:
            raise ValueError(f"kernel_size must be odd (same-size output), got {kernel_size}")
        self.in_channels, self.out_channels, self.kernel_size = in_channels, out_channels, kernel_size
        self.style_dim, self.demodulate, self.up, self.fused = style_dim, demodulate, up, fused
        self.affine = EqualizedLinear(style_dim, in_channels, bias_init=1.0)
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.weight_gain = 1.0 / math.sqrt(in_channels * kernel_size * kernel_size)
        self.register_buffer("filter", lowpass_filter(), persistent=False)

    def forward(
        self, x: Float[Tensor, "b cin h w"], w: Float[Tensor, "b wdim"], style_gain: float = 1.0
    ) -> Float[Tensor, "b cout h2 w2"]:
        y, dcoefs = self.forward_parts(x, w, style_gain)
        return y * dcoefs[:, :, None, None] if dcoefs is not None else y

    def forward_parts(
        self, x: Float[Tensor, "b cin h w"], w: Float[Tensor, "b wdim"], style_gain: float = 1.0
    ) -> tuple[Float[Tensor, "b cout h2 w2"], Float[Tensor, "b cout"] | None]:
        """``(y, dcoefs)`` of :func:`modulated_conv2d_parts`: the output is ``y * dcoefs``."""
        styles = self.affine(w)
        if style_gain != 1.0:
            styles = styles * style_gain
        weight = self.weight if self.demodulate else self.weight * self.weight_gain
        # With demodulation the constant weight gain cancels out, so it is skipped.
        return modulated_conv2d_parts(
            x, weight, styles, demodulate=self.demodulate, up=self.up, filter=self.filter, fused=self.fused
        )

    def extra_repr(self) -> str:
        return (
            f"in={self.in_channels}, out={self.out_channels}, kernel={self.kernel_size}, "
            f"style_dim={self.style_dim}, demodulate={self.demodulate}, up={self.up}"
        )

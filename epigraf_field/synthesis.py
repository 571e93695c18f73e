"""StyleGAN2 skip-architecture synthesis network whose output is a tri-plane [b, 3, C, R, R]."""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from jaxtyping import Float
from torch import Tensor, nn

from epigraf_field.layers import ACTIVATION_GAINS, LRELU_SLOPE, ModulatedConv2d, upsample_2d

NoiseMode = Literal["random", "const", "none"]
NOISE_MODES = ("random", "const", "none")


def channels_at(resolution: int, channel_base: int, channel_max: int) -> int:
    """StyleGAN2's width rule: ``min(channel_base // resolution, channel_max)``."""
    return min(channel_base // resolution, channel_max)


class SynthesisLayer(nn.Module):
    """Modulated 3x3 conv, per-pixel noise, bias and leaky ReLU (StyleGAN2 Fig. 2d)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        w_dim: int,
        resolution: int,
        up: int = 1,
        use_noise: bool = True,
        conv_clamp: float | None = None,
    ) -> None:
        super().__init__()
        self.resolution, self.use_noise, self.conv_clamp = resolution, use_noise, conv_clamp
        self.conv = ModulatedConv2d(in_channels, out_channels, 3, w_dim, demodulate=True, up=up)
        self.bias = nn.Parameter(torch.zeros(out_channels))
        if use_noise:
            # The fixed noise image used by noise_mode='const' (evaluation, bit-exact reloads).
            self.register_buffer("noise_const", torch.randn(resolution, resolution))
            self.noise_strength = nn.Parameter(torch.zeros([]))

    def forward(
        self,
        x: Float[Tensor, "b cin h w"],
        w: Float[Tensor, "b wdim"],
        noise_mode: NoiseMode = "random",
        rng: torch.Generator | None = None,
    ) -> Float[Tensor, "b cout h2 w2"]:
        y, dcoefs = self.conv.forward_parts(x, w)
        noise = None
        if self.use_noise and noise_mode != "none":
            if noise_mode == "random":
                noise = torch.randn(
                    y.shape[0], 1, self.resolution, self.resolution, generator=rng,
                    device=y.device, dtype=y.dtype,
                )
            else:
                noise = self.noise_const.to(y.dtype)
        return fused_layer_epilogue(y, dcoefs, noise, self.noise_strength if noise is not None else None,
                                    self.bias, self.conv_clamp)


def fused_layer_epilogue(
    y: Float[Tensor, "b c h w"],
    dcoefs: Float[Tensor, "b c"] | None,
    noise: Float[Tensor, "*nb h w"] | None,
    noise_strength: Tensor | None,
    bias: Float[Tensor, " c"],
    clamp: float | None = None,
) -> Float[Tensor, "b c h w"]:
    """``lrelu(y * dcoefs + noise * strength + bias) * sqrt(2)``, clamped: StyleGAN2's layer tail.

    Three passes over the activations instead of five: the leaky ReLU is positively homogeneous,
    so its gain is folded into the (per-channel, per-sample) demodulation factors, the bias and
    the noise strength, and demodulation and bias share one ``addcmul``. The activation runs in
    place on that fresh tensor. Same values as the unfused order up to float rounding.

    Example: with ``dcoefs`` 1, no noise and zero bias it equals ``apply_activation(y, "lrelu")``.
    """
    gain = ACTIVATION_GAINS["lrelu"]
    b, c = y.shape[:2]
    bias_g = (bias.to(y.dtype) * gain).view(1, c, 1, 1)
    if dcoefs is not None:
        x = torch.addcmul(bias_g, y, (dcoefs * gain).view(b, c, 1, 1))
    else:
        x = torch.add(bias_g, y, alpha=gain)
    if noise is not None:
        # In place on a tensor made just above; addcmul's backward needs neither operand's old value of x.
        x = x.addcmul_(noise, noise_strength.to(y.dtype) * gain)
    x = F.leaky_relu_(x, LRELU_SLOPE)
    if clamp is not None:
        x = x.clamp(-clamp, clamp)
    return x


class ToPlanes(nn.Module):
    """1x1 modulated conv without demodulation to the 3*C plane channels (StyleGAN2's toRGB)."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, conv_clamp: float | None = None) -> None:
        super().__init__()
        self.conv_clamp = conv_clamp
        self.conv = ModulatedConv2d(in_channels, out_channels, 1, w_dim, demodulate=False)
        self.bias = nn.Parameter(torch.zeros(out_channels))

    def forward(self, x: Float[Tensor, "b cin h w"], w: Float[Tensor, "b wdim"]) -> Float[Tensor, "b cout h w"]:
        x = self.conv(x, w) + self.bias.to(x.dtype).view(1, -1, 1, 1)
        return x.clamp(-self.conv_clamp, self.conv_clamp) if self.conv_clamp is not None else x


class SynthesisBlock(nn.Module):
    """One resolution: (constant input | 2x upsampling conv), a conv, and a skip toPlanes output."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        w_dim: int,
        resolution: int,
        plane_channels_total: int,
        use_noise: bool = True,
        conv_clamp: float | None = None,
    ) -> None:
        super().__init__()
        self.resolution = resolution
        self.is_first = in_channels == 0
        if self.is_first:
            self.const = nn.Parameter(torch.randn(out_channels, resolution, resolution))
            self.conv0 = None
        else:
            self.conv0 = SynthesisLayer(in_channels, out_channels, w_dim, resolution, 2, use_noise, conv_clamp)
        self.conv1 = SynthesisLayer(out_channels, out_channels, w_dim, resolution, 1, use_noise, conv_clamp)
        self.to_planes = ToPlanes(out_channels, plane_channels_total, w_dim, conv_clamp)
        self.num_conv = 1 if self.is_first else 2

    def forward(
        self,
        x: Tensor | None,
        img: Tensor | None,
        ws: Float[Tensor, "b k wdim"],
        noise_mode: NoiseMode,
        rng: torch.Generator | None,
    ) -> tuple[Tensor, Tensor]:
        if self.is_first:
            x = self.const.unsqueeze(0).expand(ws.shape[0], -1, -1, -1)
            x = self.conv1(x, ws[:, 0], noise_mode, rng)
        else:
            x = self.conv0(x, ws[:, 0], noise_mode, rng)
            x = self.conv1(x, ws[:, 1], noise_mode, rng)
        y = self.to_planes(x, ws[:, self.num_conv])
        img = y if img is None else upsample_2d(img) + y
        return x, img


class TriPlaneSynthesis(nn.Module):
    """ws [b, num_ws, w_dim] -> planes [b, 3, C, R, R] in fp32 (StyleGAN2 'skip' generator).

    Blocks run from 4x4 to R x R with ``channels_at(res)`` channels; each block adds its
    toPlanes output to the FIR-upsampled sum of the previous ones. As in StyleGAN2 the toPlanes
    layer of a block shares its w with the next block's first conv, so
    ``num_ws = number of convs + 1``.
    """

    def __init__(
        self,
        w_dim: int,
        plane_resolution: int,
        plane_channels: int,
        channel_base: int,
        channel_max: int,
        num_planes: int = 3,
        use_noise: bool = True,
        conv_clamp: float | None = None,
        start_resolution: int = 4,
    ) -> None:
        super().__init__()
        log2_r = math.log2(plane_resolution)
        if plane_resolution < start_resolution or not log2_r.is_integer():
            raise ValueError(f"plane_resolution must be a power of two >= {start_resolution}, got {plane_resolution}")
        self.w_dim, self.plane_resolution, self.plane_channels = w_dim, plane_resolution, plane_channels
        self.num_planes = num_planes
        self.resolutions = [
            2**i for i in range(int(math.log2(start_resolution)), int(log2_r) + 1)
        ]
        blocks = []
        in_channels = 0
        for res in self.resolutions:
            out_channels = channels_at(res, channel_base, channel_max)
            if out_channels < 1:
                raise ValueError(
                    f"channel_base={channel_base} gives no channels at resolution {res}; raise channel_base"
                )
            blocks.append(
                SynthesisBlock(in_channels, out_channels, w_dim, res, num_planes * plane_channels, use_noise, conv_clamp)
            )
            in_channels = out_channels
        self.blocks = nn.ModuleList(blocks)
        self.num_ws = sum(block.num_conv for block in self.blocks) + 1

    def forward(
        self,
        ws: Float[Tensor, "b num_ws wdim"],
        noise_mode: str = "const",
        rng: torch.Generator | None = None,
    ) -> Float[Tensor, "b p c r r"]:
        if noise_mode not in NOISE_MODES:
            raise ValueError(f"noise_mode must be one of {NOISE_MODES}, got {noise_mode!r}")
        if ws.ndim != 3 or ws.shape[1] != self.num_ws or ws.shape[2] != self.w_dim:
            raise ValueError(f"ws must have shape [b, {self.num_ws}, {self.w_dim}], got {list(ws.shape)}")
        ws = ws.float()
        x = img = None
        w_index = 0
        for block in self.blocks:
            x, img = block(x, img, ws[:, w_index : w_index + block.num_conv + 1], noise_mode, rng)
            w_index += block.num_conv
        b = ws.shape[0]
        r = self.plane_resolution
        return img.float().reshape(b, self.num_planes, self.plane_channels, r, r)

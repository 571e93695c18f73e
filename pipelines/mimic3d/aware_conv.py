"""Mimic3D's 3D-aware convolutions: each plane sees the other two pooled onto it, one shared conv, a style per plane.

Our planes are ordered xy, xz, yz (epigraf_field.field): on each plane the first coordinate runs
along the width (last axis) and the second along the height. Mimic3D (Chen et al. 2023, Sec. 3.2)
orders them xy, yz, zx; the pooling axes below are derived for our order.

For a plane P and another plane Q, Q is mean-pooled along the world axis that P lacks, which
leaves a function of the one axis P and Q share; that function is broadcast over P along P's
other axis. With texel rows as height (H) and columns as width (W):

======  ======================  ================================  ===========================
target  other plane (W, H)      pooled over                       lands on the target as
======  ======================  ================================  ===========================
xy      xz (x, z)               H (z): a function of x            a row, repeated down H
xy      yz (y, z)               H (z): a function of y            a column (y is xy's H)
xz      xy (x, y)               H (y): a function of x            a row, repeated down H
xz      yz (y, z)               W (y): a function of z            a column (z is xz's H)
yz      xy (x, y)               W (x): a function of y            a row (y is yz's W)
yz      xz (x, z)               W (x): a function of z            a column (z is yz's H)
======  ======================  ================================  ===========================

Mimic3D's released weights use its own planes, xy (x, y), yz (y, z), zx (z, x) as (W, H), and
concatenate the three inputs in plane order (a plane's own features in its own slot, not first);
:func:`pool_other_planes_mimic3d` reproduces that for generators with ``plane_axes="xy_yz_zx"``.
There every pooled profile lands transposed: a function of the other plane's width becomes a
column of the target, one of its height a row.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor, nn

from epigraf_field.layers import EqualizedLinear, lowpass_filter, modulated_conv2d_parts
from epigraf_field.synthesis import NoiseMode, fused_layer_epilogue

PLANES = ("xy", "xz", "yz")


def pooled_row(plane: Tensor) -> Tensor:
    """Mean over the height axis, kept as one row [..., c, 1, w]: a function of the width coordinate."""
    return plane.mean(dim=-2, keepdim=True)


def pooled_column(plane: Tensor) -> Tensor:
    """Mean over the width axis, kept as one column [..., c, h, 1]: a function of the height coordinate."""
    return plane.mean(dim=-1, keepdim=True)


def pool_other_planes(planes: Tensor) -> Tensor:
    """Each plane [b, 3, c, h, w] with the other two pooled onto it: [b, 3, 3c, h, w] (itself first, then the
    others in plane order), as in the table of this module's docstring.

    Example: for planes built from ``f(x, y, z) = x`` (xy and xz hold x along their width, yz holds 0), the
    yz plane's second channel block (xy pooled over x onto yz) holds the mean of x, 0 at texel centres.
    """
    if planes.ndim != 5 or planes.shape[1] != 3 or planes.shape[-1] != planes.shape[-2]:
        raise ValueError(f"pool_other_planes: planes must be [b, 3, c, r, r], got {list(planes.shape)}")
    xy, xz, yz = planes.unbind(dim=1)
    size = planes.shape[-1]

    def over(part: Tensor) -> Tensor:
        return part.expand(*part.shape[:-2], size, size)

    on_xy = torch.cat([xy, over(pooled_row(xz)), over(pooled_row(yz).transpose(-1, -2))], dim=1)
    on_xz = torch.cat([xz, over(pooled_row(xy)), over(pooled_column(yz))], dim=1)
    on_yz = torch.cat([yz, over(pooled_column(xy).transpose(-1, -2)), over(pooled_column(xz))], dim=1)
    return torch.stack([on_xy, on_xz, on_yz], dim=1)


def pool_other_planes_mimic3d(planes: Tensor) -> Tensor:
    """Mimic3D's layout: planes [b, 3, c, r, r] ordered xy, yz, zx -> [b, 3, 3c, r, r], each target's input the
    three planes in plane order, the two others pooled along the axis the target lacks.

    Example: for the target yz, xy is pooled over x (its width) into a function of y, which runs along yz's
    width, and zx is pooled over x (its height) into a function of z, which runs along yz's height.
    """
    if planes.ndim != 5 or planes.shape[1] != 3 or planes.shape[-1] != planes.shape[-2]:
        raise ValueError(f"pool_other_planes_mimic3d: planes must be [b, 3, c, r, r], got {list(planes.shape)}")
    xy, yz, zx = planes.unbind(dim=1)
    size = planes.shape[-1]

    def over(part: Tensor) -> Tensor:
        return part.transpose(-1, -2).expand(*part.shape[:-2], size, size)

    on_xy = torch.cat([xy, over(pooled_row(yz)), over(pooled_column(zx))], dim=1)
    on_yz = torch.cat([over(pooled_column(xy)), yz, over(pooled_row(zx))], dim=1)
    on_zx = torch.cat([over(pooled_row(xy)), over(pooled_column(yz)), zx], dim=1)
    return torch.stack([on_xy, on_yz, on_zx], dim=1)


def plane_pooling(plane_axes: str) -> Callable[[Tensor], Tensor]:
    """The pooling of a generator's plane layout: Mimic3D's for ``xy_yz_zx``, else ours (planes xy, xz, yz)."""
    return pool_other_planes_mimic3d if plane_axes == "xy_yz_zx" else pool_other_planes


class PlaneLayer(nn.Module):
    """One modulated convolution run on all three planes with shared weights and one style per plane.

    With ``aware`` the input of each plane is :func:`pool_other_planes` (3 x in_channels); without
    it each plane is convolved alone (Mimic3D's blocks that lift the coarse plane to the detail
    plane). ``demodulate`` layers are 3x3 with per-plane noise, bias and leaky ReLU (StyleGAN2's
    synthesis layer); the others are 1x1 without demodulation or activation (toPlanes).
    """

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, resolution: int, up: int = 1,
                 aware: bool = True, demodulate: bool = True, use_noise: bool = True,
                 conv_clamp: float | None = None, plane_axes: str = "xy_xz_yz") -> None:
        super().__init__()
        self.aware, self.demodulate, self.up, self.conv_clamp = aware, demodulate, up, conv_clamp
        self.pool = plane_pooling(plane_axes)
        self.resolution, self.out_channels = resolution, out_channels
        self.conv_in = in_channels * (3 if aware else 1)
        kernel = 3 if demodulate else 1
        self.affine = EqualizedLinear(w_dim, 3 * self.conv_in, bias_init=1.0)
        self.weight = nn.Parameter(torch.randn(out_channels, self.conv_in, kernel, kernel))
        self.weight_gain = 1.0 / math.sqrt(self.conv_in * kernel * kernel)
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.use_noise = use_noise and demodulate
        if self.use_noise:
            self.register_buffer("noise_const", torch.randn(resolution, resolution))
            self.noise_strength = nn.Parameter(torch.zeros([]))
        self.register_buffer("filter", lowpass_filter(), persistent=False)

    def styles(self, w: Tensor) -> Tensor:
        """Styles [b * 3, conv_in]: one per plane (plane-major), all from the same w."""
        return self.affine(w).reshape(w.shape[0] * 3, self.conv_in)

    def forward(self, planes: Tensor, w: Tensor, noise_mode: NoiseMode = "random",
                rng: torch.Generator | None = None) -> Tensor:
        """planes [b, 3, c, r, r] and w [b, w_dim] -> [b, 3, out_channels, r * up, r * up]."""
        b = planes.shape[0]
        x = self.pool(planes) if self.aware else planes
        x = x.reshape(b * 3, self.conv_in, *x.shape[-2:])
        styles = self.styles(w.float()).to(x.dtype)
        if not self.demodulate:
            y, _ = modulated_conv2d_parts(x, self.weight * self.weight_gain, styles, demodulate=False)
            y = y + self.bias.to(y.dtype).view(1, -1, 1, 1)
            y = y.clamp(-self.conv_clamp, self.conv_clamp) if self.conv_clamp is not None else y
        else:
            y, dcoefs = modulated_conv2d_parts(x, self.weight, styles, demodulate=True, up=self.up,
                                               filter=self.filter)
            noise = None
            if self.use_noise and noise_mode == "random":
                noise = torch.randn(b * 3, 1, self.resolution, self.resolution, generator=rng, device=y.device,
                                    dtype=y.dtype)
            elif self.use_noise and noise_mode == "const":
                noise = self.noise_const.to(y.dtype)
            y = fused_layer_epilogue(y, dcoefs, noise, self.noise_strength if noise is not None else None,
                                     self.bias, self.conv_clamp)
        return y.reshape(b, 3, self.out_channels, *y.shape[-2:])


class PlaneBlock(nn.Module):
    """Two :class:`PlaneLayer` 3x3 convolutions (the first upsamples when ``up == 2``) and a 1x1 toPlanes.

    Its output is the toPlanes result, ``channels`` per plane (Mimic3D's 3D-aware blocks return their
    toRGB image, which the next resolution takes as input).
    """

    def __init__(self, channels: int, w_dim: int, resolution: int, up: int, aware: bool, use_noise: bool,
                 conv_clamp: float | None, plane_axes: str = "xy_xz_yz") -> None:
        super().__init__()
        self.up = up
        size = resolution * up
        self.conv0 = PlaneLayer(channels, channels, w_dim, size, up, aware, True, use_noise, conv_clamp, plane_axes)
        self.conv1 = PlaneLayer(channels, channels, w_dim, size, 1, aware, True, use_noise, conv_clamp, plane_axes)
        self.to_planes = PlaneLayer(channels, channels, w_dim, size, 1, aware, False, False, conv_clamp, plane_axes)

    def forward(self, planes: Tensor, w: Tensor, noise_mode: NoiseMode, rng: torch.Generator | None) -> Tensor:
        x = self.conv1(self.conv0(planes, w, noise_mode, rng), w, noise_mode, rng)
        return self.to_planes(x, w)


class AwareBranch(nn.Module):
    """The narrow 3D-aware branch beside the StyleGAN2 backbone, and the two blocks that lift it to the detail plane.

    At each backbone resolution r (4 .. R) the block takes the backbone's tri-plane skip image at r
    plus the branch's own output so far, and returns planes at 2r (at R: at R, no upsampling);
    its output at R is the coarse tri-plane. Two blocks without pooling then lift it to 2R (the
    detail plane). Every block takes the last w of its backbone block, the detail blocks the last w.
    ``plane_axes`` is the generator's plane layout, which decides the pooling (:func:`plane_pooling`).
    """

    def __init__(self, channels: int, w_dim: int, plane_resolution: int, use_noise: bool = True,
                 conv_clamp: float | None = None, plane_axes: str = "xy_xz_yz") -> None:
        super().__init__()
        self.resolutions = [2**i for i in range(2, int(math.log2(plane_resolution)) + 1)]
        self.blocks = nn.ModuleList(
            PlaneBlock(channels, w_dim, r, 2 if r < plane_resolution else 1, True, use_noise, conv_clamp, plane_axes)
            for r in self.resolutions
        )
        self.detail_blocks = nn.ModuleList([
            PlaneBlock(channels, w_dim, plane_resolution, 2, False, use_noise, conv_clamp),
            PlaneBlock(channels, w_dim, plane_resolution * 2, 1, False, use_noise, conv_clamp),
        ])

    def coarse(self, skips: list[Tensor], block_ws: list[Tensor], noise_mode: NoiseMode,
               rng: torch.Generator | None) -> Tensor:
        """Coarse planes [b, 3, c, R, R] from the backbone's skip images (one per resolution, [b, 3, c, r, r])."""
        if len(skips) != len(self.blocks) or len(block_ws) != len(self.blocks):
            raise ValueError(f"AwareBranch: expected {len(self.blocks)} skip images and ws (resolutions "
                             f"{self.resolutions}), got {len(skips)} and {len(block_ws)}")
        own = None
        for block, skip, w in zip(self.blocks, skips, block_ws):
            own = block(skip if own is None else skip + own, w, noise_mode, rng)
        return own

    def detail(self, coarse: Tensor, w: Tensor, noise_mode: NoiseMode, rng: torch.Generator | None) -> Tensor:
        """Detail planes [b, 3, c, 2R, 2R] lifted from the coarse planes, each plane alone."""
        x = coarse
        for block in self.detail_blocks:
            x = block(x, w, noise_mode, rng)
        return x


"""Winograd F(4x4, 3x3) convolution for wide 3x3 layers on CPU (Lavin & Gray, CVPR 2016)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from jaxtyping import Float
from torch import Tensor

# F(4, 3) on the interpolation points 0, 1, -1, 2, -2 and infinity (Lavin & Gray, Sec. 4.2):
# y = A^T [(G g G^T) * (B^T d B)] A for a 6x6 input tile d and a 3x3 kernel g gives a 4x4 output
# tile of the cross-correlation that conv2d computes.
_B_T = ((4, 0, -5, 0, 1, 0), (0, -4, -4, 1, 1, 0), (0, 4, -4, -1, 1, 0),
        (0, -2, -1, 2, 1, 0), (0, 2, -1, -2, 1, 0), (0, 4, 0, -5, 0, 1))
_G = ((1 / 4, 0, 0), (-1 / 6, -1 / 6, -1 / 6), (-1 / 6, 1 / 6, -1 / 6),
      (1 / 24, 1 / 12, 1 / 6), (1 / 24, -1 / 12, 1 / 6), (0, 0, 1))
_A_T = ((1, 1, 1, 1, 1, 0), (0, 1, -1, 2, -2, 0), (0, 1, 1, 4, 4, 0), (0, 1, -1, 8, -8, 1))

ALGORITHMS = ("auto", "direct", "winograd")
_algorithm = os.environ.get("EPIGRAF_CONV3X3", "auto")
_matrices: dict[tuple[torch.dtype, torch.device], tuple[Tensor, Tensor, Tensor]] = {}


def _transforms(dtype: torch.dtype, device: torch.device) -> tuple[Tensor, Tensor, Tensor]:
    """Kronecker forms of the 2D transforms on row-major flattened tiles: [36, 36], [36, 9], [16, 36]."""
    key = (dtype, device)
    if key not in _matrices:
        b_t, g, a_t = (torch.tensor(m, dtype=torch.float64) for m in (_B_T, _G, _A_T))
        _matrices[key] = tuple(torch.kron(m, m).to(dtype=dtype, device=device) for m in (b_t, g, a_t))
    return _matrices[key]


def winograd_conv2d_3x3(
    x: Float[Tensor, "b cin h w"], weight: Float[Tensor, "cout cin 3 3"]
) -> Float[Tensor, "b cout h w"]:
    """``F.conv2d(x, weight, padding=1)`` computed in the Winograd domain, differentiable by autograd.

    Each 4x4 output tile costs 36 multiply-adds per channel pair instead of 144, so the three
    matrix products of a training step (forward, input gradient, weight gradient) shrink 4x,
    at the price of transforming 6x6 input tiles and 4x4 output tiles. Tiles are laid out
    channels-last so the channel axis stays contiguous through the transforms; the output is a
    channels-last tensor. Rounding differs from the direct convolution by ~1e-6 relative in fp32.
    """
    n, c, h, w = x.shape
    k = weight.shape[0]
    if weight.shape[1:] != (c, 3, 3):
        raise ValueError(f"winograd_conv2d_3x3 needs a [cout, {c}, 3, 3] weight, got {list(weight.shape)}")
    b_kron, g_kron, a_kron = _transforms(x.dtype, x.device)
    th, tw = -(-h // 4), -(-w // 4)
    # 1 pixel of zero padding, plus what completes the last tile.
    padded = F.pad(x.permute(0, 2, 3, 1), (0, 0, 1, 1 + 4 * tw - w, 1, 1 + 4 * th - h))
    tiles = padded.unfold(1, 6, 4).unfold(2, 6, 4)  # [n, th, tw, c, 6, 6], a view
    tiles = tiles.permute(4, 5, 0, 1, 2, 3).reshape(36, n * th * tw * c)
    v = (b_kron @ tiles).view(36, n * th * tw, c)
    u = (g_kron @ weight.reshape(k * c, 9).t()).view(36, k, c)
    m = torch.bmm(v, u.transpose(1, 2))  # [36, tiles, k]
    y = (a_kron @ m.view(36, -1)).view(4, 4, n, th, tw, k)
    y = y.permute(2, 3, 0, 4, 1, 5).reshape(n, 4 * th, 4 * tw, k)[:, :h, :w]
    return y.permute(0, 3, 1, 2)


def use_winograd(x: Tensor, weight: Tensor, groups: int) -> bool:
    """Whether a same-padded stride-1 convolution should take the Winograd path.

    ``auto`` picks it on CPU for fp32 3x3 layers where min(channels in, out) x min(height, width)
    is at least 8192 (128 channels at 64^2, 256 at 32^2, 512 at 16^2): below that the tile
    transforms cost more than the smaller matrix products save (benchmarks/conv.py). The GPU
    libraries choose their own algorithms. ``EPIGRAF_CONV3X3=direct|winograd|auto`` or :func:`conv3x3_algorithm` override.
    """
    if _algorithm not in ALGORITHMS:
        raise ValueError(f"EPIGRAF_CONV3X3={_algorithm!r} is not one of {ALGORITHMS}; unset it or pick one of those")
    if groups != 1 or weight.shape[-2:] != (3, 3) or x.dtype != torch.float32 or _algorithm == "direct":
        return False
    if _algorithm == "winograd":
        return True
    work = min(weight.shape[0], weight.shape[1]) * min(x.shape[-2], x.shape[-1])
    return x.device.type == "cpu" and work >= 8192


@contextlib.contextmanager
def conv3x3_algorithm(name: str) -> Iterator[None]:
    """Temporarily choose how same-padded 3x3 convolutions run: 'auto', 'direct' or 'winograd'."""
    global _algorithm
    if name not in ALGORITHMS:
        raise ValueError(f"conv3x3 algorithm must be one of {ALGORITHMS}, got {name!r}")
    previous, _algorithm = _algorithm, name
    try:
        yield
    finally:
        _algorithm = previous

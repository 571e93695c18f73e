"""Winograd F(4x4, 3x3) convolution for wide 3x3 layers on CPU (Lavin & Gray, CVPR 2016)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any, Final

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
# The choice is read by every thread that convolves (training, the live viewer's render thread), so
# it is never a mutable global: the environment gives an immutable process default, read once at
# import, and conv3x3_algorithm overrides it for one thread (or asyncio task) only. A new thread
# starts without an override.
_DEFAULT_ALGORITHM: Final[str] = os.environ.get("EPIGRAF_CONV3X3", "auto")
_overridden_algorithm: ContextVar[str | None] = ContextVar("epigraf_conv3x3_algorithm", default=None)
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
    """``F.conv2d(x, weight, padding=1)`` computed in the Winograd domain, differentiable to any order.

    Each 4x4 output tile costs 36 multiply-adds per channel pair instead of 144, so the three
    matrix products of a training step (forward, input gradient, weight gradient) shrink 4x,
    at the price of transforming 6x6 input tiles and 4x4 output tiles. Tiles are laid out
    channels-last so the channel axis stays contiguous through the transforms; the output is a
    channels-last tensor. Rounding differs from the direct convolution by ~1e-6 relative in fp32.
    """
    c = x.shape[1]
    if weight.shape[1:] != (c, 3, 3):
        raise ValueError(f"winograd_conv2d_3x3 needs a [cout, {c}, 3, 3] weight, got {list(weight.shape)}")
    return _WinogradConv3x3.apply(x, weight)


def _tile_counts(h: int, w: int) -> tuple[int, int]:
    return -(-h // 4), -(-w // 4)


def _input_tiles(x: Tensor) -> Tensor:
    """B^T d B of every 6x6 input tile (stride 4, 1 pixel of zero padding): [36, tiles, c]."""
    n, c, h, w = x.shape
    th, tw = _tile_counts(h, w)
    b_kron = _transforms(x.dtype, x.device)[0]
    padded = F.pad(x.permute(0, 2, 3, 1), (0, 0, 1, 1 + 4 * tw - w, 1, 1 + 4 * th - h))
    tiles = padded.unfold(1, 6, 4).unfold(2, 6, 4)  # [n, th, tw, c, 6, 6], a view
    tiles = tiles.permute(4, 5, 0, 1, 2, 3).reshape(36, n * th * tw * c)
    return (b_kron @ tiles).view(36, n * th * tw, c)


def _output_from_tiles(m: Tensor, n: int, h: int, w: int) -> Tensor:
    """A^T m A of every tile [36, tiles, k], assembled into a channels-last [n, k, h, w] tensor."""
    th, tw = _tile_counts(h, w)
    k = m.shape[-1]
    a_kron = _transforms(m.dtype, m.device)[2]
    y = (a_kron @ m.reshape(36, -1)).view(4, 4, n, th, tw, k)
    y = y.permute(2, 3, 0, 4, 1, 5).reshape(n, 4 * th, 4 * tw, k)[:, :h, :w]
    return y.permute(0, 3, 1, 2)


def _output_tile_gradient(grad_y: Tensor) -> Tensor:
    """The output transform's adjoint: A g A^T of every 4x4 tile of the output gradient, [36, tiles, k]."""
    n, k, h, w = grad_y.shape
    th, tw = _tile_counts(h, w)
    a_kron = _transforms(grad_y.dtype, grad_y.device)[2]
    g = F.pad(grad_y.permute(0, 2, 3, 1), (0, 0, 0, 4 * tw - w, 0, 4 * th - h))
    g = g.reshape(n, th, 4, tw, 4, k).permute(2, 4, 0, 1, 3, 5).reshape(16, n * th * tw * k)
    return (a_kron.t() @ g).view(36, n * th * tw, k)


class _WinogradConv3x3(torch.autograd.Function):
    """Forward in the Winograd domain; the input gradient is again a same-padded 3x3 convolution
    (with the flipped, transposed kernel), and the weight gradient one product of transformed tiles.
    Written with differentiable operations, so R1's double backward works through it."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, weight: Tensor) -> Tensor:
        n, c, h, w = x.shape
        k = weight.shape[0]
        g_kron = _transforms(x.dtype, x.device)[1]
        v = _input_tiles(x)
        u = (g_kron @ weight.reshape(k * c, 9).t()).view(36, k, c)
        ctx.save_for_backward(x, weight, v)
        return _output_from_tiles(torch.bmm(v, u.transpose(1, 2)), n, h, w)

    @staticmethod
    def backward(ctx: Any, grad_y: Tensor) -> tuple[Tensor | None, Tensor | None]:
        x, weight, v = ctx.saved_tensors
        grad_x = grad_weight = None
        if ctx.needs_input_grad[0]:
            grad_x = _WinogradConv3x3.apply(grad_y, weight.transpose(0, 1).flip(2, 3))
        if ctx.needs_input_grad[1]:
            if torch.is_grad_enabled():
                v = _input_tiles(x)  # the saved tiles carry no graph; higher orders need one
            du = torch.bmm(_output_tile_gradient(grad_y).transpose(1, 2), v)  # [36, k, c]
            k, c = du.shape[1:]
            g_kron = _transforms(x.dtype, x.device)[1]
            grad_weight = (g_kron.t() @ du.reshape(36, k * c)).view(3, 3, k, c).permute(2, 3, 0, 1)
        return grad_x, grad_weight


def current_conv3x3_algorithm() -> str:
    """The 3x3 algorithm in force on the calling thread: its innermost :func:`conv3x3_algorithm`,
    else ``EPIGRAF_CONV3X3`` as it was when this module was imported, else 'auto'."""
    overridden = _overridden_algorithm.get()
    if overridden is not None:
        return overridden
    if _DEFAULT_ALGORITHM not in ALGORITHMS:
        raise ValueError(
            f"EPIGRAF_CONV3X3={_DEFAULT_ALGORITHM!r} is not one of {ALGORITHMS}; unset it or pick one of those"
        )
    return _DEFAULT_ALGORITHM


def use_winograd(x: Tensor, weight: Tensor, groups: int) -> bool:
    """Whether a same-padded stride-1 convolution should take the Winograd path on the calling thread.

    ``auto`` picks it on CPU for fp32 3x3 layers where min(channels in, out) x min(height, width)
    is at least 8192 (128 channels at 64^2, 256 at 32^2, 512 at 16^2): below that the tile
    transforms cost more than the smaller matrix products save (benchmarks/conv.py). The GPU
    libraries choose their own algorithms. ``EPIGRAF_CONV3X3=direct|winograd|auto`` sets the
    process default, :func:`conv3x3_algorithm` overrides it for one thread.
    """
    algorithm = current_conv3x3_algorithm()
    if groups != 1 or weight.shape[-2:] != (3, 3) or x.dtype != torch.float32 or algorithm == "direct":
        return False
    if algorithm == "winograd":
        return True
    work = min(weight.shape[0], weight.shape[1]) * min(x.shape[-2], x.shape[-1])
    return x.device.type == "cpu" and work >= 8192


@contextlib.contextmanager
def conv3x3_algorithm(name: str) -> Iterator[None]:
    """Choose how same-padded 3x3 convolutions run inside the block: 'auto', 'direct' or 'winograd'.

    The choice holds for the calling thread (or asyncio task) only: a benchmark or test forcing an
    algorithm never changes what another thread, such as the live viewer's renderer, computes.
    Blocks nest; leaving one restores the choice before it. Example::

        with conv3x3_algorithm("direct"):
            planes = generator.synthesis(ws)  # no Winograd layers on this thread
    """
    if name not in ALGORITHMS:
        raise ValueError(f"conv3x3 algorithm must be one of {ALGORITHMS}, got {name!r}")
    token = _overridden_algorithm.set(name)
    try:
        yield
    finally:
        _overridden_algorithm.reset(token)

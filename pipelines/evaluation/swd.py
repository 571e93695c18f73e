"""Sliced Wasserstein distance between Laplacian-pyramid patches of two image sets (Karras et al. 2018, ProGAN)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor


@dataclass
class SWDConfig:
    """ProGAN's settings (their ``sliced_wasserstein`` metric)."""

    min_resolution: int = 16
    """The coarsest pyramid level; levels are R, R/2, ..., min_resolution."""
    patch_size: int = 7
    """Side of the square neighbourhoods (descriptors are 3 * patch_size^2 numbers)."""
    patches_per_image: int = 128
    """Neighbourhoods drawn per image and level."""
    directions: int = 128
    """Random projection directions per repeat."""
    repeats: int = 4
    """Repeats of the projection (results are averaged)."""


def _binomial_kernel(channels: int, device: torch.device, dtype: torch.dtype) -> Tensor:
    taps = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0], device=device, dtype=dtype)
    kernel = torch.outer(taps, taps) / 256.0
    return kernel.expand(channels, 1, 5, 5).contiguous()


def _blur(images: Tensor, gain: float = 1.0) -> Tensor:
    # Mirror padding matches scipy.ndimage.convolve(mode='mirror') of ProGAN's pyramid.
    kernel = _binomial_kernel(images.shape[1], images.device, images.dtype) * gain
    return F.conv2d(F.pad(images, (2, 2, 2, 2), mode="reflect"), kernel, groups=images.shape[1])


def pyramid_down(images: Tensor) -> Tensor:
    """Gaussian blur then every second pixel: [b, c, h, w] -> [b, c, h/2, w/2]."""
    return _blur(images)[:, :, ::2, ::2]


def pyramid_up(images: Tensor) -> Tensor:
    """Zero insertion then blur with 4x gain: [b, c, h, w] -> [b, c, 2h, 2w]."""
    b, c, h, w = images.shape
    up = images.new_zeros(b, c, 2 * h, 2 * w)
    up[:, :, ::2, ::2] = images
    return _blur(up, gain=4.0)


def laplacian_pyramid(images: Tensor, num_levels: int) -> list[Tensor]:
    """Band-pass levels, finest first; the last level is the coarse Gaussian residual."""
    levels = []
    current = images
    for _ in range(num_levels - 1):
        down = pyramid_down(current)
        levels.append(current - pyramid_up(down))
        current = down
    levels.append(current)
    return levels


def _num_levels(resolution: int, config: SWDConfig) -> int:
    if resolution < config.min_resolution or not math.log2(resolution / config.min_resolution).is_integer():
        raise ValueError(
            f"SWD needs square images whose size is min_resolution ({config.min_resolution}) times a power of "
            f"two, got {resolution}; resize the images or change SWDConfig.min_resolution"
        )
    return int(math.log2(resolution / config.min_resolution)) + 1


@dataclass
class PatchPositions:
    """Where patches are cut, as uniforms in [0, 1) so one draw serves sets of any size (common random numbers)."""

    image: Tensor
    y: Tensor
    x: Tensor

    @classmethod
    def draw(cls, count: int, rng: torch.Generator) -> PatchPositions:
        return cls(*torch.rand(3, count, generator=rng, dtype=torch.float64))

    def indices(self, upper: int) -> tuple[Tensor, ...]:
        return tuple((u * upper).long().clamp(max=upper - 1) for u in (self.image, self.y, self.x))


def _patches(level: Tensor, positions: PatchPositions, size: int) -> Tensor:
    """size x size neighbourhoods at ``positions``, flattened: [count, c * size^2]."""
    n, c, h, w = level.shape
    index = positions.indices(n)[0]
    y = positions.indices(h - size + 1)[1]
    x = positions.indices(w - size + 1)[2]
    count = index.shape[0]
    offsets = torch.arange(size)
    rows = (y[:, None] + offsets[None, :])[:, :, None].expand(count, size, size)
    cols = (x[:, None] + offsets[None, :])[:, None, :].expand(count, size, size)
    patches = level[index[:, None, None], :, rows, cols]  # [count, size, size, c]
    return patches.permute(0, 3, 1, 2).reshape(count, c * size * size)


def _normalize(descriptors: Tensor, channels: int) -> Tensor:
    """Per colour channel zero mean and unit std over all patches of one set (ProGAN)."""
    count = descriptors.shape[0]
    per_channel = descriptors.reshape(count, channels, -1)
    mean = per_channel.mean(dim=(0, 2), keepdim=True)
    std = per_channel.std(dim=(0, 2), keepdim=True).clamp_min(1e-8)
    return ((per_channel - mean) / std).reshape(count, -1)


def pyramid_descriptors(images: Tensor, positions: list[PatchPositions], config: SWDConfig | None = None) -> list[Tensor]:
    """Normalized patch descriptors per pyramid level (finest first), each [count, 3 * size^2]."""
    config = config or SWDConfig()
    if images.ndim != 4 or images.shape[-1] != images.shape[-2]:
        raise ValueError(f"SWD needs square images [n, c, h, w], got {list(images.shape)}")
    images = images.detach().cpu().float()
    levels = laplacian_pyramid(images, _num_levels(images.shape[-1], config))
    if len(positions) != len(levels):
        raise ValueError(f"{len(positions)} patch position draws for {len(levels)} pyramid levels")
    return [_normalize(_patches(level, where, config.patch_size), images.shape[1])
            for level, where in zip(levels, positions)]


def sliced_wasserstein(a: Tensor, b: Tensor, rng: torch.Generator, directions: int = 128,
                       repeats: int = 4) -> float:
    """Mean over random unit directions of the 1D Wasserstein-1 distance of the projected sets [n, d]."""
    if a.shape != b.shape:
        raise ValueError(f"sliced_wasserstein needs descriptor sets of equal shape, got {list(a.shape)} and {list(b.shape)}")
    results = []
    for _ in range(repeats):
        dirs = torch.randn(directions, a.shape[1], generator=rng)
        dirs = dirs / dirs.norm(dim=1, keepdim=True)
        # [directions, n] so every sort runs along contiguous memory.
        projected_a = torch.sort(dirs @ a.T, dim=1).values
        projected_b = torch.sort(dirs @ b.T, dim=1).values
        # In 1D the optimal transport pairs sorted values, so W1 is the mean gap between them.
        results.append((projected_a - projected_b).abs().mean())
    return float(torch.stack(results).mean())


def sliced_wasserstein_distance(images_a: Tensor, images_b: Tensor, rng: torch.Generator,
                                config: SWDConfig | None = None) -> dict[str, float]:
    """ProGAN's SWD between two image sets [n, 3, R, R] (any value range), scaled by 1e3 as they report it.

    Returns ``swd_<res>`` for each level (finest first, its resolution in the name) and ``swd``, their mean.
    Both sets contribute ``patches_per_image * min(n_a, n_b)`` patches per level, cut at the same
    random positions (common random numbers: less variance, and a set against itself scores 0).
    """
    config = config or SWDConfig()
    if images_a.shape[1:] != images_b.shape[1:]:
        raise ValueError(f"SWD image sets differ in shape: {list(images_a.shape[1:])} vs {list(images_b.shape[1:])}")
    count = config.patches_per_image * min(len(images_a), len(images_b))
    positions = [PatchPositions.draw(count, rng) for _ in range(_num_levels(images_a.shape[-1], config))]
    desc_a = pyramid_descriptors(images_a, positions, config)
    desc_b = pyramid_descriptors(images_b, positions, config)
    resolution = images_a.shape[-1]
    result = {}
    for level, (a, b) in enumerate(zip(desc_a, desc_b)):
        result[f"swd_{resolution >> level}"] = 1e3 * sliced_wasserstein(a, b, rng, config.directions, config.repeats)
    result["swd"] = sum(result.values()) / len(desc_a)
    return result

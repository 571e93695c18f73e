"""Discriminator input blur (with patch-aware sigma) and random x-flips of image batches."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from pipelines.gan.schedules import blur_sigma

__all__ = ["blur_sigma", "patch_blur_sigma", "blur_kernels", "blur_images", "random_xflip"]


def patch_blur_sigma(sigma: float, scales: Tensor, patch_resolution: int, image_resolution: int) -> Tensor:
    """Per-patch blur sigma in patch pixels for a blur of ``sigma`` full-image pixels.

    A patch of scale ``s`` shows ``s * R`` image pixels in ``r`` patch pixels, so one image pixel is
    ``r / (s * R)`` patch pixels. EpiGRAF instead applies ``sigma`` in patch pixels unchanged; pass
    ``sigma`` directly to :func:`blur_images` to reproduce that.

    Example: ``patch_blur_sigma(10.0, torch.tensor([1.0, 0.25]), 64, 256)`` is ``[2.5, 10.0]``.
    """
    return sigma * patch_resolution / (scales * image_resolution)


def blur_kernels(sigmas: Tensor) -> Tensor:
    """Normalized 1D blur kernels, one row per sigma, all of width ``2 * floor(3 * max sigma) + 1``.

    The taps are ``2^(-(x / sigma)^2)`` for ``|x| <= floor(3 sigma)`` (the StyleGAN3 / EpiGRAF blur:
    a Gaussian with standard deviation ``sigma / sqrt(2 ln 2)``); sigma 0 gives the identity tap.
    """
    sigmas = sigmas.reshape(-1).float()
    radius = int(math.floor(3.0 * float(sigmas.max()))) if sigmas.numel() else 0
    x = torch.arange(-radius, radius + 1, device=sigmas.device, dtype=torch.float32)
    s = sigmas[:, None].clamp(min=1e-8)
    taps = torch.exp2(-(x[None, :] / s).square())
    taps = torch.where(x[None, :].abs() <= torch.floor(3.0 * sigmas[:, None]), taps, torch.zeros_like(taps))
    return taps / taps.sum(dim=1, keepdim=True)


def blur_images(images: Tensor, sigma: float | Tensor) -> Tensor:
    """Separable blur of ``images`` [b, c, h, w] with zero padding (size kept), as EpiGRAF blurs D inputs.

    ``sigma`` is one float for the whole batch or a tensor [b] (e.g. :func:`patch_blur_sigma`);
    a blur radius ``floor(3 sigma)`` of 0 returns the input unchanged.
    """
    if images.ndim != 4:
        raise ValueError(f"blur_images: images must have shape [b, c, h, w], got {list(images.shape)}")
    b, c, h, w = images.shape
    per_item = isinstance(sigma, Tensor) and sigma.numel() > 1
    sigmas = torch.as_tensor(sigma, dtype=torch.float32, device=images.device).reshape(-1)
    if per_item and sigmas.shape[0] != b:
        raise ValueError(f"blur_images: sigma has {sigmas.shape[0]} entries for a batch of {b}; pass one per image")
    if (sigmas < 0).any():
        raise ValueError(f"blur_images: sigma must be >= 0, got {sigmas.tolist()}")
    if math.floor(3.0 * float(sigmas.max())) == 0:
        return images
    kernels = blur_kernels(sigmas).to(images.dtype)  # [1 or b, k]
    k = kernels.shape[1]
    pad = k // 2
    if per_item:
        # One kernel per image: every (image, channel) plane is its own group.
        weights = kernels.repeat_interleave(c, dim=0)  # [b * c, k]
        x = images.reshape(1, b * c, h, w)
        x = F.conv2d(F.pad(x, (0, 0, pad, pad)), weights.view(b * c, 1, k, 1), groups=b * c)
        x = F.conv2d(F.pad(x, (pad, pad, 0, 0)), weights.view(b * c, 1, 1, k), groups=b * c)
    else:
        # One kernel for all: fold channels into the batch and filter single-channel planes.
        x = images.reshape(b * c, 1, h, w)
        x = F.conv2d(F.pad(x, (0, 0, pad, pad)), kernels.view(1, 1, k, 1))
        x = F.conv2d(F.pad(x, (pad, pad, 0, 0)), kernels.view(1, 1, 1, k))
    return x.reshape(b, c, h, w)


def random_xflip(images: Tensor, rng: torch.Generator, probability: float = 0.5) -> tuple[Tensor, Tensor]:
    """Mirrors each image left-right with ``probability``; returns the images and the bool mask [b].

    Mirror the matching cameras too (``Cameras.mirror_x``) when the label conditions anything.
    """
    flips = torch.rand(images.shape[0], generator=rng, device=rng.device) < probability
    flips = flips.to(images.device)
    return torch.where(flips[:, None, None, None], images.flip(3), images), flips

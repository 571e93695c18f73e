"""EpiGRAF's patch distribution: annealed-beta (or uniform) patch scales and uniform offsets."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch

from renderers.patches import Patch

PatchMode = Literal["beta", "uniform", "full"]


def _linear(kimg: float, start: float, end: float, duration_kimg: float) -> float:
    """``start`` at kimg 0, ``end`` from ``duration_kimg`` on, linear in between."""
    if duration_kimg <= 0 or kimg >= duration_kimg:
        return end
    if kimg <= 0:
        return start
    return start + (end - start) * kimg / duration_kimg


@dataclass
class PatchSamplerConfig:
    """Distribution of the patches the generator renders and the discriminator sees."""

    mode: PatchMode = "beta"
    """'beta': EpiGRAF's annealed beta scales; 'uniform': scales uniform between an annealed lower
    bound and max_scale; 'full': always the whole image (scale 1, offset 0)."""
    patch_resolution: int = 64
    """Pixels per side of a rendered patch (r)."""
    image_resolution: int = 256
    """Pixels per side of a full image (R)."""
    min_scale: float | None = None
    """Smallest patch scale; None means r / R (a patch pixel is then an image pixel)."""
    max_scale: float = 1.0
    """Largest patch scale (1 = the whole image)."""
    beta_b_start: float = 0.001
    """Beta(1, b) shape b at kimg 0: close to 0 puts almost all mass at scale max_scale."""
    beta_b_end: float = 0.8
    """Beta(1, b) shape b reached after anneal_kimg."""
    anneal_kimg: float = 10000.0
    """Length of the linear annealing (of b in 'beta' mode, of the lower bound in 'uniform' mode)."""

    def __post_init__(self) -> None:
        if self.mode not in ("beta", "uniform", "full"):
            raise ValueError(f"PatchSamplerConfig.mode must be 'beta', 'uniform' or 'full', got {self.mode!r}")
        for name in ("patch_resolution", "image_resolution"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"PatchSamplerConfig.{name} must be a positive int (pixels), got {value!r}")
        if self.patch_resolution > self.image_resolution:
            raise ValueError(
                f"PatchSamplerConfig.patch_resolution ({self.patch_resolution}) must not exceed "
                f"image_resolution ({self.image_resolution}); lower the patch resolution"
            )
        if not 0.0 < self.max_scale <= 1.0:
            raise ValueError(f"PatchSamplerConfig.max_scale must lie in (0, 1], got {self.max_scale}")
        if not 0.0 < self.resolved_min_scale <= self.max_scale:
            raise ValueError(
                f"PatchSamplerConfig.min_scale must lie in (0, max_scale={self.max_scale}], got "
                f"{self.resolved_min_scale}; leave it None for patch_resolution / image_resolution"
            )
        if self.beta_b_start <= 0 or self.beta_b_end <= 0:
            raise ValueError(
                f"PatchSamplerConfig.beta_b_start/beta_b_end must be > 0 (Beta shape), "
                f"got {self.beta_b_start} and {self.beta_b_end}"
            )
        if self.anneal_kimg < 0:
            raise ValueError(f"PatchSamplerConfig.anneal_kimg must be >= 0, got {self.anneal_kimg}")

    @property
    def resolved_min_scale(self) -> float:
        """``min_scale`` or, when unset, ``r / R``."""
        return self.patch_resolution / self.image_resolution if self.min_scale is None else self.min_scale


def beta_b(config: PatchSamplerConfig, kimg: float) -> float:
    """The Beta(1, b) shape ``b`` at ``kimg``: linear from ``beta_b_start`` to ``beta_b_end``."""
    return _linear(kimg, config.beta_b_start, config.beta_b_end, config.anneal_kimg)


def uniform_lower_scale(config: PatchSamplerConfig, kimg: float) -> float:
    """Lower bound of the 'uniform' mode at ``kimg``: linear from ``max_scale`` down to the min scale.

    EpiGRAF anneals the uniform ablation this way too, so early patches are whole images.
    """
    return _linear(kimg, config.max_scale, config.resolved_min_scale, config.anneal_kimg)


def expected_scale(config: PatchSamplerConfig, kimg: float) -> float:
    """Closed-form mean patch scale at ``kimg``.

    'beta': ``s_min + (s_max - s_min) / (1 + b)`` since E[Beta(1, b)] = 1 / (1 + b);
    'uniform': the middle of the current interval; 'full': 1.
    """
    if config.mode == "full":
        return 1.0
    if config.mode == "uniform":
        return 0.5 * (uniform_lower_scale(config, kimg) + config.max_scale)
    s_min = config.resolved_min_scale
    return s_min + (config.max_scale - s_min) / (1.0 + beta_b(config, kimg))


def sample_beta_1_b(u: torch.Tensor, b: float) -> torch.Tensor:
    """Beta(1, b) samples from uniforms ``u`` in [0, 1) by the inverse CDF.

    The CDF of Beta(1, b) is ``F(x) = 1 - (1 - x)^b``, so ``x = 1 - (1 - u)^(1/b)``
    (Devroye, "Non-Uniform Random Variate Generation", 1986, Sec. II.2). Written with
    log1p/expm1 because ``1/b`` reaches 1000 at the start of the annealing.
    """
    return -torch.expm1(torch.log1p(-u) / b)


def sample_patches(
    config: PatchSamplerConfig,
    batch_size: int,
    kimg: float,
    rng: torch.Generator,
    group_size: int = 4,
    device: torch.device | str | None = None,
) -> Patch:
    """Draws one patch per group of ``group_size`` consecutive batch items (EpiGRAF, Sec. 3.2).

    All items of a minibatch-std group share their patch so the discriminator's group statistics
    compare like with like. Offsets are uniform in ``[0, 1 - scale]`` on each axis. Random numbers
    come only from ``rng`` (on its device); the result is moved to ``device`` if given.

    Example:
        >>> cfg = PatchSamplerConfig(patch_resolution=32, image_resolution=128)
        >>> patch = sample_patches(cfg, 8, kimg=0.0, rng=torch.Generator().manual_seed(0))
        >>> patch.scales.shape, patch.offsets.shape
        (torch.Size([8]), torch.Size([8, 2]))
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size <= 0:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    if isinstance(group_size, bool) or not isinstance(group_size, int) or group_size <= 0:
        raise ValueError(f"group_size must be a positive int (the minibatch-std group size), got {group_size!r}")
    gen_device = rng.device
    num_groups = math.ceil(batch_size / group_size)
    if config.mode == "full":
        scales = torch.ones(num_groups, device=gen_device)
        offsets = torch.zeros(num_groups, 2, device=gen_device)
    else:
        u = torch.rand(num_groups, generator=rng, device=gen_device)
        if config.mode == "beta":
            s_min = config.resolved_min_scale
            scales = s_min + (config.max_scale - s_min) * sample_beta_1_b(u, beta_b(config, kimg))
        else:
            low = uniform_lower_scale(config, kimg)
            scales = low + (config.max_scale - low) * u
        scales = scales.clamp(max=1.0)
        offsets = torch.rand(num_groups, 2, generator=rng, device=gen_device) * (1.0 - scales)[:, None]
    # A trailing partial group (batch not divisible by group_size) shares one patch as well.
    scales = scales.repeat_interleave(group_size)[:batch_size]
    offsets = offsets.repeat_interleave(group_size, dim=0)[:batch_size]
    patch = Patch(scales=scales, offsets=offsets)
    return patch if device is None else patch.to(device)

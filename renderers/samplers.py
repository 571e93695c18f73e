"""Samples along rays: stratified bins, importance resampling from coarse weights, and merging."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from jaxtyping import Bool, Float, Int64
from torch import Tensor

from renderers.rays import RayBundle


@dataclass
class RaySamples:
    """``s`` intervals ``[t_start, t_end]`` along each of ``r`` rays of ``b`` scenes.

    The field is evaluated at ``t_points`` (the interval midpoints when not given) and its value
    is taken as constant over the interval. ``mask`` marks real samples when rays hold different
    numbers of them (padding is a zero-length interval and is never sent to the field).
    """

    t_starts: Float[Tensor, "b r s"]
    """Start distance of each interval along its ray."""
    t_ends: Float[Tensor, "b r s"]
    """End distance of each interval (>= start)."""
    t_points: Float[Tensor, "b r s"] | None = None
    """Where the field is evaluated inside each interval; None means the midpoint."""
    mask: Bool[Tensor, "b r s"] | None = None
    """True for real samples, False for padding; None means all samples are real."""

    def __post_init__(self) -> None:
        if self.t_starts.shape != self.t_ends.shape:
            raise ValueError(
                f"RaySamples.t_starts {list(self.t_starts.shape)} and t_ends {list(self.t_ends.shape)} must match"
            )

    @property
    def num_samples(self) -> int:
        return int(self.t_starts.shape[-1])

    @property
    def positions(self) -> Float[Tensor, "b r s"]:
        """Distances along the ray at which the field is evaluated."""
        if self.t_points is not None:
            return self.t_points
        return (self.t_starts + self.t_ends) * 0.5

    @property
    def num_valid(self) -> int:
        """Number of real samples (what a field evaluation costs)."""
        return int(self.t_starts.numel() if self.mask is None else self.mask.sum())


def sample_points(rays: RayBundle, samples: RaySamples) -> Float[Tensor, "b r s 3"]:
    """World positions of the samples (interval midpoints unless ``samples.t_points`` says otherwise)."""
    if samples.t_starts.shape[:2] != rays.origins.shape[:2]:
        raise ValueError(
            f"samples are for rays of shape {list(samples.t_starts.shape[:2])} but the bundle has "
            f"{list(rays.origins.shape[:2])}"
        )
    return rays.points_at(samples.positions)


def _uniform(shape: tuple[int, ...], rng: torch.Generator, device: torch.device) -> Tensor:
    """Uniform [0, 1) numbers from ``rng`` (on its own device), moved to ``device``."""
    return torch.rand(shape, generator=rng, device=rng.device).to(device)


def stratified_samples(
    rays: RayBundle, num_samples: int, rng: torch.Generator | None = None
) -> RaySamples:
    """``num_samples`` contiguous intervals that tile ``[near, far]`` of every ray.

    Without an ``rng`` (evaluation) the interval edges are evenly spaced. With one (training)
    each interior edge is jittered uniformly within half a bin on either side, so every sample
    position is random inside its stratum while the intervals still tile ``[near, far]``
    (stratified sampling, NeRF, Mildenhall et al. 2020, eq. 2).

    Example:
        >>> from renderers.rays import RayBundle
        >>> ones = torch.ones(1, 1, 1)
        >>> rays = RayBundle(torch.zeros(1, 1, 3), torch.tensor([[[0.0, 0.0, 1.0]]]), ones, 3 * ones)
        >>> stratified_samples(rays, 4).t_starts
        tensor([[[1.0000, 1.5000, 2.0000, 2.5000]]])
    """
    if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples <= 0:
        raise ValueError(f"num_samples must be a positive int, got {num_samples!r}")
    b, r = rays.origins.shape[:2]
    device, dtype = rays.device, rays.origins.dtype
    edges = torch.arange(num_samples + 1, device=device, dtype=dtype).expand(b, r, -1)
    if rng is not None and num_samples > 1:
        jitter = _uniform((b, r, num_samples - 1), rng, device).to(dtype) - 0.5
        edges = torch.cat([edges[..., :1], edges[..., 1:-1] + jitter, edges[..., -1:]], dim=-1)
    fraction = edges / num_samples
    t = rays.near + (rays.far - rays.near) * fraction
    return RaySamples(t[..., :-1].contiguous(), t[..., 1:].contiguous())


def blur_weights(weights: Float[Tensor, "b r s"], padding: float = 0.01) -> Float[Tensor, "b r s"]:
    """Max-then-average blur of coarse weights plus a floor (mip-NeRF, Barron et al. 2021, eq. 18).

    ``w'_k = (max(w_{k-1}, w_k) + max(w_k, w_{k+1})) / 2 + padding``: the fine samples then cover the
    neighbourhood of a surface and never starve a ray entirely (EG3D samples its importance pass the same way).
    """
    padded = torch.cat([weights[..., :1], weights, weights[..., -1:]], dim=-1)
    left = torch.maximum(padded[..., :-2], padded[..., 1:-1])
    right = torch.maximum(padded[..., 1:-1], padded[..., 2:])
    return 0.5 * (left + right) + padding


def importance_samples(
    coarse: RaySamples,
    weights: Float[Tensor, "b r s"],
    num_samples: int,
    rng: torch.Generator | None = None,
    blur_padding: float = 0.01,
) -> Float[Tensor, "b r n"]:
    """Distances drawn from the piecewise-constant density given by (blurred) coarse weights.

    Inverse-CDF sampling over the coarse intervals (NeRF, Mildenhall et al. 2020, sec. 5.2): with an
    ``rng`` the ``num_samples`` uniforms are stratified and jittered, without one they sit at the
    stratum centres. The result is detached (sampling is not differentiable) and sorted per ray.
    """
    if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples <= 0:
        raise ValueError(f"num_samples must be a positive int, got {num_samples!r}")
    if weights.shape != coarse.t_starts.shape:
        raise ValueError(f"weights {list(weights.shape)} must match the coarse samples {list(coarse.t_starts.shape)}")
    b, r, s = weights.shape
    device, dtype = weights.device, coarse.t_starts.dtype
    with torch.no_grad():
        lengths = coarse.t_ends - coarse.t_starts
        mass = blur_weights(weights.detach().to(dtype), blur_padding) * (lengths > 0)
        # A ray with no length (it missed the box) keeps a flat distribution on its zero-length span.
        mass = torch.where(mass.sum(-1, keepdim=True) > 0, mass, torch.ones_like(mass))
        cdf = torch.cumsum(mass, dim=-1)
        cdf = torch.cat([torch.zeros_like(cdf[..., :1]), cdf / cdf[..., -1:]], dim=-1)  # [b, r, s + 1]
        strata = torch.arange(num_samples, device=device, dtype=dtype).expand(b, r, -1)
        offset = 0.5 if rng is None else _uniform((b, r, num_samples), rng, device).to(dtype)
        u = ((strata + offset) / num_samples).contiguous()
        bin_index = torch.searchsorted(cdf.contiguous(), u, right=True).clamp(1, s) - 1
        cdf_low = cdf.gather(-1, bin_index)
        cdf_high = cdf.gather(-1, bin_index + 1)
        fraction = ((u - cdf_low) / (cdf_high - cdf_low).clamp_min(1e-12)).clamp(0.0, 1.0)
        start = coarse.t_starts.gather(-1, bin_index)
        end = coarse.t_ends.gather(-1, bin_index)
        return start + (end - start) * fraction


def merge_samples(
    coarse: RaySamples, t_fine: Float[Tensor, "b r n"]
) -> tuple[RaySamples, Int64[Tensor, "b r m"]]:
    """Coarse and fine samples merged and sorted by distance, as in NeRF's and EG3D's fine pass.

    Each merged sample keeps its own evaluation point (the coarse midpoint or the fine draw); its
    interval reaches halfway to its neighbours, the first starts where the coarse samples start and
    the last ends where they end, so the intervals tile the ray again and no field value is
    recomputed. Returns the merged samples and, for each, its index into
    ``cat([coarse values, fine values], dim=-1)``.
    """
    points = torch.cat([coarse.positions, t_fine.to(coarse.t_starts.dtype)], dim=-1)
    sorted_points, order = torch.sort(points, dim=-1, stable=True)
    middles = 0.5 * (sorted_points[..., 1:] + sorted_points[..., :-1])
    starts = torch.cat([coarse.t_starts[..., :1], middles], dim=-1)
    ends = torch.cat([middles, coarse.t_ends[..., -1:]], dim=-1)
    return RaySamples(starts, ends, t_points=sorted_points), order

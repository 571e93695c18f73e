"""The point-sample ray marchers of EG3D and EpiGRAF, to reproduce their released weights' renders.

Both evaluate the field at points from near to far (both included) rather than in intervals:

* EG3D (``midpoint``): each pair of neighbouring points is one interval whose colour and density are the
  averages of its two ends (the density averaged before the softplus when the field gives its logits);
* EpiGRAF (``left_point``): point i holds its value up to point i + 1 and the last point's interval is
  1e10 long, so the far end is an opaque backdrop.

Each has its importance pass: inverse-CDF draws between the midpoints of the coarse points.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from jaxtyping import Float
from torch import Tensor

from renderers.compositing import Composite, resolve_background
from renderers.rays import RayBundle

# EG3D adds this to 1 - alpha inside the transmittance product so fully opaque samples keep a gradient.
TRANSMITTANCE_EPS = 1e-10
# EpiGRAF's last interval: long enough that the last point is opaque whatever its density.
LAST_LENGTH = 1e10


def midpoint_depths(
    rays: RayBundle, num_samples: int, rng: torch.Generator | None = None
) -> Float[Tensor, "b r s"]:
    """``num_samples`` points from near to far, both included; with ``rng`` each moves forward by
    ``U(0, 1)`` of the spacing (EG3D's stratified sampling, so the last can pass the far plane).

    Example: near 1, far 3, 3 samples and no ``rng`` give the points 1, 2, 3.
    """
    if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 2:
        raise ValueError(f"the midpoint marcher needs num_samples >= 2 points per ray, got {num_samples!r}")
    b, r = rays.origins.shape[:2]
    steps = torch.arange(num_samples, device=rays.device, dtype=rays.origins.dtype) / (num_samples - 1)
    delta = (rays.far - rays.near) / (num_samples - 1)
    t = rays.near + (rays.far - rays.near) * steps.expand(b, r, -1)
    if rng is not None:
        jitter = torch.rand((b, r, num_samples), generator=rng, device=rng.device).to(t)
        t = t + jitter * delta
    return t


def left_point_depths(
    rays: RayBundle, num_samples: int, rng: torch.Generator | None = None
) -> Float[Tensor, "b r s"]:
    """``num_samples`` points from near to far, both included; with ``rng`` each is drawn uniformly between the
    midpoints to its neighbours (EpiGRAF's ``perturb_points``; the first and last stay within the range)."""
    t = midpoint_depths(rays, num_samples)
    if rng is None:
        return t
    mids = 0.5 * (t[..., 1:] + t[..., :-1])
    upper, lower = torch.cat([mids, t[..., -1:]], dim=-1), torch.cat([t[..., :1], mids], dim=-1)
    noise = torch.rand(t.shape, generator=rng, device=rng.device).to(t)
    return lower + (upper - lower) * noise


def composite_midpoints(
    t_points: Float[Tensor, "b r s"],
    densities: Float[Tensor, "b r s"],
    rgb: Float[Tensor, "b r s 3"],
    background: str | tuple[float, float, float] | Tensor = "black",
    density_logits: Float[Tensor, "b r s"] | None = None,
    features: Float[Tensor, "b r s f"] | None = None,
    rng: torch.Generator | None = None,
) -> Composite:
    """Composites ``s`` points as ``s - 1`` intervals (EG3D's MipRayMarcher2); weights are per interval.

    Interval i runs from point i to point i + 1; its colour is the mean of theirs and its density
    ``softplus(mean of the logits)`` when ``density_logits`` are given (EG3D), else the mean of the
    densities. ``alpha = 1 - exp(-density * length)``, transmittance ``prod (1 - alpha + 1e-10)``.
    Depth is ``sum w t_mid / sum w`` clamped to the points' range (the far end when the ray is empty).

    Example: two points at 0 and 1 with density 1e3 give one interval of weight 1 (up to 1e-10).
    """
    if t_points.shape[-1] < 2:
        raise ValueError(f"the midpoint marcher needs >= 2 points per ray, got {t_points.shape[-1]}")
    mean = lambda x: 0.5 * (x[:, :, :-1] + x[:, :, 1:])  # noqa: E731
    deltas = t_points[..., 1:] - t_points[..., :-1]
    sigma = F.softplus(mean(density_logits)) if density_logits is not None else mean(densities)
    alpha = 1.0 - torch.exp(-sigma * deltas)
    shifted = torch.cat([torch.ones_like(alpha[..., :1]), 1.0 - alpha + TRANSMITTANCE_EPS], dim=-1)
    weights = alpha * torch.cumprod(shifted, dim=-1)[..., :-1]
    opacity = weights.sum(dim=-1, keepdim=True)
    color = (weights[..., None] * mean(rgb)).sum(dim=2)
    depth = (weights * mean(t_points)).sum(dim=-1, keepdim=True) / opacity
    lowest, highest = t_points.amin(dim=-1, keepdim=True), t_points.amax(dim=-1, keepdim=True)
    depth = torch.where(opacity > 0, depth, highest)
    depth = torch.minimum(torch.maximum(torch.nan_to_num(depth, nan=0.0), lowest), highest)
    b, r = opacity.shape[:2]
    bg = resolve_background(background, (b, r), color.device, color.dtype, rng)
    out_features = None if features is None else (weights[..., None] * mean(features)).sum(dim=2)
    return Composite(color + (1.0 - opacity) * bg, depth, opacity, weights, out_features)


def composite_left_points(
    t_points: Float[Tensor, "b r s"],
    densities: Float[Tensor, "b r s"],
    rgb: Float[Tensor, "b r s 3"],
    background: str | tuple[float, float, float] | Tensor = "black",
    features: Float[Tensor, "b r s f"] | None = None,
    rng: torch.Generator | None = None,
    last_length: float = LAST_LENGTH,
) -> Composite:
    """Composites ``s`` points, point i standing for ``[t_i, t_{i+1}]`` and the last for ``last_length``
    (EpiGRAF's ``fancy_integration``); weights are per point.

    ``alpha_i = 1 - exp(-density_i * delta_i)``, transmittance ``prod_{j<i} (1 - alpha_j + 1e-10)``; the
    background fills ``1 - sum w`` (EpiGRAF's white_back), which the 1e10 last interval makes ~0.

    Example: one point of density 1 before a point of density 0.5 at distances 0 and 1 gives weights
    ``1 - e^-1`` and ``e^-1`` (the last point takes what is left).
    """
    deltas = torch.cat([t_points[..., 1:] - t_points[..., :-1], torch.full_like(t_points[..., :1], last_length)], -1)
    alpha = 1.0 - torch.exp(-densities * deltas)
    shifted = torch.cat([torch.ones_like(alpha[..., :1]), 1.0 - alpha + TRANSMITTANCE_EPS], dim=-1)
    weights = alpha * torch.cumprod(shifted, dim=-1)[..., :-1]
    opacity = weights.sum(dim=-1, keepdim=True)
    color = (weights[..., None] * rgb).sum(dim=2)
    depth = (weights * t_points).sum(dim=-1, keepdim=True) / opacity
    lowest, highest = t_points.amin(dim=-1, keepdim=True), t_points.amax(dim=-1, keepdim=True)
    depth = torch.where(opacity > 0, depth, highest)
    depth = torch.minimum(torch.maximum(torch.nan_to_num(depth, nan=0.0), lowest), highest)
    b, r = opacity.shape[:2]
    bg = resolve_background(background, (b, r), color.device, color.dtype, rng)
    out_features = None if features is None else (weights[..., None] * features).sum(dim=2)
    return Composite(color + (1.0 - opacity) * bg, depth, opacity, weights, out_features)


def _inverse_cdf(bins: Tensor, weights: Tensor, num_samples: int, rng: torch.Generator | None, eps: float) -> Tensor:
    """EG3D's and EpiGRAF's ``sample_pdf``: bins [n, k + 1] (only the first k + 1 used), weights [n, k]."""
    n = weights.shape[0]
    weights = weights + eps
    pdf = weights / weights.sum(dim=-1, keepdim=True)
    cdf = torch.cat([torch.zeros_like(pdf[:, :1]), torch.cumsum(pdf, dim=-1)], dim=-1)
    if rng is None:
        u = torch.linspace(0, 1, num_samples, device=cdf.device, dtype=cdf.dtype).expand(n, -1)
    else:
        u = torch.rand((n, num_samples), generator=rng, device=rng.device).to(cdf)
    u = u.contiguous()
    index = torch.searchsorted(cdf, u, right=True)
    below = (index - 1).clamp_min(0)
    above = index.clamp_max(weights.shape[-1])
    cdf_low, cdf_high = cdf.gather(1, below), cdf.gather(1, above)
    bin_low, bin_high = bins.gather(1, below), bins.gather(1, above)
    denom = cdf_high - cdf_low
    denom = torch.where(denom < eps, torch.ones_like(denom), denom)
    return bin_low + (u - cdf_low) / denom * (bin_high - bin_low)


def left_point_importance_depths(
    t_points: Float[Tensor, "b r s"],
    weights: Float[Tensor, "b r s"],
    num_samples: int,
    rng: torch.Generator | None = None,
    eps: float = 1e-5,
) -> Float[Tensor, "b r n"]:
    """EpiGRAF's importance pass: weights of the interior points (+1e-5) over the bins between midpoints.

    Without ``rng`` the uniforms are ``linspace(0, 1)`` (the deterministic option of its ``sample_pdf``).
    """
    b, r, s = t_points.shape
    with torch.no_grad():
        w = weights.reshape(b * r, s).float() + eps
        bins = 0.5 * (t_points[..., 1:] + t_points[..., :-1]).reshape(b * r, -1)
        t = _inverse_cdf(bins.float(), w[:, 1:-1], num_samples, rng, eps)
        return t.reshape(b, r, num_samples).to(t_points.dtype)


def midpoint_importance_depths(
    t_points: Float[Tensor, "b r s"],
    weights: Float[Tensor, "b r s1"],
    num_samples: int,
    rng: torch.Generator | None = None,
    padding: float = 0.01,
    eps: float = 1e-5,
) -> Float[Tensor, "b r n"]:
    """EG3D's importance pass: ``num_samples`` distances drawn from the coarse interval weights.

    The weights are smoothed (max over neighbours, then mean of neighbours, plus ``padding``), the
    first and last smoothed values dropped, and the distances drawn by inverse CDF over the bins
    between the midpoints of the coarse points. Without ``rng`` the uniforms are ``linspace(0, 1)``
    (EG3D's deterministic option), with it they are drawn from ``rng``.
    """
    b, r, s = t_points.shape
    with torch.no_grad():
        w = weights.reshape(b * r, 1, -1).float()
        w = F.avg_pool1d(F.max_pool1d(w, 2, 1, padding=1), 2, 1).reshape(b * r, -1) + padding
        bins = 0.5 * (t_points[..., 1:] + t_points[..., :-1]).reshape(b * r, -1)
        t = _inverse_cdf(bins.float(), w[:, 1:-1], num_samples, rng, eps)
        return t.reshape(b, r, num_samples).to(t_points.dtype)

"""Alpha compositing of field samples along rays (nerfacc's batched scans) and backgrounds."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from jaxtyping import Float
from nerfacc import accumulate_along_rays, render_weight_from_density
from torch import Tensor

BACKDROP = "last_sample"
"""Background name for EpiGRAF's learned backdrop: the last sample of every ray is opaque."""
COLOR_BACKGROUNDS = ("white", "black", "random")
"""Background names that stand for a colour per ray (see :func:`resolve_background`)."""
BACKGROUNDS = (*COLOR_BACKGROUNDS, BACKDROP)
"""Background names :func:`composite` accepts (besides a fixed (r, g, b) colour)."""


@dataclass
class Composite:
    """Per-ray results of compositing ``s`` samples."""

    rgb: Float[Tensor, "b r 3"]
    """Colour with the background composited over ``1 - opacity`` (nothing added with the backdrop)."""
    depth: Float[Tensor, "b r 1"]
    """Expected distance of the visible surface, normalized by opacity (see :func:`composite`)."""
    opacity: Float[Tensor, "b r 1"]
    """Accumulated opacity (sum of weights); 1 on every ray with the backdrop ('last_sample')."""
    weights: Float[Tensor, "b r s"]
    """Rendering weights ``T_i * alpha_i``."""
    features: Float[Tensor, "b r f"] | None = None
    """Composited extra channels (no background), or None."""


def resolve_background(
    background: str | tuple[float, float, float] | Tensor,
    shape: tuple[int, int],
    device: torch.device,
    dtype: torch.dtype = torch.float32,
    rng: torch.Generator | None = None,
) -> Float[Tensor, "b r 3"]:
    """Background colour per ray: 'white', 'black', 'random' (uniform per ray, from ``rng``),
    or a fixed (r, g, b) colour in [0, 1] given as a tuple or a tensor of 3 numbers."""
    b, r = shape
    if isinstance(background, str):
        if background == BACKDROP:
            raise ValueError(
                f"background={BACKDROP!r} has no colour: the last sample of each ray is the backdrop; "
                "composite() handles it, resolve_background() only resolves colours"
            )
        if background == "white":
            return torch.ones(b, r, 3, device=device, dtype=dtype)
        if background == "black":
            return torch.zeros(b, r, 3, device=device, dtype=dtype)
        if background == "random":
            if rng is None:
                raise ValueError("background='random' needs a torch.Generator (pass rng=...)")
            noise = torch.rand((b, r, 3), generator=rng, device=rng.device)
            return noise.to(device=device, dtype=dtype)
        raise ValueError(
            f"background must be one of {BACKGROUNDS} or an (r, g, b) colour, got {background!r}"
        )
    color = torch.as_tensor(background, dtype=dtype, device=device)
    if color.shape != (3,) or not torch.isfinite(color).all():
        raise ValueError(f"a background colour must be 3 finite numbers (r, g, b) in [0, 1], got {background!r}")
    return color.expand(b, r, 3)


def composite(
    t_starts: Float[Tensor, "b r s"],
    t_ends: Float[Tensor, "b r s"],
    densities: Float[Tensor, "b r s"],
    rgb: Float[Tensor, "b r s 3"],
    background: str | tuple[float, float, float] | Tensor = "white",
    t_points: Float[Tensor, "b r s"] | None = None,
    features: Float[Tensor, "b r s f"] | None = None,
    empty_depth: Float[Tensor, "b r 1"] | None = None,
    rng: torch.Generator | None = None,
) -> Composite:
    """Volume rendering quadrature (NeRF, Mildenhall et al. 2020, eq. 3).

    ``alpha_i = 1 - exp(-sigma_i * delta_i)``, ``T_i = exp(-sum_{j<i} sigma_j delta_j)``, weights
    ``w_i = T_i * alpha_i``; colour ``sum_i w_i c_i + (1 - sum_i w_i) * background``. Computed with
    nerfacc's batched (not packed) functions, which run on any device. Zero-length intervals
    (padding) get zero weight.

    ``background='last_sample'`` is EpiGRAF's backdrop (its last delta is 1e10): the last sample
    along the sample axis (padding must come before it) gets an infinite interval, i.e.
    ``alpha = 1`` whatever its density or length, so it takes all the remaining transmittance,
    ``w_last = T_last``, every ray has opacity 1 and no background colour is added. Its colour (and
    features) are the backdrop, and gradients reach them through ``w_last``. The backdrop's distance
    counts in the depth like any sample's.

    Depth is EG3D's: ``sum_i w_i t_i / sum_i w_i`` with ``t_i`` the evaluation points, i.e. the
    expected depth of the visible surface *normalized by opacity*, clamped to the sampled range;
    rays with (almost) no opacity get ``empty_depth`` (the far plane, when given) instead of 0/0.

    Example:
        >>> t = torch.tensor([[[0.0, 1.0]]]), torch.tensor([[[1.0, 2.0]]])
        >>> out = composite(*t, torch.full((1, 1, 2), 1e3), torch.ones(1, 1, 2, 3) * 0.5, "black")
        >>> out.rgb, out.opacity, out.depth
        (tensor([[[0.5000, 0.5000, 0.5000]]]), tensor([[[1.]]]), tensor([[[0.5000]]]))
    """
    b, r, s = densities.shape
    backdrop = isinstance(background, str) and background == BACKDROP
    if backdrop and s == 0:
        raise ValueError(f"background={BACKDROP!r} needs at least one sample per ray (the backdrop), got 0 samples")
    if s == 0:
        weights = densities.new_zeros(b, r, 0)
        opacity = densities.new_zeros(b, r, 1)
        depth = empty_depth if empty_depth is not None else densities.new_zeros(b, r, 1)
        out_features = None if features is None else densities.new_zeros(b, r, features.shape[-1])
        bg = resolve_background(background, (b, r), densities.device, densities.dtype, rng)
        return Composite(bg, depth, opacity, weights, out_features)
    flat = lambda x: x.reshape(b * r, s)  # noqa: E731
    weights, transmittance, _ = render_weight_from_density(flat(t_starts), flat(t_ends), flat(densities))
    if backdrop:
        # An infinite last interval: alpha 1, so the last sample keeps whatever light is left.
        weights = torch.cat([weights[:, :-1], transmittance[:, -1:]], dim=-1)
    opacity = accumulate_along_rays(weights, None)
    color = accumulate_along_rays(weights, rgb.reshape(b * r, s, 3))
    t_points = (t_starts + t_ends) * 0.5 if t_points is None else t_points
    depth_sum = accumulate_along_rays(weights, flat(t_points)[..., None])
    # EG3D normalizes by opacity and clamps to the sampled range; empty rays fall back to the far plane.
    lowest = flat(t_starts).amin(dim=-1, keepdim=True)
    highest = flat(t_ends).amax(dim=-1, keepdim=True)
    depth = torch.minimum(torch.maximum(depth_sum / opacity.clamp_min(1e-10), lowest), highest)
    fallback = highest if empty_depth is None else empty_depth.reshape(b * r, 1)
    depth = torch.where(opacity > 1e-6, depth, fallback)
    rgb_out = color.reshape(b, r, 3)
    if not backdrop:
        bg = resolve_background(background, (b, r), densities.device, densities.dtype, rng)
        rgb_out = rgb_out + (1.0 - opacity.reshape(b, r, 1)) * bg
    out_features = None
    if features is not None:
        out_features = accumulate_along_rays(weights, features.reshape(b * r, s, -1)).reshape(b, r, -1)
    return Composite(rgb_out, depth.reshape(b, r, 1), opacity.reshape(b, r, 1), weights.reshape(b, r, s), out_features)

"""Tri-plane radiance field: project points onto three axis-aligned planes, sample, decode.

Axis convention and box (world space: right-handed, +y up, box centred at the origin):

* A point ``p`` is normalized as ``q = p / box_half_size``; the box ``[-h, h]^3`` becomes
  ``[-1, 1]^3``.
* Plane 0 is the xy plane, sampled at ``(q_x, q_y)``; plane 1 the xz plane at ``(q_x, q_z)``;
  plane 2 the yz plane at ``(q_y, q_z)``. (EG3D's public code samples xy, xz and zx; we use the yz
  plane instead of a transposed xz plane.)
* On a plane of R x R texels the first coordinate runs along the columns (width), the second
  along the rows (height), as in ``grid_sample``: texel (row i, col j) of plane 1 has its centre at
  ``q_x = 2 (j + 0.5) / R - 1``, ``q_z = 2 (i + 0.5) / R - 1`` (``align_corners=False``).
* Out-of-box behaviour: a point with any ``|q| > 1`` gets density exactly 0 (after the
  activation); renderers rely on this. Its rgb/features are whatever the padded sample decodes to.
  Inside the box, sampling uses ``padding_mode`` ('zeros' as EG3D, or 'border') for the half texel
  next to the faces.
* ``plane_margin > 0`` makes the planes span a box ``1 + plane_margin`` times the scene box's side
  (``q = p / (box_half_size (1 + plane_margin))``) while density stays 0 outside the scene box, so the
  planes' border texels, which fade under the synthesis network's zero padding, never decode density.
* Options that reproduce the released EG3D and EpiGRAF weights exactly (all off by default, recorded
  in the generator config): ``plane_axes="xy_xz_zx"`` (EG3D's third plane is sampled at ``(q_z, q_x)``),
  ``plane_axes="xy_yz_zx"`` (Mimic3D's planes: ``(q_x, q_y)``, ``(q_y, q_z)``, ``(q_z, q_x)``),
  ``mask_outside_box=False`` (EG3D decodes padded features outside the box), ``align_corners=True``
  and ``color_activation="linear"`` (EpiGRAF).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from jaxtyping import Float
from torch import Tensor

from epigraf_field.decoder import MLPDecoder

Aggregation = Literal["mean", "sum", "concat"]
PaddingMode = Literal["zeros", "border"]
PlaneAxes = Literal["xy_xz_yz", "xy_xz_zx", "xy_yz_zx"]
ColorActivation = Literal["widened_sigmoid", "linear"]
AGGREGATIONS = ("mean", "sum", "concat")
PLANE_AXES = ("xy_xz_yz", "xy_xz_zx", "xy_yz_zx")
COLOR_ACTIVATIONS = ("widened_sigmoid", "linear")
# EG3D widens the sigmoid so 0 and 1 are reachable with finite logits (EG3D, OSGDecoder).
RGB_PAD = 0.001


@dataclass
class FieldOutputs:
    """What a :class:`TriPlaneField` returns (it satisfies the renderers' ``RadianceFieldOutputs``)."""

    density: Float[Tensor, "b n 1"]
    """Activated density (>= 0; exactly 0 outside the box)."""
    rgb: Float[Tensor, "b n 3"]
    """Colour in [0, 1] (up to the widened sigmoid's 0.001 margins)."""
    features: Float[Tensor, "b n f"] | None = None
    """Extra feature channels (``num_feature_channels > 0``); ``rgb == features[..., :3]``."""
    density_logits: Float[Tensor, "b n 1"] | None = None
    """``density == softplus(density_logits)`` when the field is not masked to its box (``mask_outside_box``
    False); renderers that average densities before the activation (EG3D's mid-point marcher) use it."""


@dataclass
class TriPlaneFieldConfig:
    """How points are turned into decoder inputs and decoder outputs into density and colour."""

    box_half_size: float = 0.5
    """Half the side of the axis-aligned box the planes span (EG3D's box of side 1)."""
    aggregation: Aggregation = "mean"
    """How the three plane features are combined: mean (EpiGRAF, EG3D), sum, or concat (3C inputs)."""
    padding_mode: PaddingMode = "zeros"
    """grid_sample padding for the half texel at the box faces: zeros (EG3D) or border."""
    density_shift: float = 0.0
    """Added to the raw density before softplus (EG3D uses -1; EpiGRAF 0)."""
    num_feature_channels: int = 0
    """0: the decoder outputs density + rgb. > 0 (>= 3): density + this many features, rgb = features[..., :3]."""
    plane_axes: PlaneAxes = "xy_xz_yz"
    """Which coordinates each plane is sampled at: xy_xz_yz (ours), xy_xz_zx, EG3D's released code, whose third
    plane repeats the xz plane transposed (the yz plane is never used; its weights depend on it), or xy_yz_zx,
    Mimic3D's released code (planes xy, yz, zx)."""
    align_corners: bool = False
    """grid_sample's align_corners: False (texel centres, EG3D and ours) or True (EpiGRAF: corner texels on the faces)."""
    mask_outside_box: bool = True
    """Density exactly 0 outside the box (ours). EG3D decodes the zero-padded features there as anywhere else."""
    plane_margin: float = 0.0
    """The planes span a box (1 + plane_margin) times the scene box's side; density is still 0 outside the scene
    box. A feature of one plane extends along that plane's normal and the other two planes cancel it; near their
    borders, whose texels fade, they fail to, and it is left as a sheet of density on the box faces. A margin
    keeps those texels outside the scene."""
    color_activation: ColorActivation = "widened_sigmoid"
    """Colour from the decoder: widened_sigmoid (EG3D, ours) or linear (EpiGRAF: rgb = (raw + 1) / 2, its [-1, 1]
    colours mapped to [0, 1] with no clamp)."""

    def __post_init__(self) -> None:
        if self.plane_axes not in PLANE_AXES:
            raise ValueError(f"TriPlaneFieldConfig.plane_axes must be one of {PLANE_AXES}, got {self.plane_axes!r}")
        if self.color_activation not in COLOR_ACTIVATIONS:
            raise ValueError(
                f"TriPlaneFieldConfig.color_activation must be one of {COLOR_ACTIVATIONS}, got {self.color_activation!r}"
            )
        check_plane_margin(self.plane_margin, "TriPlaneFieldConfig")

    @property
    def plane_half_size(self) -> float:
        """Half side of the box the planes span: the scene box widened by ``plane_margin``."""
        return self.box_half_size * (1.0 + self.plane_margin)


def check_plane_margin(plane_margin: float, owner: str) -> None:
    """ValueError naming ``owner``'s field unless the plane margin is a finite number >= 0."""
    if not 0.0 <= plane_margin < float("inf"):
        raise ValueError(f"{owner}.plane_margin must be >= 0 (0: the planes span the scene box), got {plane_margin}")


def widened_sigmoid(x: Tensor) -> Tensor:
    """``sigmoid(x) * (1 + 2 * 0.001) - 0.001`` (EG3D's colour activation)."""
    return torch.sigmoid(x) * (1 + 2 * RGB_PAD) - RGB_PAD


def project_onto_planes(
    points: Float[Tensor, "b n 3"], box_half_size: float, plane_axes: PlaneAxes = "xy_xz_yz"
) -> Float[Tensor, "b 3 n 2"]:
    """Normalized plane coordinates of world points: planes (xy, xz, yz), each in [-1, 1] inside the box.

    Example: the point (0.25, -0.5, 0.1) with box_half_size 0.5 lands at (0.5, -1) on plane 0,
    (0.5, 0.2) on plane 1 and (-1, 0.2) on plane 2; with ``plane_axes="xy_xz_zx"`` (EG3D) plane 2
    gets (0.2, 0.5) instead; with ``"xy_yz_zx"`` (Mimic3D) plane 1 gets (-1, 0.2) and plane 2 (0.2, 0.5).
    """
    q = points / box_half_size
    x, y, z = q.unbind(dim=-1)
    second = torch.stack([y, z], dim=-1) if plane_axes == "xy_yz_zx" else torch.stack([x, z], dim=-1)
    third = torch.stack([z, x], dim=-1) if plane_axes != "xy_xz_yz" else torch.stack([y, z], dim=-1)
    return torch.stack([torch.stack([x, y], dim=-1), second, third], dim=1)


def sample_planes(
    planes: Float[Tensor, "b 3 c r r"],
    coords: Float[Tensor, "b 3 n 2"],
    padding_mode: PaddingMode = "zeros",
    align_corners: bool = False,
) -> Float[Tensor, "b 3 c n"]:
    """Bilinear samples of each plane at its coordinates (one grid_sample call for all planes)."""
    b, p, c, h, w = planes.shape
    n = coords.shape[2]
    grid = coords.reshape(b * p, 1, n, 2).to(planes.dtype)
    out = F.grid_sample(
        planes.reshape(b * p, c, h, w), grid, mode="bilinear", padding_mode=padding_mode, align_corners=align_corners
    )
    return out.reshape(b, p, c, n)


def aggregate_plane_features(
    samples: Float[Tensor, "b 3 c n"], aggregation: Aggregation = "mean"
) -> Float[Tensor, "b n f"]:
    """Combine the three plane samples per point: mean/sum give C features, concat 3C (plane-major)."""
    if aggregation == "mean":
        return samples.mean(dim=1).transpose(1, 2)
    if aggregation == "sum":
        return samples.sum(dim=1).transpose(1, 2)
    if aggregation == "concat":
        b, p, c, n = samples.shape
        return samples.reshape(b, p * c, n).transpose(1, 2)
    raise ValueError(f"aggregation must be one of {AGGREGATIONS}, got {aggregation!r}")


def decoder_input_features(plane_channels: int, aggregation: Aggregation) -> int:
    """Number of decoder inputs for the given aggregation."""
    return plane_channels * (3 if aggregation == "concat" else 1)


class TriPlaneField:
    """A batch of tri-planes bound to a decoder: the field protocol's ``__call__`` and ``density``.

    ``density_noise_std > 0`` adds N(0, std^2) noise to the raw density (EpiGRAF/NeRF training
    noise), drawn from ``rng``; with std 0 the field is deterministic.
    """

    def __init__(
        self,
        planes: Float[Tensor, "b 3 c r r"],
        decoder: MLPDecoder,
        config: TriPlaneFieldConfig,
        density_noise_std: float = 0.0,
        rng: torch.Generator | None = None,
    ) -> None:
        if planes.ndim != 5 or planes.shape[1] != 3:
            raise ValueError(f"planes must have shape [b, 3, C, R, R], got {list(planes.shape)}")
        if density_noise_std < 0:
            raise ValueError(f"density_noise_std must be >= 0, got {density_noise_std}")
        expected_in = decoder_input_features(planes.shape[2], config.aggregation)
        if decoder.in_features != expected_in:
            raise ValueError(
                f"decoder takes {decoder.in_features} inputs but planes with {planes.shape[2]} channels and "
                f"aggregation={config.aggregation!r} give {expected_in}"
            )
        expected_out = 1 + (config.num_feature_channels or 3)
        if decoder.out_features != expected_out:
            raise ValueError(
                f"decoder gives {decoder.out_features} outputs, expected {expected_out} "
                f"(1 density + {config.num_feature_channels or 3} colour/feature channels)"
            )
        self.planes, self.decoder, self.config = planes, decoder, config
        self.density_noise_std, self.rng = density_noise_std, rng

    @property
    def num_feature_channels(self) -> int:
        return self.config.num_feature_channels

    @property
    def batch_size(self) -> int:
        return self.planes.shape[0]

    def _raw(self, points: Tensor) -> tuple[Tensor, Tensor | None]:
        if points.ndim != 3 or points.shape[0] != self.planes.shape[0] or points.shape[2] != 3:
            raise ValueError(
                f"points must have shape [{self.planes.shape[0]}, n, 3] (one row per scene), got {list(points.shape)}"
            )
        cfg = self.config
        coords = project_onto_planes(points, cfg.plane_half_size, cfg.plane_axes)
        samples = sample_planes(self.planes, coords, cfg.padding_mode, cfg.align_corners)
        raw = self.decoder(aggregate_plane_features(samples, cfg.aggregation))
        if not cfg.mask_outside_box:
            return raw, None
        inside = (points.abs() <= cfg.box_half_size).all(dim=-1, keepdim=True)
        return raw, inside

    def _density_logits(self, raw_density: Tensor) -> Tensor:
        if self.density_noise_std > 0:
            noise = torch.randn(
                raw_density.shape, generator=self.rng, device=raw_density.device, dtype=raw_density.dtype
            )
            raw_density = raw_density + noise * self.density_noise_std
        return raw_density + self.config.density_shift

    def _activate_density(self, raw_density: Tensor, inside: Tensor | None) -> Tensor:
        density = F.softplus(self._density_logits(raw_density))
        return density if inside is None else torch.where(inside, density, torch.zeros_like(density))

    def __call__(
        self, points: Float[Tensor, "b n 3"], directions: Float[Tensor, "b n 3"] | None = None
    ) -> FieldOutputs:
        """Density, rgb and features at world points (directions are accepted and unused)."""
        raw, inside = self._raw(points)
        logits = self._density_logits(raw[..., :1])
        density = F.softplus(logits)
        if inside is not None:
            density = torch.where(inside, density, torch.zeros_like(density))
            logits = None  # the mask is not a softplus of anything
        if self.config.color_activation == "linear":
            colour = (raw[..., 1:] + 1.0) * 0.5
        else:
            colour = widened_sigmoid(raw[..., 1:])
        features = colour if self.config.num_feature_channels > 0 else None
        return FieldOutputs(density=density, rgb=colour[..., :3], features=features, density_logits=logits)

    def density(self, points: Float[Tensor, "b n 3"]) -> Float[Tensor, "b n 1"]:
        """Density only (occupancy updates, marching cubes)."""
        raw, inside = self._raw(points)
        return self._activate_density(raw[..., :1], inside)

    def raw_density(self, points: Float[Tensor, "b n 3"]) -> Float[Tensor, "b n 1"]:
        """The decoder's density output before the shift, activation and box mask, at any point.

        EG3D's density regularization compares these: unlike activated densities, they keep a
        gradient in empty space (softplus is flat there) and outside the box (planes padded).
        """
        raw, _ = self._raw(points)
        return raw[..., :1]

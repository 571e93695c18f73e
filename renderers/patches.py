"""Image patches (scale, offset) in [0, 1] image units: pixel centres and the real-patch cutter."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from jaxtyping import Float
from torch import Tensor

PIXEL_GRIDS = ("centers", "corners")
"""Where pixels sit: at their centres (ours, EG3D) or spread from edge to edge (EpiGRAF)."""

# Offsets computed as ``1 - scale`` in float32 may overshoot by a few ulps; accept that much.
OFFSET_TOLERANCE = 1e-5


@dataclass
class Patch:
    """One square patch per batch item, as in EpiGRAF: it covers ``[offset, offset + scale]`` on
    both image axes (x = u to the right, y = v down). Scale 1 and offset 0 is the whole image.

    Example:
        >>> patch = Patch(scales=torch.tensor([0.5]), offsets=torch.tensor([[0.5, 0.0]]))
        >>> pixel_centers(2, 1, patch)[0]  # the top-right quarter at 2 x 2 pixels
        tensor([[0.6250, 0.1250],
                [0.8750, 0.1250],
                [0.6250, 0.3750],
                [0.8750, 0.3750]])
    """

    scales: Float[Tensor, " b"]
    """Side of the patch as a fraction of the image side, in (0, 1]."""
    offsets: Float[Tensor, "b 2"]
    """Top-left corner (x = u0, y = v0) in image units, each in [0, 1 - scale]."""

    def __post_init__(self) -> None:
        for name, value, trailing in (("scales", self.scales, ()), ("offsets", self.offsets, (2,))):
            if not isinstance(value, Tensor) or value.ndim != 1 + len(trailing) or tuple(value.shape[1:]) != trailing:
                shape = list(value.shape) if isinstance(value, Tensor) else type(value).__name__
                expected = "[b]" if not trailing else "[b, 2]"
                raise ValueError(f"Patch.{name} must be a tensor of shape {expected}, got {shape}")
            if not torch.isfinite(value).all():
                raise ValueError(f"Patch.{name} holds non-finite values (NaN or Inf)")
        if self.scales.shape[0] != self.offsets.shape[0]:
            raise ValueError(
                f"Patch.scales has {self.scales.shape[0]} entries but Patch.offsets has {self.offsets.shape[0]}; "
                "pass one (scale, offset) per batch item"
            )
        if not ((self.scales > 0) & (self.scales <= 1)).all():
            raise ValueError(f"Patch.scales must lie in (0, 1], got {self.scales.tolist()}")
        upper = (1.0 - self.scales)[:, None] + OFFSET_TOLERANCE
        if not ((self.offsets >= -OFFSET_TOLERANCE) & (self.offsets <= upper)).all():
            raise ValueError(
                "Patch.offsets must lie in [0, 1 - scale] on both axes so the patch stays inside the image, "
                f"got offsets={self.offsets.tolist()} for scales={self.scales.tolist()}"
            )

    @property
    def batch_size(self) -> int:
        return int(self.scales.shape[0])

    @property
    def device(self) -> torch.device:
        return self.scales.device

    @classmethod
    def full(cls, batch_size: int, device: torch.device | str | None = None) -> Patch:
        """The whole image for every batch item (scale 1, offset 0)."""
        return cls(torch.ones(batch_size, device=device), torch.zeros(batch_size, 2, device=device))

    def to(self, device: torch.device | str) -> Patch:
        return Patch(self.scales.to(device), self.offsets.to(device))

    def as_params(self) -> Float[Tensor, "b 3"]:
        """(scale, offset x, offset y) per item: what a patch-aware discriminator is conditioned on."""
        return torch.cat([self.scales[:, None], self.offsets], dim=1)


def _check_resolution(resolution: int) -> None:
    if isinstance(resolution, bool) or not isinstance(resolution, int) or resolution <= 0:
        raise ValueError(f"resolution must be a positive int (pixels per side), got {resolution!r}")


def pixel_centers(
    resolution: int,
    batch_size: int,
    patch: Patch | None = None,
    device: torch.device | str | None = None,
    grid: str = "centers",
) -> Float[Tensor, "b n 2"]:
    """Image-unit (u, v) centres of the ``resolution x resolution`` pixels of each patch, row-major.

    Pixel (row i, col j) sits at ``u = u0 + scale * (j + 0.5) / r`` and ``v = v0 + scale * (i + 0.5) / r``
    and is entry ``i * r + j``. The sum is formed as ``(u0 * r / scale + j + 0.5) * scale / r`` so that
    a patch's centres are bit-identical to the matching pixels of a finer full image whenever
    ``u0 * r / scale`` is an integer (e.g. scale 0.5, offsets 0 or 0.5 against twice the resolution).

    Example:
        >>> pixel_centers(2, 1)[0]
        tensor([[0.2500, 0.2500],
                [0.7500, 0.2500],
                [0.2500, 0.7500],
                [0.7500, 0.7500]])

    ``grid="corners"`` spreads the pixels from edge to edge instead, ``u = u0 + scale * j / (r - 1)``
    (EpiGRAF's rays, which run through ``linspace(-1, 1, r)`` of the image plane).
    """
    _check_resolution(resolution)
    if grid not in PIXEL_GRIDS:
        raise ValueError(f"grid must be one of {PIXEL_GRIDS}, got {grid!r}")
    if patch is None:
        patch = Patch.full(batch_size, device)
    if patch.batch_size != batch_size:
        raise ValueError(f"patch has {patch.batch_size} items but batch_size is {batch_size}; pass one patch per item")
    device = patch.device if device is None else torch.device(device)
    scales, offsets = patch.scales.to(device), patch.offsets.to(device)
    if grid == "corners":
        steps = torch.linspace(0.0, 1.0, resolution, device=device, dtype=scales.dtype)
        u = offsets[:, 0:1] + scales[:, None] * steps[None, :]
        v = offsets[:, 1:2] + scales[:, None] * steps[None, :]
    else:
        steps = torch.arange(resolution, device=device, dtype=scales.dtype) + 0.5
        # Pixel coordinates in units of this patch's pixels, measured from the image's top-left corner.
        origin = offsets * resolution / scales[:, None]  # [b, 2]
        u = (origin[:, 0:1] + steps[None, :]) * scales[:, None] / resolution  # [b, r] over columns j
        v = (origin[:, 1:2] + steps[None, :]) * scales[:, None] / resolution  # [b, r] over rows i
    uu = u[:, None, :].expand(-1, resolution, -1)
    vv = v[:, :, None].expand(-1, -1, resolution)
    return torch.stack([uu, vv], dim=-1).reshape(batch_size, resolution * resolution, 2)


def crop_patches(
    images: Float[Tensor, "b c h w"], patch: Patch, resolution: int
) -> Float[Tensor, "b c r r"]:
    """Cuts each patch out of ``images`` at ``resolution x resolution`` by bilinear resampling.

    The samples are taken at :func:`pixel_centers`, so a real patch lines up pixel for pixel with a
    rendered one (grid_sample with ``align_corners=False`` puts pixel ``j`` of a width-``W`` image at
    ``u = (j + 0.5) / W``, i.e. grid coordinate ``2u - 1``).
    """
    if not isinstance(images, Tensor) or images.ndim != 4:
        shape = list(images.shape) if isinstance(images, Tensor) else type(images).__name__
        raise ValueError(f"images must have shape [b, c, h, w], got {shape}")
    if patch.batch_size != images.shape[0]:
        raise ValueError(f"patch has {patch.batch_size} items but images has {images.shape[0]}; pass one patch per image")
    uv = pixel_centers(resolution, images.shape[0], patch.to(images.device))
    grid = (uv * 2.0 - 1.0).reshape(images.shape[0], resolution, resolution, 2).to(images.dtype)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)

"""Helpers of the renderer tests: a random tri-plane-like field and image metrics."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from renderers.field import FieldValues


class RandomTriPlaneField(nn.Module):
    """A small random tri-plane field with structure: smooth random planes, a tiny random MLP.

    Density is ``scale * relu(raw - cutoff)``: exactly zero in much of the box and high in blobs,
    the kind of field an occupancy grid is meant for. Planes and MLP are parameters, so gradients
    can be checked too.
    """

    def __init__(self, batch_size: int, rng: torch.Generator, channels: int = 4, resolution: int = 8,
                 cutoff: float = 0.35, scale: float = 60.0, box_half_size: float = 0.5) -> None:
        super().__init__()
        self.planes = nn.Parameter(torch.randn(batch_size, 3, channels, resolution, resolution, generator=rng))
        self.hidden = nn.Parameter(torch.randn(channels, 16, generator=rng) / channels**0.5)
        self.out = nn.Parameter(torch.randn(16, 4, generator=rng) / 4.0)
        self.cutoff, self.scale, self.box_half_size = cutoff, scale, box_half_size

    def _raw(self, points: Tensor) -> Tensor:
        b, n, _ = points.shape
        coords = points / self.box_half_size
        pairs = torch.stack([coords[..., [0, 1]], coords[..., [0, 2]], coords[..., [1, 2]]], dim=1)  # [b, 3, n, 2]
        planes = self.planes.flatten(0, 1)
        sampled = F.grid_sample(planes, pairs.reshape(b * 3, 1, n, 2), mode="bilinear", align_corners=False)
        features = sampled.reshape(b, 3, -1, n).mean(dim=1).transpose(1, 2)  # [b, n, c]
        raw = torch.tanh(features @ self.hidden) @ self.out
        inside = (points.abs() <= self.box_half_size).all(dim=-1, keepdim=True)
        return raw, inside

    def density(self, points: Tensor) -> Tensor:
        raw, inside = self._raw(points)
        return self.scale * F.relu(raw[..., :1] - self.cutoff) * inside

    def forward(self, points: Tensor, directions: Tensor | None = None) -> FieldValues:
        raw, inside = self._raw(points)
        density = self.scale * F.relu(raw[..., :1] - self.cutoff) * inside
        return FieldValues(density=density, rgb=torch.sigmoid(3.0 * raw[..., 1:]))


def psnr(image: Tensor, reference: Tensor) -> float:
    """Peak signal-to-noise ratio in dB for images in [0, 1]."""
    mse = ((image.detach() - reference.detach()) ** 2).mean()
    return float(-10.0 * torch.log10(mse.clamp_min(1e-20)))

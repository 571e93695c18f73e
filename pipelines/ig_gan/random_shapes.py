"""The random voxel shapes f is pre-trained on: unions of coloured boxes and ellipsoids inside the object sphere."""

from __future__ import annotations

import torch
from jaxtyping import Float
from torch import Tensor

from pipelines.ig_gan.voxels import voxel_centres

OBJECT_RADIUS = 0.42
"""The built-in dataset's objects fit in this sphere (pipelines/data/shapes.py); the random shapes do too."""


def random_voxel_shapes(count: int, resolution: int, box_half_size: float, rng: torch.Generator,
                        max_parts: int = 4, sharpness: float = 4.0) -> Float[Tensor, "b 4 d d d"]:
    """Grids [count, 4, D, D, D] of 1 to ``max_parts`` parts, each an axis-aligned box or an ellipsoid with a
    random centre, size and sRGB colour, inside the sphere of radius 0.42; a voxel takes the colour of the
    last part covering it. Occupancy is soft, sigmoid(sharpness * signed distance in voxels), so f learns from
    continuous grids as the generator makes them, while R sees their binarization.

    These stand in for the shapes the generator will make (blobs, slabs, legs, stacked parts) without
    knowing the dataset; every random number comes from ``rng``.
    """
    device = rng.device
    points = voxel_centres(resolution, box_half_size, device)  # [D, D, D, 3]
    voxel = 2.0 * box_half_size / resolution
    grids = torch.zeros(count, 4, resolution, resolution, resolution, device=device)
    grids[:, 1:] = 1.0
    for index in range(count):
        parts = int(torch.randint(1, max_parts + 1, (1,), generator=rng, device=device))
        occupancy = torch.zeros(resolution, resolution, resolution, device=device)
        for _ in range(parts):
            half = (0.05 + 0.2 * torch.rand(3, generator=rng, device=device))
            centre = (torch.rand(3, generator=rng, device=device) * 2 - 1) * (OBJECT_RADIUS - half.max()).clamp(min=0)
            offset = (points - centre) / half
            if bool(torch.rand(1, generator=rng, device=device) < 0.5):
                inside = 1.0 - offset.abs().amax(dim=-1)  # box: > 0 inside
            else:
                inside = 1.0 - offset.norm(dim=-1)  # ellipsoid
            distance = inside * half.min() / voxel  # roughly in voxels
            part = torch.sigmoid(sharpness * distance)
            colour = torch.rand(3, generator=rng, device=device)
            covered = part > 0.5
            grids[index, 1:, covered] = colour[:, None]
            occupancy = torch.maximum(occupancy, part)
        grids[index, 0] = occupancy
    return grids

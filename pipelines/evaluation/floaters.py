"""Floaters: matter that is not part of an object's one connected body, in a density grid or an image's mask.

A real object of the built-in dataset is one connected body (a chair's legs touch its seat). A generator can
leave density elsewhere in its box: a tri-plane feature that stands for the object in one plane extends along
that plane's normal through the whole box unless the other two planes cancel it, and where the training
cameras hardly see it (behind the object, at the box faces) nothing asks them to. What is left of it floats
apart from the object. Both measures here are the share of an object's matter outside its largest connected
component: voxels above a density level in 3D (26-connected), opaque pixels in 2D (8-connected).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from jaxtyping import Bool, Float
from scipy import ndimage
from torch import Tensor


def detached_share(occupied: np.ndarray | Tensor) -> float:
    """Share of the occupied cells of a 2D or 3D boolean array outside its largest connected component
    (cells touching by a face, edge or corner are connected); 0 for an empty array.

    Example: a 10-pixel blob and a separate 2-pixel speck give 2 / 12.
    """
    occupied = np.asarray(occupied.cpu() if isinstance(occupied, Tensor) else occupied, dtype=bool)
    labels, count = ndimage.label(occupied, structure=np.ones((3,) * occupied.ndim, dtype=bool))
    if count == 0:
        return 0.0
    sizes = np.bincount(labels.ravel())[1:]
    return float(1.0 - sizes.max() / sizes.sum())


@dataclass
class DetachedDensity:
    """Where a scene's density above the level lies apart from its largest connected body."""

    share: float
    """Share of the occupied voxels outside the largest component."""
    at_faces: float
    """Share of those detached voxels within one voxel of a face of the box (0 when none is detached)."""
    faces: tuple[int, int, int, int, int, int]
    """Detached voxels touching each face: -x, +x, -y, +y, -z, +z (grid indexed [x, y, z])."""


def detached_density(grid: Float[Tensor, "n n n"], level: float) -> DetachedDensity:
    """:func:`detached_share` of ``grid > level`` for one density grid indexed [x, y, z] over the box, and where the
    detached voxels sit.

    Example: a ball in the middle of the grid and a one-voxel-thick sheet on the +z face give a share of
    sheet / (ball + sheet), ``at_faces`` 1 and every face count 0 but the last.
    """
    occupied = (grid > level).cpu().numpy()
    labels, count = ndimage.label(occupied, structure=np.ones((3, 3, 3), dtype=bool))
    if count < 2:
        return DetachedDensity(0.0, 0.0, (0,) * 6)
    sizes = np.bincount(labels.ravel())[1:]
    detached = occupied & (labels != sizes.argmax() + 1)
    cells = np.argwhere(detached)
    last = np.array(occupied.shape) - 2
    near_low, near_high = cells <= 1, cells >= last
    faces = tuple(int(side[:, axis].sum()) for axis in range(3) for side in (near_low, near_high))
    at_faces = float((near_low | near_high).any(axis=1).mean())
    return DetachedDensity(float(len(cells) / sizes.sum()), at_faces, faces)  # type: ignore[arg-type]


def detached_pixel_shares(opaque: Bool[Tensor, "b h w"]) -> Float[Tensor, " b"]:
    """Per image, :func:`detached_share` of its opaque pixels: specks and streaks apart from the object."""
    return torch.tensor([detached_share(mask) for mask in opaque], dtype=torch.float32)

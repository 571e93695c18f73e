"""The similarity transform between a nerfstudio scene and the generator's tri-plane world."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

IDENTITY = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)
# OpenCV camera axes (x right, y down, z forward) to nerfstudio's OpenGL axes (x right, y up, z back).
OPENCV_TO_OPENGL = torch.diag(torch.tensor([1.0, -1.0, -1.0, 1.0]))
Z_UP_TO_Y_UP = (1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, -1.0, 0.0)
"""``rotation`` for scenes that nerfstudio's dataparser turned z-up (its default ``orientation_method='up'``)."""


@dataclass
class SceneTransformConfig:
    """Where a nerfstudio scene sits in the generator's world: ``p_box = scale * R p_scene + translation``.

    The generator's tri-plane spans the box ``[-h, h]^3`` (``h`` is the generator's
    ``box_half_size``, 0.5 by default) in a right-handed world with +y up and the object facing
    +z (``renderers/cameras.py``). nerfstudio's dataparsers recentre, reorient (z-up by default)
    and rescale the capture's poses, so its scene coordinates are not the generator's: this
    similarity maps one to the other. Ray distances scale by ``scale`` too, so densities handed to
    nerfstudio are multiplied by ``scale`` to keep every interval's opacity unchanged.

    Example: a capture whose object fills the nerfstudio box [-1, 1]^3 with z up, seen by a
    generator with box half-size 0.5, needs ``scale=0.5`` and ``rotation=Z_UP_TO_Y_UP``; a capture
    parsed with ``--orientation-method none --center-method none --auto-scale-poses False`` in the
    generator's own world needs the identity (the defaults).
    """

    scale: float = 1.0
    """Generator world units per nerfstudio scene unit (> 0)."""
    translation: tuple[float, float, float] = (0.0, 0.0, 0.0)
    """Generator world position of the nerfstudio scene origin (added after scaling)."""
    rotation: tuple[float, float, float, float, float, float, float, float, float] = IDENTITY
    """Row-major 3x3 rotation R from scene axes to generator axes (proper: R^T R = I, det R = +1).
    (1, 0, 0, 0, 0, 1, 0, -1, 0) turns nerfstudio's z-up scenes into the generator's y-up world."""

    def __post_init__(self) -> None:
        self.translation = tuple(float(v) for v in self.translation)
        self.rotation = tuple(float(v) for v in self.rotation)
        if not (math.isfinite(self.scale) and self.scale > 0):
            raise ValueError(f"SceneTransformConfig.scale must be a positive number, got {self.scale}")
        if len(self.translation) != 3 or not all(math.isfinite(v) for v in self.translation):
            raise ValueError(f"SceneTransformConfig.translation must be 3 finite numbers, got {self.translation}")
        if len(self.rotation) != 9:
            raise ValueError(
                f"SceneTransformConfig.rotation must be 9 numbers (a row-major 3x3), got {len(self.rotation)}"
            )
        r = torch.tensor(self.rotation, dtype=torch.float64).reshape(3, 3)
        if not torch.allclose(r @ r.T, torch.eye(3, dtype=torch.float64), atol=1e-5) or torch.det(r) < 0:
            raise ValueError(
                f"SceneTransformConfig.rotation must be a proper rotation (R R^T = I, det +1), got {self.rotation}; "
                "use IDENTITY or Z_UP_TO_Y_UP from pipelines.nerfstudio.scene_transform, or an orthonormal matrix"
            )

    def rotation_matrix(self, like: Tensor | None = None) -> Tensor:
        """R as a [3, 3] tensor (on ``like``'s device and dtype when given)."""
        r = torch.tensor(self.rotation, dtype=torch.float32).reshape(3, 3)
        return r if like is None else r.to(device=like.device, dtype=like.dtype)

    def points_to_box(self, points: Tensor) -> Tensor:
        """Scene points [..., 3] to generator world points [..., 3]."""
        r = self.rotation_matrix(points)
        return self.scale * points @ r.T + points.new_tensor(self.translation)

    def points_from_box(self, points: Tensor) -> Tensor:
        """Generator world points [..., 3] to scene points [..., 3] (inverse of :meth:`points_to_box`)."""
        r = self.rotation_matrix(points)
        return ((points - points.new_tensor(self.translation)) / self.scale) @ r

    def directions_to_box(self, directions: Tensor) -> Tensor:
        """Scene directions [..., 3] to generator world directions (rotation only: lengths are kept)."""
        return directions @ self.rotation_matrix(directions).T

    def directions_from_box(self, directions: Tensor) -> Tensor:
        """Generator world directions [..., 3] to scene directions."""
        return directions @ self.rotation_matrix(directions)

    def density_to_scene(self, density: Tensor) -> Tensor:
        """Density per generator unit to density per scene unit.

        A scene interval of length ``delta`` spans ``scale * delta`` generator units, so
        ``1 - exp(-sigma_box * scale * delta)`` is kept by ``sigma_scene = scale * sigma_box``
        (NeRF's quadrature, Mildenhall et al. 2020, eq. 3).
        """
        return density * self.scale

    def scene_from_box_matrix(self) -> tuple[Tensor, float]:
        """``(M [3, 4], s)`` with ``p_scene = s * M [p_box, 1]``: nerfstudio's ``dataparser_transform`` and
        ``dataparser_scale`` (``ns-export --save-world-frame`` maps scene points back to the generator's world)."""
        r = self.rotation_matrix()
        t = torch.tensor(self.translation, dtype=torch.float32)
        return torch.cat([r.T, -(r.T @ t)[:, None]], dim=1), 1.0 / self.scale

    def cam2world_from_box(self, cam2world: Tensor) -> Tensor:
        """Camera-to-world matrices [..., 4, 4] of generator world cameras, in scene coordinates."""
        out = cam2world.clone()
        out[..., :3, :3] = self.directions_from_box(cam2world[..., :3, :3].transpose(-1, -2)).transpose(-1, -2)
        out[..., :3, 3] = self.points_from_box(cam2world[..., :3, 3])
        return out


def nerfstudio_scene(box_half_size: float = 0.5) -> SceneTransformConfig:
    """The nerfstudio scene of a generator's box ``[-h, h]^3``: nerfstudio's default scene box ``[-1, 1]^3``, z up.

    ``p_box = h * R p_scene`` with ``R = Z_UP_TO_Y_UP``: one scene unit is ``h`` generator units
    (0.5 for the default box), and the generator's +y (up) is the scene's +z, which nerfstudio's
    viewer treats as up. ``epigraf-sample`` and the ``eg3d-data`` dataparser both use it, so
    nerfstudio's default bounding boxes (``ns-export tsdf`` / ``poisson``: -1 to 1) are the box.

    Example: with ``h = 0.5`` the generator's point (0, 0.5, 0) (top face centre) is the scene's (0, 0, 1).
    """
    return SceneTransformConfig(scale=float(box_half_size), rotation=Z_UP_TO_Y_UP)

"""Batched pinhole cameras: camera-to-world poses (OpenCV axes) and normalized intrinsics.

Conventions (shared by the whole project):

* World space is right-handed with +y up. The scene box is centred at the origin.
* Camera space follows OpenCV: +x right, +y down, +z forward (the viewing direction).
* ``cam2world`` maps camera-space points to world space; its last column is the camera
  centre. The rotation part is proper (det = +1).
* Intrinsics are normalized by the image size: ``fx = focal_px / width``, ``cx = 0.5``
  for a centred principal point. A pixel position ``(u, v)`` in [0, 1]^2 image units
  (u to the right, v down) looks along camera direction ``((u - cx) / fx, (v - cy) / fy, 1)``.
* The EG3D label is 25 floats: the flattened 4x4 ``cam2world`` then the flattened 3x3
  normalized intrinsics.
* Spherical cameras: ``yaw`` turns about +y (yaw 0 puts the camera on +z looking at -z,
  positive yaw moves it towards +x); ``pitch`` is the elevation above the xz plane
  (positive pitch looks down from above). EG3D's ``(horizontal, vertical)`` angles are
  ``(yaw + pi/2, pi/2 - pitch)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from jaxtyping import Float
from torch import Tensor

LABEL_SIZE = 25


def _check_shape(name: str, value: Tensor, trailing: tuple[int, ...]) -> None:
    if not isinstance(value, Tensor):
        raise TypeError(f"Cameras.{name} must be a torch.Tensor, got {type(value).__name__}")
    if value.ndim != 1 + len(trailing) or tuple(value.shape[1:]) != trailing:
        expected = "[b, " + ", ".join(str(t) for t in trailing) + "]"
        raise ValueError(f"Cameras.{name} must have shape {expected}, got {list(value.shape)}")
    if not torch.isfinite(value).all():
        raise ValueError(
            f"Cameras.{name} holds non-finite values (NaN or Inf); check the camera poses you pass in"
        )


@dataclass
class Cameras:
    """A batch of ``b`` pinhole cameras.

    Example:
        >>> cams = Cameras.from_spherical(yaw=torch.zeros(2), pitch=torch.zeros(2), radius=2.7, fov_degrees=18.0)
        >>> cams.centers
        tensor([[0.0000, 0.0000, 2.7000],
                [0.0000, 0.0000, 2.7000]])
    """

    cam2world: Float[Tensor, "b 4 4"]
    """Camera-to-world transforms, OpenCV camera axes."""
    intrinsics: Float[Tensor, "b 3 3"]
    """Intrinsics normalized by the image width and height."""
    near: Float[Tensor, " b"] | None = None
    """Fixed near distance per camera; ``None`` means: take it from the scene box."""
    far: Float[Tensor, " b"] | None = None
    """Fixed far distance per camera; ``None`` means: take it from the scene box."""

    def __post_init__(self) -> None:
        _check_shape("cam2world", self.cam2world, (4, 4))
        _check_shape("intrinsics", self.intrinsics, (3, 3))
        if self.cam2world.shape[0] != self.intrinsics.shape[0]:
            raise ValueError(
                f"Cameras.cam2world has {self.cam2world.shape[0]} cameras but Cameras.intrinsics has "
                f"{self.intrinsics.shape[0]}; pass one intrinsics matrix per camera"
            )
        if (self.near is None) != (self.far is None):
            raise ValueError("Cameras.near and Cameras.far must be given together (or both left as None)")
        if self.near is not None:
            for name in ("near", "far"):
                value = getattr(self, name)
                if value.shape != (self.batch_size,):
                    raise ValueError(f"Cameras.{name} must have shape [{self.batch_size}], got {list(value.shape)}")
            if not (self.far > self.near).all() or not (self.near >= 0).all():
                raise ValueError(
                    f"Cameras need 0 <= near < far, got near={self.near.tolist()} far={self.far.tolist()}"
                )
        fx, fy = self.intrinsics[:, 0, 0], self.intrinsics[:, 1, 1]
        if not ((fx > 0).all() and (fy > 0).all()):
            raise ValueError("Cameras.intrinsics need positive focal lengths (fx, fy > 0)")

    @property
    def batch_size(self) -> int:
        return int(self.cam2world.shape[0])

    @property
    def device(self) -> torch.device:
        return self.cam2world.device

    @property
    def centers(self) -> Float[Tensor, "b 3"]:
        """Camera centres in world space."""
        return self.cam2world[:, :3, 3]

    @property
    def fov_degrees(self) -> Float[Tensor, " b"]:
        """Vertical field of view in degrees."""
        return torch.rad2deg(2.0 * torch.atan(0.5 / self.intrinsics[:, 1, 1]))

    def to(self, device: torch.device | str) -> Cameras:
        move = lambda t: None if t is None else t.to(device)  # noqa: E731
        return Cameras(move(self.cam2world), move(self.intrinsics), move(self.near), move(self.far))

    def __getitem__(self, index: int | slice | Tensor) -> Cameras:
        if isinstance(index, int):
            index = slice(index, index + 1)
        pick = lambda t: None if t is None else t[index]  # noqa: E731
        return Cameras(pick(self.cam2world), pick(self.intrinsics), pick(self.near), pick(self.far))

    def __len__(self) -> int:
        return self.batch_size

    @staticmethod
    def cat(cameras: list[Cameras]) -> Cameras:
        """Concatenates batches of cameras (all with fixed near/far or none)."""
        if not cameras:
            raise ValueError("Cameras.cat needs at least one batch of cameras")
        fixed = cameras[0].near is not None
        if any((c.near is not None) != fixed for c in cameras):
            raise ValueError("Cameras.cat: either every batch has fixed near/far or none has")
        near = torch.cat([c.near for c in cameras]) if fixed else None
        far = torch.cat([c.far for c in cameras]) if fixed else None
        return Cameras(
            torch.cat([c.cam2world for c in cameras]), torch.cat([c.intrinsics for c in cameras]), near, far
        )

    def with_bounds(self, near: float, far: float) -> Cameras:
        """The same cameras with a fixed near/far distance (EpiGRAF's configs use these)."""
        if not (0 <= near < far):
            raise ValueError(f"with_bounds needs 0 <= near < far, got near={near}, far={far}")
        full = lambda v: torch.full((self.batch_size,), float(v), device=self.device)  # noqa: E731
        return Cameras(self.cam2world, self.intrinsics, full(near), full(far))

    def to_label(self) -> Float[Tensor, "b 25"]:
        """The EG3D 25-float label: flattened cam2world (16) + flattened intrinsics (9)."""
        return torch.cat([self.cam2world.reshape(-1, 16), self.intrinsics.reshape(-1, 9)], dim=1)

    @classmethod
    def from_label(cls, label: Float[Tensor, "b 25"]) -> Cameras:
        """Inverse of :meth:`to_label`."""
        if not isinstance(label, Tensor) or label.ndim != 2 or label.shape[1] != LABEL_SIZE:
            shape = list(label.shape) if isinstance(label, Tensor) else type(label).__name__
            raise ValueError(f"camera label must have shape [b, {LABEL_SIZE}] (16 pose + 9 intrinsics), got {shape}")
        return cls(label[:, :16].reshape(-1, 4, 4), label[:, 16:].reshape(-1, 3, 3))

    def mirror_x(self) -> Cameras:
        """Cameras of the horizontally flipped images: the world is reflected in the x = 0 plane.

        The world reflection ``diag(-1, 1, 1)`` is paired with a flip of the camera's x axis,
        so the rotation stays proper and a camera at yaw ``a`` moves to yaw ``-a``.
        """
        flip = torch.diag(torch.tensor([-1.0, 1.0, 1.0, 1.0], device=self.device, dtype=self.cam2world.dtype))
        intrinsics = self.intrinsics.clone()
        intrinsics[:, 0, 2] = 1.0 - intrinsics[:, 0, 2]
        return Cameras(flip @ self.cam2world @ flip, intrinsics, self.near, self.far)

    @classmethod
    def look_at(
        cls,
        centers: Float[Tensor, "b 3"],
        fov_degrees: float | Float[Tensor, " b"],
        targets: Float[Tensor, "b 3"] | None = None,
        up: tuple[float, float, float] = (0.0, 1.0, 0.0),
    ) -> Cameras:
        """Cameras at ``centers`` looking at ``targets`` (the origin by default), world +y up."""
        targets = torch.zeros_like(centers) if targets is None else targets
        forward = torch.nn.functional.normalize(targets - centers, dim=-1)
        up_world = torch.tensor(up, dtype=centers.dtype, device=centers.device).expand_as(forward)
        right = torch.cross(forward, up_world, dim=-1)
        # Looking straight along the up axis leaves right undefined: fall back to world -z as up.
        degenerate = right.norm(dim=-1, keepdim=True) < 1e-6
        fallback = torch.cross(forward, torch.tensor([0.0, 0.0, -1.0], device=centers.device).expand_as(forward), dim=-1)
        right = torch.nn.functional.normalize(torch.where(degenerate, fallback, right), dim=-1)
        down = torch.cross(forward, right, dim=-1)
        cam2world = torch.eye(4, dtype=centers.dtype, device=centers.device).repeat(centers.shape[0], 1, 1)
        cam2world[:, :3, 0], cam2world[:, :3, 1], cam2world[:, :3, 2] = right, down, forward
        cam2world[:, :3, 3] = centers
        return cls(cam2world, intrinsics_from_fov(fov_degrees, centers.shape[0], device=centers.device))

    @classmethod
    def from_spherical(
        cls,
        yaw: Float[Tensor, " b"],
        pitch: Float[Tensor, " b"],
        radius: float | Float[Tensor, " b"],
        fov_degrees: float | Float[Tensor, " b"],
        target: tuple[float, float, float] = (0.0, 0.0, 0.0),
    ) -> Cameras:
        """Cameras on a sphere around ``target`` (angles in radians, see the module docstring)."""
        radius = torch.as_tensor(radius, dtype=yaw.dtype, device=yaw.device)
        centers = torch.stack(
            [torch.cos(pitch) * torch.sin(yaw), torch.sin(pitch), torch.cos(pitch) * torch.cos(yaw)], dim=-1
        ) * radius.reshape(-1, 1)
        offset = torch.tensor(target, dtype=yaw.dtype, device=yaw.device)
        return cls.look_at(centers + offset, fov_degrees, offset.expand_as(centers))

    def to_spherical(self, target: tuple[float, float, float] = (0.0, 0.0, 0.0)) -> tuple[Tensor, Tensor, Tensor]:
        """(yaw, pitch, radius) of the camera centres around ``target``."""
        rel = self.centers - torch.tensor(target, dtype=self.cam2world.dtype, device=self.device)
        radius = rel.norm(dim=-1)
        pitch = torch.asin((rel[:, 1] / radius).clamp(-1.0, 1.0))
        yaw = torch.atan2(rel[:, 0], rel[:, 2])
        return yaw, pitch, radius


def intrinsics_from_fov(
    fov_degrees: float | Tensor, batch_size: int, device: torch.device | str | None = None
) -> Float[Tensor, "b 3 3"]:
    """Normalized intrinsics of a square-pixel camera with a centred principal point."""
    fov = torch.as_tensor(fov_degrees, dtype=torch.float32, device=device).reshape(-1)
    if not ((fov > 0) & (fov < 180)).all():
        raise ValueError(f"fov_degrees must lie in (0, 180), got {fov.tolist()}")
    focal = 0.5 / torch.tan(torch.deg2rad(fov) / 2.0)
    intrinsics = torch.zeros(batch_size, 3, 3, device=device)
    intrinsics[:, 0, 0] = focal.expand(batch_size)
    intrinsics[:, 1, 1] = focal.expand(batch_size)
    intrinsics[:, 0, 2] = 0.5
    intrinsics[:, 1, 2] = 0.5
    intrinsics[:, 2, 2] = 1.0
    return intrinsics

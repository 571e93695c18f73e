"""Camera rays for whole images or patches, and their intersection with the scene box."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from jaxtyping import Bool, Float
from torch import Tensor

from renderers.cameras import Cameras
from renderers.patches import Patch, pixel_centers


@dataclass
class RayBundle:
    """``r`` rays for each of ``b`` scenes. Rays with ``near == far`` are empty: they render nothing.

    Example:
        >>> cams = Cameras.from_spherical(torch.zeros(1), torch.zeros(1), radius=2.0, fov_degrees=30.0)
        >>> rays = generate_rays(cams, resolution=1)
        >>> rays.directions, rays.near, rays.far
        (tensor([[[ 0.,  0., -1.]]]), tensor([[[1.5000]]]), tensor([[[2.5000]]]))
    """

    origins: Float[Tensor, "b r 3"]
    """Ray origins in world space."""
    directions: Float[Tensor, "b r 3"]
    """Unit ray directions in world space."""
    near: Float[Tensor, "b r 1"]
    """Distance along the ray where sampling starts."""
    far: Float[Tensor, "b r 1"]
    """Distance along the ray where sampling ends (>= near)."""

    def __post_init__(self) -> None:
        shape = None
        for name, trailing in (("origins", 3), ("directions", 3), ("near", 1), ("far", 1)):
            value = getattr(self, name)
            if not isinstance(value, Tensor) or value.ndim != 3 or value.shape[-1] != trailing:
                got = list(value.shape) if isinstance(value, Tensor) else type(value).__name__
                raise ValueError(f"RayBundle.{name} must have shape [b, r, {trailing}], got {got}")
            if shape is None:
                shape = value.shape[:2]
            elif value.shape[:2] != shape:
                raise ValueError(
                    f"RayBundle.{name} has shape {list(value.shape)} but origins has {list(shape)} leading dims"
                )
        if torch.isnan(self.near).any() or torch.isnan(self.far).any() or (self.near > self.far).any():
            raise ValueError("RayBundle needs near <= far on every ray (equal means an empty ray)")

    @property
    def batch_size(self) -> int:
        return int(self.origins.shape[0])

    @property
    def num_rays(self) -> int:
        return int(self.origins.shape[1])

    @property
    def device(self) -> torch.device:
        return self.origins.device

    def slice(self, start: int, stop: int) -> RayBundle:
        """Rays ``start:stop`` of every scene (used to render in chunks)."""
        return RayBundle(
            self.origins[:, start:stop], self.directions[:, start:stop], self.near[:, start:stop], self.far[:, start:stop]
        )

    def to(self, device: torch.device | str) -> RayBundle:
        return RayBundle(self.origins.to(device), self.directions.to(device), self.near.to(device), self.far.to(device))

    def points_at(self, t: Float[Tensor, "b r s"]) -> Float[Tensor, "b r s 3"]:
        """World positions at distances ``t`` along each ray."""
        return self.origins[:, :, None, :] + self.directions[:, :, None, :] * t[..., None]


def intersect_box(
    origins: Float[Tensor, "*batch 3"], directions: Float[Tensor, "*batch 3"], half_size: float
) -> tuple[Float[Tensor, "*batch"], Float[Tensor, "*batch"], Bool[Tensor, "*batch"]]:
    """Slab-method intersection of rays with the axis-aligned box ``[-half_size, half_size]^3``.

    Returns ``(t_enter, t_exit, hit)``. A ray hits when the three slabs overlap and the exit lies in
    front of the origin (``t_exit > 0``); ``t_enter`` is negative for origins inside the box. Missed
    rays get ``t_enter = t_exit = 0``. The arithmetic (multiplying by ``1 / direction``) follows
    nerfacc's ``ray_aabb_intersect`` so both backends agree on which rays hit.

    Example:
        >>> o, d = torch.tensor([[0.0, 0.0, 2.0]]), torch.tensor([[0.0, 0.0, -1.0]])
        >>> intersect_box(o, d, 0.5)
        (tensor([1.5000]), tensor([2.5000]), tensor([True]))
    """
    if not half_size > 0:
        raise ValueError(f"box half_size must be positive, got {half_size}")
    inv = 1.0 / directions
    t_low = (-half_size - origins) * inv
    t_high = (half_size - origins) * inv
    # An axis with zero direction and the origin exactly on a face gives 0 * inf = NaN: treat the
    # slab as unbounded (the ray runs inside the face's plane).
    t_low = torch.nan_to_num(t_low, nan=-float("inf"))
    t_high = torch.nan_to_num(t_high, nan=float("inf"))
    t_min = torch.minimum(t_low, t_high).amax(dim=-1)
    t_max = torch.maximum(t_low, t_high).amin(dim=-1)
    hit = (t_min <= t_max) & (t_max > 0)
    zero = torch.zeros_like(t_min)
    return torch.where(hit, t_min, zero), torch.where(hit, t_max, zero), hit


def generate_rays(
    cameras: Cameras, resolution: int, patch: Patch | None = None, box_half_size: float = 0.5,
    pixel_grid: str = "centers",
) -> RayBundle:
    """Rays through the pixel centres of a whole image or of a patch, ``resolution x resolution``.

    Rays are ordered row-major (entry ``i * resolution + j`` is row i, column j). A patch's rays
    equal the matching rays of a finer full image bit for bit (see :func:`pixel_centers`).
    Near/far come from the cameras when they are fixed; otherwise they are the ray's entry and exit
    of the scene box ``[-box_half_size, box_half_size]^3`` (clamped to start at the camera), and rays
    that miss the box get ``near = far`` so they render only background. ``pixel_grid="corners"`` puts
    the rays through EpiGRAF's edge-to-edge pixel positions (see :func:`pixel_centers`).
    """
    if not isinstance(cameras, Cameras):
        raise ValueError(f"cameras must be a renderers.cameras.Cameras, got {type(cameras).__name__}")
    if not box_half_size > 0:
        raise ValueError(f"box_half_size must be positive, got {box_half_size}")
    b = cameras.batch_size
    uv = pixel_centers(resolution, b, None if patch is None else patch.to(cameras.device), device=cameras.device,
                       grid=pixel_grid)
    uv = uv.to(cameras.cam2world.dtype)
    k = cameras.intrinsics
    # Pinhole model with normalized intrinsics: camera-space direction ((u - cx) / fx, (v - cy) / fy, 1).
    x = (uv[..., 0] - k[:, 0, 2, None]) / k[:, 0, 0, None]
    y = (uv[..., 1] - k[:, 1, 2, None]) / k[:, 1, 1, None]
    rot = cameras.cam2world[:, :3, :3]
    # Elementwise rotation (no matmul) keeps every ray's arithmetic independent of the batch layout,
    # which is what makes patch rays bit-identical to full-image rays.
    dirs = rot[:, None, :, 0] * x[..., None] + rot[:, None, :, 1] * y[..., None] + rot[:, None, :, 2]
    length = torch.sqrt(dirs[..., 0] ** 2 + dirs[..., 1] ** 2 + dirs[..., 2] ** 2)
    directions = dirs / length[..., None]
    origins = cameras.centers[:, None, :].expand_as(directions).contiguous()
    if cameras.near is not None:
        near = cameras.near[:, None, None].expand(b, directions.shape[1], 1).contiguous()
        far = cameras.far[:, None, None].expand(b, directions.shape[1], 1).contiguous()
    else:
        t_enter, t_exit, hit = intersect_box(origins, directions, box_half_size)
        near = t_enter.clamp(min=0.0)
        far = torch.where(hit, t_exit, near)
        near, far = near[..., None], far[..., None]
    return RayBundle(origins, directions, near, far)

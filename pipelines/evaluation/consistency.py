"""Multi-view consistency: warp one rendered view into a nearby one with depth and cameras, score the masked PSNR.

A renderer whose pixels come from one 3D field (EpiGRAF) shows the same surface colour in both
views, so the warped image matches; a 2D upsampler that invents detail per view (EG3D) does not.
Depth is the distance along the (unit) ray from the camera centre, which is what the volume
renderer's ``depth`` holds; images and depths must have the same size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from renderers.cameras import Cameras
from renderers.rays import generate_rays


@dataclass
class ConsistencyResult:
    """Per scene: PSNR of the warped pixels, and the fraction of target pixels that could be compared."""

    psnr: Tensor
    """[b] PSNR in dB over the valid pixels (NaN where none are valid)."""
    valid_fraction: Tensor
    """[b] share of the target image's pixels that were compared."""


def _check_view(name: str, images: Tensor, depths: Tensor, cameras: Cameras) -> None:
    if images.ndim != 4 or depths.ndim != 4 or depths.shape[1] != 1:
        raise ValueError(f"{name}: images must be [b, c, h, w] and depths [b, 1, h, w], got "
                         f"{list(images.shape)} and {list(depths.shape)}")
    if images.shape[0] != depths.shape[0] or images.shape[-2:] != depths.shape[-2:]:
        raise ValueError(f"{name}: images {list(images.shape)} and depths {list(depths.shape)} must match in batch "
                         f"and size; resize the depth to the image size first")
    if images.shape[-1] != images.shape[-2]:
        raise ValueError(f"{name}: square images expected, got {list(images.shape[-2:])}")
    if cameras.batch_size != images.shape[0]:
        raise ValueError(f"{name}: {cameras.batch_size} cameras for {images.shape[0]} images")


def project_points(points: Tensor, cameras: Cameras) -> tuple[Tensor, Tensor, Tensor]:
    """World points [b, n, 3] -> image coordinates (u, v) [b, n, 2], ray distance [b, n], in-front mask [b, n]."""
    rotation = cameras.cam2world[:, :3, :3]
    local = torch.einsum("bji,bnj->bni", rotation, points - cameras.centers[:, None, :])
    z = local[..., 2]
    in_front = z > 1e-6
    safe_z = torch.where(in_front, z, torch.ones_like(z))
    k = cameras.intrinsics
    u = k[:, None, 0, 0] * local[..., 0] / safe_z + k[:, None, 0, 2]
    v = k[:, None, 1, 1] * local[..., 1] / safe_z + k[:, None, 1, 2]
    return torch.stack([u, v], dim=-1), local.norm(dim=-1), in_front


def _sample(image: Tensor, uv: Tensor) -> Tensor:
    """Bilinear lookup of [b, c, h, w] at (u, v) [b, h, w, 2] in [0, 1] image units (pixel centres at (j + 0.5) / R)."""
    return F.grid_sample(image, uv * 2.0 - 1.0, mode="bilinear", padding_mode="border", align_corners=False)


def warp_to_target(
    images_source: Tensor,
    depths_source: Tensor,
    cameras_source: Cameras,
    depths_target: Tensor,
    cameras_target: Cameras,
    depth_tolerance: float = 0.03,
) -> tuple[Tensor, Tensor]:
    """The source images seen from the target cameras, and where that is valid.

    Every target pixel is lifted to 3D with the target depth, projected into the source view and
    looked up there. A pixel is valid when it lands inside the source image, in front of the camera,
    and the source depth there agrees with the point's distance within ``depth_tolerance`` (relative):
    otherwise the point is hidden in the source view (occlusion) or lies on a silhouette.
    Returns ``(warped [b, c, h, w], valid [b, 1, h, w] bool)``.
    """
    b, _, size, _ = depths_target.shape
    rays = generate_rays(cameras_target.to(depths_target.device), size)
    points = rays.origins + rays.directions * depths_target.permute(0, 2, 3, 1).reshape(b, size * size, 1)
    uv, distance, in_front = project_points(points, cameras_source.to(depths_target.device))
    uv_grid = uv.reshape(b, size, size, 2)
    warped = _sample(images_source, uv_grid)
    source_depth = _sample(depths_source, uv_grid).reshape(b, size * size)
    inside = ((uv >= 0.0) & (uv <= 1.0)).all(dim=-1)
    visible = (source_depth - distance).abs() <= depth_tolerance * distance
    valid = (inside & in_front & visible).reshape(b, 1, size, size)
    return warped, valid


def multiview_psnr(
    images_a: Tensor,
    depths_a: Tensor,
    cameras_a: Cameras,
    images_b: Tensor,
    depths_b: Tensor,
    cameras_b: Cameras,
    masks_a: Tensor | None = None,
    masks_b: Tensor | None = None,
    depth_tolerance: float = 0.03,
    max_value: float = 1.0,
) -> ConsistencyResult:
    """Masked PSNR between view B and view A warped into B, for any renderer's output.

    ``images_*`` [b, c, h, w] with values in [0, max_value] (the renderer's [0, 1] rgb by default),
    ``depths_*`` [b, 1, h, w] ray distances, ``masks_*`` optional [b, 1, h, w] foreground (e.g.
    opacity > 0.5): background pixels have no surface to warp and are left out. A pure 3D field
    rendered twice scores high (> 30 dB for nearby views); images that disagree about the surface
    colour score low.
    """
    _check_view("view A", images_a, depths_a, cameras_a)
    _check_view("view B", images_b, depths_b, cameras_b)
    if images_a.shape != images_b.shape:
        raise ValueError(f"views A and B differ in shape: {list(images_a.shape)} vs {list(images_b.shape)}")
    warped, valid = warp_to_target(images_a, depths_a, cameras_a, depths_b, cameras_b, depth_tolerance)
    if masks_b is not None:
        valid = valid & (masks_b > 0.5)
    if masks_a is not None:
        uv_mask = warp_to_target(masks_a.float(), depths_a, cameras_a, depths_b, cameras_b, depth_tolerance)[0]
        valid = valid & (uv_mask > 0.5)
    weight = valid.float()
    count = weight.sum(dim=(1, 2, 3)) * images_b.shape[1]
    squared = ((warped - images_b) ** 2 * weight).sum(dim=(1, 2, 3))
    mse = squared / count.clamp_min(1.0)
    psnr = 10.0 * torch.log10(max_value**2 / mse.clamp_min(1e-10))
    psnr = torch.where(count > 0, psnr, torch.full_like(psnr, math.nan))
    return ConsistencyResult(psnr=psnr.detach(), valid_fraction=weight.mean(dim=(1, 2, 3)).detach())


def rotate_cameras_about_y(cameras: Cameras, angle_degrees: float) -> Cameras:
    """The same cameras turned by ``angle_degrees`` about the world +y axis through the origin (a yaw step)."""
    angle = math.radians(angle_degrees)
    c, s = math.cos(angle), math.sin(angle)
    rotation = torch.tensor([[c, 0.0, s, 0.0], [0.0, 1.0, 0.0, 0.0], [-s, 0.0, c, 0.0], [0.0, 0.0, 0.0, 1.0]],
                            dtype=cameras.cam2world.dtype, device=cameras.device)
    return Cameras(rotation @ cameras.cam2world, cameras.intrinsics, cameras.near, cameras.far)

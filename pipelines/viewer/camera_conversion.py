"""Conversions between a viser client camera and our ``Cameras``, and rays for non-square views.

viser reports each browser's camera as ``wxyz`` (the rotation R in ``p_world = R p_camera + t``)
and ``position`` (t) in OpenCV camera axes (+x right, +y down, +z forward) expressed in the
scene's world frame, a vertical field of view in radians and the canvas aspect (width / height).
Our ``Cameras`` use the same OpenCV axes and world frame (+y up, see ``renderers/cameras.py``), so
cam2world is ``[R | t]`` without any axis flip; only the intrinsics need converting, because ours
are normalized by the image width and height separately.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from renderers.cameras import Cameras
from renderers.rays import RayBundle, intersect_box


@dataclass(frozen=True)
class ViewCamera:
    """One browser camera as viser reports it (world frame, OpenCV axes)."""

    wxyz: tuple[float, float, float, float]
    """Unit quaternion (w, x, y, z) of the camera-to-world rotation."""
    position: tuple[float, float, float]
    """Camera centre in world space."""
    fov: float
    """Vertical field of view in radians."""
    aspect: float
    """Image width divided by height."""

    def __post_init__(self) -> None:
        if not (0.0 < self.fov < math.pi):
            raise ValueError(f"ViewCamera.fov must lie in (0, pi) radians, got {self.fov}")
        if not self.aspect > 0:
            raise ValueError(f"ViewCamera.aspect (width / height) must be positive, got {self.aspect}")
        if not np.isfinite(np.asarray(self.wxyz + self.position, dtype=np.float64)).all():
            raise ValueError(f"ViewCamera holds non-finite values: wxyz={self.wxyz}, position={self.position}")

    @classmethod
    def from_viser(cls, camera: object) -> ViewCamera:
        """Snapshot of a ``viser`` CameraHandle (works with viser 0.2.x and 1.x)."""
        return cls(
            wxyz=tuple(float(v) for v in np.asarray(camera.wxyz).reshape(4)),
            position=tuple(float(v) for v in np.asarray(camera.position).reshape(3)),
            fov=float(camera.fov),
            aspect=float(camera.aspect),
        )


def quaternion_to_matrix(wxyz: np.ndarray) -> np.ndarray:
    """Rotation matrix [3, 3] of a (not necessarily normalized) quaternion (w, x, y, z)."""
    q = np.asarray(wxyz, dtype=np.float64).reshape(4)
    norm = np.linalg.norm(q)
    if not norm > 0:
        raise ValueError(f"quaternion wxyz must be non-zero, got {q.tolist()}")
    w, x, y, z = q / norm
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
            [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
            [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
        ]
    )


def matrix_to_quaternion(rotation: np.ndarray) -> np.ndarray:
    """Quaternion (w, x, y, z) with w >= 0 of a proper rotation matrix [3, 3] (Shepperd's method)."""
    m = np.asarray(rotation, dtype=np.float64).reshape(3, 3)
    trace = np.trace(m)
    # Branch on the largest diagonal term so the square root never sees a tiny argument.
    if trace > 0:
        s = 2.0 * math.sqrt(trace + 1.0)
        q = [0.25 * s, (m[2, 1] - m[1, 2]) / s, (m[0, 2] - m[2, 0]) / s, (m[1, 0] - m[0, 1]) / s]
    elif m[0, 0] > m[1, 1] and m[0, 0] > m[2, 2]:
        s = 2.0 * math.sqrt(1.0 + m[0, 0] - m[1, 1] - m[2, 2])
        q = [(m[2, 1] - m[1, 2]) / s, 0.25 * s, (m[0, 1] + m[1, 0]) / s, (m[0, 2] + m[2, 0]) / s]
    elif m[1, 1] > m[2, 2]:
        s = 2.0 * math.sqrt(1.0 + m[1, 1] - m[0, 0] - m[2, 2])
        q = [(m[0, 2] - m[2, 0]) / s, (m[0, 1] + m[1, 0]) / s, 0.25 * s, (m[1, 2] + m[2, 1]) / s]
    else:
        s = 2.0 * math.sqrt(1.0 + m[2, 2] - m[0, 0] - m[1, 1])
        q = [(m[1, 0] - m[0, 1]) / s, (m[0, 2] + m[2, 0]) / s, (m[1, 2] + m[2, 1]) / s, 0.25 * s]
    q = np.asarray(q)
    q = q / np.linalg.norm(q)
    return -q if q[0] < 0 else q


def view_image_size(height: int, aspect: float, max_width: int | None = None) -> tuple[int, int]:
    """(height, width) of a render with ``height`` rows for a canvas of the given aspect."""
    if height < 1:
        raise ValueError(f"render height must be at least 1 pixel, got {height}")
    width = max(1, int(round(height * aspect)))
    if max_width is not None and width > max_width:
        # A very wide canvas would multiply the cost; keep the aspect by lowering both sides.
        height = max(1, int(round(height * max_width / width)))
        width = max_width
    return height, width


def cameras_from_view(camera: ViewCamera, device: torch.device | str = "cpu") -> Cameras:
    """Our ``Cameras`` (batch of one, near/far from the scene box) for a browser camera.

    Intrinsics are normalized per axis: ``fy = 0.5 / tan(fov / 2)`` (by the height) and
    ``fx = fy / aspect`` (by the width), so a non-square view keeps square pixels.
    """
    cam2world = torch.eye(4, dtype=torch.float32)
    cam2world[:3, :3] = torch.from_numpy(quaternion_to_matrix(np.asarray(camera.wxyz))).float()
    cam2world[:3, 3] = torch.tensor(camera.position, dtype=torch.float32)
    focal_y = 0.5 / math.tan(camera.fov / 2.0)
    intrinsics = torch.tensor(
        [[focal_y / camera.aspect, 0.0, 0.5], [0.0, focal_y, 0.5], [0.0, 0.0, 1.0]], dtype=torch.float32
    )
    return Cameras(cam2world[None], intrinsics[None]).to(device)


def view_from_cameras(cameras: Cameras, aspect: float = 1.0) -> ViewCamera:
    """The browser camera of the first camera in ``cameras`` (inverse of :func:`cameras_from_view`)."""
    cam2world = cameras.cam2world[0].detach().double().cpu().numpy()
    return ViewCamera(
        wxyz=tuple(float(v) for v in matrix_to_quaternion(cam2world[:3, :3])),
        position=tuple(float(v) for v in cam2world[:3, 3]),
        fov=math.radians(float(cameras.fov_degrees[0])),
        aspect=aspect,
    )


def look_at_pose(camera: ViewCamera, distance: float | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(position, look_at, up) for setting a viser client camera to ``camera``.

    The look-at point lies along the viewing direction (+z) at ``distance`` (default: the
    distance to the origin, where the object is); up is the camera's -y axis.
    """
    rotation = quaternion_to_matrix(np.asarray(camera.wxyz))
    position = np.asarray(camera.position, dtype=np.float64)
    distance = float(np.linalg.norm(position)) if distance is None else distance
    forward, down = rotation[:, 2], rotation[:, 1]
    return position, position + max(distance, 1e-3) * forward, -down


def view_rays(cameras: Cameras, height: int, width: int, box_half_size: float = 0.5) -> RayBundle:
    """Rays through the pixel centres of an ``height x width`` image, row-major, near/far from the box.

    ``generate_rays`` covers square images and patches; a browser canvas is rarely square. Pixel
    (i, j) has centre ``u = (j + 0.5) / width``, ``v = (i + 0.5) / height`` (renderers' image units).
    """
    device = cameras.device
    v = (torch.arange(height, device=device, dtype=torch.float32) + 0.5) / height
    u = (torch.arange(width, device=device, dtype=torch.float32) + 0.5) / width
    vv, uu = torch.meshgrid(v, u, indexing="ij")
    k = cameras.intrinsics
    x = (uu.reshape(1, -1) - k[:, 0, 2, None]) / k[:, 0, 0, None]
    y = (vv.reshape(1, -1) - k[:, 1, 2, None]) / k[:, 1, 1, None]
    rot = cameras.cam2world[:, :3, :3]
    dirs = rot[:, None, :, 0] * x[..., None] + rot[:, None, :, 1] * y[..., None] + rot[:, None, :, 2]
    directions = torch.nn.functional.normalize(dirs, dim=-1)
    origins = cameras.centers[:, None, :].expand_as(directions).contiguous()
    t_enter, t_exit, hit = intersect_box(origins, directions, box_half_size)
    near = t_enter.clamp(min=0.0)
    far = torch.where(hit, t_exit, near)
    return RayBundle(origins, directions, near[..., None], far[..., None])

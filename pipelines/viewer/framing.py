"""Where the viewer's camera starts: the dataset's view of the object, from far enough that it fills half the window."""

from __future__ import annotations

import math

import numpy as np

from pipelines.camera_distributions import CameraDistribution
from pipelines.viewer.camera_conversion import ViewCamera, quaternion_to_matrix, view_from_cameras

HEIGHT_SHARE = 0.5
"""Share of the window's height the object's extent fills in the first view."""
WIDTH_SHARE = 0.7
"""Largest share of the window's width it may fill (a tall window moves the camera back instead)."""


def object_half_extent(cameras: CameraDistribution, box_half_size: float) -> float:
    """Half the size of what the dataset's cameras frame: the half height their view covers at the
    object's centre, ``radius * tan(fov / 2)``, and never more than the scene box.

    The dataset's images show the whole object, so it lies within this extent; for the built-in
    dataset (radius 1.3, fov 40) it is 0.47, for faces (radius 1, fov 12) 0.105.
    """
    _, _, radius, fov_degrees = cameras.center_angles()
    return min(float(box_half_size), float(radius) * math.tan(math.radians(fov_degrees) / 2.0))


def framing_distance(
    half_extent: float,
    fov: float,
    aspect: float,
    height_share: float = HEIGHT_SHARE,
    width_share: float = WIDTH_SHARE,
) -> float:
    """Camera distance at which an object of ``half_extent`` about the look-at point fills
    ``height_share`` of a view of vertical field of view ``fov`` (radians), and at most
    ``width_share`` of its width when the view is ``aspect`` (width / height) wide.

    Example: half extent 0.47 with fov 40 degrees fills half the height at 0.47 / (0.5 * tan 20) = 2.58
    in a wide window; a window half as wide as tall needs 0.47 / (0.7 * 0.5 * tan 20) = 3.69.
    """
    if not (half_extent > 0 and 0 < fov < math.pi and aspect > 0):
        raise ValueError(f"framing needs a positive extent, fov in (0, pi) and a positive aspect; got "
                         f"{half_extent}, {fov}, {aspect}")
    half_height = math.tan(fov / 2.0)
    return half_extent / half_height * max(1.0 / height_share, 1.0 / (width_share * aspect))


def home_view(cameras: CameraDistribution, box_half_size: float, aspect: float = 1.0) -> ViewCamera:
    """The first view of a generator: the direction and field of view of the dataset's mean camera,
    looking at the origin from :func:`framing_distance`, for a window of ``aspect``."""
    center = view_from_cameras(cameras.center_pose(), aspect)
    forward = quaternion_to_matrix(np.asarray(center.wxyz))[:, 2]
    distance = framing_distance(object_half_extent(cameras, box_half_size), center.fov, aspect)
    position = tuple(float(v) for v in -distance * forward)
    return ViewCamera(center.wxyz, position, center.fov, aspect)

"""Camera paths for grids and videos: views around the distribution's mean pose, turntables and zig-zags."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from pipelines.camera_distributions import CameraDistribution
from renderers.cameras import Cameras


@dataclass
class OrbitConfig:
    """The orbit the cameras of grids and videos move on. Unset values come from the bundle's camera distribution."""

    radius: float | None = None
    """Camera distance from the origin."""
    fov_degrees: float | None = None
    """Field of view."""
    yaw_degrees: float | None = None
    """Centre yaw (0 looks from +z)."""
    pitch_degrees: float | None = None
    """Centre pitch (elevation; positive looks down from above)."""
    near: float | None = None
    """Fixed near distance (with far); None: the distribution's (the scene box when the radius is changed)."""
    far: float | None = None
    """Fixed far distance (with near)."""

    def resolve(self, distribution: CameraDistribution) -> OrbitConfig:
        """Unset values from the distribution's centre pose (its mean yaw, pitch, radius and fov) and bounds."""
        yaw, pitch, radius, fov = distribution.center_angles()
        pick = lambda mine, theirs: theirs if mine is None else mine  # noqa: E731
        if self.near is not None:
            near, far = self.near, self.far
        elif self.radius is not None:
            near, far = None, None  # the distribution's bounds belong to its radius: use the scene box instead
        else:
            near, far = distribution.config.near, distribution.config.far
        return OrbitConfig(radius=pick(self.radius, radius), fov_degrees=pick(self.fov_degrees, fov),
                           yaw_degrees=pick(self.yaw_degrees, yaw), pitch_degrees=pick(self.pitch_degrees, pitch),
                           near=near, far=far)


def orbit_cameras(orbit: OrbitConfig, yaw_offsets_degrees: torch.Tensor, pitch_offsets_degrees: torch.Tensor) -> Cameras:
    """Cameras at (centre yaw + offset, centre pitch + offset) on a resolved orbit."""
    yaw = torch.deg2rad(orbit.yaw_degrees + yaw_offsets_degrees.float())
    pitch = torch.deg2rad(orbit.pitch_degrees + pitch_offsets_degrees.float()).clamp(-math.pi / 2 + 1e-3,
                                                                                      math.pi / 2 - 1e-3)
    cameras = Cameras.from_spherical(yaw, pitch, orbit.radius, orbit.fov_degrees)
    return cameras if orbit.near is None else cameras.with_bounds(orbit.near, orbit.far)


def grid_cameras(orbit: OrbitConfig, yaw_offsets_degrees: tuple[float, ...]) -> Cameras:
    """One camera per column of an image grid, at the given yaw offsets from the centre."""
    offsets = torch.tensor(yaw_offsets_degrees, dtype=torch.float32)
    return orbit_cameras(orbit, offsets, torch.zeros_like(offsets))


def turntable_cameras(orbit: OrbitConfig, num_frames: int) -> Cameras:
    """A full turn about +y at the centre pitch, starting at the centre yaw (the last frame stops short of the first)."""
    offsets = torch.arange(num_frames, dtype=torch.float32) * (360.0 / num_frames)
    return orbit_cameras(orbit, offsets, torch.zeros_like(offsets))


def zigzag_cameras(orbit: OrbitConfig, num_frames: int, yaw_range_degrees: float = 30.0,
                   pitch_range_degrees: float = 10.0) -> Cameras:
    """Yaw swings left-right once while pitch swings up-down twice: a looping zig-zag around the centre pose."""
    t = torch.arange(num_frames, dtype=torch.float32) / num_frames
    return orbit_cameras(orbit, yaw_range_degrees * torch.sin(2 * math.pi * t),
                         pitch_range_degrees * torch.sin(4 * math.pi * t))

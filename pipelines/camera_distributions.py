"""Camera distributions the generator renders from: a dataset's own poses or a parametric orbit."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import torch

from renderers.cameras import Cameras

if TYPE_CHECKING:
    from pipelines.data.image_dataset import ImageDataset


@dataclass
class CameraDistributionConfig:
    """Where generated images are seen from. Angles follow ``renderers/cameras.py`` (yaw about +y, pitch = elevation)."""

    source: Literal["parametric", "dataset"] = "parametric"
    """'dataset': cameras drawn from the dataset's labels (EG3D style); 'parametric': the orbit below."""
    angles: Literal["normal", "uniform", "sphere"] = "normal"
    """Yaw/pitch law: normal (mean, std = spread), uniform (mean +- spread) or uniform on the whole sphere."""
    yaw_mean_degrees: float = 0.0
    """Mean yaw; 0 puts the camera on +z looking towards -z."""
    yaw_spread_degrees: float = 17.2
    """Yaw std (normal) or half-width (uniform)."""
    pitch_mean_degrees: float = 0.0
    """Mean pitch (elevation; positive looks down from above)."""
    pitch_spread_degrees: float = 8.9
    """Pitch std (normal) or half-width (uniform)."""
    radius: float = 1.0
    """Distance of the camera from the look-at point."""
    fov_degrees: float = 12.0
    """Vertical (= horizontal) field of view."""
    near: float | None = 0.88
    """Fixed near distance; None: from the scene box."""
    far: float | None = 1.12
    """Fixed far distance; None: from the scene box."""

    @classmethod
    def faces(cls) -> CameraDistributionConfig:
        """EpiGRAF's FFHQ/AFHQ cameras: fov 12, radius 1, near 0.88, far 1.12, normal yaw/pitch about the front."""
        return cls(source="parametric", angles="normal", yaw_spread_degrees=math.degrees(0.3),
                   pitch_spread_degrees=math.degrees(0.155), radius=1.0, fov_degrees=12.0, near=0.88, far=1.12)

    @classmethod
    def objects_360(cls) -> CameraDistributionConfig:
        """EpiGRAF's 360-degree objects (Megascans): fov 30, radius 1, near 0.75, far 1.25, uniform on the sphere."""
        return cls(source="parametric", angles="sphere", radius=1.0, fov_degrees=30.0, near=0.75, far=1.25)

    @classmethod
    def synthetic(cls, cameras: Literal["frontal", "360"] = "360") -> CameraDistributionConfig:
        """The cameras the synthetic dataset is rendered with (see ``pipelines/data/synthetic.py``).

        Objects fit in a sphere of radius 0.42 about the origin; at radius 1.3 a 40 degree cone
        holds a sphere of radius 1.3 * sin(20 deg) = 0.445, so every view sees the whole object
        filling about 95% of the frame, and near/far = 1.3 -+ 0.45 bracket it.
        """
        if cameras == "frontal":
            return cls(source="parametric", angles="uniform", yaw_spread_degrees=30.0, pitch_mean_degrees=0.0,
                       pitch_spread_degrees=30.0, radius=1.3, fov_degrees=40.0, near=0.85, far=1.75)
        if cameras == "360":
            return cls(source="parametric", angles="uniform", yaw_spread_degrees=180.0, pitch_mean_degrees=15.0,
                       pitch_spread_degrees=30.0, radius=1.3, fov_degrees=40.0, near=0.85, far=1.75)
        raise ValueError(f"cameras must be 'frontal' or '360', got {cameras!r}")

    @classmethod
    def from_dataset(cls, near: float | None = None, far: float | None = None) -> CameraDistributionConfig:
        """Cameras drawn from the dataset's labels (EG3D), with optional fixed near/far."""
        return cls(source="dataset", near=near, far=far)


def _sample_angle(kind: str, mean: float, spread: float, size: int, generator: torch.Generator) -> torch.Tensor:
    if kind == "normal":
        return mean + spread * torch.randn(size, generator=generator, device=generator.device)
    return mean + spread * (2.0 * torch.rand(size, generator=generator, device=generator.device) - 1.0)


def sample_cameras(config: CameraDistributionConfig, batch_size: int, generator: torch.Generator,
                   device: torch.device | str = "cpu", dataset: ImageDataset | None = None) -> Cameras:
    """``batch_size`` cameras from ``config``; random numbers come from ``generator`` only.

    Example:
        >>> cams = sample_cameras(CameraDistributionConfig.faces(), 4, torch.Generator().manual_seed(0))
        >>> cams.centers.norm(dim=-1)  # all at radius 1
        tensor([1.0000, 1.0000, 1.0000, 1.0000])
    """
    if batch_size <= 0:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    if config.source == "dataset":
        if dataset is None or not dataset.has_labels:
            raise ValueError(
                "camera source 'dataset' needs a dataset with camera labels; pass dataset=..., or use a "
                "parametric distribution (e.g. CameraDistributionConfig.faces()) for unlabeled images"
            )
        index = torch.randint(len(dataset), (batch_size,), generator=generator, device=generator.device)
        cameras = Cameras.from_label(dataset.labels[index.cpu()].to(torch.float32))
    elif config.source == "parametric":
        if config.angles == "sphere":
            # Uniform on the sphere: yaw uniform, sin(pitch) uniform in [-1, 1].
            yaw = (2.0 * torch.rand(batch_size, generator=generator, device=generator.device) - 1.0) * math.pi
            pitch = torch.asin(2.0 * torch.rand(batch_size, generator=generator, device=generator.device) - 1.0)
        elif config.angles in ("normal", "uniform"):
            yaw = _sample_angle(config.angles, math.radians(config.yaw_mean_degrees),
                                math.radians(config.yaw_spread_degrees), batch_size, generator)
            pitch = _sample_angle(config.angles, math.radians(config.pitch_mean_degrees),
                                  math.radians(config.pitch_spread_degrees), batch_size, generator)
            # Past the poles the orbit would flip upside down; keep just short of them.
            pitch = pitch.clamp(-math.pi / 2 + 1e-3, math.pi / 2 - 1e-3)
        else:
            raise ValueError(f"angles must be 'normal', 'uniform' or 'sphere', got {config.angles!r}")
        cameras = Cameras.from_spherical(yaw.cpu().float(), pitch.cpu().float(), config.radius, config.fov_degrees)
    else:
        raise ValueError(f"camera source must be 'parametric' or 'dataset', got {config.source!r}")
    if (config.near is None) != (config.far is None):
        raise ValueError("CameraDistributionConfig.near and .far must be given together (or both None)")
    if config.near is not None:
        cameras = cameras.with_bounds(config.near, config.far)
    return cameras.to(device)

"""Camera distributions a generator renders from: a parametric orbit, or the poses of the dataset it learned."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
from jaxtyping import Float
from torch import Tensor

from epigraf_field.config_io import config_from_dict, config_to_dict
from renderers.cameras import LABEL_SIZE, Cameras


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
        """EpiGRAF's FFHQ/AFHQ cameras: fov 12, radius 1, near 0.88, far 1.12, normal yaw/pitch about the front
        (std 0.3 and 0.155 rad, its configs/dataset/ffhq.yaml).

        EpiGRAF scales this scene by 0.2: its tri-plane spans [-0.2, 0.2]^3 (points are divided by
        ``cube_scale`` before the planes are sampled). Pair these cameras with a generator and
        renderer ``box_half_size`` of 0.2, as the ``ffhq`` and ``afhq`` recipes do: with the default 0.5
        the rays (0.88 to 1.12 from a camera at radius 1, about +-0.12 around the origin) use only
        the central quarter of each plane's side.
        """
        return cls(source="parametric", angles="normal", yaw_spread_degrees=math.degrees(0.3),
                   pitch_spread_degrees=math.degrees(0.155), radius=1.0, fov_degrees=12.0, near=0.88, far=1.12)

    @classmethod
    def objects_360(cls) -> CameraDistributionConfig:
        """EpiGRAF's 360-degree objects (Megascans): fov 30, radius 1, near 0.75, far 1.25, uniform on the sphere.

        EpiGRAF scales this scene by 0.475 (its tri-plane spans [-0.475, 0.475]^3): pair these cameras
        with a ``box_half_size`` of 0.475, as the ``megascans`` recipe does.
        """
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


def _sample_angle(kind: str, mean: float, spread: float, size: int, rng: torch.Generator) -> Tensor:
    if kind == "normal":
        return mean + spread * torch.randn(size, generator=rng, device=rng.device)
    return mean + spread * (2.0 * torch.rand(size, generator=rng, device=rng.device) - 1.0)


def sample_cameras(config: CameraDistributionConfig, batch_size: int, rng: torch.Generator,
                   device: torch.device | str = "cpu", poses: Float[Tensor, "n 25"] | None = None) -> Cameras:
    """``batch_size`` cameras from ``config``; random numbers come from ``rng`` only.

    ``poses`` are the camera labels a ``source='dataset'`` distribution draws from (a dataset's
    ``labels``, or the poses a generator bundle recorded).

    Example:
        >>> cams = sample_cameras(CameraDistributionConfig.faces(), 4, torch.Generator().manual_seed(0))
        >>> cams.centers.norm(dim=-1)  # all at radius 1
        tensor([1.0000, 1.0000, 1.0000, 1.0000])
    """
    if batch_size <= 0:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    if config.source == "dataset":
        if poses is None or len(poses) == 0:
            raise ValueError(
                "camera source 'dataset' needs the dataset's camera labels (poses); pass poses=dataset.labels, or use "
                "a parametric distribution (e.g. CameraDistributionConfig.faces()) for unlabeled images"
            )
        index = torch.randint(len(poses), (batch_size,), generator=rng, device=rng.device)
        cameras = Cameras.from_label(poses[index.cpu()].to(torch.float32))
    elif config.source == "parametric":
        yaw, pitch = _sample_yaw_pitch(config, batch_size, rng)
        cameras = Cameras.from_spherical(yaw.cpu().float(), pitch.cpu().float(), config.radius, config.fov_degrees)
    else:
        raise ValueError(f"camera source must be 'parametric' or 'dataset', got {config.source!r}")
    return _with_config_bounds(cameras, config).to(device)


def _sample_yaw_pitch(config: CameraDistributionConfig, batch_size: int, rng: torch.Generator) -> tuple[Tensor, Tensor]:
    if config.angles == "sphere":
        # Uniform on the sphere: yaw uniform, sin(pitch) uniform in [-1, 1].
        yaw = (2.0 * torch.rand(batch_size, generator=rng, device=rng.device) - 1.0) * math.pi
        pitch = torch.asin(2.0 * torch.rand(batch_size, generator=rng, device=rng.device) - 1.0)
        return yaw, pitch
    if config.angles not in ("normal", "uniform"):
        raise ValueError(f"angles must be 'normal', 'uniform' or 'sphere', got {config.angles!r}")
    yaw = _sample_angle(config.angles, math.radians(config.yaw_mean_degrees),
                        math.radians(config.yaw_spread_degrees), batch_size, rng)
    pitch = _sample_angle(config.angles, math.radians(config.pitch_mean_degrees),
                          math.radians(config.pitch_spread_degrees), batch_size, rng)
    # Past the poles the orbit would flip upside down; keep just short of them.
    return yaw, pitch.clamp(-math.pi / 2 + 1e-3, math.pi / 2 - 1e-3)


def _with_config_bounds(cameras: Cameras, config: CameraDistributionConfig) -> Cameras:
    if (config.near is None) != (config.far is None):
        raise ValueError("CameraDistributionConfig.near and .far must be given together (or both None)")
    return cameras if config.near is None else cameras.with_bounds(config.near, config.far)


# ------------------------------------------------------------------------------ recorded distributions
CAMERAS_FILE = "cameras.json"
POSES_FILE = "camera_poses.safetensors"
CAMERAS_FORMAT_VERSION = 2
MAX_RECORDED_POSES = 65536
"""Poses kept with a generator trained on dataset cameras (evenly spaced over the dataset beyond this)."""


@dataclass(frozen=True)
class PoseSummary:
    """What a set of poses looks like, in the terms of a parametric orbit (recorded for people and viewers)."""

    count: int
    radius: float
    """Mean distance of the camera centres from the origin."""
    fov_degrees: float
    """Mean vertical field of view."""
    yaw_mean_degrees: float
    """Circular mean yaw."""
    yaw_range_degrees: tuple[float, float]
    """Smallest and largest yaw, relative to the mean (a full circle reads as about (-180, 180))."""
    pitch_mean_degrees: float
    pitch_range_degrees: tuple[float, float]
    near: float | None
    far: float | None

    @classmethod
    def of(cls, poses: Float[Tensor, "n 25"], config: CameraDistributionConfig) -> PoseSummary:
        cameras = Cameras.from_label(poses.to(torch.float32))
        yaw, pitch, radius = cameras.to_spherical()
        mean_yaw = torch.atan2(torch.sin(yaw).mean(), torch.cos(yaw).mean())
        relative_yaw = torch.rad2deg(torch.atan2(torch.sin(yaw - mean_yaw), torch.cos(yaw - mean_yaw)))
        pitch_degrees = torch.rad2deg(pitch)
        return cls(
            count=len(poses), radius=float(radius.mean()), fov_degrees=float(cameras.fov_degrees.mean()),
            yaw_mean_degrees=math.degrees(float(mean_yaw)),
            yaw_range_degrees=(float(relative_yaw.min()), float(relative_yaw.max())),
            pitch_mean_degrees=float(pitch_degrees.mean()),
            pitch_range_degrees=(float(pitch_degrees.min()), float(pitch_degrees.max())),
            near=config.near, far=config.far,
        )


class CameraDistribution:
    """The cameras a generator is trained and shown under: a parametric orbit or a dataset's recorded poses.

    Every consumer of a generator (snapshots, metrics, viewer, render and export commands) draws
    from it, so a generator trained on a dataset's poses is framed the way training saw it, with
    or without the dataset at hand. :meth:`save` writes it next to the generator's weights.

    Example:
        >>> dist = CameraDistribution(CameraDistributionConfig.faces())
        >>> dist.sample(2, torch.Generator().manual_seed(0)).batch_size
        2
    """

    def __init__(self, config: CameraDistributionConfig, poses: Float[Tensor, "n 25"] | None = None) -> None:
        if poses is not None:
            if poses.ndim != 2 or poses.shape[1] != LABEL_SIZE or len(poses) == 0:
                raise ValueError(f"camera poses must be a non-empty [n, {LABEL_SIZE}] label table, got {list(poses.shape)}")
            Cameras.from_label(poses.to(torch.float32))  # validates every pose
        self.config = config
        self.poses = None if poses is None else poses.detach().to("cpu", torch.float32).contiguous()

    @classmethod
    def for_training(cls, config: CameraDistributionConfig, labels: Tensor | None) -> CameraDistribution:
        """The distribution of a run: a dataset-sourced config records (up to MAX_RECORDED_POSES of) ``labels``."""
        if config.source != "dataset":
            return cls(config)
        if labels is None or len(labels) == 0:
            raise ValueError(
                "--model.cameras.source dataset needs camera labels, but the dataset has none (no dataset.json "
                "labels); use --model.cameras.source parametric with the yaw/pitch/radius/fov options"
            )
        if len(labels) > MAX_RECORDED_POSES:
            labels = labels[torch.linspace(0, len(labels) - 1, MAX_RECORDED_POSES).round().long()]
        return cls(config, labels)

    def sample(self, count: int, rng: torch.Generator, device: torch.device | str = "cpu") -> Cameras:
        """``count`` cameras drawn with ``rng``."""
        return sample_cameras(self.config, count, rng, device, self.poses)

    @property
    def summary(self) -> PoseSummary | None:
        """Radius, fov and angle ranges of the recorded poses (None for a parametric distribution)."""
        return None if self.poses is None else PoseSummary.of(self.poses, self.config)

    def center_pose(self) -> Cameras:
        """One camera at the distribution's mean pose, looking at the origin: how a dataset-like view is framed.

        Parametric: the stated mean yaw and pitch (the front, yaw 0 and pitch 0, for the whole sphere),
        radius and fov. Recorded poses: their circular mean yaw, mean pitch, radius and fov.
        """
        yaw, pitch, radius, fov = self.center_angles()
        cameras = Cameras.from_spherical(torch.tensor([math.radians(yaw)]), torch.tensor([math.radians(pitch)]),
                                         radius, fov)
        return _with_config_bounds(cameras, self.config)

    def center_angles(self) -> tuple[float, float, float, float]:
        """(yaw degrees, pitch degrees, radius, fov degrees) of :meth:`center_pose`."""
        summary = self.summary
        if summary is not None:
            return summary.yaw_mean_degrees, summary.pitch_mean_degrees, summary.radius, summary.fov_degrees
        config = self.config
        if config.source != "parametric":
            raise ValueError("a 'dataset' camera distribution without recorded poses has no mean pose")
        if config.angles == "sphere":
            return 0.0, 0.0, config.radius, config.fov_degrees
        return config.yaw_mean_degrees, config.pitch_mean_degrees, config.radius, config.fov_degrees

    def to_json(self) -> dict:
        summary = self.summary
        return {
            "format_version": CAMERAS_FORMAT_VERSION,
            "config": config_to_dict(self.config),
            "recorded_poses": 0 if self.poses is None else len(self.poses),
            "summary": None if summary is None else config_to_dict(summary),
        }

    def save(self, directory: Path) -> None:
        """``cameras.json`` (config and summary) and, for recorded poses, ``camera_poses.safetensors``."""
        from safetensors.torch import save_file

        directory = Path(directory)
        (directory / CAMERAS_FILE).write_text(json.dumps(self.to_json(), indent=2))
        if self.poses is not None:
            save_file({"poses": self.poses}, str(directory / POSES_FILE))

    @classmethod
    def load(cls, directory: Path) -> CameraDistribution:
        """Reads :meth:`save`'s files; errors name the file. A directory without them gets the default orbit."""
        directory = Path(directory)
        path = directory / CAMERAS_FILE
        if not path.is_file():
            return cls(CameraDistributionConfig())
        try:
            data = json.loads(path.read_text())
            if "format_version" not in data:  # format 1: the config itself
                data = {"format_version": 1, "config": data}
            version = data["format_version"]
            if not isinstance(version, int) or version > CAMERAS_FORMAT_VERSION:
                raise ValueError(f"format_version {version!r} is newer than this epigraf reads "
                                 f"({CAMERAS_FORMAT_VERSION}); upgrade epigraf")
            config = config_from_dict(CameraDistributionConfig, data["config"])
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as error:
            raise ValueError(f"{path} is not a valid camera distribution ({error}); the bundle is damaged") from error
        poses = None
        if config.source == "dataset":
            poses = _read_poses(directory / POSES_FILE)
        return cls(config, poses)


def _read_poses(path: Path) -> Tensor:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    if not path.is_file():
        raise ValueError(
            f"{path} is missing: the generator was trained on its dataset's cameras, and a bundle keeps those poses "
            "beside its weights (bundles written before they were recorded lack them); re-save the bundle from its "
            "run, or train again"
        )
    try:
        poses = load_file(str(path))["poses"]
        Cameras.from_label(poses.to(torch.float32))
    except (SafetensorError, KeyError, ValueError, OSError) as error:
        raise ValueError(f"{path} does not hold valid camera poses ({error}); the bundle is damaged") from error
    return poses

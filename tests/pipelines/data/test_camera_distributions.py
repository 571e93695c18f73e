"""Camera distributions: statistics of the parametric laws, look-at, presets and dataset poses."""

from __future__ import annotations

import math

import pytest
import torch

from epigraf_field.config_io import config_from_json, config_to_json
from pipelines.camera_distributions import CameraDistributionConfig, sample_cameras
from pipelines.data import DatasetConfig, ImageDataset


def _looks_at_origin(cams) -> None:
    forward = cams.cam2world[:, :3, 2]
    torch.testing.assert_close(forward, -torch.nn.functional.normalize(cams.centers, dim=-1), atol=1e-5, rtol=0)


def test_faces_preset_statistics(rng):
    config = CameraDistributionConfig.faces()
    cams = sample_cameras(config, 20000, rng)
    yaw, pitch, radius = cams.to_spherical()
    assert abs(yaw.mean().item()) < 0.01 and abs(yaw.std().item() - 0.3) < 0.01
    assert abs(pitch.mean().item()) < 0.01 and abs(pitch.std().item() - 0.155) < 0.005
    torch.testing.assert_close(radius, torch.ones_like(radius))
    torch.testing.assert_close(cams.fov_degrees, torch.full((20000,), 12.0))
    assert cams.near.unique().tolist() == [pytest.approx(0.88)] and cams.far.unique().tolist() == [pytest.approx(1.12)]
    _looks_at_origin(cams)


def test_uniform_angles_stay_in_range_with_uniform_spread(rng):
    config = CameraDistributionConfig(angles="uniform", yaw_mean_degrees=20.0, yaw_spread_degrees=30.0,
                                      pitch_mean_degrees=10.0, pitch_spread_degrees=20.0, radius=1.3, fov_degrees=40.0,
                                      near=None, far=None)
    cams = sample_cameras(config, 20000, rng)
    yaw, pitch, radius = cams.to_spherical()
    yaw, pitch = torch.rad2deg(yaw), torch.rad2deg(pitch)
    assert yaw.min() >= -10.0 - 1e-3 and yaw.max() <= 50.0 + 1e-3
    assert abs(yaw.mean().item() - 20.0) < 0.5 and abs(yaw.std().item() - 30.0 / math.sqrt(3)) < 0.5
    assert abs(pitch.mean().item() - 10.0) < 0.5 and abs(pitch.std().item() - 20.0 / math.sqrt(3)) < 0.5
    torch.testing.assert_close(radius, torch.full_like(radius, 1.3))
    assert cams.near is None
    _looks_at_origin(cams)


def test_objects_360_is_uniform_on_the_sphere(rng):
    cams = sample_cameras(CameraDistributionConfig.objects_360(), 20000, rng)
    directions = torch.nn.functional.normalize(cams.centers, dim=-1)
    assert directions.mean(0).abs().max() < 0.02  # no preferred direction
    torch.testing.assert_close((directions**2).mean(0), torch.full((3,), 1.0 / 3.0), atol=0.01, rtol=0)
    assert cams.fov_degrees[0].item() == pytest.approx(30.0)
    assert cams.near[0].item() == pytest.approx(0.75) and cams.far[0].item() == pytest.approx(1.25)
    _looks_at_origin(cams)


def test_same_generator_seed_gives_same_cameras():
    config = CameraDistributionConfig.synthetic("360")
    a = sample_cameras(config, 8, torch.Generator().manual_seed(3))
    b = sample_cameras(config, 8, torch.Generator().manual_seed(3))
    c = sample_cameras(config, 8, torch.Generator().manual_seed(4))
    assert torch.equal(a.cam2world, b.cam2world) and not torch.equal(a.cam2world, c.cam2world)


def test_dataset_poses_are_drawn_from_the_labels(synth_dir, rng):
    dataset = ImageDataset(DatasetConfig(path=synth_dir / "dataset.zip", resolution=32))
    cams = sample_cameras(CameraDistributionConfig.from_dataset(), 64, rng, poses=dataset.labels)
    labels = cams.to_label()
    distances = (labels[:, None, :] - dataset.labels[None, :, :]).abs().amax(dim=-1)
    assert distances.min(dim=1).values.max() < 1e-6
    assert len({tuple(row) for row in labels.tolist()}) > 1


def test_dataset_source_needs_labels(rng):
    with pytest.raises(ValueError, match="needs the dataset's camera labels"):
        sample_cameras(CameraDistributionConfig.from_dataset(), 4, rng)


def test_config_json_round_trip():
    config = CameraDistributionConfig.objects_360()
    assert config_from_json(CameraDistributionConfig, config_to_json(config)) == config

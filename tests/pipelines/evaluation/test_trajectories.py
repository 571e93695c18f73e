"""Camera paths of grids and videos: orbit from the stored distribution, turntable spacing, zig-zag loop."""

import torch

from pipelines.camera_distributions import CameraDistribution, CameraDistributionConfig
from pipelines.evaluation.trajectories import OrbitConfig, grid_cameras, turntable_cameras, zigzag_cameras


def test_orbit_defaults_come_from_the_distribution_and_overrides_win():
    distribution = CameraDistribution(CameraDistributionConfig.synthetic("360"))
    orbit = OrbitConfig().resolve(distribution)
    assert (orbit.radius, orbit.fov_degrees, orbit.pitch_degrees) == (1.3, 40.0, 15.0)
    assert (orbit.near, orbit.far) == (0.85, 1.75)
    moved = OrbitConfig(radius=2.0).resolve(distribution)
    assert moved.radius == 2.0 and moved.near is None  # the stored bounds belong to the stored radius


def test_turntable_is_evenly_spaced_at_the_centre_pitch():
    orbit = OrbitConfig().resolve(CameraDistribution(CameraDistributionConfig.synthetic("360")))
    cameras = turntable_cameras(orbit, 8)
    yaw, pitch, radius = cameras.to_spherical()
    steps = torch.rad2deg(torch.remainder(yaw.diff(), 2 * torch.pi))
    torch.testing.assert_close(steps, torch.full((7,), 45.0), atol=1e-3, rtol=0)
    torch.testing.assert_close(torch.rad2deg(pitch), torch.full((8,), 15.0), atol=1e-3, rtol=0)
    torch.testing.assert_close(radius, torch.full((8,), 1.3))
    assert cameras.near is not None and torch.allclose(cameras.near, torch.tensor(0.85))


def test_zigzag_stays_within_its_amplitudes_and_grid_columns_follow_offsets():
    orbit = OrbitConfig(yaw_degrees=0.0, pitch_degrees=0.0, radius=1.0, fov_degrees=30.0).resolve(
        CameraDistribution(CameraDistributionConfig()))
    yaw, pitch, _ = zigzag_cameras(orbit, 16, yaw_range_degrees=20.0, pitch_range_degrees=5.0).to_spherical()
    assert torch.rad2deg(yaw).abs().max() <= 20.0 + 1e-3 and torch.rad2deg(yaw).abs().max() > 19.0
    assert torch.rad2deg(pitch).abs().max() <= 5.0 + 1e-3
    columns, _, _ = grid_cameras(orbit, (-30.0, 0.0, 30.0)).to_spherical()
    torch.testing.assert_close(torch.rad2deg(columns), torch.tensor([-30.0, 0.0, 30.0]), atol=1e-3, rtol=0)

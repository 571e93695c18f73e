"""The first view: the dataset's direction and fov, from far enough that the object fills half the window."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from pipelines.camera_distributions import CameraDistribution, CameraDistributionConfig, sample_cameras
from pipelines.viewer import GeneratorViewer, ViewerConfig
from pipelines.viewer.camera_conversion import look_at_pose, quaternion_to_matrix
from pipelines.viewer.framing import framing_distance, home_view, object_half_extent
from pipelines.viewer.server import reset_view
from tests.pipelines.viewer.conftest import tiny_model


def builtin_recorded() -> CameraDistribution:
    """The built-in dataset's cameras as a bundle records them (poses all around, radius 1.3, fov 40)."""
    poses = sample_cameras(CameraDistributionConfig.synthetic("360"), 256, torch.Generator().manual_seed(1)).to_label()
    return CameraDistribution(CameraDistributionConfig.from_dataset(), poses)


def projected_half_height(half_extent: float, distance: float, fov: float) -> float:
    """Share of the window's half height an extent at the look-at point covers (pinhole)."""
    return half_extent / distance / math.tan(fov / 2)


def test_the_extent_is_what_the_dataset_frames_at_most_the_box():
    assert object_half_extent(builtin_recorded(), 0.5) == pytest.approx(1.3 * math.tan(math.radians(20)), rel=1e-4)
    faces = CameraDistribution(CameraDistributionConfig.faces())
    assert object_half_extent(faces, 0.2) == pytest.approx(math.tan(math.radians(6)))
    assert object_half_extent(builtin_recorded(), 0.3) == 0.3  # a box smaller than the frame bounds the object


@pytest.mark.parametrize("aspect", [16 / 9, 1.0, 0.6, 0.35])
def test_the_object_fills_half_the_height_unless_the_window_is_too_narrow(aspect):
    fov = math.radians(40)
    distance = framing_distance(0.47, fov, aspect)
    height_share = projected_half_height(0.47, distance, fov)
    width_share = height_share / aspect
    assert height_share <= 0.5 + 1e-9 and width_share <= 0.7 + 1e-9
    assert max(height_share / 0.5, width_share / 0.7) == pytest.approx(1.0)  # as close as the window allows
    if aspect >= 0.5 / 0.7:
        assert height_share == pytest.approx(0.5)


@pytest.mark.parametrize(
    "cameras, box", [(builtin_recorded(), 0.5), (CameraDistribution(CameraDistributionConfig.faces()), 0.2)],
    ids=["builtin", "faces"],
)
def test_home_view_looks_at_the_origin_along_the_dataset_direction_with_its_fov(cameras, box):
    dataset = reset_view(cameras)
    home = home_view(cameras, box, aspect=1.5)
    assert home.fov == pytest.approx(dataset.fov) and home.aspect == 1.5
    np.testing.assert_allclose(home.wxyz, dataset.wxyz)
    direction = np.asarray(dataset.position) / np.linalg.norm(dataset.position)
    np.testing.assert_allclose(np.asarray(home.position) / np.linalg.norm(home.position), direction, atol=1e-6)
    _, look_at, _ = look_at_pose(home)
    np.testing.assert_allclose(look_at, 0.0, atol=1e-6)
    forward = quaternion_to_matrix(np.asarray(home.wxyz))[:, 2]
    np.testing.assert_allclose(forward, -direction, atol=1e-6)
    extent = object_half_extent(cameras, box)
    assert projected_half_height(extent, np.linalg.norm(home.position), home.fov) == pytest.approx(0.5)
    # The dataset's own camera is twice as close: there the object fills the whole frame.
    assert np.linalg.norm(home.position) == pytest.approx(2 * np.linalg.norm(dataset.position), rel=1e-3)


def test_the_viewer_frames_each_window_and_keeps_the_dataset_pose_as_condition(tiny_generator, tmp_path):
    viewer = GeneratorViewer(tiny_model(tiny_generator, CameraDistributionConfig.synthetic("360")),
                             ViewerConfig(verbose=False, output_dir=tmp_path))
    wide, tall = viewer.home_for(16 / 9), viewer.home_for(0.4)
    assert np.linalg.norm(tall.position) > 1.5 * np.linalg.norm(wide.position)
    assert np.linalg.norm(viewer.home.position) == pytest.approx(np.linalg.norm(wide.position))
    assert float(viewer._condition_camera.centers.norm()) == pytest.approx(1.3, rel=1e-4)
    with pytest.raises(ValueError, match="positive aspect"):
        framing_distance(0.4, 0.5, 0.0)

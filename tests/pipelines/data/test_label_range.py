"""Labels are checked as stored (float32) and cameras absurdly far from the scene box are refused."""

from __future__ import annotations

import json

import numpy as np
import pytest
from tests.pipelines.data.data_test_utils import labeled_files, png_bytes, random_image, write_zip

from pipelines.data import DatasetConfig, ImageDataset, validate_dataset
from pipelines.data.labels import MAX_CAMERA_DISTANCE


def _report(tmp_path, index: int, value: float):
    files = labeled_files(3)
    labels = json.loads(files["dataset.json"])["labels"]
    labels[1][1][index] = value
    files["dataset.json"] = json.dumps({"labels": labels}).encode()
    return validate_dataset(DatasetConfig(path=write_zip(tmp_path / "d.zip", files), resolution=16))


@pytest.mark.parametrize("index, field", [(3, "cam2world[0][3] (translation x)"), (16, "intrinsics[0][0] (fx)")])
def test_value_that_overflows_float32_is_a_problem(tmp_path, index, field):
    report = _report(tmp_path, index, 1e300)  # finite as float64, inf as the stored float32
    assert [(p.entry, p.kind) for p in report.problems] == [("img1.png", "label_overflow")]
    assert field in report.problems[0].problem and "Fix:" in str(report)


def test_camera_far_outside_the_box_is_refused_with_the_rescale_fix(tmp_path):
    report = _report(tmp_path, 11, 1e30)
    assert [(p.entry, p.kind) for p in report.problems] == [("img1.png", "camera_too_far")]
    problem = report.problems[0]
    assert "1e+30" in problem.problem and "dataset.json" in problem.fix and "3, 7, 11" in problem.fix


def test_camera_distance_bound_is_5000_for_the_default_box(tmp_path):
    assert MAX_CAMERA_DISTANCE == 1e4 * 0.5
    assert _report(tmp_path, 11, 0.99 * MAX_CAMERA_DISTANCE).ok
    assert not _report(tmp_path, 11, 1.01 * MAX_CAMERA_DISTANCE).ok


def _transforms_scene(tmp_path, z: float):
    frame = {"file_path": "f0.png", "transform_matrix": [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, z], [0, 0, 0, 1]]}
    document = {"camera_angle_x": 0.7, "frames": [frame]}
    return write_zip(tmp_path / "t.zip", {"f0.png": png_bytes(random_image(16, 0)),
                                          "transforms.json": json.dumps(document).encode()})


def test_far_transforms_camera_names_camera_scale_and_rescaling_fixes_it(tmp_path):
    path = _transforms_scene(tmp_path, 1e5)  # e.g. a capture in millimetres
    report = validate_dataset(DatasetConfig(path=path, resolution=16))
    assert [(p.entry, p.kind) for p in report.problems] == [("f0.png", "camera_too_far")]
    assert "--data.camera-scale" in report.problems[0].fix
    dataset = ImageDataset(DatasetConfig(path=path, resolution=16, camera_scale=2e-5))
    assert dataset.labels[0, 11].item() == pytest.approx(2.0)  # 1e5 x 2e-5: the camera centre is rescaled
    assert np.isfinite(dataset.labels.numpy()).all()


def test_transforms_focal_overflow_is_reported(tmp_path):
    frame = {"file_path": "f0.png", "transform_matrix": np.eye(4).tolist()}
    document = {"fl_x": 1e300, "w": 16, "h": 16, "frames": [frame]}
    path = write_zip(tmp_path / "t.zip", {"f0.png": png_bytes(random_image(16, 0)),
                                          "transforms.json": json.dumps(document).encode()})
    report = validate_dataset(DatasetConfig(path=path, resolution=16))
    assert [(p.entry, p.kind) for p in report.problems] == [("f0.png", "label_overflow")]
    assert "intrinsics[0][0] (fx)" in report.problems[0].problem

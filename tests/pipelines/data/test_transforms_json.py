"""nerfstudio / instant-ngp transforms.json: OpenGL poses and pixel or angle intrinsics to our labels."""

from __future__ import annotations

import json
import math

import numpy as np
import torch
from tests.pipelines.data.data_test_utils import png_bytes, project, random_image, write_zip

from pipelines.data import DatasetConfig, ImageDataset
from renderers.cameras import Cameras


def test_pose_on_the_z_axis_against_hand_computed_projection(tmp_path):
    # OpenGL camera 3 units out on +z, looking down -z (identity rotation), 100 x 100 pixels.
    frame = {"file_path": "./images/f0.png", "transform_matrix": [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 3], [0, 0, 0, 1]]}
    document = {"fl_x": 50.0, "fl_y": 50.0, "cx": 50.0, "cy": 50.0, "w": 100, "h": 100, "frames": [frame]}
    path = write_zip(tmp_path / "t.zip", {"images/f0.png": png_bytes(random_image(100, 0)),
                                          "transforms.json": json.dumps(document).encode()})
    dataset = ImageDataset(DatasetConfig(path=path, resolution=16))
    label = dataset[0][1]
    expected_pose = torch.tensor([[1, 0, 0, 0], [0, -1, 0, 0], [0, 0, -1, 3], [0, 0, 0, 1]], dtype=torch.float32)
    torch.testing.assert_close(label[:16].reshape(4, 4), expected_pose)
    torch.testing.assert_close(label[16:].reshape(3, 3), torch.tensor([[0.5, 0, 0.5], [0, 0.5, 0.5], [0, 0, 1.0]]))
    # The point (0.3, 0.2, 0) is 3 units in front: pixel x = 50 + 50 * 0.3 / 3, y = 50 - 50 * 0.2 / 3 (y up).
    uv = project(label, torch.tensor([[0.3, 0.2, 0.0]]))[0]
    torch.testing.assert_close(uv, torch.tensor([55.0 / 100, (50.0 - 50.0 * 0.2 / 3) / 100], dtype=torch.float64))


def test_rotated_camera_and_camera_angle_x_round_trip(tmp_path):
    cams = Cameras.from_spherical(torch.tensor([0.7]), torch.tensor([0.4]), 2.0, 30.0)
    pose_gl = cams.cam2world[0].double().numpy() @ np.diag([1.0, -1.0, -1.0, 1.0])
    document = {"camera_angle_x": math.radians(30.0),
                "frames": [{"file_path": "r_0", "transform_matrix": pose_gl.tolist()}]}
    (tmp_path / "scene").mkdir()
    (tmp_path / "scene" / "r_0.png").write_bytes(png_bytes(random_image(32, 1)))
    (tmp_path / "scene" / "transforms.json").write_text(json.dumps(document))
    dataset = ImageDataset(DatasetConfig(path=tmp_path / "scene", resolution=32, camera_scale=0.5))
    label = dataset[0][1]
    expected = cams.to_label()[0]
    expected[[3, 7, 11]] *= 0.5
    torch.testing.assert_close(label, expected, atol=1e-5, rtol=1e-5)

"""x-flip: the image is mirrored and its camera too, so projections move to the mirrored pixel."""

from __future__ import annotations

import json

import numpy as np
import torch
from tests.pipelines.data.data_test_utils import front_label, png_bytes, project, write_zip

from pipelines.data import DatasetConfig, ImageDataset


def test_mirrored_point_projects_to_mirrored_pixel(tmp_path):
    resolution = 32
    label = torch.tensor(front_label(yaw=0.5, pitch=0.25))
    point = torch.tensor([[0.2, 0.1, -0.15]])
    u, v = project(label, point)[0].tolist()
    row, col = int(v * resolution), int(u * resolution)
    image = np.full((resolution, resolution, 3), 255, dtype=np.uint8)
    image[row, col] = (255, 0, 0)  # a red marker where the point is seen
    files = {"a.png": png_bytes(image), "dataset.json": json.dumps({"labels": [["a.png", label.tolist()]]}).encode()}
    dataset = ImageDataset(DatasetConfig(path=write_zip(tmp_path / "d.zip", files), resolution=resolution, xflip=True))
    flipped_image, flipped_label = dataset[1]
    mirrored_point = point * torch.tensor([-1.0, 1.0, 1.0])
    u_m, v_m = project(flipped_label, mirrored_point)[0].tolist()
    assert abs(u_m - (1.0 - u)) < 1e-5 and abs(v_m - v) < 1e-5
    marker = (flipped_image[0] > 0.9) & (flipped_image[1] < -0.9)
    assert marker.nonzero().tolist() == [[int(v_m * resolution), int(u_m * resolution)]]

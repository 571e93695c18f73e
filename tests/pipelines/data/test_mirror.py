"""--mirror (on by default): the training set doubles, and each mirrored item is the mirror image of its original."""

from __future__ import annotations

import json

import numpy as np
import torch
from tests.pipelines.data.data_test_utils import front_label, png_bytes, project, random_image, write_zip
from tests.pipelines.tiny import tiny_train_config

from pipelines.engine.distributed import DistributedContext
from pipelines.engine.launch import build_dataset

RESOLUTION = 32
NUM_IMAGES = 3


def _labeled_zip(tmp_path):
    files = {f"img{i}.png": png_bytes(random_image(RESOLUTION, i)) for i in range(NUM_IMAGES)}
    labels = [[name, front_label(yaw=0.4 * i - 0.3, pitch=0.1 * i)] for i, name in enumerate(files)]
    files["dataset.json"] = json.dumps({"labels": labels}).encode()
    return write_zip(tmp_path / "d.zip", files)


def test_mirror_is_on_by_default_and_doubles_the_dataset(tmp_path):
    config = tiny_train_config(data=_labeled_zip(tmp_path))
    assert config.mirror
    assert len(build_dataset(config, DistributedContext())) == 2 * NUM_IMAGES
    assert len(build_dataset(tiny_train_config(data=config.data, mirror=False), DistributedContext())) == NUM_IMAGES


def test_mirrored_camera_sees_the_mirrored_point_at_the_mirrored_pixel(tmp_path):
    dataset = build_dataset(tiny_train_config(data=_labeled_zip(tmp_path)), DistributedContext())
    point = torch.tensor([[0.13, -0.07, 0.05]])
    mirrored_point = point * torch.tensor([-1.0, 1.0, 1.0])  # the world reflected in x = 0
    for index in range(NUM_IMAGES):
        image, label = dataset[index]
        mirrored_image, mirrored_label = dataset[index + NUM_IMAGES]
        u, v = project(label, point)[0].tolist()
        u_m, v_m = project(mirrored_label, mirrored_point)[0].tolist()
        assert abs(u_m - (1.0 - u)) < 1e-5 and abs(v_m - v) < 1e-5
        row, col = int(v * RESOLUTION), int(u * RESOLUTION)
        row_m, col_m = int(v_m * RESOLUTION), int(u_m * RESOLUTION)
        assert (row_m, col_m) == (row, RESOLUTION - 1 - col)  # the point is not on a pixel border
        assert torch.equal(mirrored_image[:, row_m, col_m], image[:, row, col])
        assert not torch.equal(mirrored_image, image)


def test_only_the_main_process_prints_the_doubled_size(tmp_path, capsys):
    config = tiny_train_config(data=_labeled_zip(tmp_path))
    build_dataset(config, DistributedContext(rank=1, world_size=1))
    assert "dataset:" not in capsys.readouterr().out
    build_dataset(config, DistributedContext())
    assert "dataset: 3 images, x-flip mirroring on: 6 training items" in capsys.readouterr().out
    build_dataset(tiny_train_config(data=config.data, mirror=False), DistributedContext())
    assert "dataset: 3 images, x-flip mirroring off (--no-mirror): 3 training items" in capsys.readouterr().out


def test_mirrored_images_are_the_flipped_originals(tmp_path):
    dataset = build_dataset(tiny_train_config(data=_labeled_zip(tmp_path)), DistributedContext())
    for index in range(NUM_IMAGES):
        assert torch.equal(dataset[index + NUM_IMAGES][0], dataset[index][0].flip(-1))
    assert np.isfinite(dataset.labels.numpy()).all()

"""Loading EG3D zips and folders: round trip, x-flip, alpha, resizing and unlabeled collections."""

from __future__ import annotations

import io
import json
import shutil
import zipfile

import numpy as np
import pytest
import torch
from tests.pipelines.data.data_test_utils import png_bytes, random_image, write_zip
from PIL import Image

from epigraf_field.config_io import config_from_json, config_to_json
from pipelines.data import DatasetConfig, ImageDataset


def _expected(synth_dir):
    with zipfile.ZipFile(synth_dir / "dataset.zip") as archive:
        labels = dict((name, values) for name, values in json.loads(archive.read("dataset.json"))["labels"])
        images = {name: np.asarray(Image.open(io.BytesIO(archive.read(name))).convert("RGB")) for name in labels}
    return labels, images


@pytest.mark.parametrize("as_folder", [False, True])
def test_round_trip_zip_and_folder(synth_dir, tmp_path, as_folder):
    path = synth_dir / "dataset.zip"
    if as_folder:
        shutil.unpack_archive(path, tmp_path / "folder", format="zip")
        path = tmp_path / "folder"
    dataset = ImageDataset(DatasetConfig(path=path, resolution=32))
    labels, images = _expected(synth_dir)
    assert dataset.has_labels and len(dataset) == len(labels) == 6
    assert dataset.validate().ok
    for index, name in enumerate(dataset.names):
        image, label = dataset[index]
        assert image.shape == (3, 32, 32) and image.dtype == torch.float32
        assert image.min() >= -1.0 and image.max() <= 1.0
        torch.testing.assert_close(label, torch.tensor(labels[name], dtype=torch.float32))
        pixels = torch.from_numpy(images[name]).permute(2, 0, 1).float() / 127.5 - 1.0
        torch.testing.assert_close(image, pixels)


def test_uncached_reads_match_cached(synth_dir):
    cached = ImageDataset(DatasetConfig(path=synth_dir / "dataset.zip", resolution=32, cache="always"))
    streamed = ImageDataset(DatasetConfig(path=synth_dir / "dataset.zip", resolution=32, cache="never"))
    for index in range(len(cached)):
        torch.testing.assert_close(cached[index][0], streamed[index][0])


def test_xflip_doubles_with_mirrored_images_and_cameras(synth_dir):
    plain = ImageDataset(DatasetConfig(path=synth_dir / "dataset.zip", resolution=32))
    flipped = ImageDataset(DatasetConfig(path=synth_dir / "dataset.zip", resolution=32, xflip=True))
    n = len(plain)
    assert len(flipped) == 2 * n
    image, label = flipped[n + 1]
    torch.testing.assert_close(image, plain[1][0].flip(-1))
    yaw_plain = torch.atan2(plain[1][1][3], plain[1][1][11])
    yaw_flipped = torch.atan2(label[3], label[11])
    torch.testing.assert_close(yaw_flipped, -yaw_plain)  # camera x position (index 3) changes sign
    assert flipped.labels.shape == (2 * n, 25)


def test_resizes_to_training_resolution(tmp_path):
    path = write_zip(tmp_path / "d.zip", {"a.png": png_bytes(random_image(48, 0)), "b.png": png_bytes(random_image(48, 1))})
    dataset = ImageDataset(DatasetConfig(path=path, resolution=16))
    assert dataset[0][0].shape == (3, 16, 16)
    assert not dataset.has_labels
    assert torch.equal(dataset[0][1], torch.zeros(25))


def test_rgba_is_composited_over_background(tmp_path):
    rgba = np.zeros((8, 8, 4), dtype=np.uint8)
    rgba[:4, :, :] = (255, 0, 0, 255)  # opaque red top half; transparent (black) bottom half
    (tmp_path / "imgs").mkdir()
    (tmp_path / "imgs" / "x.png").write_bytes(png_bytes(rgba))
    dataset = ImageDataset(DatasetConfig(path=tmp_path / "imgs", resolution=8, background=(0.0, 1.0, 0.0)))
    image = (dataset[0][0] + 1.0) / 2.0
    torch.testing.assert_close(image[:, 0, 0], torch.tensor([1.0, 0.0, 0.0]))
    torch.testing.assert_close(image[:, 7, 0], torch.tensor([0.0, 1.0, 0.0]))


def test_config_json_round_trip(tmp_path):
    config = DatasetConfig(path=tmp_path / "x.zip", resolution=128, background=(0.0, 0.5, 1.0), xflip=True,
                           resize="error", max_images=10)
    assert config_from_json(DatasetConfig, config_to_json(config)) == config

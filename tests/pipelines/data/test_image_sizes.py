"""Image sizes are bounded by the training resolution: huge ones are refused unread, tiny ones warned about."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from tests.pipelines.data.data_test_utils import png_bytes, random_image, raw_png, write_zip

from pipelines.data import DatasetConfig, ImageDataset, validate_dataset
from pipelines.data.images import MAX_SIZE_FACTOR


def _report(tmp_path, image: bytes, resolution: int = 16, **kwargs):
    files = {"a.png": png_bytes(random_image(resolution, 0)), "big.png": image}
    return validate_dataset(DatasetConfig(path=write_zip(tmp_path / "d.zip", files), resolution=resolution, **kwargs))


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")  # Pillow warns above 89 MP
@pytest.mark.parametrize("check_images", ["decode", "header"])
def test_12000_pixel_image_is_refused_from_its_header(tmp_path, check_images):
    # The header claims 12000x12000 but the pixel data is one row: decoding it would say 'corrupt',
    # so the 'image_too_large' answer shows that the size was checked before any pixel was decoded.
    header_only = raw_png(np.zeros((1, 4), dtype=np.uint8), 0, 8, size=(12000, 12000))
    report = _report(tmp_path, header_only, check_images=check_images)
    assert [(p.entry, p.kind) for p in report.problems] == [("big.png", "image_too_large")]
    problem = report.problems[0]
    assert "12000x12000" in problem.problem and "256x256" in problem.problem and "resize the dataset" in problem.fix


def test_size_bound_is_16_times_the_resolution(tmp_path):
    assert MAX_SIZE_FACTOR == 16
    assert _report(tmp_path, png_bytes(random_image(256, 1)), resolution=16).ok
    report = _report(tmp_path, png_bytes(random_image(257, 1)), resolution=16)
    assert [p.kind for p in report.problems] == ["image_too_large"]


def test_tiny_images_are_used_with_a_warning_naming_them(tmp_path, caplog):
    files = {"a.png": png_bytes(random_image(16, 0)), "dot.png": png_bytes(random_image(1, 2)),
             "three.png": png_bytes(random_image(3, 3)), "four.png": png_bytes(random_image(4, 4))}
    with caplog.at_level(logging.WARNING, logger="pipelines.data"):
        dataset = ImageDataset(DatasetConfig(path=write_zip(tmp_path / "d.zip", files), resolution=16))
    report = dataset.validate()
    assert report.ok and len(dataset) == 4  # warnings never drop entries
    assert [(w.entry, w.kind) for w in report.warnings] == [("dot.png", "small_image"), ("three.png", "small_image")]
    assert "1x1" in report.warnings[0].problem and "dot.png" in str(report)
    assert "2 warning(s)" in caplog.text

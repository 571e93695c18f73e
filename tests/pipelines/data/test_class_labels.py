"""Class indices next to camera labels in dataset.json: the layouts read, the checks, and x-flip copies."""

from __future__ import annotations

import json

import pytest
import torch
from tests.pipelines.data.data_test_utils import front_label, png_bytes, random_image, write_zip

from pipelines.data import DatasetConfig, DatasetValidationError, ImageDataset, validate_dataset


def _images(count: int) -> dict[str, bytes]:
    return {f"img{i}.png": png_bytes(random_image(16, i)) for i in range(count)}


def _dataset_zip(tmp_path, document: dict, count: int = 4, name: str = "d.zip"):
    files = _images(count)
    files["dataset.json"] = json.dumps(document).encode()
    return write_zip(tmp_path / name, files)


def _cameras(count: int) -> list:
    return [[f"img{i}.png", front_label(0.1 * i)] for i in range(count)]


def _problems(report) -> list[tuple[str, str]]:
    return [(p.entry, p.kind) for p in report.problems]


def test_cameras_and_classes_side_by_side(tmp_path):
    classes = [["img0.png", 2], ["img1.png", 0], ["img2.png", 1], ["img3.png", 2]]
    path = _dataset_zip(tmp_path, {"labels": _cameras(4), "classes": classes})
    dataset = ImageDataset(DatasetConfig(path=path, resolution=16))
    assert dataset.has_labels and dataset.num_classes == 3
    assert dataset.class_labels.dtype == torch.int64 and dataset.class_labels.tolist() == [2, 0, 1, 2]
    assert torch.allclose(dataset.labels[1], torch.tensor(front_label(0.1)))


def test_mirrored_copies_keep_their_class(tmp_path):
    classes = [[f"img{i}.png", k] for i, k in enumerate([1, 0, 1])]
    path = _dataset_zip(tmp_path, {"labels": _cameras(3), "classes": classes}, count=3)
    dataset = ImageDataset(DatasetConfig(path=path, resolution=16, xflip=True))
    assert len(dataset) == 6 and dataset.class_labels.tolist() == [1, 0, 1, 1, 0, 1]


def test_unconditional_datasets_have_no_classes(tmp_path):
    dataset = ImageDataset(DatasetConfig(path=_dataset_zip(tmp_path, {"labels": _cameras(4)}), resolution=16))
    assert dataset.class_labels is None and dataset.num_classes == 0


def test_stylegan_class_only_labels(tmp_path):
    """StyleGAN2-ADA's {"labels": [[path, class], ...]}: classes, no cameras."""
    path = _dataset_zip(tmp_path, {"labels": [[f"img{i}.png", i % 2] for i in range(4)]})
    dataset = ImageDataset(DatasetConfig(path=path, resolution=16))
    assert not dataset.has_labels and dataset.class_labels.tolist() == [0, 1, 0, 1] and dataset.num_classes == 2


def test_epigraf_class_dict_matches_names_without_extension(tmp_path):
    """EpiGRAF's {"labels": {path: class}}; its data scripts may write another extension than the images'."""
    path = _dataset_zip(tmp_path, {"labels": {"img0.jpg": 0, "img1.jpg": 1, "img2.png": 1, "img3": 0}})
    dataset = ImageDataset(DatasetConfig(path=path, resolution=16))
    assert dataset.class_labels.tolist() == [0, 1, 1, 0]


@pytest.mark.parametrize(
    ("value", "kind", "words"),
    [(-1, "negative_class", "negative"), (1.5, "bad_class", "not an integer"), ("cat", "bad_class", "not an integer"),
     (None, "bad_class", "not an integer"), (True, "bad_class", "not an integer"),
     (7, "class_out_of_range", "not below num_classes 4")],
)
def test_bad_class_index_is_a_problem_naming_the_entry(tmp_path, value, kind, words):
    classes = [["img0.png", 0], ["img1.png", value], ["img2.png", 1], ["img3.png", 3]]
    path = _dataset_zip(tmp_path, {"labels": _cameras(4), "classes": classes, "num_classes": 4})
    report = validate_dataset(DatasetConfig(path=path, resolution=16))
    assert _problems(report) == [("img1.png", kind)]
    assert words in report.problems[0].problem
    with pytest.raises(DatasetValidationError, match="img1.png"):
        ImageDataset(DatasetConfig(path=path, resolution=16))
    dataset = ImageDataset(DatasetConfig(path=path, resolution=16, skip_bad=True))
    assert dataset.names == ["img0.png", "img2.png", "img3.png"] and dataset.class_labels.tolist() == [0, 1, 3]


def test_integral_float_class_is_read_as_an_integer(tmp_path):
    classes = [[f"img{i}.png", float(i % 2)] for i in range(4)]
    dataset = ImageDataset(DatasetConfig(path=_dataset_zip(tmp_path, {"labels": _cameras(4), "classes": classes}),
                                         resolution=16))
    assert dataset.class_labels.tolist() == [0, 1, 0, 1]


def test_image_without_class_and_class_without_image(tmp_path):
    classes = [["img0.png", 0], ["img1.png", 1], ["img2.png", 1], ["gone.png", 0]]
    report = validate_dataset(DatasetConfig(path=_dataset_zip(tmp_path, {"labels": _cameras(4), "classes": classes}),
                                            resolution=16))
    assert sorted(_problems(report)) == [("gone.png", "missing_file"), ("img3.png", "missing_class")]


def test_duplicate_class_entry_is_a_problem(tmp_path):
    classes = [["img0.png", 0], ["img1.png", 1], ["img2.png", 1], ["img3.png", 0], ["img1.png", 0]]
    report = validate_dataset(DatasetConfig(path=_dataset_zip(tmp_path, {"labels": _cameras(4), "classes": classes}),
                                            resolution=16))
    assert _problems(report) == [("img1.png", "duplicate_entry")]


def test_classes_are_max_plus_one_and_gaps_are_warned(tmp_path):
    classes = [["img0.png", 0], ["img1.png", 4], ["img2.png", 4], ["img3.png", 2]]
    path = _dataset_zip(tmp_path, {"labels": _cameras(4), "classes": classes})
    dataset = ImageDataset(DatasetConfig(path=path, resolution=16))
    assert dataset.num_classes == 5
    assert [(w.entry, w.kind) for w in dataset.report.warnings] == [("dataset.json", "unused_classes")]
    assert "2 of the 5 classes have no entry (1, 3)" in dataset.report.warnings[0].problem


def test_declared_num_classes_counts_classes_without_images(tmp_path):
    classes = [[f"img{i}.png", i % 2] for i in range(4)]
    path = _dataset_zip(tmp_path, {"labels": _cameras(4), "classes": classes, "num_classes": 198})
    dataset = ImageDataset(DatasetConfig(path=path, resolution=16))
    assert dataset.num_classes == 198 and dataset.report.warnings[0].kind == "unused_classes"


@pytest.mark.parametrize(
    ("document", "words"),
    [({"labels": [["img0.png", 1]], "classes": [["img0.png", 1]]}, "both 'labels' and 'classes'"),
     ({"labels": [["img0.png", 0.5]], "camera_angles": {}, "classes": {"img0.png": 1}}, "both 'labels' and 'classes'"),
     ({"labels": _cameras(4), "classes": [["img0.png", 0]], "num_classes": 0}, "num_classes must be a positive"),
     ({"labels": _cameras(4), "classes": "img0.png: 1"}, "'classes' must be a list")],
)
def test_unreadable_class_layouts_are_fatal(tmp_path, document, words):
    report = validate_dataset(DatasetConfig(path=_dataset_zip(tmp_path, document), resolution=16))
    assert report.fatal and any(words in p.problem for p in report.problems if p.entry == "dataset.json")


@pytest.mark.parametrize("value", [10**12, 1e300])
def test_absurd_class_index_is_out_of_range_without_num_classes(tmp_path, value):
    classes = [["img0.png", 0], ["img1.png", value], ["img2.png", 1], ["img3.png", 1]]
    report = validate_dataset(DatasetConfig(path=_dataset_zip(tmp_path, {"labels": _cameras(4), "classes": classes}),
                                            resolution=16))
    assert _problems(report) == [("img1.png", "class_out_of_range")] and not report.warnings

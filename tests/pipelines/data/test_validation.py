"""Each kind of broken dataset gives a message naming the entry, the problem and the fix."""

from __future__ import annotations

import hashlib
import json
import logging

import numpy as np
import pytest
from tests.pipelines.data.data_test_utils import front_label, labeled_files, png_bytes, random_image, write_zip

from pipelines.data import DatasetConfig, DatasetValidationError, ImageDataset, validate_dataset


def _fails(path, **kwargs) -> str:
    with pytest.raises(DatasetValidationError) as error:
        ImageDataset(DatasetConfig(path=path, resolution=16, **kwargs))
    message = str(error.value)
    assert "Fix:" in message
    return message


def _with_labels(files: dict[str, bytes], edit) -> dict[str, bytes]:
    labels = json.loads(files["dataset.json"])["labels"]
    edit(labels)
    files["dataset.json"] = json.dumps({"labels": labels}).encode()
    return files


def test_corrupt_png(tmp_path):
    files = labeled_files(3)
    files["img1.png"] = files["img1.png"][:40]  # cut inside the image data
    message = _fails(write_zip(tmp_path / "d.zip", files))
    assert "img1.png" in message and "corrupt" in message
    assert "img0.png" not in message


def test_truncated_zip(tmp_path):
    full = write_zip(tmp_path / "full.zip", labeled_files(3)).read_bytes()
    path = tmp_path / "cut.zip"
    path.write_bytes(full[: len(full) // 2])
    message = _fails(path)
    assert "cut.zip" in message and "truncated" in message


def test_label_with_24_floats(tmp_path):
    files = _with_labels(labeled_files(3), lambda labels: labels[2].__setitem__(1, labels[2][1][:24]))
    message = _fails(write_zip(tmp_path / "d.zip", files))
    assert "img2.png" in message and "24 values, expected 25" in message


def test_nan_pose(tmp_path):
    def poison(labels):
        labels[0][1][3] = float("nan")

    files = _with_labels(labeled_files(3), poison)
    message = _fails(write_zip(tmp_path / "d.zip", files))
    assert "img0.png" in message and "NaN" in message


def test_non_rigid_pose(tmp_path):
    def scale(labels):
        labels[1][1][0] *= 2.0

    message = _fails(write_zip(tmp_path / "d.zip", _with_labels(labeled_files(3), scale)))
    assert "img1.png" in message and "not a rigid transform" in message


def test_missing_file(tmp_path):
    files = labeled_files(3)
    del files["img2.png"]
    message = _fails(write_zip(tmp_path / "d.zip", files))
    assert "img2.png" in message and "not found" in message


def test_non_square_image(tmp_path):
    files = labeled_files(3)
    files["img0.png"] = png_bytes(np.zeros((16, 20, 3), dtype=np.uint8))
    message = _fails(write_zip(tmp_path / "d.zip", files))
    assert "img0.png" in message and "20x16, not square" in message


def test_duplicates_and_unlabeled_images(tmp_path):
    files = _with_labels(labeled_files(3), lambda labels: labels.append(["img0.png", front_label()]))
    files["extra.png"] = png_bytes(random_image(16, 9))
    message = _fails(write_zip(tmp_path / "d.zip", files))
    assert "img0.png: listed more than once" in message
    assert "extra.png: image has no label" in message


def test_wrong_resolution_when_resizing_is_off(tmp_path):
    message = _fails(write_zip(tmp_path / "d.zip", labeled_files(2, size=24)), resize="error")
    assert "img0.png" in message and "expected 16x16" in message


def test_every_problem_is_listed_at_once(tmp_path):
    files = labeled_files(5)
    files["img1.png"] = b"not an image"
    del files["img3.png"]
    files = _with_labels(files, lambda labels: labels[4].__setitem__(1, [0.0] * 7))
    report = validate_dataset(DatasetConfig(path=write_zip(tmp_path / "d.zip", files), resolution=16))
    assert {(p.entry, p.kind) for p in report.problems} == {
        ("img1.png", "corrupt_image"), ("img3.png", "missing_file"), ("img4.png", "bad_label_length")}


def test_skip_bad_trains_on_the_rest_and_writes_the_list(tmp_path):
    files = labeled_files(4)
    files["img2.png"] = b"garbage"
    path = write_zip(tmp_path / "d.zip", files)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    run_dir = tmp_path / "run"
    dataset = ImageDataset(DatasetConfig(path=path, resolution=16, skip_bad=True, report_dir=run_dir))
    assert len(dataset) == 3 and "img2.png" not in dataset.names
    assert [p.entry for p in dataset.validate().problems] == ["img2.png"]
    assert "img2.png" in (run_dir / "bad_entries.txt").read_text()
    assert json.loads((run_dir / "bad_entries.json").read_text())["problems"][0]["kind"] == "corrupt_image"
    assert hashlib.sha256(path.read_bytes()).hexdigest() == digest  # the dataset is never modified


def _skip_one_of_four(tmp_path) -> ImageDataset:
    files = labeled_files(4)
    files["img2.png"] = b"garbage"
    return ImageDataset(DatasetConfig(path=write_zip(tmp_path / "d.zip", files), resolution=16, skip_bad=True))


def test_report_written_the_way_the_launcher_calls_it_gives_two_files(tmp_path):
    report = _skip_one_of_four(tmp_path).validate()
    run_dir = tmp_path / "run"
    written = report.write(run_dir / "bad_entries.txt")  # launch.py passes this path: it means the run folder
    assert written == [run_dir / "bad_entries.txt", run_dir / "bad_entries.json"]
    assert (run_dir / "bad_entries.txt").is_file() and (run_dir / "bad_entries.json").is_file()
    assert sorted(p.name for p in run_dir.iterdir()) == ["bad_entries.json", "bad_entries.txt"]
    assert report.write(run_dir) == written


def test_summary_says_what_was_skipped_and_where_the_list_is(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="pipelines.data"):
        dataset = _skip_one_of_four(tmp_path)
    run_dir = tmp_path / "run"
    summary = dataset.validate().summary(run_dir)
    assert summary.endswith(f"skipped 1 of 4 entries (corrupt_image: 1), list in {run_dir / 'bad_entries.txt'}.")
    assert "skipped 1 of 4 entries (corrupt_image: 1)" in caplog.text  # also logged when the dataset opens
    assert validate_dataset(DatasetConfig(path=write_zip(tmp_path / "ok.zip", labeled_files(2)), resolution=16)
                            ).summary().endswith("no entries skipped (2 entries).")


def test_missing_dataset_path(tmp_path):
    message = _fails(tmp_path / "nope.zip")
    assert "nope.zip" in message and "does not exist" in message

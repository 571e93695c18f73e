"""Zip members that collide under one name, or leave the dataset root, are reported, never merged."""

from __future__ import annotations

import json

import pytest
from tests.pipelines.data.data_test_utils import labeled_files, png_bytes, random_image, write_zip_members

from pipelines.data import DatasetConfig, DatasetValidationError, ImageDataset, validate_dataset


def _report(tmp_path, extra: list[tuple[str, bytes]]):
    members = list(labeled_files(3).items()) + extra
    return validate_dataset(DatasetConfig(path=write_zip_members(tmp_path / "d.zip", members), resolution=16))


@pytest.mark.parametrize("second", ["img1.png", "./img1.png", ".//img1.png"])
def test_two_members_read_as_one_image_are_a_problem_naming_both(tmp_path, second):
    report = _report(tmp_path, [(second, png_bytes(random_image(16, 99)))])
    assert [(p.entry, p.kind) for p in report.problems] == [("img1.png", "duplicate_member")]
    problem = report.problems[0].problem
    assert "'img1.png' (zip entry 1)" in problem and f"{second!r} (zip entry 4)" in problem
    assert not report.fatal


def test_doubled_slash_in_a_folder_collides_with_the_plain_path(tmp_path):
    image = png_bytes(random_image(16, 5))
    report = validate_dataset(DatasetConfig(
        path=write_zip_members(tmp_path / "d.zip", [("a/x.png", image), ("a//x.png", image)]), resolution=16))
    assert [(p.entry, p.kind) for p in report.problems] == [("a/x.png", "duplicate_member")]
    assert "'a//x.png'" in report.problems[0].problem


def test_skip_bad_drops_the_collided_image_and_trains_on_the_rest(tmp_path):
    members = list(labeled_files(3).items()) + [("./img2.png", png_bytes(random_image(16, 7)))]
    dataset = ImageDataset(DatasetConfig(path=write_zip_members(tmp_path / "d.zip", members), resolution=16,
                                         skip_bad=True))
    assert dataset.names == ["img0.png", "img1.png"]


def test_duplicate_label_file_is_fatal(tmp_path):
    files = labeled_files(2)
    report = _report(tmp_path, [("./dataset.json", json.dumps({"labels": []}).encode())])
    assert ("dataset.json", "duplicate_member") in {(p.entry, p.kind) for p in report.problems}
    assert report.fatal
    with pytest.raises(DatasetValidationError, match="dataset.json"):
        ImageDataset(DatasetConfig(path=write_zip_members(tmp_path / "e.zip", list(files.items()) + [
            ("dataset.json", files["dataset.json"])]), resolution=16, skip_bad=True))


@pytest.mark.parametrize("name", ["../evil.png", "/abs.png", "a/../../up.png", "C:\\win.png"])
def test_member_names_that_leave_the_dataset_are_problems(tmp_path, name):
    report = _report(tmp_path, [(name, png_bytes(random_image(16, 3)))])
    assert [(p.entry, p.kind) for p in report.problems] == [(name, "unsafe_member_name")]
    assert "relative to the dataset root" in report.problems[0].fix


def test_a_clean_zip_has_no_member_problems(tmp_path):
    assert _report(tmp_path, []).ok

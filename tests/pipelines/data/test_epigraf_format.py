"""EpiGRAF's dataset.json (camera_angles [yaw, pitch, roll] per image, class labels as a dict) read as cameras."""

from __future__ import annotations

import json
import math
import zipfile

import numpy as np
import pytest
import torch
from tests.pipelines.data.data_test_utils import png_bytes, project, random_image, write_zip

from pipelines.data import DatasetConfig, DatasetValidationError, ImageDataset, validate_dataset
from pipelines.data.labels import epigraf_angles_to_labels
from renderers.cameras import Cameras


def epigraf_view(yaw: float, pitch: float, radius: float, fov_degrees: float, point) -> tuple[float, float]:
    """(u, v) of an EpiGRAF-world point seen by EpiGRAF's camera, from the formulas of its rendering.py.

    Camera at radius * (sin(pitch) cos(yaw), cos(pitch), sin(pitch) sin(yaw)) looking at the origin,
    world +y up; its rays are (x, y, -1 / tan(fov / 2)) in OpenGL camera axes (right, up, backwards)
    with x to the right and y up across the image.
    """
    origin = radius * np.array([math.sin(pitch) * math.cos(yaw), math.cos(pitch), math.sin(pitch) * math.sin(yaw)])
    forward = -origin / np.linalg.norm(origin)
    left = np.cross([0.0, 1.0, 0.0], forward)
    left /= np.linalg.norm(left)
    up = np.cross(forward, left)
    relative = np.asarray(point, dtype=np.float64) - origin
    depth, tangent = relative @ forward, math.tan(math.radians(fov_degrees) / 2)
    x, y = relative @ -left / (depth * tangent), relative @ up / (depth * tangent)
    return 0.5 + 0.5 * x, 0.5 - 0.5 * y


def to_our_world(point) -> list[float]:
    """EpiGRAF's world is ours turned a quarter turn about +y: its (x, y, z) is our (-z, y, x)."""
    x, y, z = point
    return [-z, y, x]


def _images(names) -> dict[str, bytes]:
    return {name: png_bytes(random_image(16, i)) for i, name in enumerate(names)}


def _epigraf_zip(tmp_path, angles: dict, classes: dict | None = None, names=None, name="d.zip"):
    files = _images(names if names is not None else angles)
    document = {"camera_angles": angles} | ({"labels": classes} if classes is not None else {})
    files["dataset.json"] = json.dumps(document).encode()
    return write_zip(tmp_path / name, files)


def test_front_view_is_on_our_plus_z_looking_at_the_origin():
    label = torch.tensor(epigraf_angles_to_labels(np.array([[0.0, math.pi / 2, 0.0]]), 1.0, 12.0), dtype=torch.float32)
    cameras = Cameras.from_label(label)
    assert torch.allclose(cameras.centers[0], torch.tensor([0.0, 0.0, 1.0]), atol=1e-6)
    assert torch.allclose(cameras.cam2world[0, :3, 2], torch.tensor([0.0, 0.0, -1.0]), atol=1e-6)  # forward
    assert torch.allclose(cameras.cam2world[0, :3, 1], torch.tensor([0.0, -1.0, 0.0]), atol=1e-6)  # image down
    assert cameras.fov_degrees[0].item() == pytest.approx(12.0, rel=1e-5)


@pytest.mark.parametrize(("yaw", "pitch"), [(0.0, math.pi / 2), (0.6, 1.2), (-1.1, 2.0), (math.pi - 0.2, 0.7)])
def test_known_angles_give_epigraf_camera_turned_into_our_world(yaw, pitch):
    label = epigraf_angles_to_labels(np.array([[yaw, pitch, 0.0]]), 2.5, 30.0)[0]
    cameras = Cameras.from_label(torch.tensor(label, dtype=torch.float32)[None])
    epigraf_center = 2.5 * np.array([math.sin(pitch) * math.cos(yaw), math.cos(pitch),
                                     math.sin(pitch) * math.sin(yaw)])
    assert np.allclose(cameras.centers[0].numpy(), to_our_world(epigraf_center), atol=1e-5)
    forward = cameras.cam2world[0, :3, 2].numpy()
    assert np.allclose(forward, -cameras.centers[0].numpy() / 2.5, atol=1e-5)  # looks at the origin
    for point in ([0.1, 0.05, -0.2], [-0.3, 0.2, 0.1], [0.0, -0.15, 0.25]):
        u, v = epigraf_view(yaw, pitch, 2.5, 30.0, point)
        ours = project(torch.tensor(label), torch.tensor([to_our_world(point)]))[0].tolist()
        assert ours == pytest.approx([u, v], abs=1e-5)


def test_epigraf_xflip_is_our_mirror():
    """EpiGRAF's x-flip negates yaw; with our conversion that is Cameras.mirror_x."""
    angles = np.array([[0.7, 1.3, 0.0], [-2.0, 0.9, 0.0]])
    flipped = angles * np.array([-1.0, 1.0, 1.0])
    ours = Cameras.from_label(torch.tensor(epigraf_angles_to_labels(angles, 1.0, 12.0), dtype=torch.float32))
    assert torch.allclose(ours.mirror_x().to_label(),
                          torch.tensor(epigraf_angles_to_labels(flipped, 1.0, 12.0), dtype=torch.float32), atol=1e-6)


def test_dataset_reads_camera_angles_with_radius_and_fov_from_the_config(tmp_path):
    angles = {"a.png": [0.3, 1.4, 0.0], "b.png": [-0.5, 1.7, 0.0]}
    path = _epigraf_zip(tmp_path, angles)
    faces = ImageDataset(DatasetConfig(path=path, resolution=16))
    assert faces.has_labels and faces.names == ["a.png", "b.png"] and faces.num_classes == 0
    expected = epigraf_angles_to_labels(np.array(list(angles.values())), 1.0, 12.0)
    assert torch.allclose(faces.labels, torch.tensor(expected, dtype=torch.float32), atol=1e-6)
    plants = ImageDataset(DatasetConfig(path=path, resolution=16, camera_radius=1.5, camera_fov_degrees=30.0))
    cameras = Cameras.from_label(plants.labels)
    assert torch.allclose(cameras.centers.norm(dim=-1), torch.tensor([1.5, 1.5]))
    assert torch.allclose(cameras.fov_degrees, torch.tensor([30.0, 30.0]))


def test_megascans_layout_with_classes_in_a_wrapping_folder(tmp_path):
    """EpiGRAF zips its folder (plants_256.zip holds plants_256/...), with names relative to that folder."""
    names = ["model_a/0.png", "model_a/1.png", "model_b/0.png"]
    angles = {"model_a/0.jpg": [0.1, 1.0, 0.0], "model_a/1.jpg": [2.0, 1.5, 0.0], "model_b/0.jpg": [-3.0, 0.5, 0.0]}
    classes = {"model_a/0.jpg": 1, "model_a/1.jpg": 1, "model_b/0.jpg": 0}
    path = tmp_path / "plants_256.zip"
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in _images(names).items():
            archive.writestr(f"plants_256/{name}", data)
        archive.writestr("plants_256/dataset.json", json.dumps({"camera_angles": angles, "labels": classes}))
    dataset = ImageDataset(DatasetConfig(path=path, resolution=16, xflip=True, camera_fov_degrees=30.0))
    assert dataset.names == names and len(dataset) == 6
    assert dataset.class_labels.tolist() == [1, 1, 0, 1, 1, 0] and dataset.num_classes == 2
    yaw, pitch, _ = Cameras.from_label(dataset.labels).to_spherical()
    stored = np.array(list(angles.values()))
    assert np.allclose(yaw[:3].numpy(), -stored[:, 0], atol=1e-5)  # our yaw is minus EpiGRAF's
    assert np.allclose(pitch[:3].numpy(), math.pi / 2 - stored[:, 1], atol=1e-5)
    assert np.allclose(yaw[3:].numpy(), stored[:, 0], atol=1e-5)  # mirrored copies: EpiGRAF's flipped yaw


def test_wrapping_folder_of_a_plain_folder_dataset(tmp_path):
    root = tmp_path / "ffhq" / "ffhq_256"
    root.mkdir(parents=True)
    for name, data in _images(["x.png", "y.png"]).items():
        (root / name).write_bytes(data)
    (root / "dataset.json").write_text(json.dumps({"camera_angles": {"x": [0, 1.5, 0], "y": [0.2, 1.6, 0]}}))
    dataset = ImageDataset(DatasetConfig(path=tmp_path / "ffhq", resolution=16))
    assert dataset.names == ["x.png", "y.png"] and dataset.has_labels
    assert dataset[1][0].shape == (3, 16, 16)


@pytest.mark.parametrize(
    ("value", "kind", "words"),
    [([0.1, float("nan"), 0.0], "non_finite_camera_angles", "pitch"),
     ([float("inf"), 1.0, 0.0], "non_finite_camera_angles", "yaw"),
     ([30.0, 80.0, 0.0], "bad_camera_angles", "outside [0, pi]"),
     ([-0.2, -0.5, 0.0], "bad_camera_angles", "outside [0, pi]"),
     ([45.0, 1.2, 0.0], "bad_camera_angles", "degrees"),
     ([0.1], "bad_camera_angles", "expected 3"),
     ("front", "bad_camera_angles", "not a list of numbers")],
)
def test_bad_angles_are_problems_naming_the_image(tmp_path, value, kind, words):
    angles = {"a.png": [0.0, 1.5, 0.0], "b.png": value, "c.png": [0.4, 1.2, 0.0]}
    path = _epigraf_zip(tmp_path, angles)
    report = validate_dataset(DatasetConfig(path=path, resolution=16))
    assert [(p.entry, p.kind) for p in report.problems] == [("b.png", kind)]
    assert words in report.problems[0].problem
    with pytest.raises(DatasetValidationError, match="b.png"):
        ImageDataset(DatasetConfig(path=path, resolution=16))
    assert ImageDataset(DatasetConfig(path=path, resolution=16, skip_bad=True)).names == ["a.png", "c.png"]


def test_missing_entries_are_problems(tmp_path):
    angles = {"a.png": [0.0, 1.5, 0.0], "gone.png": [0.1, 1.5, 0.0]}
    report = validate_dataset(DatasetConfig(path=_epigraf_zip(tmp_path, angles, names=["a.png", "b.png"]),
                                            resolution=16))
    assert sorted((p.entry, p.kind) for p in report.problems) == [("b.png", "unlabeled_image"),
                                                                   ("gone.png", "missing_file")]


def test_missing_class_in_epigraf_labels(tmp_path):
    angles = {"a.png": [0.0, 1.5, 0.0], "b.png": [0.1, 1.5, 0.0]}
    report = validate_dataset(DatasetConfig(path=_epigraf_zip(tmp_path, angles, classes={"a.png": 0}),
                                            resolution=16))
    assert [(p.entry, p.kind) for p in report.problems] == [("b.png", "missing_class")]


def test_two_keys_for_one_image_are_a_duplicate(tmp_path):
    angles = {"a.png": [0.0, 1.5, 0.0], "a.jpg": [0.3, 1.5, 0.0]}
    report = validate_dataset(DatasetConfig(path=_epigraf_zip(tmp_path, angles, names=["a.png"]), resolution=16))
    assert [(p.entry, p.kind) for p in report.problems] == [("a.jpg", "duplicate_entry")]


def test_roll_is_ignored_with_a_warning(tmp_path):
    path = _epigraf_zip(tmp_path, {"a.png": [0.0, 1.5, 0.3], "b.png": [0.0, 1.5, 0.0]})
    dataset = ImageDataset(DatasetConfig(path=path, resolution=16))
    assert [(w.entry, w.kind) for w in dataset.report.warnings] == [("dataset.json", "ignored_roll")]
    assert torch.allclose(dataset.labels[0], dataset.labels[1])


def test_camera_angles_and_25_float_labels_together_are_fatal(tmp_path):
    labels = [["a.png", [0.0] * 25]]
    files = _images(["a.png"]) | {"dataset.json": json.dumps({"camera_angles": {"a.png": [0, 1.5, 0]},
                                                              "labels": labels}).encode()}
    report = validate_dataset(DatasetConfig(path=write_zip(tmp_path / "d.zip", files), resolution=16))
    assert report.fatal and "two kinds of camera" in report.problems[0].problem


@pytest.mark.parametrize(("option", "value"), [("camera_radius", 0.0), ("camera_fov_degrees", 180.0)])
def test_impossible_radius_or_fov_is_refused(tmp_path, option, value):
    path = _epigraf_zip(tmp_path, {"a.png": [0.0, 1.5, 0.0]})
    with pytest.raises(ValueError, match=f"DatasetConfig.{option}"):
        ImageDataset(DatasetConfig(path=path, resolution=16, **{option: value}))


def test_roundtrip_of_our_spherical_cameras():
    """Our yaw -y and elevation pi/2 - p, written as EpiGRAF angles (y, p), give back our camera."""
    ours = Cameras.from_spherical(torch.tensor([0.4, -1.2]), torch.tensor([0.3, -0.1]), 1.0, 12.0)
    epigraf = np.stack([-np.array([0.4, -1.2]), np.pi / 2 - np.array([0.3, -0.1])], axis=1)
    labels = epigraf_angles_to_labels(epigraf, 1.0, 12.0)
    assert np.allclose(labels, ours.to_label().numpy(), atol=1e-6)

"""The eg3d-data dataparser: our datasets' cameras and pixels in nerfstudio, and our validation report through it."""

from __future__ import annotations

import json
import subprocess
from importlib.metadata import entry_points
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tests.nerfstudio.conftest import (
    NERFSTUDIO_SKIP_REASON,
    nerfstudio_environment,
    nerfstudio_executable,
    write_eg3d_dataset,
    zip_folder,
)
from tests.nerfstudio.test_cameras import distance_to_rays, project

pytest.importorskip("nerfstudio", reason=NERFSTUDIO_SKIP_REASON)

from nerfstudio.plugins.registry_dataparser import DataParserSpecification  # noqa: E402

from pipelines.data.image_dataset import DatasetConfig, ImageDataset  # noqa: E402
from pipelines.data.problems import DatasetValidationError  # noqa: E402
from pipelines.nerfstudio.dataparser import Eg3dDataParserConfig  # noqa: E402
from pipelines.nerfstudio.field_model import SCENE_METADATA_KEY  # noqa: E402
from pipelines.nerfstudio.scene_transform import nerfstudio_scene  # noqa: E402
from renderers.cameras import Cameras  # noqa: E402

RESOLUTION = 24


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    return write_eg3d_dataset(tmp_path / "dataset", num_images=6, resolution=RESOLUTION)


def parse(data: Path, tmp_path: Path, split: str = "train", **options):
    config = Eg3dDataParserConfig(data=data, cache_dir=tmp_path / "cache", **options)
    return config.setup().get_dataparser_outputs(split=split)


def labels_of(folder: Path) -> dict[str, torch.Tensor]:
    entries = json.loads((folder / "dataset.json").read_text())["labels"]
    return {name: torch.tensor(label, dtype=torch.float32) for name, label in entries}


def test_the_entry_point_registers_the_dataparser() -> None:
    (found,) = [ep for ep in entry_points(group="nerfstudio.dataparser_configs") if ep.name == "eg3d-data"]
    spec = found.load()
    assert isinstance(spec, DataParserSpecification) and isinstance(spec.config, Eg3dDataParserConfig)


def test_world_points_land_on_the_same_pixels(dataset: Path, tmp_path: Path, rng) -> None:
    outputs = parse(dataset, tmp_path, train_split_fraction=1.0)
    labels = labels_of(dataset)
    names = [str(Path(f).relative_to(Path(outputs.image_filenames[0]).parents[1])) for f in outputs.image_filenames]
    assert sorted(names) == sorted(labels)
    ours = Cameras.from_label(torch.stack([labels[name] for name in names]))
    points = (torch.rand(30, 3, generator=rng) - 0.5) * 0.9
    pixels = project(ours, points, RESOLUTION, RESOLUTION)
    transform = nerfstudio_scene(0.5)
    for index in range(len(names)):
        rays = outputs.cameras.generate_rays(camera_indices=torch.full((30, 1), index), coords=pixels[index].flip(-1))
        assert distance_to_rays(transform.points_from_box(points), rays.origins, rays.directions).max() < 1e-4
    # The scene is the dataset's box scaled to [-1, 1]^3, and nerfstudio's inverse transform gives the labels back.
    assert torch.equal(outputs.scene_box.aabb, torch.tensor([[-1.0] * 3, [1.0] * 3]))
    assert outputs.metadata[SCENE_METADATA_KEY] == transform
    original = outputs.transform_poses_to_original_space(outputs.cameras.camera_to_worlds, camera_convention="opencv")
    assert torch.allclose(original, ours.cam2world[:, :3, :4], atol=1e-5)


def test_images_are_what_epigraf_decodes(dataset: Path, tmp_path: Path) -> None:
    # An RGBA image: composited over the background as epigraf-train does, not left to nerfstudio's loader.
    rgba = np.zeros((RESOLUTION, RESOLUTION, 4), dtype=np.uint8)
    rgba[..., 0], rgba[: RESOLUTION // 2, :, 3] = 200, 255
    Image.fromarray(rgba, "RGBA").save(dataset / "images/obj00000_view000.png")
    outputs = parse(dataset, tmp_path, train_split_fraction=1.0, background=(0.0, 0.0, 1.0))
    ours = ImageDataset(DatasetConfig(path=dataset, resolution=RESOLUTION, background=(0.0, 0.0, 1.0)))
    for filename in outputs.image_filenames:
        name = str(Path(filename).relative_to(Path(outputs.image_filenames[0]).parents[1]))
        expected = ours.raw_image(ours.names.index(name)).transpose(1, 2, 0)
        assert np.array_equal(np.asarray(Image.open(filename).convert("RGB")), expected)
    first = np.asarray(Image.open(outputs.image_filenames[0]))
    assert tuple(first[0, 0]) == (200, 0, 0) and tuple(first[-1, 0]) == (0, 0, 255)


def test_a_zip_is_extracted_once_into_a_folder_named_by_its_content(dataset: Path, tmp_path: Path) -> None:
    archive = zip_folder(dataset, tmp_path / "dataset.zip")
    first = parse(archive, tmp_path)
    again = parse(archive, tmp_path)
    folder = Path(first.image_filenames[0]).parents[1]
    assert folder.parent == tmp_path / "cache" and folder.name.startswith("dataset-")
    assert first.image_filenames == again.image_filenames
    assert all(Path(f).is_file() for f in first.image_filenames)
    # Other pixels, other folder: a changed dataset is never served from a stale copy.
    Image.new("RGB", (RESOLUTION, RESOLUTION), (1, 2, 3)).save(dataset / "images/obj00000_view000.png")
    changed = parse(zip_folder(dataset, tmp_path / "dataset.zip"), tmp_path)
    assert Path(changed.image_filenames[0]).parents[1] != folder


def test_include_selects_one_object_and_splits_train_and_eval(dataset: Path, tmp_path: Path) -> None:
    train = parse(dataset, tmp_path, include=("images/obj00001_*",))
    evaluation = parse(dataset, tmp_path, split="val", include=("images/obj00001_*",))
    assert [Path(f).name for f in train.image_filenames] == ["obj00001_view000.png", "obj00001_view001.png"]
    # Two images leave no eval image at 0.9: every image is then an eval image too.
    assert evaluation.image_filenames == train.image_filenames
    six = parse(dataset, tmp_path, split="val", train_split_fraction=0.5)
    assert len(six.image_filenames) == 3
    with pytest.raises(ValueError, match="no image path matches --include images/nothing"):
        parse(dataset, tmp_path, include=("images/nothing",))


def test_unlabeled_dataset_is_refused(dataset: Path, tmp_path: Path) -> None:
    (dataset / "dataset.json").unlink()
    with pytest.raises(ValueError, match="no camera labels"):
        parse(dataset, tmp_path)


def test_problems_come_back_as_epigraf_data_validate_reports_them(dataset: Path, tmp_path: Path) -> None:
    document = json.loads((dataset / "dataset.json").read_text())
    document["labels"][1][1] = document["labels"][1][1][:24]
    (dataset / "dataset.json").write_text(json.dumps(document))
    with pytest.raises(DatasetValidationError) as raised:
        parse(dataset, tmp_path)
    message = str(raised.value)
    assert "images/obj00000_view001.png: label has 24 values, expected 25" in message
    assert "eg3d-data --skip-bad True" in message
    skipped = parse(dataset, tmp_path, skip_bad=True, train_split_fraction=1.0)
    assert len(skipped.image_filenames) == 5


def test_a_bad_dataset_json_stops_ns_train_with_our_report(dataset: Path, tmp_path: Path) -> None:
    document = json.loads((dataset / "dataset.json").read_text())
    document["labels"][2][1][0] = "one"
    document["labels"].append(["images/missing.png", document["labels"][0][1]])
    (dataset / "dataset.json").write_text(json.dumps(document))
    command = [nerfstudio_executable("ns-train"), "epigraf-invert", "--pipeline.model.generator-path",
               str(tmp_path / "never-opened"), "--vis", "tensorboard", "--output-dir", str(tmp_path / "outputs"),
               "--data", str(dataset), "eg3d-data"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=tmp_path,
                            env=nerfstudio_environment(tmp_path))
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "DatasetValidationError" in output, output[-3000:]
    assert "2 problem(s)" in output and "images/obj00001_view000.png: label is not a list of numbers" in output
    assert "images/missing.png: listed in dataset.json but not found in the dataset" in output

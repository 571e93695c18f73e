"""The synthetic dataset: labels agree with the ground-truth meshes, builds are reproducible and atomic."""

from __future__ import annotations

import io
import json
import zipfile

import numpy as np
import pytest
import torch
import trimesh
from tests.pipelines.data.data_test_utils import TINY, project
from PIL import Image

from pipelines.cli.data import main as data_cli
from pipelines.data import SynthConfig, build_synthetic_dataset, ensure_builtin_dataset
from pipelines.data.builtin import builtin_dataset_name


def _read(synth_dir):
    with zipfile.ZipFile(synth_dir / "dataset.zip") as archive:
        labels = dict((n, torch.tensor(v)) for n, v in json.loads(archive.read("dataset.json"))["labels"])
        images = {n: np.asarray(Image.open(io.BytesIO(archive.read(n))).convert("RGB")) for n in labels}
    return labels, images, json.loads((synth_dir / "metadata.json").read_text())


def test_mesh_vertices_project_into_the_silhouette(synth_dir):
    labels, images, metadata = _read(synth_dir)
    resolution = metadata["settings"]["resolution"]
    assert {o["family"] for o in metadata["objects"]} == {"mushroom", "vase", "chair"}
    for obj in metadata["objects"]:
        vertices = torch.from_numpy(np.asarray(trimesh.load(synth_dir / obj["mesh"], process=False).vertices))
        assert vertices.abs().max() <= 0.45  # inside the scene box with a 10% margin
        for name in obj["images"]:
            silhouette = images[name].min(axis=2) < 250  # anything not white
            # Vertices on the outline may fall on edge pixels that the object barely covers.
            grown = torch.nn.functional.max_pool2d(torch.from_numpy(silhouette).float()[None], 3, 1, 1)[0].bool().numpy()
            uv = project(labels[name], vertices)
            assert ((uv > 0) & (uv < 1)).all(), "every vertex must be in view"
            pixels = (uv * resolution).floor().long()
            inside = silhouette[pixels[:, 1].numpy(), pixels[:, 0].numpy()]
            near = grown[pixels[:, 1].numpy(), pixels[:, 0].numpy()]
            assert near.all(), f"{name}: {(~near).sum()} vertices project away from the object"
            assert inside.mean() > 0.9, f"{name}: only {inside.mean():.2f} of the vertices land on the object"
            # Scale check: the projected extent matches the silhouette's bounding box within 2 pixels.
            rows, cols = np.nonzero(silhouette)
            assert abs(pixels[:, 0].min().item() - cols.min()) <= 2 and abs(pixels[:, 0].max().item() - cols.max()) <= 2
            assert abs(pixels[:, 1].min().item() - rows.min()) <= 2 and abs(pixels[:, 1].max().item() - rows.max()) <= 2


def test_same_seed_same_dataset(synth_dir, tmp_path):
    again = build_synthetic_dataset(SynthConfig(out=tmp_path / "again", seed=7, **TINY)).parent
    other = build_synthetic_dataset(SynthConfig(out=tmp_path / "other", seed=8, **TINY)).parent
    assert (again / "dataset.zip").read_bytes() == (synth_dir / "dataset.zip").read_bytes()
    for name in ("obj00000.ply", "obj00002.ply"):
        assert (again / "meshes" / name).read_bytes() == (synth_dir / "meshes" / name).read_bytes()
    assert (other / "dataset.zip").read_bytes() != (synth_dir / "dataset.zip").read_bytes()
    objects = json.loads((synth_dir / "metadata.json").read_text())["objects"]
    assert objects == json.loads((again / "metadata.json").read_text())["objects"]


def test_metadata_maps_objects_to_images(synth_dir):
    labels, _images, metadata = _read(synth_dir)
    assert metadata["num_images"] == 6 and metadata["box_half_size"] == 0.5
    listed = [name for obj in metadata["objects"] for name in obj["images"]]
    assert sorted(listed) == sorted(labels)
    assert all(obj["parameters"] and (synth_dir / obj["mesh"]).is_file() for obj in metadata["objects"])


def test_builtin_dataset_is_built_once_and_atomically(tmp_path, monkeypatch):
    monkeypatch.setenv("EPIGRAF_CACHE_DIR", str(tmp_path / "cache"))
    name = builtin_dataset_name(32, 2, 1, "frontal", 0)
    root = tmp_path / "cache" / "datasets"
    # A killed build leaves only a hidden temporary folder, never the final name.
    (root / f".building-{name}-dead").mkdir(parents=True)
    path = ensure_builtin_dataset(resolution=32, num_objects=2, views_per_object=1, cameras="frontal", spp=1,
                                  progress=False)
    assert path == root / name / "dataset.zip" and path.is_file()
    assert not list(root.glob(f".building-{name}-*[!d]"))  # our own temporary folder was renamed
    mtime = path.stat().st_mtime_ns
    assert ensure_builtin_dataset(resolution=32, num_objects=2, views_per_object=1, cameras="frontal",
                                  spp=1, progress=False) == path
    assert path.stat().st_mtime_ns == mtime


def test_builtin_dataset_records_the_families_as_classes_unless_asked_not_to(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("EPIGRAF_CACHE_DIR", str(tmp_path / "cache"))
    tiny = dict(resolution=16, num_objects=4, views_per_object=1, cameras="frontal", spp=1, progress=False)
    path = ensure_builtin_dataset(**tiny)
    objects = json.loads((path.parent / "metadata.json").read_text())["objects"]
    with zipfile.ZipFile(path) as archive:
        classes = dict(json.loads(archive.read("dataset.json"))["classes"])
    families = ("mushroom", "vase", "chair", "table")
    assert classes == {name: families.index(obj["family"]) for obj in objects for name in obj["images"]}
    assert sorted(classes.values()) == [0, 1, 2, 3]
    plain = ensure_builtin_dataset(family_classes=False, **tiny)
    assert plain != path
    with zipfile.ZipFile(plain) as archive:
        assert "classes" not in json.loads(archive.read("dataset.json"))
    assert data_cli(["builtin", "--resolution", "16", "--num-objects", "4", "--views-per-object", "1",
                     "--cameras", "frontal", "--no-family-classes"]) == 0
    assert str(plain) in capsys.readouterr().out


def test_cli_synth_then_validate(tmp_path, capsys):
    out = tmp_path / "cli"
    assert data_cli(["synth", "--out", str(out), "--num-objects", "1", "--views-per-object", "1",
                     "--resolution", "16", "--spp", "1", "--no-progress", "--variant", "scalar_rgb"]) == 0
    assert data_cli(["validate", str(out / "dataset.zip"), "--resolution", "16"]) == 0
    assert "no problems" in capsys.readouterr().out
    (out / "broken").mkdir()
    (out / "broken" / "bad.png").write_bytes(b"nope")
    assert data_cli(["validate", str(out / "broken")]) == 1
    assert "bad.png" in capsys.readouterr().out


def test_unknown_family_is_rejected(tmp_path):
    with pytest.raises(ValueError, match="unknown"):
        build_synthetic_dataset(SynthConfig(out=tmp_path / "x", families=("teapot",), **TINY))


def test_family_classes_make_a_class_conditional_dataset(tmp_path):
    from pipelines.data.image_dataset import DatasetConfig, ImageDataset

    path = build_synthetic_dataset(SynthConfig(out=tmp_path / "classes", seed=7, family_classes=True,
                                               families=("chair", "vase"), **TINY))
    objects = json.loads((path.parent / "metadata.json").read_text())["objects"]
    expected = {name: ("chair", "vase").index(obj["family"]) for obj in objects for name in obj["images"]}
    with zipfile.ZipFile(path) as archive:
        document = json.loads(archive.read("dataset.json"))
    assert dict(document["classes"]) == expected and set(expected.values()) == {0, 1}
    dataset = ImageDataset(DatasetConfig(path=path, resolution=32, xflip=False))
    assert dataset.num_classes == 2 and sorted(dataset.class_labels.tolist()) == sorted(expected.values())
    plain = build_synthetic_dataset(SynthConfig(out=tmp_path / "plain", seed=7, families=("chair", "vase"), **TINY))
    with zipfile.ZipFile(plain) as archive:
        assert "classes" not in json.loads(archive.read("dataset.json"))

"""The benchmark scripts run end to end at toy sizes and print the tables they promise."""

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]


def _run(*args: str) -> str:
    result = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def test_conv_benchmark_prints_one_row_per_shape():
    out = _run("benchmarks/conv.py", "--channels", "8", "16", "--sizes", "8", "--repeats", "1", "--batch", "1")
    rows = [line.split() for line in out.splitlines() if line.split() and line.split()[0].isdigit()]
    assert [(r[0], r[1]) for r in rows] == [("8", "8"), ("16", "8")]
    assert all(float(r[2]) >= 0 and float(r[4]) > 0 for r in rows)


def test_train_benchmark_row_reports_timings_both_ways():
    for algorithm in ("direct", "winograd"):
        out = _run("benchmarks/train.py", "--row", "32", "16", "beta", "--quick", "--iterations", "1",
                   "--warmup", "0", "--batch", "2", "--threads", "1", "--conv3x3", algorithm)
        timing = json.loads(next(line for line in out.splitlines() if line.startswith("ROW "))[4:])
        assert timing["seconds"] > 0 and timing["synthesis"] > 0 and timing["peak_bytes"] > 0


def test_data_benchmark_prints_loader_and_training_rows():
    out = _run("benchmarks/data.py", "--images", "6", "--batch", "2", "--steps", "2", "--train-steps", "1",
               "--workers", "0", "1", "--train-workers", "0", "--resolutions", "64")
    rows = [line.split() for line in out.splitlines() if line.startswith(("loader", "train_step"))]
    loader = [r for r in rows if r[0] == "loader"]
    assert [(r[-5], r[-4]) for r in loader] == [("64", "0"), ("64", "1")]
    assert len(rows) == 4 and all(float(r[-3]) > 0 for r in rows)


def test_recorded_results_carry_command_machine_and_versions(tmp_path, monkeypatch):
    import torch

    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    from timing import record_result

    path = tmp_path / "results" / "train.jsonl"
    for seconds in ([4.9, 5.1], [5.0]):
        record_result(str(path), ["benchmarks/train.py", "--preset", "official"], {"iteration_seconds": seconds})
    entries = [json.loads(line) for line in path.read_text().splitlines()]
    assert [e["iteration_seconds"] for e in entries] == [[4.9, 5.1], [5.0]]
    assert entries[0]["command"] == "python benchmarks/train.py --preset official"
    machine = entries[0]["machine"]
    assert machine["torch"] == torch.__version__ and machine["cores"] >= 1 and machine["processor"]


def test_ada_benchmark_prints_both_rows_and_the_overhead():
    out = _run("benchmarks/ada.py", "--steps", "1", "--batch", "2", "--resolution", "32")
    rows = {line.split()[0]: line.split() for line in out.splitlines() if line.startswith(("off", "on,", "overhead"))}
    assert set(rows) == {"off", "on,", "overhead"}
    assert float(rows["off"][1]) > 0 and float(rows["on,"][-3]) > 0
    assert rows["overhead"][1].endswith("%")


def _family_dataset(directory: Path, resolution: int = 16) -> Path:
    """A few images and one ground-truth mesh of each built-in family, listed in metadata.json as the builder does."""
    import numpy as np
    from PIL import Image

    from pipelines.data.shapes import FAMILIES, make_object

    rng = np.random.default_rng(0)
    (directory / "meshes").mkdir(parents=True)
    objects = []
    for i, family in enumerate(FAMILIES):
        Image.fromarray((rng.random((resolution, resolution, 3)) * 255).astype(np.uint8)).save(directory / f"{i}.png")
        name = f"meshes/obj{i:05d}.ply"
        make_object(family, rng).combined_mesh().export(directory / name)
        # Two views of each object (noise images, shared round the ring): enough for the hue across views.
        objects.append({"id": i, "family": family, "mesh": name, "images": [f"{i}.png", f"{(i + 1) % 4}.png"]})
    (directory / "metadata.json").write_text(json.dumps({"objects": objects}))
    return directory


def test_quality_benchmark_scores_a_tiny_generator_the_same_way_twice(tmp_path):
    from tests.pipelines.evaluation.evaluation_helpers import make_tiny_bundle

    bundle = make_tiny_bundle(tmp_path / "generator")
    data = _family_dataset(tmp_path / "data")
    out = _run("benchmarks/quality.py", str(bundle), str(bundle), "--labels", "first", "again", "--data", str(data),
               "--images", "4", "--consistency-scenes", "2", "--shapes", "4", "--mesh-resolution", "16",
               "--level", "0.5", "--points", "64", "--family-points", "64", "--json", str(tmp_path / "q.json"),
               "--grid", str(tmp_path / "grid.png"), "--grid-samples", "2", "--grid-columns", "2")
    rows = [line.split("|")[1:-1] for line in out.splitlines() if line.startswith("| ")]
    assert [r[0].strip() for r in rows] == ["run", "first", "again", "dataset"]
    assert [c.strip() for c in rows[-1][7:11]] == ["0.25"] * 4  # one reference mesh per family
    saved = json.loads((tmp_path / "q.json").read_text())["rows"]
    first, again = saved[0]["scores"], saved[1]["scores"]  # every random choice comes from the seed
    assert first.keys() == again.keys()
    assert all(first[k] == again[k] or (math.isnan(first[k]) and math.isnan(again[k])) for k in first)
    assert sum(saved[0]["family_counts"].values()) == 4
    assert {"swd", "mv_psnr", "cov", "mmd", "1nna", "family_tv", "hue_spread", "hue_variety", "hue_across_views",
            "floaters_2d", "floaters_3d"} <= set(saved[0]["scores"])
    assert [c.strip() for c in rows[0][-5:]] == ["hue", "hue var", "view hue", "float2d", "float3d"]
    assert not math.isnan(float(rows[-1][-5]))  # the reals' hue spread is measured
    # The reals' hue variety between objects of a class (four noise images, no classes: one class) is measured.
    report = json.loads((tmp_path / "q.json").read_text())
    real_variety = report["dataset_hue_variety"]
    assert 0.0 <= real_variety <= 1.0 and abs(real_variety - float(rows[-1][-4])) <= 0.005
    assert 0.0 <= first["hue_variety"] <= 1.0 or math.isnan(first["hue_variety"])
    # The hue across views: the reals' from the two images metadata.json lists per object; the generator's from
    # views around each object.
    real_across = report["dataset_hue_across_views"]
    assert 0.0 <= real_across <= 1.0 and abs(real_across - float(rows[-1][-3])) <= 0.005
    assert 0.0 <= first["hue_across_views"] <= 1.0 or math.isnan(first["hue_across_views"])
    assert 0.0 <= float(rows[-1][-2]) <= 1.0 and rows[-1][-1].strip() == ""  # 2D floaters of the reals; no 3D
    assert 0.0 <= first["floaters_3d"] <= 1.0 and len(first["floater_faces"]) == 6
    from PIL import Image

    assert Image.open(tmp_path / "grid.png").width > 2 * 2 * 16


def test_the_one_hue_per_group_edit_gives_each_group_its_first_images_hue():
    import importlib.util

    from pipelines.evaluation.colour import mean_hue, real_object_mask, rotate_hue

    spec = importlib.util.spec_from_file_location("discriminator_colour", ROOT / "benchmarks/discriminator_colour.py")
    probe = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(probe)
    size = 16
    disc = torch.zeros(1, 1, size, size, dtype=torch.bool)
    disc[..., 4:12, 4:12] = True
    red = torch.where(disc, torch.tensor([0.8, 0.2, 0.2])[None, :, None, None], torch.ones(1, 3, 1, 1))
    turns = torch.tensor([0.0, 1.0, 2.0, 3.0, 4.0, 5.0])  # six hues, two groups of 3
    reals = rotate_hue(red.expand(6, 3, size, size), turns.view(6, 1, 1, 1).expand(6, 1, size, size))
    edits = probe.edited_images(reals, torch.Generator().manual_seed(0), group_size=3)
    before = mean_hue(edits["real"], real_object_mask(edits["real"]))
    after = mean_hue(edits["one hue per group"], real_object_mask(edits["one hue per group"]))
    wrapped = lambda a: torch.remainder(a + math.pi, 2 * math.pi) - math.pi  # noqa: E731
    assert wrapped(before[1] - before[0]).abs() > 0.5  # the reals of a group differ
    for first in (0, 3):
        assert wrapped(after[first:first + 3] - before[first]).abs().max() < 0.05
    assert wrapped(after[3] - after[0]).abs() > 0.5  # each group keeps its own first's hue


@pytest.mark.parametrize("family_classes", [False, True], ids=["unconditional", "class-conditional"])
def test_discriminator_colour_probe_scores_reals_and_their_edits(tmp_path, family_classes):
    from pipelines.data.synthetic import SynthConfig, build_synthetic_dataset
    from pipelines.engine.launch import run_training
    from tests.pipelines.data.data_test_utils import TINY
    from tests.pipelines.tiny import tiny_train_config

    build_synthetic_dataset(SynthConfig(out=tmp_path / "synth", seed=3, family_classes=family_classes, **TINY))
    config = tiny_train_config(out=tmp_path / "run", kimg=0.004)
    config.data = tmp_path / "synth" / "dataset.zip"
    run_training(config)
    from pipelines.model import open_model

    assert open_model(tmp_path / "run").num_classes == (3 if family_classes else 0)  # then D is told the classes
    out = _run("benchmarks/discriminator_colour.py", str(tmp_path / "run"), "--images", "4")
    colour_table, family_table = out.split("\n\n")[-2:]
    rows = {cells[0]: cells[1:] for cells in (
        [c.strip() for c in line.split("|")[1:-1]] for line in colour_table.splitlines() if line.startswith("| "))}
    assert set(rows) == {"images", "real", "hue sweep", "global hue", "flat", "one hue per group"}
    families = {cells[0]: cells[1:] for cells in (
        [c.strip() for c in line.split("|")[1:-1]] for line in family_table.splitlines() if line.startswith("| "))}
    # One view of each of the 3 objects (mushroom, vase, chair) and as many generated samples.
    assert set(families) == {"family", "mushroom", "vase", "chair", "generated"}
    assert [int(families[f][1]) for f in ("mushroom", "vase", "chair", "generated")] == [1, 1, 1, 3]
    assert float(rows["real"][1]) == 0.0 and float(rows["real"][2]) == 0.0
    for name in ("hue sweep", "global hue", "flat", "one hue per group"):
        mean, difference, below = (float(v) for v in rows[name])
        assert abs(mean - float(rows["real"][0]) - difference) < 0.011 and 0.0 <= below <= 1.0

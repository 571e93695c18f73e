"""`epigraf-train` end to end: a dataset on disk, a run folder, a kill-free resume with --resume latest."""

import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from pipelines.cli.train import main
from pipelines.engine.launch import run_training
from tests.pipelines.tiny import TinyDataset, tiny_train_config


def _write_eg3d_folder(path, size=8, resolution=32):
    dataset = TinyDataset(size=size, resolution=resolution)
    path.mkdir()
    labels = []
    for index in range(size):
        image = ((dataset.images[index].permute(1, 2, 0).numpy() + 1) * 127.5).round().astype(np.uint8)
        Image.fromarray(image).save(path / f"img{index:03d}.png")
        labels.append([f"img{index:03d}.png", dataset.labels[index].tolist()])
    (path / "dataset.json").write_text(json.dumps({"labels": labels}))
    return path


def test_run_then_resume_latest_continues_in_the_same_folder(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    data = _write_eg3d_folder(tmp_path / "data")
    run_dir = tmp_path / "run"
    config = tiny_train_config(out=run_dir, kimg=0.004)
    config.data = data
    run_training(config)
    saved = json.loads((run_dir / "config.json").read_text())
    assert saved["data"] == str(data) and saved["model"]["generator"]["plane_resolution"] == 8
    assert main(["--resume", "latest", "--out", str(run_dir), "--kimg", "0.008", "--device", "cpu"]) == 0
    output = capsys.readouterr().out
    assert "resuming from" in output and "step-000000000004" in output
    records = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]
    assert [r["kimg"] for r in records] == pytest.approx([0.002, 0.004, 0.006, 0.008])
    assert (run_dir / "checkpoints" / "step-000000000008" / "generator" / "weights.safetensors").is_file()


def test_bad_dataset_stops_before_training_with_the_file_named(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    data = _write_eg3d_folder(tmp_path / "data")
    (data / "img003.png").write_bytes(b"not a png")
    config = tiny_train_config(out=tmp_path / "run", kimg=0.004)
    config.data = data
    with pytest.raises(ValueError, match="img003.png"):
        run_training(config)
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_skip_bad_trains_on_the_rest_and_lists_the_corrupt_image_in_the_run(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    data = _write_eg3d_folder(tmp_path / "data")
    (data / "img005.png").write_bytes(b"\x89PNG\r\n\x1a\n not the rest of a png")
    run_dir = tmp_path / "run"
    config = tiny_train_config(out=run_dir, kimg=0.004, skip_bad=True)
    config.data = data
    final = run_training(config)
    assert final is not None and (final / "generator" / "weights.safetensors").is_file()
    output = capsys.readouterr().out
    summary = [line for line in output.splitlines() if "skipped 1 of 8 entries" in line]
    assert summary, output
    assert "corrupt_image: 1" in summary[0] and f"list in {run_dir / 'bad_entries.txt'}" in summary[0]
    listed = (run_dir / "bad_entries.txt").read_text().splitlines()
    assert len(listed) == 1 and listed[0].startswith("img005.png: ")
    report = json.loads((run_dir / "bad_entries.json").read_text())
    assert [(p["entry"], p["kind"]) for p in report["problems"]] == [("img005.png", "corrupt_image")]
    assert report["num_entries"] == 8 and not report["fatal"]


@pytest.mark.slow
def test_default_command_trains_on_the_builtin_dataset(tmp_path):
    """The README's main job, shortened: no --data, CPU preset, a few ticks."""
    run_dir = tmp_path / "run"
    result = subprocess.run(
        [sys.executable, "-m", "pipelines.cli.train", "--pipeline", "patch-gan", "--out", str(run_dir),
         "--kimg", "0.4", "--trainer.no-progress-bar"],
        capture_output=True, text=True, timeout=1800, cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("preset: ")
    assert "built-in synthetic dataset" in result.stdout
    assert "2048 images in 4 classes" in result.stdout  # its families are its classes: a class-conditional run
    for name in ("config.json", "log.jsonl", "turntable.gif", "snapshots/reals.png"):
        assert (run_dir / name).is_file(), name
    assert list((run_dir / "checkpoints").glob("step-*/generator/weights.safetensors"))


def test_torchrun_with_two_gloo_processes_trains_and_one_writes(tmp_path):
    data = _write_eg3d_folder(tmp_path / "data")
    run_dir = tmp_path / "run"
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "-m", "pipelines.cli.train",
               "--pipeline", "patch-gan", "--data", str(data), "--resolution", "32", "--patch-resolution", "16",
               "--batch", "4", "--kimg", "0.008", "--out", str(run_dir), "--device", "cpu"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("run folder:") == 1 and result.stdout.count("preset:") == 1
    records = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]
    assert records and records[-1]["kimg"] == pytest.approx(0.008)
    assert (run_dir / "checkpoints" / "step-000000000008" / "generator" / "weights.safetensors").is_file()


def test_help_shows_mirror_and_no_mirror(capsys):
    from pipelines.cli.train import parse_config

    with pytest.raises(SystemExit) as exit_info:
        parse_config(["--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    assert "--mirror" in text and "--no-mirror" in text
    assert parse_config(["--device", "cpu"])[0].mirror  # EpiGRAF's default: on
    assert not parse_config(["--device", "cpu", "--no-mirror"])[0].mirror


def test_resume_refuses_to_change_mirroring(tmp_path):
    """Mirroring changes the data a run learns from: a resumed run keeps its own setting."""
    from pipelines.engine.options import merge_resumed_config

    with pytest.raises(ValueError, match="--mirror: the run has True, the command line False"):
        merge_resumed_config(tiny_train_config(), tiny_train_config(mirror=False), {"mirror"},
                             tmp_path / "config.json")


def test_training_prints_the_doubled_dataset_size(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    config = tiny_train_config(out=tmp_path / "run", kimg=0.002)
    config.data = _write_eg3d_folder(tmp_path / "data")
    run_training(config)
    assert "dataset: 8 images, x-flip mirroring on: 16 training items" in capsys.readouterr().out
    assert json.loads((tmp_path / "run" / "config.json").read_text())["mirror"] is True

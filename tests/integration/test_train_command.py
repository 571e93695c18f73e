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

"""README's "Looking at a generator" commands, run as written on tiny trained runs of every pipeline."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

README = Path(__file__).resolve().parents[2] / "README.md"
RUN_PLACEHOLDER = "runs/patch-gan-..."
DATA_PLACEHOLDER = "path/to/dataset.zip"


def readme_commands(section: str) -> list[str]:
    """The shell commands of the first code block under the README heading ``section`` (comments dropped)."""
    text = README.read_text()
    start = text.index(f"## {section}\n")
    block = re.search(r"```bash\n(.*?)```", text[start:], re.S).group(1)
    return [line.split("  #")[0].strip() for line in block.splitlines() if line.strip() and not line.startswith("#")]


def _executable(name: str) -> str:
    path = Path(sys.executable).parent / name
    return str(path) if path.exists() else name


@pytest.fixture(scope="module")
def tiny_dataset(tmp_path_factory) -> Path:
    """A synthetic dataset (3 objects x 2 views at 32^2) with its ground-truth meshes."""
    from pipelines.data.synthetic import SynthConfig, build_synthetic_dataset
    from tests.pipelines.data.data_test_utils import TINY

    out = tmp_path_factory.mktemp("synth")
    build_synthetic_dataset(SynthConfig(out=out, seed=3, **TINY))
    return out / "dataset.zip"


@pytest.fixture(scope="module", params=["patch-gan", "eg3d", "ig-gan", "mimic3d"])
def tiny_run(request, tiny_dataset, tmp_path_factory) -> Path:
    """A run folder of each pipeline after 2 ticks on the tiny dataset, trained through the launcher."""
    from pipelines.engine.launch import run_training
    from tests.pipelines.eg3d.tiny import tiny_eg3d_config
    from tests.pipelines.ig_gan.tiny import tiny_ig_gan_config
    from tests.pipelines.mimic3d.tiny import tiny_mimic3d_config
    from tests.pipelines.tiny import tiny_train_config

    run_dir = tmp_path_factory.mktemp(request.param) / f"{request.param}-run"
    make_config = {"patch-gan": tiny_train_config, "eg3d": tiny_eg3d_config,
                   "ig-gan": lambda **kw: tiny_ig_gan_config(resolution=32, **kw),
                   "mimic3d": lambda **kw: tiny_mimic3d_config(stage_3d_kimg=0.002, **kw)}[request.param]
    config = make_config(out=run_dir, kimg=0.004)
    config.data = tiny_dataset
    run_training(config)
    return run_dir


def test_the_section_has_the_commands_this_test_checks():
    names = [shlex.split(command)[0] for command in readme_commands("Looking at a generator")]
    assert names == ["epigraf-view", "epigraf-render", "epigraf-export", "epigraf-metrics"]


@pytest.mark.slow
def test_every_looking_command_runs_as_written(tiny_run, tiny_dataset, tmp_path):
    for command in readme_commands("Looking at a generator"):
        assert RUN_PLACEHOLDER in command, command
        argv = shlex.split(command.replace(RUN_PLACEHOLDER, str(tiny_run)).replace(DATA_PLACEHOLDER,
                                                                                     str(tiny_dataset)))
        argv[0] = _executable(argv[0])
        check = {"epigraf-view": _check_view, "epigraf-render": _check_render, "epigraf-export": _check_export,
                 "epigraf-metrics": _check_metrics}[Path(argv[0]).name]
        check(argv, tmp_path)


def _run(argv: list[str], cwd: Path) -> subprocess.CompletedProcess:
    result = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=1500)
    assert result.returncode == 0, f"{shlex.join(argv)}\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
    return result


def _check_view(argv: list[str], cwd: Path) -> None:
    """The viewer serves until stopped: wait for its URL, fetch the page, then stop it."""
    process = subprocess.Popen(argv, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline, url = time.monotonic() + 120, None
        while url is None and time.monotonic() < deadline:
            line = process.stdout.readline()
            assert line or process.poll() is None, "epigraf-view exited before serving"
            match = re.search(r"epigraf viewer: (http://\S+)", line)
            url = match.group(1) if match else None
        assert url is not None, "epigraf-view printed no URL"
        with urllib.request.urlopen(url, timeout=30) as response:
            assert response.status == 200 and b"<html" in response.read().lower()
    finally:
        process.terminate()
        process.wait(timeout=30)


def _check_render(argv: list[str], cwd: Path) -> None:
    result = _run(argv, cwd)
    out = cwd / "renders"
    seeds, resolution = len(argv[argv.index("--seeds") + 1: argv.index("--outputs")]), int(argv[-1])
    with Image.open(out / "grid.png") as grid:
        assert grid.size == (3 * resolution, seeds * resolution)  # three yaws per seed
        pixels = np.asarray(grid.convert("RGB")).reshape(-1, 3)
        assert len(np.unique(pixels, axis=0)) > 16  # a picture, not a blank
    for name in ("grid_depth.png", "grid_opacity.png", "turntable.mp4", "zigzag.mp4", "interpolation.mp4"):
        assert (out / name).stat().st_size > 0, name
        assert f"renders/{name}" in result.stdout.splitlines()
    assert "turntable: 100%" in result.stderr  # long commands show how far they are


def _check_export(argv: list[str], cwd: Path) -> None:
    _run(argv, cwd)
    import trimesh

    for seed in (0, 1):
        path = cwd / "export" / f"seed{seed:04d}.glb"
        assert path.stat().st_size > 0
        trimesh.load(path)  # a readable file, even when the surface at that level is empty


def _check_metrics(argv: list[str], cwd: Path) -> None:
    record = json.loads(_run(argv, cwd).stdout)
    metrics = record["metrics"]
    assert metrics["swd"] > 0 and {"mv_psnr", "cov", "mmd", "1nna"} <= set(metrics)
    assert record["resolution"] == 32  # the resolution the run trained at, from its bundle

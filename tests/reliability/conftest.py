"""The tiny trained run the checkpoint fuzzing copies, and the count of fuzz cases by kind at the end."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pytest
import torch

from pipelines.engine.launch import run_training
from pipelines.model import open_model
from tests.integration.test_train_command import _write_eg3d_folder
from tests.pipelines.tiny import tiny_train_config
from tests.reliability.checkpoints import NEWEST, OLDEST
from tests.reliability.fuzzing import TALLY
from tests.reliability.rendering import render


@dataclass
class TinyRun:
    """A finished tiny run with two checkpoints, and what each intact checkpoint gives."""

    data_dir: Path
    run_dir: Path
    renders: dict[str, dict[str, np.ndarray]]
    """epigraf-render's images (grid, depth, opacity) of each checkpoint, by checkpoint name."""
    weights: dict[str, dict[str, torch.Tensor]]
    """open_model's generator state dict of each checkpoint."""


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> TinyRun:
    root = tmp_path_factory.mktemp("tiny_run")
    data_dir = _write_eg3d_folder(root / "data")
    config = tiny_train_config(out=root / "run", kimg=0.008)
    config.data = data_dir
    config.trainer = replace(config.trainer, turntable_samples=0)
    run_training(config)
    renders, weights = {}, {}
    for name in (NEWEST, OLDEST):
        checkpoint = root / "run" / "checkpoints" / name
        outcome, renders[name] = render(checkpoint, root / f"render-{name}")
        assert outcome.code == 0 and renders[name], outcome
        weights[name] = {k: v.clone() for k, v in open_model(checkpoint).network.state_dict().items()}
    assert not np.array_equal(renders[NEWEST]["grid.png"], renders[OLDEST]["grid.png"]), \
        "the two checkpoints render alike: a fallback to the older one could not be told apart"
    return TinyRun(data_dir, root / "run", renders, weights)


def pytest_terminal_summary(terminalreporter):
    if not TALLY:
        return
    terminalreporter.section("fuzz cases by kind")
    for kind, count in sorted(TALLY.items()):
        terminalreporter.write_line(f"{kind}: {count}")
    terminalreporter.write_line(f"total: {sum(TALLY.values())}")

"""Atomic checkpoints, damage detection and the `latest` fallback."""

import json
from pathlib import Path

import pytest
import torch

from pipelines.engine.checkpoints import (
    CheckpointError,
    find_latest_checkpoint,
    list_checkpoints,
    load_training_state,
    save_checkpoint,
)


def _write_generator(directory: Path) -> None:
    directory.mkdir(parents=True)
    (directory / "weights.bin").write_bytes(b"\x00" * 64)


def _save(run_dir: Path, nimg: int, keep_last: int = 3) -> Path:
    state = {"pipeline": {"weight": torch.full((4,), float(nimg))}, "nimg": nimg}
    return save_checkpoint(run_dir, nimg, state, _write_generator, keep_last=keep_last)


def test_round_trip_and_pruning(tmp_path):
    for nimg in (100, 200, 300, 400):
        _save(tmp_path, nimg, keep_last=2)
    assert [info.nimg for info in list_checkpoints(tmp_path)] == [300, 400]
    state = load_training_state(find_latest_checkpoint(tmp_path))
    assert state["nimg"] == 400
    assert torch.equal(state["pipeline"]["weight"], torch.full((4,), 400.0))


def test_partial_write_is_invisible(tmp_path):
    _save(tmp_path, 100)
    partial = tmp_path / "checkpoints" / ".partial-step-000000000200"
    partial.mkdir()
    (partial / "training_state.pt").write_bytes(b"half")
    assert [info.nimg for info in list_checkpoints(tmp_path)] == [100]


def test_truncated_checkpoint_gives_clear_error_and_latest_falls_back(tmp_path, capsys):
    _save(tmp_path, 100)
    newest = _save(tmp_path, 200)
    state_file = newest / "training_state.pt"
    state_file.write_bytes(state_file.read_bytes()[:20])
    with pytest.raises(CheckpointError, match="truncated"):
        load_training_state(newest)
    fallback = find_latest_checkpoint(tmp_path)
    assert fallback.name.endswith("100")
    assert "damaged" in capsys.readouterr().out


def test_missing_manifest_names_the_file(tmp_path):
    newest = _save(tmp_path, 100)
    (newest / "checkpoint.json").unlink()
    with pytest.raises(CheckpointError, match="checkpoint.json is missing"):
        load_training_state(newest)
    with pytest.raises(CheckpointError, match="no usable checkpoint"):
        find_latest_checkpoint(tmp_path)


class Payload:
    """An arbitrary Python object, which a weights-only load must refuse."""


def test_state_loading_refuses_pickled_objects(tmp_path):
    newest = _save(tmp_path, 100)
    torch.save({"object": Payload()}, newest / "training_state.pt")
    manifest = newest / "checkpoint.json"
    data = json.loads(manifest.read_text())
    data["files"]["training_state.pt"] = (newest / "training_state.pt").stat().st_size
    manifest.write_text(json.dumps(data))
    with pytest.raises(CheckpointError, match="cannot be read"):
        load_training_state(newest)

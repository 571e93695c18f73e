"""Atomic checkpoints, damage detection (sizes and SHA-256), the `latest` fallback, rejected and failed writes."""

import errno
import json
import os
from pathlib import Path

import pytest
import torch

from pipelines.bundle import file_sha256
from pipelines.engine.checkpoints import (
    CheckpointError,
    find_latest_checkpoint,
    list_checkpoints,
    load_training_state,
    save_checkpoint,
    set_aside_newer_checkpoints,
    verify_checkpoint,
)


def _write_generator(directory: Path) -> None:
    directory.mkdir(parents=True)
    (directory / "weights.bin").write_bytes(b"\x00" * 64)


def _save(run_dir: Path, nimg: int, keep_last: int = 3) -> Path:
    state = {"pipeline": {"weight": torch.full((4,), float(nimg))}, "nimg": nimg}
    return save_checkpoint(run_dir, nimg, state, _write_generator, keep_last=keep_last)


def _flip_bit(path: Path, offset: int = -1) -> None:
    """One bit flipped in place: the size stays, so only a checksum notices."""
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def _rerecord(checkpoint: Path, name: str) -> None:
    """Makes the manifest agree with a file replaced on purpose (a forged but consistent checkpoint)."""
    manifest_path = checkpoint / "checkpoint.json"
    manifest = json.loads(manifest_path.read_text())
    file = checkpoint / name
    manifest["files"][name] = {"size": file.stat().st_size, "sha256": file_sha256(file)}
    manifest_path.write_text(json.dumps(manifest))


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
    err = capsys.readouterr().err
    assert "damaged" in err and str(state_file) in err


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
    _rerecord(newest, "training_state.pt")
    with pytest.raises(CheckpointError, match="cannot be read"):
        load_training_state(newest)


def touch_marker(path: str) -> None:
    Path(path).touch()


class Touch:
    """A pickle that creates a file when unpickled: proof of code execution if it ever runs."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (touch_marker, (str(self.marker),))


def test_a_crafted_pickle_is_never_executed_and_torch_advice_is_not_passed_on(tmp_path):
    newest = _save(tmp_path / "run", 100)
    marker = tmp_path / "executed"
    state_file = newest / "training_state.pt"
    torch.save({"nimg": 100, "payload": Touch(marker)}, state_file)
    torch.load(state_file, weights_only=False)  # the payload is live: a full unpickle runs it
    assert marker.exists()
    marker.unlink()
    _rerecord(newest, "training_state.pt")
    with pytest.raises(CheckpointError) as caught:
        load_training_state(newest)
    message = str(caught.value)
    assert f"training_state.pt in {newest} cannot be read as plain tensors" in message
    assert "touch_marker" in message  # torch's reason: the global it refused
    assert "weights_only" not in message and "trust" not in message
    assert caught.value.__cause__ is None and caught.value.__context__ is None  # no torch advice in a traceback
    with pytest.raises(CheckpointError, match="no usable checkpoint") as caught:
        find_latest_checkpoint(tmp_path / "run")
    assert "weights_only" not in str(caught.value)
    assert not marker.exists()


def test_a_bit_flip_is_named_and_latest_falls_back_with_a_warning_on_stderr(tmp_path, capsys):
    _save(tmp_path, 100)
    newest = _save(tmp_path, 200)
    weights = newest / "generator" / "weights.bin"
    _flip_bit(weights, offset=10)
    with pytest.raises(CheckpointError, match=rf"{weights} does not match its SHA-256.*checkpoint .* is damaged"):
        verify_checkpoint(newest)
    with pytest.raises(CheckpointError, match="weights.bin does not match its SHA-256"):
        load_training_state(newest)
    assert find_latest_checkpoint(tmp_path).name.endswith("100")
    captured = capsys.readouterr()
    assert str(weights) in captured.err and "SHA-256" in captured.err and captured.out == ""


def test_a_flipped_training_state_is_caught_though_torch_loads_it(tmp_path):
    newest = _save(tmp_path, 100)
    state_file = newest / "training_state.pt"
    _flip_bit(state_file, offset=state_file.read_bytes().find(torch.full((4,), 100.0).numpy().tobytes()))
    assert torch.load(state_file, weights_only=True)["pipeline"]["weight"][0] != 100.0  # silently wrong
    with pytest.raises(CheckpointError, match="training_state.pt does not match its SHA-256"):
        load_training_state(newest)


def test_when_nothing_verifies_the_error_names_each_damaged_file(tmp_path):
    only = _save(tmp_path, 100)
    _flip_bit(only / "generator" / "weights.bin")
    with pytest.raises(CheckpointError, match=r"no usable checkpoint(.|\n)*weights.bin does not match its SHA-256"):
        find_latest_checkpoint(tmp_path)


def test_format_1_manifests_without_hashes_still_verify_by_size(tmp_path):
    newest = _save(tmp_path, 100)
    manifest_path = newest / "checkpoint.json"
    manifest = json.loads(manifest_path.read_text())
    assert manifest["format_version"] == 2 and len(manifest["files"]["training_state.pt"]["sha256"]) == 64
    old = {"format_version": 1, "nimg": 100, "files": {k: v["size"] for k, v in manifest["files"].items()}}
    manifest_path.write_text(json.dumps(old))
    assert load_training_state(newest)["nimg"] == 100
    (newest / "generator" / "weights.bin").write_bytes(b"\x00" * 10)
    with pytest.raises(CheckpointError, match="truncated"):
        verify_checkpoint(newest)


def test_a_format_2_manifest_without_a_hash_is_damaged(tmp_path):
    newest = _save(tmp_path, 100)
    manifest_path = newest / "checkpoint.json"
    manifest = json.loads(manifest_path.read_text())
    del manifest["files"]["generator/weights.bin"]["sha256"]
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(CheckpointError, match="weights.bin.*malformed.*damaged"):
        verify_checkpoint(newest)


# ---------------------------------------------------------------------------------------------- rejected
def test_resume_sets_damaged_newer_checkpoints_aside_and_they_are_never_overwritten(tmp_path, capsys):
    _save(tmp_path, 100)
    damaged = _save(tmp_path, 200)
    _flip_bit(damaged / "generator" / "weights.bin")
    resumed = find_latest_checkpoint(tmp_path)
    assert resumed.name.endswith("100")
    moved = set_aside_newer_checkpoints(tmp_path, 100)
    root = tmp_path / "checkpoints"
    assert moved == [root / "rejected-step-000000000200"]
    assert "weights.bin" in capsys.readouterr().err
    evidence = (moved[0] / "generator" / "weights.bin").read_bytes()
    _save(tmp_path, 200)  # the run reaches step 200 again: a new checkpoint, the evidence untouched
    assert (moved[0] / "generator" / "weights.bin").read_bytes() == evidence
    assert [info.nimg for info in list_checkpoints(tmp_path)] == [100, 200]
    _flip_bit(root / "step-000000000200" / "generator" / "weights.bin")  # damaged again: a second copy
    assert set_aside_newer_checkpoints(tmp_path, 100) == [root / "rejected-step-000000000200-1"]
    assert (moved[0] / "generator" / "weights.bin").read_bytes() == evidence


def test_a_sound_newer_checkpoint_is_superseded_so_latest_never_returns_to_the_abandoned_run(tmp_path, capsys):
    """Resuming from 100 abandons 200: it is kept aside, not resumed by --resume latest, not pruned."""
    _save(tmp_path, 100)
    _save(tmp_path, 200)
    root = tmp_path / "checkpoints"
    assert set_aside_newer_checkpoints(tmp_path, 100) == [root / "superseded-step-000000000200"]
    assert "superseded-step-000000000200" in capsys.readouterr().err
    assert [info.nimg for info in list_checkpoints(tmp_path)] == [100]
    assert find_latest_checkpoint(tmp_path).name.endswith("100")
    _save(tmp_path, 150)  # the resumed run's own checkpoints
    assert [info.nimg for info in list_checkpoints(tmp_path)] == [100, 150]
    assert (root / "superseded-step-000000000200").is_dir()


def test_listing_and_pruning_ignore_rejected_and_partial_folders(tmp_path):
    root = tmp_path / "checkpoints"
    root.mkdir()
    for name in ("rejected-step-000000000050", "rejected-step-000000000050-1", ".partial-step-000000000060"):
        (root / name).mkdir()
        (root / name / "training_state.pt").write_bytes(b"evidence")
    for nimg in (100, 200, 300):
        _save(tmp_path, nimg, keep_last=1)
    assert [info.nimg for info in list_checkpoints(tmp_path)] == [300]
    assert (root / "rejected-step-000000000050").is_dir() and (root / "rejected-step-000000000050-1").is_dir()


def test_pruning_never_removes_the_checkpoint_just_written(tmp_path):
    for nimg in (100, 300, 400):
        _save(tmp_path, nimg)
    written = _save(tmp_path, 200, keep_last=2)  # a run resumed from step 100 while newer ones remain
    assert written.is_dir() and load_training_state(written)["nimg"] == 200
    assert [info.nimg for info in list_checkpoints(tmp_path)] == [200, 300, 400]


# ---------------------------------------------------------------------------------------------- disk full
def _disk_full() -> OSError:
    return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def _write_half_then_fill_the_disk(directory: Path) -> None:
    directory.mkdir(parents=True)
    (directory / "weights.bin").write_bytes(b"\x00" * 32)
    raise _disk_full()


def test_a_full_disk_while_writing_the_generator_keeps_earlier_checkpoints_and_says_what_to_do(tmp_path):
    previous = _save(tmp_path, 100)
    state = {"pipeline": {"weight": torch.zeros(4)}, "nimg": 200}
    with pytest.raises(CheckpointError) as caught:
        save_checkpoint(tmp_path, 200, state, _write_half_then_fill_the_disk)
    message = str(caught.value)
    assert message.startswith(f"no space left on device writing checkpoint {tmp_path / 'checkpoints'}/step-000000000200")
    assert "(needs about " in message and " MB free); free space or pass --out elsewhere" in message
    assert message.endswith(f"the last complete checkpoint is {previous}")
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == [previous.name]
    assert load_training_state(find_latest_checkpoint(tmp_path))["nimg"] == 100


def test_a_full_disk_while_writing_the_training_state_is_reported_the_same_way(tmp_path, monkeypatch):
    _save(tmp_path, 100)
    real_save = torch.save

    def save_half(obj, target, *args, **kwargs):
        real_save(obj, target, *args, **kwargs)
        if hasattr(target, "truncate"):
            target.truncate(10)
        raise _disk_full()

    monkeypatch.setattr(torch, "save", save_half)
    with pytest.raises(CheckpointError, match=r"no space left on device writing checkpoint .*step-000000000200 "):
        _save(tmp_path, 200)
    monkeypatch.undo()
    assert [p.name for p in (tmp_path / "checkpoints").iterdir()] == ["step-000000000100"]


def test_a_full_disk_reported_without_an_oserror_is_recognised(tmp_path):
    """safetensors reports a full disk as its own error type with the OS error in the text."""

    def rust_style(directory: Path) -> None:
        directory.mkdir(parents=True)
        raise RuntimeError('Error while serializing: IoError(Os { code: 28, kind: StorageFull, message: "No space left on device" })')

    with pytest.raises(CheckpointError, match="no space left on device.*no checkpoint was completed yet"):
        save_checkpoint(tmp_path, 100, {"nimg": 100}, rust_style)
    assert list((tmp_path / "checkpoints").iterdir()) == []


def test_other_write_errors_are_named_and_clean_up_too(tmp_path):
    def denied(directory: Path) -> None:
        directory.mkdir(parents=True)
        raise PermissionError(errno.EACCES, "Permission denied", str(directory / "weights.bin"))

    with pytest.raises(CheckpointError, match=r"cannot write checkpoint .*step-000000000100 \(.*Permission denied"):
        save_checkpoint(tmp_path, 100, {"nimg": 100}, denied)
    assert list((tmp_path / "checkpoints").iterdir()) == []

    def bug(directory: Path) -> None:
        directory.mkdir(parents=True)
        raise KeyError("not an IO problem")

    with pytest.raises(KeyError):
        save_checkpoint(tmp_path, 100, {"nimg": 100}, bug)
    assert list((tmp_path / "checkpoints").iterdir()) == []

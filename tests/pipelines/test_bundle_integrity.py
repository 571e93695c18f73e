"""Bundles and the checkpoints that hold them are checked file by file (size and SHA-256) when a command opens them."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
import torch

from pipelines.bundle import MANIFEST_FILE, WEIGHTS_FILE, load_bundle
from pipelines.engine.checkpoints import save_checkpoint
from pipelines.model import ModelLoadError, open_model
from tests.pipelines.evaluation.evaluation_helpers import make_tiny_bundle


def _flip_last_bit(path: Path) -> None:
    """Flips the lowest bit of the last byte: tensor data in a safetensors file, which still parses."""
    data = bytearray(path.read_bytes())
    data[-1] ^= 0x01
    path.write_bytes(bytes(data))


def _checkpoint(run_dir: Path, nimg: int, seed: int) -> Path:
    return save_checkpoint(run_dir, nimg, {"nimg": nimg}, lambda directory: make_tiny_bundle(directory, seed=seed))


def test_save_bundle_records_every_file_with_its_sha256(tmp_path):
    bundle = make_tiny_bundle(tmp_path / "bundle")
    manifest = json.loads((bundle / MANIFEST_FILE).read_text())
    files = sorted(p.name for p in bundle.iterdir() if p.name != MANIFEST_FILE)
    assert sorted(manifest["files"]) == files and WEIGHTS_FILE in files
    for name, record in manifest["files"].items():
        content = (bundle / name).read_bytes()
        assert record == {"size": len(content), "sha256": hashlib.sha256(content).hexdigest()}


def test_a_bit_flip_in_a_standalone_bundle_is_named(tmp_path):
    bundle = make_tiny_bundle(tmp_path / "bundle")
    weights = bundle / WEIGHTS_FILE
    _flip_last_bit(weights)
    with pytest.raises(ValueError, match=rf"{weights} does not match its SHA-256.*bundle {bundle} is damaged"):
        load_bundle(bundle)
    with pytest.raises(ModelLoadError, match=rf"{weights} does not match its SHA-256.*damaged"):
        open_model(bundle)


def test_a_bundle_written_before_manifests_still_loads(tmp_path):
    bundle = make_tiny_bundle(tmp_path / "bundle")
    expected = load_bundle(bundle).generator.state_dict()
    (bundle / MANIFEST_FILE).unlink()
    loaded = load_bundle(bundle).generator.state_dict()
    assert all(torch.equal(loaded[key], expected[key]) for key in expected)
    assert open_model(bundle).pipeline == "patch-gan"


def test_a_damaged_manifest_is_named(tmp_path):
    bundle = make_tiny_bundle(tmp_path / "bundle")
    (bundle / MANIFEST_FILE).write_text("{not json")
    with pytest.raises(ValueError, match=rf"{bundle / MANIFEST_FILE} is damaged"):
        load_bundle(bundle)


def test_a_checkpoints_generator_is_checked_against_the_checkpoint_manifest(tmp_path):
    run_dir = tmp_path / "run"
    _checkpoint(run_dir, 100, seed=0)
    newest = _checkpoint(run_dir, 200, seed=1)
    weights = newest / "generator" / WEIGHTS_FILE
    _flip_last_bit(weights)
    for path in (newest, newest / "generator"):
        with pytest.raises(ModelLoadError, match=rf"{weights} does not match its SHA-256.*checkpoint {newest} is damaged"):
            open_model(path)
        with pytest.raises(RuntimeError, match=rf"{weights} does not match its SHA-256"):
            load_bundle(path)


def test_a_copied_checkpoint_generator_keeps_its_own_manifest(tmp_path):
    newest = _checkpoint(tmp_path / "run", 100, seed=0)
    copy = shutil.copytree(newest / "generator", tmp_path / "copy")
    _flip_last_bit(copy / WEIGHTS_FILE)
    with pytest.raises(ModelLoadError, match=rf"{copy / WEIGHTS_FILE} does not match its SHA-256"):
        open_model(copy)


def test_opening_a_run_falls_back_past_a_damaged_checkpoint_with_the_file_named(tmp_path, capsys):
    run_dir = tmp_path / "run"
    older = _checkpoint(run_dir, 100, seed=0)
    newest = _checkpoint(run_dir, 200, seed=1)
    _flip_last_bit(newest / "generator" / WEIGHTS_FILE)
    assert load_bundle(run_dir).directory == older / "generator"
    err = capsys.readouterr().err
    assert str(newest / "generator" / WEIGHTS_FILE) in err and "SHA-256" in err
    assert open_model(run_dir).pipeline == "patch-gan"
    assert newest.is_dir()  # reading commands never move or delete a checkpoint


def test_rendering_reads_only_the_generator_of_a_checkpoint(tmp_path):
    """A damaged training state stops a resume, not a command that only renders the generator."""
    newest = _checkpoint(tmp_path / "run", 100, seed=0)
    _flip_last_bit(newest / "training_state.pt")
    assert open_model(newest).pipeline == "patch-gan"


def test_a_format_1_checkpoint_still_opens(tmp_path):
    newest = _checkpoint(tmp_path / "run", 100, seed=0)
    manifest_path = newest / "checkpoint.json"
    manifest = json.loads(manifest_path.read_text())
    old = {"format_version": 1, "nimg": 100, "files": {k: v["size"] for k, v in manifest["files"].items()}}
    manifest_path.write_text(json.dumps(old))
    assert open_model(newest).pipeline == "patch-gan"
    assert open_model(tmp_path / "run").pipeline == "patch-gan"

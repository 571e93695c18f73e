"""Resuming the shared trainer: logs rewound to the checkpoint, damaged newer checkpoints kept aside."""

import json
import shutil

import pytest
import torch

from pipelines.engine.checkpoints import CheckpointError, find_latest_checkpoint, list_checkpoints
from pipelines.engine.trainer import Trainer, TrainingDiverged
from pipelines.patch_gan.pipeline import PatchGanPipeline
from tests.pipelines.tiny import TinyDataset, tiny_train_config


def _trainer(run_dir, kimg=0.008, tensorboard=False):
    config = tiny_train_config(out=run_dir, kimg=kimg)
    config.trainer.tensorboard = tensorboard
    dataset = TinyDataset()
    pipeline = PatchGanPipeline(config, torch.device("cpu"), dataset)
    return Trainer(config, pipeline, dataset, run_dir, torch.device("cpu"))


def _flip_last_bit(path):
    data = bytearray(path.read_bytes())
    data[-1] ^= 0x01
    path.write_bytes(bytes(data))


def test_a_resumed_run_logs_each_tick_once(tmp_path):
    # 4 ticks logged, checkpoints at ticks 2 and 4; the run dies before its tick-4 checkpoint.
    _trainer(tmp_path, tensorboard=True).run()
    shutil.rmtree(tmp_path / "checkpoints" / "step-000000000008")
    resumed = _trainer(tmp_path, tensorboard=True)
    resumed.resume(find_latest_checkpoint(tmp_path))
    assert resumed.tick == 2
    resumed.run()
    records = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert [r["tick"] for r in records] == [1, 2, 3, 4]
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(str(tmp_path / "tensorboard"))
    accumulator.Reload()
    assert [event.step for event in accumulator.Scalars("tick")] == [2, 4, 6, 8]


def test_resume_keeps_a_damaged_newer_checkpoint_aside(tmp_path, capsys):
    _trainer(tmp_path).run()
    damaged = tmp_path / "checkpoints" / "step-000000000008"
    weights = damaged / "generator" / "weights.safetensors"
    _flip_last_bit(weights)
    evidence = weights.read_bytes()
    resumed = _trainer(tmp_path)
    resumed.resume(find_latest_checkpoint(tmp_path))
    rejected = tmp_path / "checkpoints" / "rejected-step-000000000008"
    assert resumed.nimg == 4 and rejected.is_dir() and not damaged.exists()
    assert str(weights) in capsys.readouterr().err
    assert resumed.run() == damaged
    assert (rejected / "generator" / "weights.safetensors").read_bytes() == evidence
    assert [c.nimg for c in list_checkpoints(tmp_path)] == [4, 8]
    assert find_latest_checkpoint(tmp_path) == damaged  # the new one verifies


def test_divergence_after_resume_names_the_checkpoint_that_was_verified(tmp_path):
    _trainer(tmp_path, kimg=0.004).run()
    newest = find_latest_checkpoint(tmp_path)
    trainer = _trainer(tmp_path)
    original = trainer.pipeline.train_step

    def poisoned(batch, progress):
        metrics = original(batch, progress)
        metrics["G/loss"] = float("nan")
        return metrics

    trainer.pipeline.train_step = poisoned
    _flip_last_bit(newest / "generator" / "weights.safetensors")
    with pytest.raises(CheckpointError, match="weights.safetensors does not match its SHA-256"):
        trainer.resume(newest)
    assert trainer.last_checkpoint is None  # a checkpoint that failed to verify is never "the last good one"
    _flip_last_bit(newest / "generator" / "weights.safetensors")
    trainer.resume(newest)
    with pytest.raises(TrainingDiverged, match=rf"last good checkpoint.*{newest}"):
        trainer.run()

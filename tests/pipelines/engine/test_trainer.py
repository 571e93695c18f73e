"""The shared trainer: outputs, exact resume, checkpoint fallback and the NaN guard."""

import json

import pytest
import torch

from pipelines.engine.checkpoints import find_latest_checkpoint, list_checkpoints
from pipelines.patch_gan.pipeline import PatchGanPipeline
from pipelines.engine.trainer import Trainer, TrainingDiverged
from tests.pipelines.tiny import TinyDataset, tiny_train_config


def _trainer(run_dir, kimg=0.008):
    config = tiny_train_config(out=run_dir, kimg=kimg)
    dataset = TinyDataset()
    pipeline = PatchGanPipeline(config, torch.device("cpu"), dataset)
    return Trainer(config, pipeline, dataset, run_dir, torch.device("cpu"))


def _losses(run_dir):
    records = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]
    return [(r["kimg"], r["G/loss"], r["D/loss"]) for r in records]


def test_run_writes_log_snapshots_checkpoints_and_turntable(tmp_path):
    final = _trainer(tmp_path).run()
    assert final is not None and final == find_latest_checkpoint(tmp_path)
    records = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert [r["tick"] for r in records] == [1, 2, 3, 4]
    assert records[-1]["kimg"] == pytest.approx(0.008)
    assert all(r["kimg_per_sec"] > 0 for r in records)
    snapshots = sorted(p.name for p in (tmp_path / "snapshots").iterdir())
    assert "reals.png" in snapshots and "fakes-init.png" in snapshots and len(snapshots) >= 4
    assert [c.nimg for c in list_checkpoints(tmp_path)] == [4, 8]
    assert (final / "generator" / "weights.safetensors").is_file()
    assert (tmp_path / "turntable.gif").stat().st_size > 0


def test_resume_reproduces_the_uninterrupted_run(tmp_path):
    full_dir, half_dir = tmp_path / "full", tmp_path / "half"
    _trainer(full_dir, kimg=0.008).run()
    _trainer(half_dir, kimg=0.004).run()  # checkpoint at 4 images
    resumed = _trainer(half_dir, kimg=0.008)
    resumed.resume(find_latest_checkpoint(half_dir))
    assert resumed.nimg == 4
    resumed.run()
    assert _losses(half_dir) == _losses(full_dir)


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path):
    trainer = _trainer(tmp_path, kimg=0.008)
    original = trainer.pipeline.train_step
    calls = {"n": 0}

    def poisoned(batch, progress):
        calls["n"] += 1
        metrics = original(batch, progress)
        if calls["n"] == 3:
            metrics["G/loss"] = float("nan")
        return metrics

    trainer.pipeline.train_step = poisoned
    with pytest.raises(TrainingDiverged, match=r"G/loss=nan.*last good checkpoint"):
        trainer.run()
    assert [c.nimg for c in list_checkpoints(tmp_path)] == [4]


def test_live_viewer_follows_the_ema_generator_every_tick(tmp_path, monkeypatch):
    from pipelines.viewer import LiveViewer

    updates = []
    original = LiveViewer.update_model
    monkeypatch.setattr(LiveViewer, "update_model", lambda self, m: (updates.append(m), original(self, m)))
    trainer = _trainer(tmp_path, kimg=0.004)
    trainer.config.viewer = True
    trainer.config.viewer_port = 18230
    trainer.run()
    assert len(updates) == 2 and all(m.network is trainer.pipeline.G_ema for m in updates)


def test_metrics_are_logged_with_the_ticks_they_are_due(tmp_path):
    trainer = _trainer(tmp_path, kimg=0.008)
    trainer.config.trainer.metrics = ("swd", "mv_psnr")
    trainer.config.trainer.metrics_ticks = 2
    trainer.config.trainer.metrics_images = 8
    trainer.run()
    records = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    with_metrics = [r["tick"] for r in records if "metrics/swd" in r]
    assert with_metrics == [2, 4]
    assert all(r["metrics/swd"] >= 0 and "metrics/mv_psnr" in r for r in records if "metrics/swd" in r)


def test_turntable_keeps_one_condition_for_a_pose_conditioned_generator(tmp_path, monkeypatch):
    """Every frame is conditioned on the distribution's centre pose, so the subject does not change as it turns."""
    import pipelines.model as model_module

    trainer = _trainer(tmp_path)
    conditions = []
    original = model_module.render
    monkeypatch.setattr(model_module, "render", lambda model, z, cameras, resolution, condition=None, **kw: (
        conditions.append(condition), original(model, z, cameras, resolution, condition, **kw))[1])
    trainer._save_turntable()
    centre = trainer.pipeline.model().cameras.center_pose().to_label()
    assert len(conditions) == trainer.config.trainer.turntable_frames
    assert all(c is not None and torch.equal(c.to_label(), centre.expand(len(c), -1)) for c in conditions)


def test_turntable_tiles_its_samples_at_its_own_resolution_and_loops(tmp_path):
    """The GIF shows turntable_samples latents, turntable_columns per row, each at turntable_resolution, looping."""
    from PIL import Image

    trainer = _trainer(tmp_path)
    trainer.config.trainer.turntable_samples, trainer.config.trainer.turntable_columns = 2, 1
    trainer.config.trainer.turntable_resolution = 48  # above the 32^2 the tiny run trains at
    with Image.open(trainer._save_turntable()) as gif:
        assert gif.size == (48, 2 * 48)
        assert gif.n_frames == trainer.config.trainer.turntable_frames and gif.info.get("loop") == 0


def test_cpu_preset_turntable_shows_eight_samples_at_twice_the_training_resolution():
    from pipelines.patch_gan.pipeline import cpu_preset

    config = cpu_preset()
    assert config.trainer.turntable_samples == 8 <= config.trainer.snapshot_grid[0] * config.trainer.snapshot_grid[1]
    assert config.trainer.turntable_resolution == 2 * config.resolution == 128
    assert config.trainer.turntable_samples % config.trainer.turntable_columns == 0


def test_snapshot_and_turntable_of_a_class_conditional_run_go_through_the_classes(tmp_path, monkeypatch):
    """Row r of the snapshot grid is drawn in class r mod K, latent i of the turntable in class i mod K."""
    import pipelines.model as model_module
    from tests.pipelines.patch_gan.test_class_conditional import NUM_CLASSES, TinyClassDataset

    config = tiny_train_config(out=tmp_path, kimg=0.008)
    config.trainer.snapshot_grid = (2, 4)
    config.trainer.turntable_samples, config.trainer.turntable_columns = 4, 2
    dataset = TinyClassDataset()
    trainer = Trainer(config, PatchGanPipeline(config, torch.device("cpu"), dataset), dataset, tmp_path,
                      torch.device("cpu"))
    drawn = []
    original = model_module.render
    monkeypatch.setattr(model_module, "render", lambda model, z, *args, **kw: (
        drawn.append((model.class_index, len(z))), original(model, z, *args, **kw))[1])
    trainer._save_snapshot("test")
    assert sorted(drawn) == [(0, 4), (1, 2), (2, 2)]  # rows 0-3 of 2: classes 0, 1, 2, 0
    drawn.clear()
    trainer._save_turntable()
    # Latents 0-3 in classes 0, 1, 2, 0 (by rows of 2 it would be 0, 0, 1, 1).
    assert sorted(set(drawn)) == [(0, 2), (1, 1), (2, 1)] and NUM_CLASSES == 3

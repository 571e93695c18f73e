"""The patch-gan pipeline: every phase runs, learns something, and resumes exactly."""

import copy
import math
from dataclasses import replace

import pytest
import torch

from pipelines.pipeline import Progress
from pipelines.engine.data_loader import BatchStream
from pipelines.model import open_model, render
from pipelines.patch_gan.pipeline import PatchGanPipeline
from tests.pipelines.tiny import TinyDataset, tiny_train_config


def _pipeline(**overrides):
    config = tiny_train_config(**overrides)
    pipeline = PatchGanPipeline(config, torch.device("cpu"), TinyDataset())
    return pipeline, config


def _stream(config):
    return BatchStream(TinyDataset(), config.batch, seed=0)


def _params(module):
    return [p.detach().clone() for p in module.parameters()]


def test_every_phase_runs_and_updates_its_network():
    pipeline, config = _pipeline()
    stream = _stream(config)
    g_before, d_before = _params(pipeline.G), _params(pipeline.D)
    ema_before = _params(pipeline.G_ema)
    seen = set()
    for step in range(2):  # step 0 runs R1 (lazy interval 16), step 1 does not
        metrics = pipeline.train_step(stream.batch(step, torch.device("cpu")), Progress(step, step * config.batch))
        assert all(math.isfinite(v) for v in metrics.values())
        seen.update(metrics)
        if step == 0:
            assert "D/r1_penalty" in metrics
        else:
            assert "D/r1_penalty" not in metrics
    assert {"G/loss", "D/loss", "D/r1_penalty"} <= seen
    assert any(not torch.equal(a, b) for a, b in zip(g_before, _params(pipeline.G)))
    assert any(not torch.equal(a, b) for a, b in zip(d_before, _params(pipeline.D)))
    assert any(not torch.equal(a, b) for a, b in zip(ema_before, _params(pipeline.G_ema)))


def test_generator_phase_does_not_touch_the_discriminator():
    pipeline, _ = _pipeline()
    d_before = _params(pipeline.D)
    pipeline._generator_phase(0.0)
    assert all(torch.equal(a, b) for a, b in zip(d_before, _params(pipeline.D)))


def test_fake_patches_have_patch_resolution_and_range():
    pipeline, config = _pipeline()
    z, cameras, patch = pipeline._sample_fake_inputs(0.0)
    fake = pipeline.render_patches(pipeline.G, z, cameras, patch, 0.0)
    assert fake.shape == (config.batch, 3, config.patch_resolution, config.patch_resolution)
    assert fake.min() >= -1.01 and fake.max() <= 1.01


def test_pose_conditioning_swaps_with_its_probability():
    config = tiny_train_config()
    config.model.losses = replace(config.model.losses, pose_conditioning=True, pose_swap_probability=0.3, pose_swap_fade_kimg=0.0)
    pipeline = PatchGanPipeline(config, torch.device("cpu"), TinyDataset(size=64))
    cameras = pipeline.sample_cameras(4000, torch.Generator().manual_seed(1))
    labels = pipeline._generator_label(cameras)
    swapped = (labels != cameras.to_label()).any(dim=1).float().mean().item()
    assert abs(swapped - 0.3) < 0.03


def test_state_dict_round_trip_restores_rng_and_weights():
    pipeline, config = _pipeline()
    stream = _stream(config)
    pipeline.train_step(stream.batch(0, torch.device("cpu")), Progress(0, 0))
    state = copy.deepcopy(pipeline.state_dict())  # a checkpoint is a copy on disk
    expected = pipeline.train_step(stream.batch(1, torch.device("cpu")), Progress(1, 2))
    other, _ = _pipeline()
    other.load_state_dict(state)
    again = other.train_step(stream.batch(1, torch.device("cpu")), Progress(1, 2))
    assert again == expected


def test_model_renders_final_images_in_unit_range():
    pipeline, _ = _pipeline()
    model = pipeline.model()
    cameras = pipeline.sample_cameras(2, torch.Generator().manual_seed(0))
    images = render(model, torch.randn(2, model.z_dim), cameras, 16).rgb
    assert images.shape == (2, 3, 16, 16)
    assert 0 <= images.min() and images.max() <= 1
    assert model.network is pipeline.G_ema and model.pipeline == "patch-gan" and model.image_resolution == 32


def test_training_cameras_are_the_datasets_poses_and_travel_with_the_bundle(tmp_path):
    pipeline, _ = _pipeline()
    dataset = TinyDataset()
    labels = pipeline.sample_cameras(64, torch.Generator().manual_seed(0)).to_label()
    distances = (labels[:, None, :] - dataset.labels[None]).abs().amax(dim=-1)
    assert distances.min(dim=1).values.max() < 1e-6
    pipeline.model().save(tmp_path)
    reopened = open_model(tmp_path)
    assert torch.equal(reopened.cameras.poses, dataset.labels)
    again = reopened.cameras.sample(64, torch.Generator().manual_seed(0)).to_label()
    assert torch.equal(again, labels)  # the same draws without the dataset at hand


def test_camera_source_dataset_needs_labels():
    config = tiny_train_config()
    dataset = TinyDataset()
    dataset.has_labels = False
    with pytest.raises(ValueError, match="needs camera labels"):
        PatchGanPipeline(config, torch.device("cpu"), dataset)


def test_one_train_step_moves_w_avg_once_towards_the_generator_phase_mean(monkeypatch):
    pipeline, config = _pipeline()
    replay, _ = _pipeline()  # the same seeds: it draws the generator phase's latents and cameras again
    z, cameras, _ = replay._sample_fake_inputs(0.0)
    phase_mean_w = replay.map_latents(replay.G, z, cameras)[:, 0].mean(dim=0)
    mapping = pipeline.G.mapping_network
    calls = []
    track_w_avg = mapping.track_w_avg

    def counting_track_w_avg(mean_w, beta):
        calls.append((mean_w.clone(), beta))
        track_w_avg(mean_w, beta)

    monkeypatch.setattr(mapping, "track_w_avg", counting_track_w_avg)
    before = mapping.w_avg.clone()
    stream = BatchStream(TinyDataset(), config.batch, seed=0)
    pipeline.train_step(stream.batch(0, torch.device("cpu")), Progress(0, 0))
    beta = config.model.generator.w_avg_beta
    assert [c[1] for c in calls] == [beta], "w_avg must move exactly once per training step"
    torch.testing.assert_close(calls[0][0], phase_mean_w)
    torch.testing.assert_close(mapping.w_avg, phase_mean_w.lerp(before, beta))
    assert not torch.equal(mapping.w_avg, before)


def test_discriminator_phase_leaves_w_avg_alone():
    pipeline, config = _pipeline()
    w_avg = pipeline.G.mapping_network.w_avg
    w_avg.copy_(torch.randn(w_avg.shape, generator=torch.Generator().manual_seed(3)))
    before = w_avg.clone()
    stream = BatchStream(TinyDataset(), config.batch, seed=0)
    pipeline._discriminator_phase(stream.batch(0, torch.device("cpu")), step=0, kimg=0.0)
    assert pipeline.G.training
    assert torch.equal(pipeline.G.mapping_network.w_avg, before)

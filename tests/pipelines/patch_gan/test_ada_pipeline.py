"""ADA in the patch-gan pipeline: metrics, p's updates, exact resume, and the R1 path through the augmentation."""

import copy
import json
import math
from dataclasses import replace

import pytest
import torch

from epigraf_field.config_io import config_from_dict, config_to_dict
from pipelines.engine.data_loader import BatchStream
from pipelines.gan.ada import AugmentConfig
from pipelines.patch_gan.pipeline import PatchGanPipeline, PatchGanTrainConfig
from pipelines.pipeline import Progress
from tests.pipelines.tiny import TinyDataset, tiny_train_config

CPU = torch.device("cpu")


def _pipeline(**augment):
    config = tiny_train_config()
    config.model = replace(config.model, augment=AugmentConfig(mode="ada", **augment))
    return PatchGanPipeline(config, CPU, TinyDataset()), config


def _run(pipeline, config, steps, first=0):
    stream = BatchStream(TinyDataset(), config.batch, seed=0)
    return [pipeline.train_step(stream.batch(step, CPU), Progress(step, step * config.batch))
            for step in range(first, first + steps)]


def test_two_steps_with_ada_give_finite_metrics_and_move_p_by_the_rule():
    pipeline, config = _pipeline(p=0.2, ada_interval=1)
    p = 0.2
    for metrics in _run(pipeline, config, steps=2):
        assert all(math.isfinite(v) for v in metrics.values())
        assert metrics["schedule/ada_p"] == pytest.approx(p, abs=1e-12)  # the p this minibatch was augmented with
        # Batch 2: r_t is -1, 0 or 1, never the target 0.6, so p moves by batch * interval / (500 * 1000) each step.
        p += math.copysign(config.batch / 500_000, metrics["D/real_sign"] - 0.6)
    assert pipeline.augment.p == pytest.approx(p, abs=1e-12)


def test_ada_off_adds_no_metrics_and_leaves_inputs_alone():
    config = tiny_train_config()
    pipeline = PatchGanPipeline(config, CPU, TinyDataset())
    metrics = _run(pipeline, config, steps=1)[0]
    assert "schedule/ada_p" not in metrics and "D/real_sign" not in metrics
    x = torch.zeros(2, 3, 16, 16)
    assert pipeline.augment(x, pipeline.rng) is x


def test_resume_restores_p_and_the_statistic_exactly():
    pipeline, config = _pipeline(p=0.3, ada_interval=2)
    _run(pipeline, config, steps=1)  # one of two minibatches of r_t accumulated
    state = copy.deepcopy(pipeline.state_dict())
    assert state["augment"]["count"] == config.batch
    expected = _run(pipeline, config, steps=2, first=1)
    other, _ = _pipeline(p=0.0, ada_interval=2)  # a fresh run's p is overwritten by the checkpoint's
    other.load_state_dict(state)
    assert other.augment.state_dict() == state["augment"]
    assert _run(other, config, steps=2, first=1) == expected
    assert other.augment.state_dict() == pipeline.augment.state_dict()


def test_r1_gradient_is_taken_through_the_augmentation_to_the_unaugmented_reals():
    pipeline, config = _pipeline(p=1.0, target=None)
    batch = BatchStream(TinyDataset(), config.batch, seed=0).batch(0, CPU)
    patch = pipeline._sample_patch(0.0)
    real = pipeline._real_inputs(batch.images, patch, 0.0).detach().requires_grad_(True)
    logits = pipeline._discriminate(real, patch, None, 1.0)
    (grad,) = torch.autograd.grad(logits.sum(), real, create_graph=True)
    assert grad.shape == real.shape and grad.abs().sum() > 0
    grad.square().sum().backward()  # R1's second derivative reaches D's weights through the resampling
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in pipeline.D.parameters())
    metrics = pipeline._discriminator_phase(batch, step=0, kimg=0.0)  # a lazy-R1 step with ADA at p = 1
    assert math.isfinite(metrics["D/r1_penalty"]) and "D/real_sign" in metrics


def test_augment_options_travel_with_the_run_config():
    config = tiny_train_config()
    config.model = replace(config.model, augment=AugmentConfig(mode="ada", p=0.6, target=None, ada_interval=8))
    again = config_from_dict(PatchGanTrainConfig, json.loads(json.dumps(config_to_dict(config))))
    assert again.model.augment == config.model.augment
    assert PatchGanTrainConfig().model.augment.mode == "none"  # recipes switch it on, not the default


def test_eg3d_dual_images_are_augmented_alike():
    from pipelines.eg3d.pipeline import Eg3dPipeline
    from tests.pipelines.eg3d.tiny import tiny_eg3d_config

    config = tiny_eg3d_config()
    config.model = replace(config.model, augment=AugmentConfig(mode="ada", p=0.5, ada_interval=1))
    pipeline = Eg3dPipeline(config, CPU, TinyDataset())
    metrics = _run(pipeline, config, steps=1)[0]
    assert all(math.isfinite(v) for v in metrics.values()) and metrics["schedule/ada_p"] == 0.5
    assert pipeline.augment.p != 0.5


@pytest.mark.cuda
def test_ada_trains_on_cuda_under_bf16_autocast():
    """The transforms are drawn from the pipeline's CUDA generator and resampled in fp32 before autocast."""
    config = tiny_train_config(mixed_precision=True, device="cuda")
    config.model = replace(config.model, augment=AugmentConfig(mode="ada", p=0.5, ada_interval=1))
    device = torch.device("cuda")
    pipeline = PatchGanPipeline(config, device, TinyDataset())
    stream = BatchStream(TinyDataset(), config.batch, seed=0)
    for step in range(2):
        metrics = pipeline.train_step(stream.batch(step, device), Progress(step, step * config.batch))
        assert all(math.isfinite(v) for v in metrics.values())
        assert ("D/r1_penalty" in metrics) == (step == 0)  # R1 through the augmentation on step 0
    assert pipeline.augment.p != 0.5

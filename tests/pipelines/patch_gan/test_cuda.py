"""The patch-gan pipeline on CUDA: bf16 autocast training and the tiny-cuda-nn decoder backend."""

import math
from dataclasses import replace

import pytest
import torch

from epigraf_field.decoder import tcnn_available
from pipelines.engine.data_loader import BatchStream
from pipelines.patch_gan.pipeline import PatchGanPipeline
from pipelines.pipeline import Progress
from tests.pipelines.tiny import TinyDataset, tiny_train_config


def _train_steps(
    pipeline: PatchGanPipeline, dataset: TinyDataset, batch: int, steps: int
) -> list[dict[str, float]]:
    stream = BatchStream(dataset, batch, seed=0)
    device = torch.device("cuda")
    return [pipeline.train_step(stream.batch(step, device), Progress(step, step * batch)) for step in range(steps)]


@pytest.mark.cuda
def test_bf16_autocast_train_step_gives_finite_losses():
    config = tiny_train_config(mixed_precision=True, device="cuda")
    config.model.generator = replace(config.model.generator, decoder_backend="torch")
    dataset = TinyDataset()
    pipeline = PatchGanPipeline(config, torch.device("cuda"), dataset)
    assert pipeline.mixed_precision
    (metrics,) = _train_steps(pipeline, dataset, config.batch, steps=1)
    assert {"G/loss", "D/loss"} <= set(metrics)
    assert all(math.isfinite(value) for value in metrics.values()), metrics
    assert all(torch.isfinite(p).all() for p in pipeline.G.parameters())


@pytest.mark.cuda
def test_training_with_the_tcnn_decoder():
    if not tcnn_available():
        pytest.skip("needs tiny-cuda-nn")
    config = tiny_train_config(device="cuda")
    # tcnn's fused MLP needs hidden widths in multiples of 16 and its LeakyReLU slope of 0.01.
    config.model.generator = replace(
        config.model.generator, decoder_hidden=16, decoder_negative_slope=0.01, decoder_backend="tcnn"
    )
    dataset = TinyDataset()
    pipeline = PatchGanPipeline(config, torch.device("cuda"), dataset)
    decoder = pipeline.G.decoder
    assert decoder.backend == "tcnn"
    before = decoder.tcnn_params.detach().clone()
    for metrics in _train_steps(pipeline, dataset, config.batch, steps=2):
        assert all(math.isfinite(value) for value in metrics.values()), metrics
    assert not torch.equal(before, decoder.tcnn_params.detach())
    # The saved layout stays the torch one whatever the backend.
    assert "decoder.layers.0.weight" in pipeline.G.state_dict()


@pytest.mark.cuda
def test_a_checkpoint_loaded_onto_cuda_resumes(tmp_path):
    """Training state is loaded to the device; the RNG states must still be restored (CPU byte tensors)."""
    from pipelines.engine.checkpoints import load_training_state, save_checkpoint

    config = tiny_train_config(device="cuda")
    config.model.generator = replace(config.model.generator, decoder_backend="torch")
    dataset, device = TinyDataset(), torch.device("cuda")
    pipeline = PatchGanPipeline(config, device, dataset)
    _train_steps(pipeline, dataset, config.batch, steps=1)
    path = save_checkpoint(tmp_path, 2, {"pipeline": pipeline.state_dict()}, lambda d: pipeline.model().save(d))
    other = PatchGanPipeline(config, device, dataset)
    other.load_state_dict(load_training_state(path, map_location=device)["pipeline"])
    assert torch.equal(other.rng.get_state(), pipeline.rng.get_state())

"""The ig-gan pipeline: phases, resume, bad input, trainer outputs, the generator interface, CLI."""

from __future__ import annotations

import copy
import json
import math

import pytest
import torch

from epigraf_field.config_io import config_from_dict, config_to_dict
from pipelines.cli.train import parse_config
from pipelines.engine.data_loader import BatchStream
from pipelines.engine.trainer import Trainer
from pipelines.ig_gan.model import VoxelModel
from pipelines.engine.distributed import DistributedContext
from pipelines.ig_gan.pipeline import IgGanPipeline, IgGanTrainConfig, discriminator_accuracy
from pipelines.model import GeneratorModel, open_model, render
from pipelines.pipeline import Progress
from tests.pipelines.ig_gan.tiny import tiny_ig_gan_config
from tests.pipelines.tiny import TinyDataset

pytest.importorskip("mitsuba", reason="the ig-gan pipeline needs Mitsuba 3 (pip install mitsuba)")

CPU = torch.device("cpu")


def _pipeline(**overrides) -> tuple[IgGanPipeline, IgGanTrainConfig]:
    config = tiny_ig_gan_config(**overrides)
    return IgGanPipeline(config, CPU, TinyDataset(resolution=16)), config


def _stream(config):
    return BatchStream(TinyDataset(resolution=16), config.batch, seed=0)


def _params(module):
    return [p.detach().clone() for p in module.parameters()]


def _changed(before, module):
    return any(not torch.equal(a, b) for a, b in zip(before, _params(module)))


def test_every_phase_runs_two_iterations_and_updates_only_its_networks():
    pipeline, config = _pipeline()
    config.model.losses.proxy_pretrain_steps = 2
    pipeline.config.losses.proxy_pretrain_steps = 2
    stream = _stream(config)
    g, d, f = _params(pipeline.G), _params(pipeline.D), _params(pipeline.f)
    for step in range(2):  # pre-training of f
        metrics = pipeline.train_step(stream.batch(step, CPU), Progress(step, step * config.batch))
        assert set(metrics) == {"pretrain/l2", "time/R_seconds"} and math.isfinite(metrics["pretrain/l2"])
    assert _changed(f, pipeline.f) and not _changed(g, pipeline.G) and not _changed(d, pipeline.D)
    f = _params(pipeline.f)
    seen = []
    for step in range(2, 4):  # the GAN: f, G and D phases; step 2 is no R1 step (interval 16), step 16 is
        metrics = pipeline.train_step(stream.batch(step, CPU), Progress(step, step * config.batch))
        assert all(math.isfinite(v) for v in metrics.values())
        seen.append(set(metrics))
    assert {"f/l2", "f/dom", "G/loss", "D/loss", "time/R_seconds"} <= seen[0]
    assert _changed(f, pipeline.f) and _changed(g, pipeline.G) and _changed(d, pipeline.D)
    assert "D/r1_penalty" in pipeline.train_step(stream.batch(16, CPU), Progress(16, 32))


def test_dom_off_leaves_only_l2():
    pipeline, config = _pipeline()
    pipeline.config.losses.dom_weight = 0.0
    metrics = pipeline.train_step(_stream(config).batch(1, CPU), Progress(1, 2))
    assert "f/dom" not in metrics and metrics["f/loss"] == metrics["f/l2"]


def test_discriminator_accuracy_counts_both_sides():
    real, fake = torch.tensor([[2.0], [-1.0]]), torch.tensor([[-3.0], [-0.5]])
    assert discriminator_accuracy(real, fake, DistributedContext()) == pytest.approx(0.75)


@pytest.mark.parametrize("accuracy, gate, steps", [(1.0, 0.8, False), (0.75, 0.8, True), (1.0, None, True)])
def test_the_accuracy_gate_skips_d_when_it_is_winning(monkeypatch, accuracy, gate, steps):
    pipeline, config = _pipeline()
    pipeline.config.losses.d_accuracy_gate = gate
    monkeypatch.setattr("pipelines.ig_gan.pipeline.discriminator_accuracy", lambda *args: accuracy)
    d = _params(pipeline.D)
    metrics = pipeline.train_step(_stream(config).batch(1, CPU), Progress(1, 2))
    assert _changed(d, pipeline.D) is steps and metrics["D/stepped"] == float(steps)
    assert metrics["D/accuracy"] == accuracy


def test_resume_is_exact_including_f_and_its_optimizer():
    pipeline, config = _pipeline()
    stream = _stream(config)
    for step in range(2):
        pipeline.train_step(stream.batch(step, CPU), Progress(step, step * config.batch))
    state = copy.deepcopy(pipeline.state_dict())
    assert {"f", "opt_f", "shape_rng"} <= set(state) and state["opt_f"]["state"]
    expected = pipeline.train_step(stream.batch(2, CPU), Progress(2, 4))
    expected_f = _params(pipeline.f)
    other, _ = _pipeline()
    other.load_state_dict(state)
    got = other.train_step(stream.batch(2, CPU), Progress(2, 4))
    expected.pop("time/R_seconds"), got.pop("time/R_seconds")
    assert got == expected
    assert all(torch.equal(a, b) for a, b in zip(expected_f, _params(other.f)))


def test_a_dataset_without_cameras_is_refused_with_the_fix():
    dataset = TinyDataset(resolution=16)
    dataset.has_labels = False
    with pytest.raises(ValueError, match="no camera labels.*parametric camera distribution.*--model.cameras.source"):
        IgGanPipeline(tiny_ig_gan_config(), CPU, dataset)


def test_a_class_conditional_dataset_trains_unconditionally_and_says_so(capsys):
    dataset = TinyDataset(resolution=16)
    dataset.num_classes, dataset.class_labels = 4, torch.arange(len(dataset)) % 4
    pipeline = IgGanPipeline(tiny_ig_gan_config(), CPU, dataset)
    assert "ig-gan trains unconditionally: the dataset's 4 classes are not used" in capsys.readouterr().out
    assert getattr(pipeline.model(), "num_classes", 0) == 0  # consumers see an unconditional generator
    IgGanPipeline(tiny_ig_gan_config(), CPU, TinyDataset(resolution=16))
    assert "classes" not in capsys.readouterr().out


def test_broken_mitsuba_stops_the_command_before_training_in_one_line(tmp_path, capsys):
    """A variant that cannot render stands for a broken install: one line naming the package, no run folder."""
    from pipelines.cli.train import main

    run = tmp_path / "run"
    with pytest.raises(SystemExit) as exit_info:
        main(["--pipeline", "ig-gan", "--data", str(_dataset_zip(tmp_path)), "--resolution", "16",
              "--out", str(run), "--model.mitsuba.variant", "no_such_rgb"])
    message = str(exit_info.value.code)
    assert message.startswith("error: ") and "\n" not in message.strip()
    assert "package 'mitsuba'" in message and "pip install mitsuba" in message
    assert not run.exists()


def _dataset_zip(tmp_path):
    """A 4-image EG3D-format zip at 16^2 with camera labels."""
    import io
    import zipfile

    from PIL import Image

    dataset = TinyDataset(size=4, resolution=16)
    path = tmp_path / "data.zip"
    labels = []
    with zipfile.ZipFile(path, "w") as archive:
        for index, image in enumerate(dataset.images):
            buffer = io.BytesIO()
            pixels = ((image.permute(1, 2, 0) + 1) * 127.5).round().byte().numpy()
            Image.fromarray(pixels).save(buffer, format="PNG")
            archive.writestr(f"img{index}.png", buffer.getvalue())
            labels.append([f"img{index}.png", dataset.labels[index].tolist()])
        archive.writestr("dataset.json", json.dumps({"labels": labels}))
    return path


@pytest.mark.slow
def test_trainer_leaves_config_log_side_by_side_snapshots_checkpoint_turntable_and_a_model(tmp_path):
    config = tiny_ig_gan_config(out=tmp_path)
    dataset = TinyDataset(resolution=16)
    pipeline = IgGanPipeline(config, CPU, dataset)
    final = Trainer(config, pipeline, dataset, tmp_path, CPU).run()
    assert final is not None and (tmp_path / "turntable.gif").stat().st_size > 0
    records = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert "G/loss" in records[-1] and "time/R_seconds" in records[-1]
    from PIL import Image

    pairs = Image.open(tmp_path / "snapshots" / "R-vs-f-init.png")
    fakes = Image.open(tmp_path / "snapshots" / "fakes-init.png")
    assert pairs.size == (2 * fakes.size[0], fakes.size[1])  # R and f side by side for each latent
    model = open_model(tmp_path)
    assert type(model) is VoxelModel and isinstance(model, GeneratorModel)
    assert model.pipeline == "ig-gan" and model.image_resolution == 16 and model.renders_directly
    z = torch.randn(2, model.z_dim, generator=torch.Generator().manual_seed(0))
    cameras = pipeline.sample_cameras(2, torch.Generator().manual_seed(1))
    torch.testing.assert_close(render(model, z, cameras, 16).rgb, render(pipeline.model(), z, cameras, 16).rgb)


def test_cli_presets_and_config_round_trip():
    config, _ = parse_config(["--pipeline", "ig-gan", "--preset", "gpu"])
    assert type(config).__name__ == "IgGanTrainConfig" and config.model.generator.resolution == 64
    config, _ = parse_config(["--pipeline", "ig-gan", "--device", "cpu", "--model.losses.dom-weight", "0"])
    assert config.model.generator.resolution == 32 and config.model.losses.dom_weight == 0.0
    assert config_from_dict(IgGanTrainConfig, json.loads(json.dumps(config_to_dict(config)))) == config

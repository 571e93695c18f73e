"""The mimic3d pipeline: both stages, patch discriminator, resume, --init-from, imitation fallback, model, CLI."""

import copy
import json
import math

import pytest
import torch

from epigraf_field.config_io import config_from_dict, config_to_dict
from pipelines.cli.train import parse_config
from pipelines.eg3d.pipeline import Eg3dPipeline
from pipelines.engine.checkpoints import find_latest_checkpoint
from pipelines.engine.data_loader import BatchStream
from pipelines.engine.init_from import initialize_from
from pipelines.engine.trainer import Trainer
from pipelines.gan.losses import r1_penalty
from pipelines.mimic3d.model import Mimic3dModel
from pipelines.mimic3d.pipeline import Mimic3dPipeline, Mimic3dTrainConfig
from pipelines.model import open_model, render
from pipelines.pipeline import Progress
from renderers.cameras import Cameras
from tests.pipelines.eg3d.tiny import tiny_eg3d_config
from tests.pipelines.mimic3d.tiny import tiny_mimic3d_config
from tests.pipelines.tiny import TinyDataset

CPU = torch.device("cpu")


def _pipeline(**overrides):
    config = tiny_mimic3d_config(**overrides)
    return Mimic3dPipeline(config, CPU, TinyDataset()), config


def _stream(config):
    return BatchStream(TinyDataset(), config.batch, seed=0)


def _params(module):
    return [p.detach().clone() for p in module.parameters()]


def _changed(before, module):
    return any(not torch.equal(a, b) for a, b in zip(before, _params(module)))


def _step(pipeline, config, step):
    return pipeline.train_step(_stream(config).batch(step, CPU), Progress(step, step * config.batch))


@pytest.mark.parametrize("stage", [1, 2])
def test_every_phase_of_each_stage_runs_two_iterations(stage):
    pipeline, config = _pipeline(stage_3d_kimg=1000.0 if stage == 1 else 0.0)
    detail, sr = _params(pipeline.G.aware.detail_blocks), _params(pipeline.G.superresolution)
    coarse, d_patch, d_main = _params(pipeline.G.aware.blocks), _params(pipeline.D_patch), _params(pipeline.D)
    keys = []
    for step in range(2):  # step 0 runs both R1s and the density regularization, step 1 none of them
        metrics = _step(pipeline, config, step)
        assert all(math.isfinite(v) for v in metrics.values())
        keys.append(set(metrics))
    assert {"G/loss", "G/density_reg", "D/loss", "D/r1_penalty"} <= keys[0]
    assert _changed(coarse, pipeline.G.aware.blocks) and _changed(sr, pipeline.G.superresolution)
    assert _changed(d_main, pipeline.D)
    third_d = {"G3d/loss", "G3d/imitation", "D3d/loss", "D3d/r1_penalty"}
    if stage == 1:  # EG3D plus the aware branch: the detail plane and the patch discriminator rest
        assert not keys[0] & third_d and metrics["schedule/stage"] == 1.0
        assert not _changed(detail, pipeline.G.aware.detail_blocks) and not _changed(d_patch, pipeline.D_patch)
    else:
        assert third_d <= keys[0] and "D3d/r1_penalty" not in keys[1] and metrics["schedule/stage"] == 2.0
        assert _changed(detail, pipeline.G.aware.detail_blocks) and _changed(d_patch, pipeline.D_patch)


def test_the_3d_stage_starts_at_its_kimg_within_one_run():
    pipeline, config = _pipeline(stage_3d_kimg=0.002)  # batch 2: step 0 is stage 1, step 1 stage 2
    assert _step(pipeline, config, 0)["schedule/stage"] == 1.0
    assert "G3d/imitation" in _step(pipeline, config, 1)


def test_patch_discriminator_r1_differentiates_against_real_patches(monkeypatch):
    import pipelines.mimic3d.pipeline as module

    pipeline, config = _pipeline()
    seen = []
    monkeypatch.setattr(module, "r1_penalty", lambda logits, *xs: (seen.append(xs), r1_penalty(logits, *xs))[1])
    metrics = pipeline._patch_discriminator_phase(_stream(config).batch(0, CPU), step=0, kimg=0.0)
    (real,) = seen[0]
    assert real.shape == (config.batch, 3, config.patch_resolution, config.patch_resolution)
    assert metrics["D3d/r1_penalty"] > 0
    (grad,) = torch.autograd.grad(pipeline._discriminate_patches(real, 0.0).sum(), real)
    assert grad.abs().sum() > 0
    assert "D3d/r1_penalty" not in pipeline._patch_discriminator_phase(_stream(config).batch(1, CPU), 1, 0.0)


def test_patch_adversarial_weight_follows_the_resolution_unless_given():
    assert _pipeline()[0].patch_adversarial_weight == 0.2  # 32^2 (Mimic3D: 0.2 at 128 and 256)
    config = tiny_mimic3d_config()
    config.model.losses.patch_adversarial_weight = 0.5
    assert Mimic3dPipeline(config, CPU, TinyDataset()).patch_adversarial_weight == 0.5


def test_state_dict_round_trip_reproduces_the_next_step_in_both_stages():
    pipeline, config = _pipeline(stage_3d_kimg=0.002)
    _step(pipeline, config, 0)
    state = copy.deepcopy(pipeline.state_dict())
    assert {"D_patch", "opt_D_patch"} <= set(state)
    expected = _step(pipeline, config, 1)
    other, _ = _pipeline(stage_3d_kimg=0.002)
    other.load_state_dict(state)
    assert _step(other, config, 1) == expected


def test_without_lpips_weights_training_falls_back_and_the_config_records_it(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))  # an empty torch hub cache
    monkeypatch.delenv("EPIGRAF_VGG16_WEIGHTS", raising=False)
    monkeypatch.delenv("EPIGRAF_LPIPS_WEIGHTS", raising=False)
    config = tiny_mimic3d_config()
    config.model.losses.imitation = "auto"
    pipeline = Mimic3dPipeline(config, CPU, TinyDataset())
    assert "LPIPS weights not found" in capsys.readouterr().out
    assert pipeline.imitation.mode == "feature_matching" and pipeline.imitation.lpips is None
    assert config_to_dict(config)["model"]["losses"]["imitation"] == "feature_matching"
    config.model.losses.imitation = "lpips"
    with pytest.raises(FileNotFoundError, match="vgg16-397923af.pth"):
        Mimic3dPipeline(config, CPU, TinyDataset())


def _train(config, pipeline_class, run_dir):
    dataset = TinyDataset()
    pipeline = pipeline_class(config, CPU, dataset)
    return Trainer(config, pipeline, dataset, run_dir, CPU).run(), pipeline


def test_init_from_an_eg3d_run_and_from_a_stage_1_run(tmp_path):
    """Stage 2 starts from an eg3d run (its tri-plane generator, upsampler and D) or a stage-1 run (everything)."""
    eg3d = tiny_eg3d_config(out=tmp_path / "eg3d", kimg=0.004)
    _, eg3d_pipeline = _train(eg3d, Eg3dPipeline, tmp_path / "eg3d")
    pipeline, config = _pipeline()
    lines = initialize_from(pipeline, tmp_path / "eg3d", CPU)
    assert any(line.startswith("init-from: G ") for line in lines)
    for ours, theirs in ((pipeline.G.triplane, eg3d_pipeline.G.triplane), (pipeline.G.superresolution,
                         eg3d_pipeline.G.superresolution), (pipeline.D, eg3d_pipeline.D)):
        assert all(torch.equal(a, b) for a, b in zip(ours.state_dict().values(), theirs.state_dict().values()))
    assert "G3d/imitation" in _step(pipeline, config, 0)  # and it continues in the 3D stage

    stage1 = tiny_mimic3d_config(out=tmp_path / "stage1", kimg=0.004, stage_3d_kimg=1000.0)
    _, stage1_pipeline = _train(stage1, Mimic3dPipeline, tmp_path / "stage1")
    pipeline, config = _pipeline()
    lines = initialize_from(pipeline, find_latest_checkpoint(tmp_path / "stage1"), CPU)
    total = len(pipeline.G.state_dict())
    assert f"init-from: G {total} of {total} tensors" in lines[0]
    assert all(torch.equal(a, b) for a, b in zip(pipeline.G_ema.state_dict().values(),
                                                 stage1_pipeline.G_ema.state_dict().values()))
    assert math.isfinite(_step(pipeline, config, 0)["G3d/loss"])


def test_init_from_a_different_architecture_is_refused(tmp_path):
    other = tiny_eg3d_config(out=tmp_path / "run", kimg=0.002)
    other.model.generator = type(other.model.generator)(**{**config_to_dict(other.model.generator), "w_dim": 4,
                                                          "z_dim": 4, "plane_channels": 2, "channel_max": 4,
                                                          "channel_base": 32, "decoder_hidden": 4})
    _train(other, Eg3dPipeline, tmp_path / "run")
    pipeline, _ = _pipeline()
    with pytest.raises(ValueError, match=r"G: \d+ tensors have other shapes"):
        initialize_from(pipeline, tmp_path / "run", CPU)


def test_a_run_leaves_both_branches_and_open_model_shows_the_direct_3d_render(tmp_path):
    config = tiny_mimic3d_config(out=tmp_path, kimg=0.004, stage_3d_kimg=0.002)
    final, pipeline = _train(config, Mimic3dPipeline, tmp_path)
    assert final == find_latest_checkpoint(tmp_path)
    snapshots = {p.name for p in (tmp_path / "snapshots").iterdir()}
    assert {"reals.png", "fakes-init.png", "fakes-2d-init.png"} <= snapshots
    assert (tmp_path / "turntable.gif").stat().st_size > 0
    model = open_model(tmp_path)
    assert isinstance(model, Mimic3dModel) and model.branch == "3d" and model.renders_directly
    z = torch.randn(2, model.z_dim, generator=torch.Generator().manual_seed(1))
    cameras = Cameras.from_label(TinyDataset().labels[:2])
    direct = render(model, z, cameras, config.resolution)
    with torch.no_grad():  # the same image straight from the detail field of the EMA generator
        ws = model.mapping(z, cameras)
        coarse, detail = pipeline.G_ema.synthesize_planes(ws)
        expected = model.renderer.render_image(pipeline.G_ema.detail_field(coarse, detail), cameras, config.resolution)
    torch.testing.assert_close(direct.rgb, expected.rgb.clamp(0, 1), atol=1e-5, rtol=1e-5)
    two_d = model.with_options(branch="2d")
    assert not two_d.renders_directly
    sr = render(two_d, z, cameras, config.resolution).rgb
    assert sr.shape == direct.rgb.shape and not torch.allclose(sr, direct.rgb, atol=1e-3)
    torch.testing.assert_close(sr, render(pipeline.model().with_options(branch="2d"), z, cameras,
                                          config.resolution).rgb, atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="branch must be one of"):
        model.with_options(branch="sr")


def test_cli_presets_and_help_for_mimic3d(capsys):
    config, _ = parse_config(["--pipeline", "mimic3d", "--device", "cpu"])
    assert isinstance(config, Mimic3dTrainConfig) and config.pipeline == "mimic3d"
    assert (config.resolution, config.patch_resolution, config.kimg) == (64, 32, 7.0)
    assert 0 < config.model.stage_3d_kimg < config.kimg  # both stages in the default CPU run
    assert config_from_dict(Mimic3dTrainConfig, json.loads(json.dumps(config_to_dict(config)))) == config
    gpu, _ = parse_config(["--pipeline", "mimic3d", "--preset", "gpu", "--init-from", "runs/eg3d-x"])
    assert (gpu.resolution, gpu.patch_resolution, gpu.batch) == (256, 64, 32) and gpu.init_from == "runs/eg3d-x"
    with pytest.raises(SystemExit):
        parse_config(["--pipeline", "mimic3d", "--help"])
    text = capsys.readouterr().out
    for option in ("--model.stage-3d-kimg", "--model.losses.imitation", "--model.losses.r1-gamma-patch",
                   "--model.lpips-weights", "--init-from"):
        assert option in text


@pytest.mark.slow
def test_with_lpips_weights_the_3d_stage_imitates_with_lpips(tmp_path, capsys):
    from pipelines.evaluation.lpips import Lpips

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        lpips = Lpips()
    vgg, linear = tmp_path / "vgg16.pth", tmp_path / "heads.pth"
    torch.save({f"features.{k}": v for k, v in lpips.features.state_dict().items()}, vgg)
    torch.save({f"lin{i}.model.1.weight": head.weight.detach() for i, head in enumerate(lpips.heads)}, linear)
    config = tiny_mimic3d_config()
    config.model.losses.imitation = "auto"
    config.model.vgg_weights, config.model.lpips_weights = vgg, linear
    pipeline = Mimic3dPipeline(config, CPU, TinyDataset())
    assert f"imitation: LPIPS (VGG16 {vgg}" in capsys.readouterr().out
    assert pipeline.imitation.mode == "lpips" and config.model.losses.imitation == "lpips"  # recorded
    z, cameras, _ = pipeline._sample_fake_inputs(0.0)
    windows = pipeline.sample_windows(len(z))
    _, patches, targets, _ = pipeline._branch_fakes(pipeline.G, z, cameras, windows, 0.0)
    torch.testing.assert_close(pipeline.imitation(patches, targets, pipeline.D_patch), lpips(patches, targets))
    assert math.isfinite(_step(pipeline, config, 0)["G3d/imitation"])

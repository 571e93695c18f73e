"""The eg3d pipeline: phases, dual discrimination, pose swapping, density regularization, bundle, CLI, trainer."""

import copy
import json
import math
from dataclasses import replace

import pytest
import torch

from pipelines.pipeline import Progress
from pipelines.engine.data_loader import BatchStream
from pipelines.engine.checkpoints import find_latest_checkpoint
from pipelines.cli.train import parse_config
from pipelines.camera_distributions import CameraDistribution, CameraDistributionConfig
from pipelines.eg3d.generator import load_eg3d_bundle
from pipelines.eg3d.model import Eg3dModel
from epigraf_field.config_io import config_from_dict, config_to_dict
from pipelines.eg3d.pipeline import Eg3dPipeline, Eg3dTrainConfig, neural_resolution
from pipelines.eg3d.superresolution import SuperResolution, SuperResolutionConfig
from pipelines.evaluation.metrics import model_consistency
from pipelines.model import TriPlaneModel, open_model, render
from pipelines.engine.trainer import Trainer
from tests.pipelines.eg3d.tiny import tiny_eg3d_config
from tests.pipelines.tiny import TinyDataset

CPU = torch.device("cpu")


def _pipeline(dataset_size=8, **overrides):
    config = tiny_eg3d_config(**overrides)
    return Eg3dPipeline(config, CPU, TinyDataset(size=dataset_size)), config


def _stream(config, dataset_size=8):
    return BatchStream(TinyDataset(size=dataset_size), config.batch, seed=0)


def _params(module):
    return [p.detach().clone() for p in module.parameters()]


def _changed(before, module):
    return any(not torch.equal(a, b) for a, b in zip(before, _params(module)))


def test_every_phase_runs_for_two_iterations_and_updates_its_network():
    pipeline, config = _pipeline()
    stream = _stream(config)
    triplane, sr = _params(pipeline.G.triplane), _params(pipeline.G.superresolution)
    d_before, ema_before = _params(pipeline.D), _params(pipeline.G_ema)
    per_step = []
    for step in range(2):  # step 0 runs density reg (interval 4) and R1 (interval 16); step 1 neither
        metrics = pipeline.train_step(stream.batch(step, CPU), Progress(step, step * config.batch))
        assert all(math.isfinite(v) for v in metrics.values())
        per_step.append(set(metrics))
    assert {"G/loss", "G/density_reg", "D/loss", "D/r1_penalty"} <= per_step[0]
    assert "G/density_reg" not in per_step[1] and "D/r1_penalty" not in per_step[1]
    assert _changed(triplane, pipeline.G.triplane) and _changed(sr, pipeline.G.superresolution)
    assert _changed(d_before, pipeline.D) and _changed(ema_before, pipeline.G_ema)


def test_density_regularization_alone_moves_only_the_tri_plane_generator():
    pipeline, _ = _pipeline()
    triplane, sr = _params(pipeline.G.triplane), _params(pipeline.G.superresolution)
    metrics = pipeline._generator_regularization_phase(step=0, kimg=0.0)
    assert metrics["G/density_reg"] > 0
    assert _changed(triplane, pipeline.G.triplane)
    assert not _changed(sr, pipeline.G.superresolution)  # the upsampler plays no part in densities
    assert pipeline._generator_regularization_phase(step=1, kimg=0.0) == {}


def test_density_regularization_compares_raw_densities_in_twice_the_box(monkeypatch):
    """EG3D's L1 acts on raw densities at points in [-2h, 2h]^3: empty space still gets a gradient."""
    from epigraf_field.field import TriPlaneField

    pipeline, config = _pipeline()
    triplane = pipeline.G.triplane
    triplane.config = replace(triplane.config, density_shift=-60.0)  # every activated density ~0: softplus is flat
    seen = []
    original = TriPlaneField.raw_density
    monkeypatch.setattr(TriPlaneField, "raw_density", lambda self, p: (seen.append((self, p.detach())), original(self, p))[1])
    loss = pipeline._density_regularization_loss()
    field, points = seen[0]
    half = config.model.generator.box_half_size
    assert points.abs().max() > 1.5 * half and points.abs().max() <= 2.0 * half + 0.05  # beyond the box
    assert field.density(points).max() < 1e-20  # activated densities carry nothing here
    assert loss.item() > 0
    (grad,) = torch.autograd.grad(loss, next(triplane.decoder.parameters()))
    assert grad.abs().sum() > 0


def test_r1_differentiates_against_the_image_and_the_low_resolution_raw_image(monkeypatch):
    """EG3D's R1 with dual discrimination: squared gradients w.r.t. the full image and the raw image at r."""
    import pipelines.patch_gan.pipeline as patch_gan_module
    from pipelines.gan.losses import r1_penalty

    pipeline, config = _pipeline()
    images = TinyDataset().images[: config.batch]
    patch = pipeline._sample_patch(0.0)
    parts = tuple(p.detach().requires_grad_(True) for p in pipeline._real_parts(images, patch, 0.0))
    assert parts[1].shape[-1] == config.patch_resolution  # the raw image at the neural resolution
    labels = pipeline._discriminator_label(TinyDataset().labels[: config.batch])
    logits = pipeline._discriminate(pipeline._assemble_real(parts), patch, labels, 0.0)
    grad_image, grad_raw = torch.autograd.grad(logits.sum(), parts, retain_graph=True)
    expected = grad_image.square().flatten(1).sum(1) + grad_raw.square().flatten(1).sum(1)
    torch.testing.assert_close(r1_penalty(logits, *parts), expected)
    assert grad_raw.abs().sum() > 0
    seen = []
    original = patch_gan_module.r1_penalty
    monkeypatch.setattr(patch_gan_module, "r1_penalty", lambda logits, *xs: (seen.append(xs), original(logits, *xs))[1])
    metrics = pipeline._discriminator_phase(_stream(config).batch(0, CPU), step=0, kimg=0.0)
    assert "D/r1_penalty" in metrics and [x.shape[-1] for x in seen[0]] == [config.resolution, config.patch_resolution]


def test_dual_discrimination_input_has_six_channels_and_both_halves_get_gradients():
    pipeline, config = _pipeline()
    z, cameras, patch = pipeline._sample_fake_inputs(0.0)
    image, raw = pipeline.render_views(pipeline.G, z, cameras, 0.0)
    assert raw.shape == (config.batch, 3, config.patch_resolution, config.patch_resolution)
    fake = pipeline.render_patches(pipeline.G, z, cameras, patch, 0.0)
    assert fake.shape == (config.batch, 6, config.resolution, config.resolution)
    fake = fake.detach().requires_grad_(True)
    logits = pipeline._discriminate(fake, patch, pipeline._discriminator_label(cameras.to_label()), 0.0)
    (grad,) = torch.autograd.grad(logits.sum(), fake)
    assert grad[:, :3].abs().sum() > 0 and grad[:, 3:].abs().sum() > 0
    # Through the generator: the raw half reaches the field alone, the super-resolved half the upsampler.
    for half, owner, other in ((slice(3, 6), "triplane", "superresolution"), (slice(0, 3), "superresolution", None)):
        pipeline.G.zero_grad(set_to_none=True)
        dual = pipeline.render_patches(pipeline.G, z, cameras, patch, 0.0)
        dual[:, half].sum().backward()
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in getattr(pipeline.G, owner).parameters())
        if other is not None:
            assert all(p.grad is None or not p.grad.any() for p in getattr(pipeline.G, other).parameters())


def test_real_dual_input_is_the_image_and_its_neural_resolution_copy():
    pipeline, config = _pipeline()
    images = TinyDataset().images[:2]
    real = pipeline._real_inputs(images, pipeline._sample_patch(0.0), 0.0)
    assert real.shape == (2, 6, config.resolution, config.resolution)
    assert torch.equal(real[:, :3], images)
    low = torch.nn.functional.interpolate(images, size=16, mode="bilinear", antialias=True, align_corners=False)
    up = torch.nn.functional.interpolate(low, size=32, mode="bilinear", align_corners=False)
    assert torch.allclose(real[:, 3:], up, atol=1e-6)
    assert not torch.allclose(real[:, 3:], images, atol=0.05)  # the raw half really is low resolution


def test_pose_swap_frequency_matches_its_probability():
    config = tiny_eg3d_config()
    config.model.losses = replace(config.model.losses, pose_swap_probability=0.3, pose_swap_fade_kimg=0.0)
    pipeline = Eg3dPipeline(config, CPU, TinyDataset(size=64))
    assert pipeline.config.generator.c_dim == 25 and pipeline.config.discriminator.c_dim == 25
    cameras = pipeline.sample_cameras(4000, torch.Generator().manual_seed(1))
    labels = pipeline._generator_label(cameras)
    swapped = (labels != cameras.to_label()).any(dim=1).float().mean().item()
    # Binomial(4000, 0.3): std 0.0072, so 0.03 is four standard deviations.
    assert abs(swapped - 0.3) < 0.03


def test_pose_swap_fades_in_from_always_swapping():
    """EG3D swaps every camera at first and fades to its final probability over pose_swap_fade_kimg."""
    pipeline = Eg3dPipeline(tiny_eg3d_config(), CPU, TinyDataset(size=64))
    cameras = pipeline.sample_cameras(4000, torch.Generator().manual_seed(1))
    rates = {}
    for kimg in (0.0, 500.0, 2000.0):
        pipeline.kimg = kimg
        labels = pipeline._generator_label(cameras)
        rates[kimg] = (labels != cameras.to_label()).any(dim=1).float().mean().item()
    kept = 63 / 64  # a random other pose of 64 is the same pose 1 time in 64
    assert abs(rates[0.0] - 1.0 * kept) < 0.02
    assert abs(rates[500.0] - 0.75 * kept) < 0.03
    assert abs(rates[2000.0] - 0.5 * kept) < 0.03


def test_neural_resolution_blends_from_initial_to_final():
    assert neural_resolution(0.0, 64, 128, 1000.0) == 64
    assert neural_resolution(500.0, 64, 128, 1000.0) == 96
    assert neural_resolution(5000.0, 64, 128, 1000.0) == 128
    assert neural_resolution(500.0, 64, None, 1000.0) == 64
    config = tiny_eg3d_config()
    config.model.neural_resolution_final, config.model.neural_resolution_fade_kimg = 32, 0.004
    pipeline = Eg3dPipeline(config, CPU, TinyDataset())
    z, cameras, _ = pipeline._sample_fake_inputs(0.0)
    assert pipeline.render_views(pipeline.G, z, cameras, 0.002)[1].shape[-1] == 24
    assert pipeline.render_views(pipeline.G, z, cameras, 1.0)[1].shape[-1] == 32


@pytest.mark.parametrize(
    ("output", "plan"),
    [  # EG3D's SuperresolutionHybrid2X, 4X and 8XDC layouts: (resolution, channels, up) per block
        (128, [(64, 128, 1), (128, 64, 2)]),
        (256, [(128, 128, 1), (256, 64, 2)]),
        (512, [(256, 256, 2), (512, 128, 2)]),
    ],
)
def test_superresolution_follows_eg3d_layouts(output, plan):
    config = SuperResolutionConfig(output_resolution=output)
    assert config.block_plan() == plan


def test_superresolution_is_a_residual_on_the_upsampled_render():
    from epigraf_field.layers import upsample_2d

    config = SuperResolutionConfig(output_resolution=32, in_channels=8, channels=8)
    sr = SuperResolution(config, w_dim=8)
    rgb = torch.rand(2, 3, 16, 16) * 2 - 1
    features, ws = torch.cat([rgb, torch.randn(2, 5, 16, 16)], 1), torch.randn(2, 3, 8)
    out = sr(rgb, features, ws)
    assert out.shape == (2, 3, 32, 32)
    skip = upsample_2d(rgb)  # the 16^2 input block adds in place, the 32^2 block upsamples with the FIR filter
    assert not torch.allclose(out, skip, atol=1e-3)  # the blocks add learned detail
    for block in sr.blocks:  # silence the residual: only the upsampled render is left
        torch.nn.init.zeros_(block.to_rgb.conv.weight)
    assert torch.allclose(sr(rgb, features, ws), skip, atol=1e-6)


def test_state_dict_round_trip_reproduces_the_next_step():
    pipeline, config = _pipeline()
    stream = _stream(config)
    pipeline.train_step(stream.batch(0, CPU), Progress(0, 0))
    state = copy.deepcopy(pipeline.state_dict())
    expected = pipeline.train_step(stream.batch(1, CPU), Progress(1, 2))
    other, _ = _pipeline()
    other.load_state_dict(state)
    assert other.train_step(stream.batch(1, CPU), Progress(1, 2)) == expected


def test_saved_bundle_renders_the_same_super_resolved_images(tmp_path):
    pipeline, config = _pipeline()
    pipeline.model().save(tmp_path)
    loaded = load_eg3d_bundle(tmp_path)
    assert loaded.neural_resolution == config.patch_resolution and loaded.bundle.pipeline == "eg3d"
    z = torch.randn(2, config.model.generator.z_dim, generator=torch.Generator().manual_seed(3))
    cameras = pipeline.sample_cameras(2, torch.Generator().manual_seed(4))
    expected = render(pipeline.model(), z, cameras, config.resolution).rgb
    model = open_model(tmp_path)
    assert isinstance(model, Eg3dModel) and not model.renders_directly
    got = render(model, z, cameras, config.resolution).rgb
    assert got.shape == (2, 3, config.resolution, config.resolution)
    assert torch.allclose(got, expected, atol=1e-5)
    assert json.loads((tmp_path / "superresolution.json").read_text())["config"]["output_resolution"] == 32


def test_bundle_without_superresolution_is_refused_with_a_clear_message(tmp_path):
    pipeline, _ = _pipeline()
    pipeline.model().save(tmp_path)
    (tmp_path / "superresolution.json").unlink()
    with pytest.raises(ValueError, match="superresolution.json is missing: the bundle .* is damaged"):
        load_eg3d_bundle(tmp_path)  # the bundle's manifest lists it
    (tmp_path / "manifest.json").unlink()  # a bundle without a manifest (older), or a patch-gan bundle
    with pytest.raises(FileNotFoundError, match="super-resolution"):
        load_eg3d_bundle(tmp_path)


def test_super_resolved_render_of_a_trained_toy_is_less_consistent_than_its_raw_render():
    """A toy trained for 30 steps, scored by the shared multi-view PSNR (5 degree yaw, field depth for both).

    The raw render is one 3D field seen twice, so warping one view into the other matches. The
    upsampler works in screen space: its convolutions see a different pixel grid over the surface in
    each view, so its detail does not move with the surface. Its per-pixel noise inputs (EG3D's
    superresolution noise) are the clearest case: fixed to the screen, they cannot follow the surface at
    all; with their strength raised to 0.5 (learned values are of that order in StyleGAN2) the metric
    must see a large drop.
    """
    pipeline, config = _pipeline(dataset_size=16)
    config.model.superresolution = replace(config.model.superresolution, use_noise=True)
    pipeline = Eg3dPipeline(config, CPU, TinyDataset(size=16))
    stream = _stream(config, 16)
    for step in range(30):
        pipeline.train_step(stream.batch(step, CPU), Progress(step, step * config.batch))
    frontal = CameraDistribution(CameraDistributionConfig.synthetic("frontal"))
    raw = TriPlaneModel(pipeline.G_ema.triplane, pipeline.renderer, frontal)
    sr = pipeline.model().with_options(cameras=frontal)
    score = lambda model: model_consistency(model, 8, config.resolution, torch.Generator().manual_seed(0))  # noqa: E731
    raw_psnr, sr_psnr = score(raw), score(sr)
    assert raw_psnr > 35.0
    assert sr_psnr < raw_psnr - 2.0
    for module in pipeline.G_ema.superresolution.modules():
        if hasattr(module, "noise_strength"):
            module.noise_strength.data.fill_(0.5)
    assert score(sr) < sr_psnr - 10.0


def test_cli_help_for_eg3d(capsys):
    with pytest.raises(SystemExit) as exit_info:
        parse_config(["--pipeline", "eg3d", "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for option in ("--patch-resolution", "--model.superresolution.channels", "--model.losses.density-reg",
                   "--model.neural-resolution-final"):
        assert option in text


def test_cli_presets_for_eg3d():
    config, _ = parse_config(["--pipeline", "eg3d", "--preset", "gpu"])
    assert type(config).__name__ == "Eg3dTrainConfig" and config.pipeline == "eg3d"
    assert (config.resolution, config.patch_resolution) == (256, 64)
    assert config.model.generator.num_feature_channels == 32
    config, _ = parse_config(["--pipeline", "eg3d", "--device", "cpu", "--resolution", "128"])
    assert config.resolution == 128 and config.model.losses.pose_conditioning
    # run folders store the resolved config as JSON and resume from it
    assert config_from_dict(Eg3dTrainConfig, json.loads(json.dumps(config_to_dict(config)))) == config


def test_trainer_run_writes_checkpoint_snapshots_and_a_renderable_bundle(tmp_path):
    config = tiny_eg3d_config(out=tmp_path)
    dataset = TinyDataset()
    final = Trainer(config, Eg3dPipeline(config, CPU, dataset), dataset, tmp_path, CPU).run()
    assert final is not None and final == find_latest_checkpoint(tmp_path)
    records = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert records[-1]["kimg"] == pytest.approx(0.008) and "G/density_reg" in records[0]
    snapshots = {p.name for p in (tmp_path / "snapshots").iterdir()}
    assert {"reals.png", "fakes-init.png"} <= snapshots and len(snapshots) >= 4
    assert (tmp_path / "turntable.gif").stat().st_size > 0
    model = open_model(tmp_path)
    image = render(model, torch.randn(1, model.z_dim), dataset_cameras(dataset), config.resolution).rgb
    assert image.shape == (1, 3, 32, 32) and torch.isfinite(image).all()


def dataset_cameras(dataset):
    from renderers.cameras import Cameras

    return Cameras.from_label(dataset.labels[:1])

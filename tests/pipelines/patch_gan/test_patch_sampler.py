"""Tests of the annealed patch distribution."""

import math

import pytest
import torch

from pipelines.patch_gan.patch_sampler import (
    PatchSamplerConfig,
    beta_b,
    expected_scale,
    sample_beta_1_b,
    sample_patches,
)


@pytest.mark.parametrize("kimg", [0.0, 2500.0, 5000.0, 10000.0, 20000.0])
def test_beta_mean_scale_matches_closed_form(kimg):
    cfg = PatchSamplerConfig(patch_resolution=64, image_resolution=256)
    n = 40000
    patch = sample_patches(cfg, n, kimg, torch.Generator().manual_seed(1), group_size=1)
    mean = patch.scales.double().mean().item()
    std = patch.scales.double().std().item()
    # Five standard errors (plus a floor for the nearly degenerate start of the annealing).
    assert abs(mean - expected_scale(cfg, kimg)) < 5 * std / math.sqrt(n) + 1e-4


def test_closed_form_endpoints():
    cfg = PatchSamplerConfig(patch_resolution=64, image_resolution=256)
    assert beta_b(cfg, 0) == pytest.approx(0.001)
    assert beta_b(cfg, 10000) == pytest.approx(0.8)
    assert beta_b(cfg, 5000) == pytest.approx(0.4005)
    assert expected_scale(cfg, 0) == pytest.approx(0.25 + 0.75 / 1.001)
    assert expected_scale(cfg, 1e6) == pytest.approx(0.25 + 0.75 / 1.8)
    # Early patches are almost whole images, late ones much smaller on average.
    assert expected_scale(cfg, 0) > 0.99 > 0.7 > expected_scale(cfg, 10000)


def test_beta_inverse_cdf_matches_distribution_moments():
    u = torch.rand(200000, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    b = 0.8
    x = sample_beta_1_b(u, b)
    # Var[Beta(1, b)] = b / ((1 + b)^2 (2 + b)).
    assert x.mean().item() == pytest.approx(1 / (1 + b), abs=3e-3)
    assert x.var().item() == pytest.approx(b / ((1 + b) ** 2 * (2 + b)), abs=3e-3)
    assert ((x >= 0) & (x <= 1)).all()


@pytest.mark.parametrize("mode", ["beta", "uniform"])
@pytest.mark.parametrize("kimg", [0.0, 3000.0, 12000.0])
def test_scales_and_offsets_within_bounds(mode, kimg):
    cfg = PatchSamplerConfig(mode=mode, patch_resolution=16, image_resolution=128)
    patch = sample_patches(cfg, 4000, kimg, torch.Generator().manual_seed(2), group_size=1)
    assert (patch.scales >= cfg.resolved_min_scale - 1e-6).all() and (patch.scales <= 1.0).all()
    assert (patch.offsets >= 0).all()
    assert (patch.offsets <= (1 - patch.scales)[:, None] + 1e-6).all()
    # Offsets cover their range, not just one corner.
    rel = patch.offsets / (1 - patch.scales)[:, None].clamp(min=1e-6)
    late = patch.scales < 0.9
    if late.sum() > 100:
        assert rel[late].mean().item() == pytest.approx(0.5, abs=0.05)


def test_uniform_mean_matches_closed_form():
    cfg = PatchSamplerConfig(mode="uniform", patch_resolution=16, image_resolution=64, anneal_kimg=100)
    for kimg in (0.0, 50.0, 200.0):
        patch = sample_patches(cfg, 20000, kimg, torch.Generator().manual_seed(4), group_size=1)
        assert patch.scales.mean().item() == pytest.approx(expected_scale(cfg, kimg), abs=5e-3)


def test_full_mode_is_whole_image():
    cfg = PatchSamplerConfig(mode="full", patch_resolution=16, image_resolution=64)
    patch = sample_patches(cfg, 6, 500.0, torch.Generator().manual_seed(0))
    assert torch.equal(patch.scales, torch.ones(6))
    assert torch.equal(patch.offsets, torch.zeros(6, 2))


@pytest.mark.parametrize("batch_size", [8, 10])
def test_groups_share_patches(batch_size):
    cfg = PatchSamplerConfig(patch_resolution=16, image_resolution=64)
    patch = sample_patches(cfg, batch_size, 8000.0, torch.Generator().manual_seed(5), group_size=4)
    assert patch.batch_size == batch_size
    for start in range(0, batch_size, 4):
        group = slice(start, min(start + 4, batch_size))
        assert (patch.scales[group] == patch.scales[start]).all()
        assert (patch.offsets[group] == patch.offsets[start]).all()
    # Different groups get different patches.
    assert patch.scales[0] != patch.scales[4]


def test_deterministic_under_generator():
    cfg = PatchSamplerConfig(patch_resolution=16, image_resolution=64)
    a = sample_patches(cfg, 8, 7000.0, torch.Generator().manual_seed(11))
    b = sample_patches(cfg, 8, 7000.0, torch.Generator().manual_seed(11))
    c = sample_patches(cfg, 8, 7000.0, torch.Generator().manual_seed(12))
    assert torch.equal(a.scales, b.scales) and torch.equal(a.offsets, b.offsets)
    assert not torch.equal(a.scales, c.scales)


def test_does_not_touch_global_rng():
    cfg = PatchSamplerConfig(patch_resolution=16, image_resolution=64)
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    sample_patches(cfg, 8, 7000.0, torch.Generator().manual_seed(11))
    assert torch.equal(torch.rand(3), expected)


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(mode="triangle"),
        dict(patch_resolution=128, image_resolution=64),
        dict(min_scale=0.0),
        dict(min_scale=0.9, max_scale=0.5),
        dict(beta_b_end=0.0),
        dict(max_scale=1.5),
    ],
)
def test_invalid_config_raises(kwargs):
    base = dict(patch_resolution=16, image_resolution=64)
    base.update(kwargs)
    with pytest.raises(ValueError, match="PatchSamplerConfig"):
        PatchSamplerConfig(**base)


def test_config_json_round_trip():
    import dataclasses
    import json

    cfg = PatchSamplerConfig(mode="uniform", patch_resolution=32, image_resolution=128, min_scale=0.3)
    assert PatchSamplerConfig(**json.loads(json.dumps(dataclasses.asdict(cfg)))) == cfg

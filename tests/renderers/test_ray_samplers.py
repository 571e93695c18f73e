"""Stratified and importance samplers, merging, and sample positions."""

from __future__ import annotations

import torch

from renderers.rays import RayBundle
from renderers.samplers import (
    RaySamples,
    blur_weights,
    importance_samples,
    merge_samples,
    sample_points,
    stratified_samples,
)


def bundle(b: int = 2, r: int = 3) -> RayBundle:
    origins = torch.zeros(b, r, 3)
    directions = torch.tensor([0.0, 0.6, 0.8]).expand(b, r, 3).clone()
    near = torch.linspace(0.5, 1.0, b * r).reshape(b, r, 1)
    return RayBundle(origins, directions, near, near + 2.0)


def test_stratified_without_generator_is_evenly_spaced():
    rays = bundle()
    samples = stratified_samples(rays, 4)
    expected = rays.near + 0.5 * torch.arange(4.0)
    assert torch.allclose(samples.t_starts, expected, atol=1e-6)
    assert torch.allclose(samples.t_ends, expected + 0.5, atol=1e-6)


def test_stratified_jitter_tiles_near_far_and_stays_in_strata(rng):
    rays = bundle()
    samples = stratified_samples(rays, 8, rng)
    assert torch.allclose(samples.t_starts[..., 0:1], rays.near) and torch.allclose(samples.t_ends[..., -1:], rays.far)
    assert torch.equal(samples.t_starts[..., 1:], samples.t_ends[..., :-1])  # contiguous
    assert (samples.t_ends > samples.t_starts).all()
    bin_width = (rays.far - rays.near) / 8
    edges = samples.t_starts[..., 1:]
    regular = rays.near + bin_width * torch.arange(1.0, 8.0)
    assert ((edges - regular).abs() <= bin_width / 2 + 1e-6).all()
    assert not torch.allclose(edges, regular)  # it really jittered


def test_stratified_is_reproducible_from_the_seed():
    rays = bundle()
    a = stratified_samples(rays, 8, torch.Generator().manual_seed(5)).t_starts
    b = stratified_samples(rays, 8, torch.Generator().manual_seed(5)).t_starts
    c = stratified_samples(rays, 8, torch.Generator().manual_seed(6)).t_starts
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_sample_points_are_interval_midpoints():
    rays = bundle()
    samples = stratified_samples(rays, 4)
    points = sample_points(rays, samples)
    mids = 0.5 * (samples.t_starts + samples.t_ends)
    assert torch.allclose(points, rays.origins[:, :, None] + rays.directions[:, :, None] * mids[..., None])


def test_blur_weights_matches_the_formula():
    w = torch.tensor([[[0.0, 1.0, 0.0, 0.0]]])
    assert torch.allclose(blur_weights(w, 0.0), torch.tensor([[[0.5, 1.0, 0.5, 0.0]]]))


def test_importance_samples_concentrate_where_the_weights_are(rng):
    rays = RayBundle(torch.zeros(1, 2, 3), torch.tensor([0.0, 0.0, 1.0]).expand(1, 2, 3), torch.zeros(1, 2, 1),
                     torch.ones(1, 2, 1))
    coarse = stratified_samples(rays, 16)
    weights = torch.zeros(1, 2, 16)
    weights[0, 0, 5] = 1.0
    weights[0, 1, 12] = 1.0
    for gen in (None, rng):
        fine = importance_samples(coarse, weights, 64, gen)
        assert fine.shape == (1, 2, 64)
        assert (fine[..., 1:] >= fine[..., :-1]).all()  # sorted
        # Blurred mass: bins 4 and 6 get half the weight of bin 5, plus a 0.01 floor everywhere.
        near_peak = ((fine[0, 0] >= 4 / 16) & (fine[0, 0] <= 7 / 16)).float().mean()
        assert near_peak > 0.85
        assert ((fine[0, 1] >= 11 / 16) & (fine[0, 1] <= 14 / 16)).float().mean() > 0.85
        assert not fine.requires_grad


def test_merge_sorts_points_and_tiles_the_ray(rng):
    rays = bundle()
    coarse = stratified_samples(rays, 6, rng)
    fine = torch.sort(rays.near + torch.rand(2, 3, 5, generator=rng) * 2.0, dim=-1).values
    merged, order = merge_samples(coarse, fine)
    assert merged.num_samples == 11
    everything = torch.cat([coarse.positions, fine], dim=-1)
    assert torch.equal(everything.gather(-1, order), merged.positions)
    assert (merged.positions[..., 1:] >= merged.positions[..., :-1]).all()
    assert torch.equal(merged.t_starts[..., 1:], merged.t_ends[..., :-1])
    assert torch.allclose(merged.t_starts[..., :1], rays.near) and torch.allclose(merged.t_ends[..., -1:], rays.far)
    assert ((merged.positions >= merged.t_starts) & (merged.positions <= merged.t_ends)).all()


def test_num_valid_counts_masked_samples():
    t = torch.zeros(1, 2, 3)
    mask = torch.tensor([[[True, False, False], [True, True, False]]])
    assert RaySamples(t, t, mask=mask).num_valid == 3 and RaySamples(t, t).num_valid == 6

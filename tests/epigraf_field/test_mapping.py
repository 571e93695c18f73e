"""Mapping network: shapes, conditioning, w_avg tracking and truncation."""

import pytest
import torch

from epigraf_field.mapping import MappingNetwork, normalize_2nd_moment


def test_normalize_2nd_moment(rng):
    x = torch.randn(3, 8, generator=rng) * 5
    assert torch.allclose(normalize_2nd_moment(x).square().mean(dim=1), torch.ones(3), atol=1e-5)


def test_shapes_and_broadcast(rng):
    mapping = MappingNetwork(z_dim=8, c_dim=0, w_dim=12, num_ws=5, num_layers=2)
    ws = mapping(torch.randn(3, 8, generator=rng))
    assert ws.shape == (3, 5, 12)
    assert torch.equal(ws[:, 0], ws[:, 4])


def test_conditioning_changes_w_and_is_required(rng):
    mapping = MappingNetwork(z_dim=8, c_dim=25, w_dim=12, num_ws=2, num_layers=2)
    z = torch.randn(2, 8, generator=rng)
    c1, c2 = torch.randn(2, 2, 25, generator=rng)
    assert not torch.allclose(mapping(z, c1), mapping(z, c2))
    with pytest.raises(ValueError, match="c must have shape"):
        mapping(z)


def test_forward_never_moves_w_avg_even_in_train_mode(rng):
    mapping = MappingNetwork(z_dim=8, c_dim=0, w_dim=12, num_ws=2, num_layers=2, w_avg_beta=0.5).train()
    mapping.w_avg.copy_(torch.randn(12, generator=rng))
    before = mapping.w_avg.clone()
    z = torch.randn(4, 8, generator=rng)
    mapping(z)
    mapping(z, truncation_psi=0.7)
    mapping(z).sum().backward()
    assert torch.equal(mapping.w_avg, before)


def test_track_w_avg_lerps_towards_the_given_mean(rng):
    mapping = MappingNetwork(z_dim=8, c_dim=0, w_dim=3, num_ws=2, num_layers=2)
    mapping.track_w_avg(torch.tensor([1.0, -2.0, 4.0]), beta=0.75)
    assert torch.allclose(mapping.w_avg, torch.tensor([0.25, -0.5, 1.0]))  # 0.75 * 0 + 0.25 * mean
    mapping.track_w_avg(torch.tensor([1.0, -2.0, 4.0]), beta=0.5)
    assert torch.allclose(mapping.w_avg, torch.tensor([0.625, -1.25, 2.5]))  # 0.5 * old + 0.5 * mean
    assert "w_avg" in mapping.state_dict(), "w_avg is saved with the weights, so resume stays exact"
    with pytest.raises(ValueError, match="mean w of shape"):
        mapping.track_w_avg(torch.zeros(4), beta=0.5)


def test_truncation(rng):
    mapping = MappingNetwork(z_dim=8, c_dim=0, w_dim=12, num_ws=4, num_layers=2)
    z = torch.randn(3, 8, generator=rng)
    mapping.w_avg.copy_(torch.randn(12, generator=rng))
    ws = mapping(z)
    assert torch.equal(mapping(z, truncation_psi=1.0), ws)
    assert torch.allclose(mapping(z, truncation_psi=0.0), mapping.w_avg.expand(3, 4, 12), atol=1e-6)
    half = mapping(z, truncation_psi=0.5, truncation_cutoff=2)
    assert torch.allclose(half[:, :2], 0.5 * (ws[:, :2] + mapping.w_avg), atol=1e-6)
    assert torch.equal(half[:, 2:], ws[:, 2:])


def test_gradients_reach_every_layer(rng):
    mapping = MappingNetwork(z_dim=8, c_dim=3, w_dim=12, num_ws=2, num_layers=3)
    mapping(torch.randn(2, 8, generator=rng), torch.randn(2, 3, generator=rng)).sum().backward()
    for name, param in mapping.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, name

"""Tests of the GAN losses, R1 and the lazy-regularization settings."""

import math

import pytest
import torch

from pipelines.gan.losses import (
    AdamConfig,
    discriminator_fake_loss,
    discriminator_real_loss,
    generator_loss,
    is_regularization_step,
    lazy_regularization_adam_params,
    r1_loss,
    r1_penalty,
)


def test_non_saturating_losses_on_hand_values():
    logits = torch.tensor([-2.0, 0.0, 3.0])
    softplus = lambda x: math.log1p(math.exp(x))
    assert torch.allclose(generator_loss(logits), torch.tensor([softplus(2.0), math.log(2.0), softplus(-3.0)]))
    assert torch.allclose(discriminator_real_loss(logits), torch.tensor([softplus(2.0), math.log(2.0), softplus(-3.0)]))
    assert torch.allclose(discriminator_fake_loss(logits), torch.tensor([softplus(-2.0), math.log(2.0), softplus(3.0)]))
    # -log sigmoid form.
    assert torch.allclose(discriminator_real_loss(logits), -torch.log(torch.sigmoid(logits)))
    # Stable for large logits (no inf).
    assert torch.isfinite(generator_loss(torch.tensor([-1e4]))).all()


def test_r1_of_linear_discriminator_is_squared_weight_norm():
    gen = torch.Generator().manual_seed(0)
    weight = torch.randn(3, 4, 4, generator=gen, dtype=torch.float64)
    x = torch.randn(5, 3, 4, 4, generator=gen, dtype=torch.float64).requires_grad_(True)
    logits = (x * weight).flatten(1).sum(1, keepdim=True) + 0.3
    penalty = r1_penalty(logits, x)
    assert penalty.shape == (5,)
    assert torch.allclose(penalty, weight.square().sum().expand(5))


def test_r1_is_differentiable_to_the_weights():
    w = torch.tensor([1.0, -2.0], requires_grad=True)
    x = torch.randn(3, 2, generator=torch.Generator().manual_seed(1)).requires_grad_(True)
    logits = (x * w).sum(1) ** 1
    penalty = r1_penalty(logits, x)
    penalty.sum().backward()
    # d/dw of 3 * ||w||^2 = 6 w
    assert torch.allclose(w.grad, 6 * w.detach())


def test_r1_requires_grad_input():
    x = torch.randn(2, 3)
    with pytest.raises(ValueError, match="requires_grad"):
        r1_penalty(x.sum(1), x)


def test_r1_loss_weighting():
    penalty = torch.tensor([2.0, 4.0])
    assert torch.allclose(r1_loss(penalty, gamma=0.1), torch.tensor([0.1, 0.2]))
    assert torch.allclose(r1_loss(penalty, gamma=0.1, interval=16), torch.tensor([1.6, 3.2]))


def test_lazy_regularization_adam_compensation():
    lr, (b1, b2) = lazy_regularization_adam_params(0.002, (0.0, 0.99), 16)
    c = 16 / 17
    assert lr == pytest.approx(0.002 * c)
    assert b1 == 0.0 and b2 == pytest.approx(0.99**c)
    assert lazy_regularization_adam_params(0.002, (0.5, 0.99), 1) == (0.002, (0.5, 0.99))
    assert lazy_regularization_adam_params(0.002, (0.5, 0.99), 0) == (0.002, (0.5, 0.99))


def test_adam_config_builds_compensated_optimizer():
    opt = AdamConfig.epigraf_discriminator().build([torch.nn.Parameter(torch.zeros(2))])
    group = opt.param_groups[0]
    assert group["lr"] == pytest.approx(0.002 * 16 / 17)
    assert group["betas"][1] == pytest.approx(0.99 ** (16 / 17))
    g = AdamConfig.epigraf_generator().build([torch.nn.Parameter(torch.zeros(2))])
    assert g.param_groups[0]["lr"] == pytest.approx(0.0025)
    assert g.param_groups[0]["betas"] == (0.0, 0.99)


def test_a_regularizer_fused_into_the_main_step_takes_no_compensation():
    opt = AdamConfig.epigraf_discriminator().build([torch.nn.Parameter(torch.zeros(2))],
                                                   separate_regularization_step=False)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.002)
    assert opt.param_groups[0]["betas"] == (0.0, 0.99)


def test_regularization_step_schedule():
    assert [is_regularization_step(s, 4) for s in range(6)] == [True, False, False, False, True, False]
    assert not any(is_regularization_step(s, 0) for s in range(5))

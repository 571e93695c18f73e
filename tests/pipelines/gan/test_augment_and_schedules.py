"""Tests of the discriminator input blur and of the kimg schedules."""

import pytest
import torch

from pipelines.gan.augment import blur_images, blur_kernels, blur_sigma, patch_blur_sigma, random_xflip
from pipelines.gan.schedules import density_noise_std, ema_beta, linear_decay


def test_blur_sigma_schedule_endpoints():
    assert blur_sigma(0.0) == 10.0
    assert blur_sigma(100.0) == pytest.approx(5.0)
    assert blur_sigma(200.0) == 0.0
    assert blur_sigma(5000.0) == 0.0
    assert blur_sigma(50.0, start_sigma=4.0, fade_kimg=100.0) == pytest.approx(2.0)
    assert blur_sigma(10.0, fade_kimg=0.0) == 0.0


def test_patch_blur_sigma_follows_pixel_density():
    sig = patch_blur_sigma(10.0, torch.tensor([1.0, 0.5, 0.25]), 64, 256)
    assert torch.allclose(sig, torch.tensor([2.5, 5.0, 10.0]))


def test_blur_with_sigma_zero_is_identity():
    x = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    assert torch.equal(blur_images(x, 0.0), x)
    assert torch.equal(blur_images(x, torch.zeros(2)), x)
    assert torch.equal(blur_images(x, 0.3), x)  # radius floor(3 * 0.3) = 0


def test_blur_preserves_constant_interior_and_smooths():
    x = torch.ones(1, 1, 32, 32)
    y = blur_images(x, 2.0)
    assert y.shape == x.shape
    assert torch.allclose(y[..., 10:22, 10:22], torch.ones(12, 12), atol=1e-6)
    noise = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    assert blur_images(noise, 2.0).std() < 0.5 * noise.std()


def test_blur_kernel_shape_is_stylegan3s():
    k = blur_kernels(torch.tensor([1.0]))[0]
    expected = torch.exp2(-torch.arange(-3.0, 4.0).square())
    assert torch.allclose(k, expected / expected.sum())


def test_per_item_sigma_matches_scalar_calls():
    x = torch.randn(3, 3, 16, 16, generator=torch.Generator().manual_seed(2))
    sig = torch.tensor([0.0, 1.0, 2.5])
    y = blur_images(x, sig)
    for i in range(3):
        assert torch.allclose(y[i : i + 1], blur_images(x[i : i + 1], float(sig[i])), atol=1e-6)


def test_blur_rejects_wrong_sigma_count():
    with pytest.raises(ValueError, match="one per image"):
        blur_images(torch.zeros(2, 3, 8, 8), torch.ones(3))


def test_random_xflip_is_seeded_and_flips():
    x = torch.arange(8.0).view(1, 1, 2, 4).expand(6, 1, 2, 4)
    y1, f1 = random_xflip(x, torch.Generator().manual_seed(0))
    y2, f2 = random_xflip(x, torch.Generator().manual_seed(0))
    assert torch.equal(y1, y2) and torch.equal(f1, f2)
    assert torch.equal(y1[f1], x[f1].flip(3)) and torch.equal(y1[~f1], x[~f1])


def test_density_noise_schedule_endpoints():
    assert density_noise_std(0.0) == 1.0
    assert density_noise_std(2500.0) == pytest.approx(0.5)
    assert density_noise_std(5000.0) == 0.0
    assert density_noise_std(9000.0) == 0.0
    assert linear_decay(-1.0, 3.0, 10.0) == 3.0


def test_ema_beta_endpoints_and_rampup():
    batch = 32
    # After ramp-up the half-life is 10 kimg for batch 32.
    assert ema_beta(batch, cur_nimg=10**7) == pytest.approx(0.5 ** (batch / 10000.0))
    # At the start the ramp-up limits the half-life to 5% of the images seen.
    assert ema_beta(batch, cur_nimg=64000) == pytest.approx(0.5 ** (batch / 3200.0))
    # At image 0 the EMA copies the weights (beta 0).
    assert ema_beta(batch, cur_nimg=0) == 0.0
    assert ema_beta(batch, cur_nimg=10**7, rampup=None) == ema_beta(batch, cur_nimg=10**7)
    assert ema_beta(64, cur_nimg=10**8, ema_kimg=20.0) == pytest.approx(0.5 ** (64 / 20000.0))


def test_pose_swap_probability_fades_from_always_to_its_final_value():
    from pipelines.gan.schedules import pose_swap_probability

    assert pose_swap_probability(0.0, 0.5, 1000.0) == 1.0
    assert pose_swap_probability(500.0, 0.5, 1000.0) == pytest.approx(0.75)
    assert pose_swap_probability(1000.0, 0.5, 1000.0) == pose_swap_probability(5000.0, 0.5, 1000.0) == 0.5
    assert pose_swap_probability(0.0, 0.5, 0.0) == 0.5

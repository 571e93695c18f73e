"""Sliced Wasserstein distance: Laplacian pyramid, known answers, growth with a distribution shift."""

import pytest
import torch
import torch.nn.functional as F

from pipelines.evaluation.swd import (
    SWDConfig,
    laplacian_pyramid,
    pyramid_up,
    sliced_wasserstein,
    sliced_wasserstein_distance,
)

SMALL = SWDConfig(patches_per_image=16, directions=32, repeats=2)


def smooth_images(count: int, seed: int, resolution: int = 32) -> torch.Tensor:
    """Images with structure at several scales: upsampled random fields through tanh."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.randn(count, 3, 8, 8, generator=g)
    return torch.tanh(F.interpolate(coarse, size=resolution, mode="bicubic", align_corners=False))


def test_pyramid_reconstructs_the_image():
    images = smooth_images(2, 0)
    levels = laplacian_pyramid(images, 2)
    assert [tuple(l.shape[-2:]) for l in levels] == [(32, 32), (16, 16)]
    torch.testing.assert_close(levels[0] + pyramid_up(levels[1]), images)


def test_one_dimensional_wasserstein_matches_the_closed_form(rng):
    a = torch.randn(1000, 1, generator=rng)
    # Along the only direction (+-1), W1 of a set and the set shifted by 0.7 is 0.7.
    assert sliced_wasserstein(a, a + 0.7, rng, directions=4, repeats=2) == pytest.approx(0.7, abs=1e-5)


def test_a_set_against_itself_is_zero(rng):
    images = smooth_images(8, 1)
    result = sliced_wasserstein_distance(images, images, rng, SMALL)
    assert set(result) == {"swd", "swd_32", "swd_16"}
    assert result["swd"] == pytest.approx(0.0, abs=1e-6)


def test_distance_grows_with_the_shift():
    images = smooth_images(8, 2)
    noise = torch.randn(images.shape, generator=torch.Generator().manual_seed(3))
    values = [
        sliced_wasserstein_distance(images, images + s * noise, torch.Generator().manual_seed(4), SMALL)["swd"]
        for s in (0.0, 0.1, 0.4, 1.5)
    ]
    assert values[0] == pytest.approx(0.0, abs=1e-6)
    assert values[1] < values[2] < values[3], values


def test_rejects_sizes_off_the_pyramid(rng):
    with pytest.raises(ValueError, match="min_resolution"):
        sliced_wasserstein_distance(torch.zeros(2, 3, 24, 24), torch.zeros(2, 3, 24, 24), rng, SMALL)

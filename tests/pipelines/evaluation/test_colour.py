"""Hue spread inside objects: one flat colour scores ~0 whatever its shading, hue gradients score high."""

from __future__ import annotations

import math

import pytest
import torch

from pipelines.evaluation.colour import hue_and_saturation, hue_spread, median_hue_spread, real_object_mask


def _disc_mask(size: int = 32) -> torch.Tensor:
    y, x = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    return ((x - size / 2) ** 2 + (y - size / 2) ** 2 < (size / 3) ** 2)[None]


def _hsv_image(hue: torch.Tensor, value: torch.Tensor, saturation: float = 0.8) -> torch.Tensor:
    """An RGB image [1, 3, h, w] from per-pixel hue (radians) and value, on white outside the disc."""
    sector = (hue / (math.pi / 3)) % 6
    k = lambda n: (n + sector) % 6  # noqa: E731
    channel = lambda n: value * (1 - saturation * torch.clamp(torch.minimum(k(n), 4 - k(n)), 0, 1))  # noqa: E731
    rgb = torch.stack([channel(5), channel(3), channel(1)])[None]
    return torch.where(_disc_mask(hue.shape[-1])[:, None], rgb, torch.ones_like(rgb))


def test_primary_colours_have_their_textbook_hues():
    images = torch.tensor([[1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0]])[:, :, None, None]
    hue, saturation = hue_and_saturation(images)
    assert torch.allclose(hue.flatten(), torch.tensor([0.0, 2 * math.pi / 3, 4 * math.pi / 3]), atol=1e-5)
    assert torch.allclose(saturation.flatten(), torch.ones(3))


def test_a_flat_colour_under_shading_has_no_spread_and_the_white_background_is_not_the_object():
    size = 32
    shading = torch.linspace(0.3, 1.0, size)[None, :].expand(size, size)  # dark to light across the object
    image = _hsv_image(torch.full((size, size), 2.0), shading)
    mask = real_object_mask(image)
    assert torch.equal(mask, _disc_mask(size))
    assert hue_spread(image, mask).item() < 1e-3


def test_a_hue_sweep_spreads_and_two_halves_match_the_closed_form():
    size = 32
    sweep = torch.linspace(0, 5.0, size)[None, :].expand(size, size)
    assert hue_spread(_hsv_image(sweep, torch.ones(size, size)), _disc_mask(size)).item() > 0.5
    halves = torch.where(torch.arange(size)[None, :] < size // 2, 0.0, 2 * math.pi / 3).expand(size, size)
    image = _hsv_image(halves, torch.ones(size, size))
    mask = _disc_mask(size)
    hue, _ = hue_and_saturation(image)
    share = (hue[mask] < 1).float().mean()  # the disc's halves are not exactly equal in pixels
    length = torch.sqrt((share + (1 - share) * math.cos(2 * math.pi / 3)) ** 2
                        + ((1 - share) * math.sin(2 * math.pi / 3)) ** 2)
    assert abs(hue_spread(image, mask).item() - math.sqrt(-2 * math.log(length))) < 1e-4


def test_grey_or_tiny_objects_have_no_spread_and_the_median_skips_them():
    size = 32
    grey = torch.full((1, 3, size, size), 0.5)
    coloured = _hsv_image(torch.full((size, size), 1.0), torch.ones(size, size))
    spreads = hue_spread(torch.cat([grey, coloured]), torch.cat([_disc_mask(size), _disc_mask(size)]))
    assert spreads[0].isnan() and spreads[1] < 1e-3
    tiny = torch.zeros(1, size, size, dtype=torch.bool)
    tiny[0, 0, :5] = True
    assert hue_spread(coloured, tiny)[0].isnan()
    assert median_hue_spread(torch.cat([grey, coloured]), torch.cat([_disc_mask(size)] * 2)) < 1e-3


def test_rotating_hue_turns_red_into_green_and_keeps_greys_and_shading():
    from pipelines.evaluation.colour import rotate_hue

    images = torch.tensor([[1.0, 0, 0], [0.3, 0.3, 0.3]])[:, :, None, None]
    turned = rotate_hue(images, torch.full((2, 1, 1, 1), 2 * math.pi / 3))
    assert torch.allclose(turned[0].flatten(), torch.tensor([0.0, 1.0, 0.0]), atol=1e-5)
    assert torch.allclose(turned[1], images[1], atol=1e-6)
    size = 32
    shaded = _hsv_image(torch.full((size, size), 0.5), torch.linspace(0.4, 1.0, size)[None, :].expand(size, size))
    mask = _disc_mask(size)
    swept = rotate_hue(shaded, torch.linspace(0, 3.0, size)[None, None, None, :].expand(1, 1, size, size))
    assert hue_spread(shaded, mask).item() < 1e-3 < 0.5 < hue_spread(swept, mask).item()


def test_mean_hue_is_the_circular_mean_and_wraps_around_red():
    from pipelines.evaluation.colour import mean_hue

    size = 32
    mask = _disc_mask(size)
    left = torch.arange(size)[None, :] < size // 2
    red_yellow = _hsv_image(torch.where(left, 0.0, math.pi / 3).expand(size, size), torch.ones(size, size))
    # Either side of red (hues -0.4 and +0.4): the circular mean is red, an arithmetic one would be cyan.
    around_red = _hsv_image(torch.where(left, 2 * math.pi - 0.4, 0.4).expand(size, size), torch.ones(size, size))
    grey = torch.full((1, 3, size, size), 0.5)
    hues = mean_hue(torch.cat([red_yellow, around_red, grey]), torch.cat([mask] * 3))
    hue, _ = hue_and_saturation(red_yellow)
    share = (hue[mask] < 0.5).float().mean()  # the disc's halves differ by a few pixels
    expected = math.atan2((1 - share) * math.sin(math.pi / 3), share + (1 - share) * math.cos(math.pi / 3))
    assert abs(hues[0].item() - expected) < 1e-4 and abs(hues[0].item() - math.pi / 6) < 0.1
    assert abs(hues[1].item()) < 0.05
    assert hues[2].isnan()


def test_hue_variety_is_zero_for_a_collapsed_class_and_high_for_a_class_in_every_hue():
    from pipelines.evaluation.colour import hue_variety, mean_hue

    size = 32
    ones = torch.ones(size, size)
    # Class 0: eight flat objects around the colour wheel; class 1: four objects all of hue 2 (a collapse).
    wheel = [_hsv_image(torch.full((size, size), 2 * math.pi * k / 8), ones) for k in range(8)]
    collapsed = [_hsv_image(torch.full((size, size), 2.0), ones * (0.5 + 0.1 * k)) for k in range(4)]
    images = torch.cat(wheel + collapsed)
    hues = mean_hue(images, real_object_mask(images))
    classes = torch.tensor([0] * 8 + [1] * 4)
    assert hue_variety(hues[8:], classes[8:]) < 1e-3  # shading does not make variety
    assert hue_variety(hues[:8], classes[:8]) > 0.99  # evenly around the wheel: circular variance 1
    assert abs(hue_variety(hues, classes) - 0.5) < 0.01  # the two classes count alike
    # Classes are kept apart: the same hues pooled as one class vary, split by class they do not.
    pair = torch.tensor([0.5, 0.5, 3.5, 3.5])
    assert hue_variety(pair, torch.zeros(4, dtype=torch.long)) > 0.9
    assert hue_variety(pair, torch.tensor([0, 0, 1, 1])) < 1e-6


def test_hue_variety_skips_unknown_hues_and_lone_objects_and_checks_its_input():
    from pipelines.evaluation.colour import hue_variety

    nan = float("nan")
    # Class 1 has one known hue (its other object is grey): it has no variety to measure and is left out.
    assert abs(hue_variety(torch.tensor([0.0, math.pi, 1.0, nan]), torch.tensor([0, 0, 1, 1])) - 1.0) < 1e-6
    assert math.isnan(hue_variety(torch.tensor([0.3, nan]), torch.tensor([0, 0])))
    with pytest.raises(ValueError, match="one class per object"):
        hue_variety(torch.zeros(3), torch.zeros(2, dtype=torch.long))


def test_hue_change_across_views_sees_a_colour_wheel_painted_around_an_object():
    from pipelines.evaluation.colour import hue_change_across_views, mean_hue

    size, views = 32, 8
    ones = torch.ones(size, size)
    # Object A turns its hue with the camera (each side another colour); object B keeps one hue, its shading
    # changing from side to side.
    wheel = torch.cat([_hsv_image(torch.full((size, size), 2 * math.pi * v / views), ones) for v in range(views)])
    flat = torch.cat([_hsv_image(torch.full((size, size), 4.0), ones * (0.4 + 0.07 * v)) for v in range(views)])
    images = torch.cat([wheel, flat])
    view_hues = mean_hue(images, real_object_mask(images)).reshape(2, views)
    assert hue_change_across_views(view_hues[1:]) < 1e-3
    assert hue_change_across_views(view_hues[:1]) > 0.99
    assert abs(hue_change_across_views(view_hues) - 0.5) < 0.01
    # A half turn of hue over the views (0 .. pi) changes less than a whole one.
    half = torch.linspace(0, math.pi, views)[None]
    assert 0.3 < hue_change_across_views(half) < 0.9


def test_hue_change_across_views_skips_grey_views_and_checks_its_input():
    from pipelines.evaluation.colour import hue_change_across_views

    nan = float("nan")
    # The second object has one coloured view: nothing to compare, so it is left out.
    assert abs(hue_change_across_views(torch.tensor([[0.0, math.pi, nan], [1.0, nan, nan]])) - 1.0) < 1e-6
    assert math.isnan(hue_change_across_views(torch.tensor([[nan, 2.0]])))
    with pytest.raises(ValueError, match=r"\[objects, views\]"):
        hue_change_across_views(torch.zeros(4))

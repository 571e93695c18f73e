"""Adaptive discriminator augmentation: identity at p = 0, each transform fires and inverts, gradients, p's rule."""

import json
import math

import pytest
import torch

import pipelines.gan.ada as ada
from epigraf_field.config_io import config_from_dict, config_to_dict
from pipelines.engine.distributed import DistributedContext
from pipelines.gan.ada import (
    COLOUR_TRANSFORMS,
    GEOMETRIC_TRANSFORMS,
    AdaptiveAugment,
    AugmentConfig,
    ada_adjustment,
    apply_colour_matrix,
    augment_images,
    hue_rotate_3d,
    luma_flip_3d,
    resample_images,
    rotate90_2d,
    sample_colour,
    sample_geometric,
    saturate_3d,
    scale_2d,
    scale_3d,
    translate_2d,
    translate_3d,
)

ALL = GEOMETRIC_TRANSFORMS + COLOUR_TRANSFORMS


def _images(b=4, c=3, size=16, seed=0):
    return torch.rand(b, c, size, size, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def _changed(a, b):
    """Bool [b]: which images differ."""
    return (a != b).flatten(1).any(dim=1)


def _is_identity(matrix):
    return (matrix == torch.eye(matrix.shape[-1])).flatten(1).all(dim=1)


# ----------------------------------------------------------------------------------------- p = 0
def test_p_zero_is_the_identity_exactly(rng):
    x = _images()
    assert augment_images(x, ALL, 0.0, rng) is x
    # The sampled matrices are identities too, and applying them passes every image through bit for bit.
    geometric, colour = sample_geometric(ALL, 0.0, 4, 16, 16, rng), sample_colour(ALL, 0.0, 4, rng)
    assert _is_identity(geometric).all() and _is_identity(colour).all()
    assert torch.equal(apply_colour_matrix(resample_images(x, geometric), colour), x)
    assert AdaptiveAugment(AugmentConfig(mode="ada", p=0.0), batch_size=4)(x, rng) is x


def test_mode_none_never_augments(rng):
    x = _images()
    augment = AdaptiveAugment(AugmentConfig(mode="none", p=0.7), batch_size=4)
    assert augment.p == 0.0 and augment(x, rng) is x
    state = rng.get_state()
    augment(x, rng)
    assert torch.equal(rng.get_state(), state)  # no draws either


# ------------------------------------------------------------------------------------- each transform
@pytest.mark.parametrize("transform", ALL)
def test_each_transform_fires_alone_at_p_one(transform, rng):
    """At p = 1 the transform draws its parameter for every image; images change unless the draw was neutral
    (x-flip and luma flip: half the time; a quarter turn of 0; an integer shift that rounds to 0)."""
    x = _images(b=64)
    y = augment_images(x, (transform,), 1.0, rng)
    at_least = {"xflip": 0.3, "lumaflip": 0.3, "rotate90": 0.6, "xint": 0.8}.get(transform, 1.0)
    assert _changed(x, y).float().mean() >= at_least
    assert torch.isfinite(y).all()
    # And at p = 0.3 about 30% of the images are touched (4000 draws of the matrices alone).
    many = 4000
    if transform in GEOMETRIC_TRANSFORMS:
        fired = ~_is_identity(sample_geometric((transform,), 0.3, many, 16, 16, rng))
    else:
        fired = ~_is_identity(sample_colour((transform,), 0.3, many, rng))
    neutral = {"xflip": 0.5, "lumaflip": 0.5, "rotate90": 0.25, "xint": 1 / 16}.get(transform, 0.0)
    assert fired.float().mean().item() == pytest.approx(0.3 * (1 - neutral), abs=0.03)


def test_geometric_transforms_have_their_documented_forms(rng):
    b = 256
    xflip = sample_geometric(("xflip",), 1.0, b, 16, 16, rng)
    assert set(xflip[:, 0, 0].tolist()) == {-1.0, 1.0} and _is_identity(xflip[:, 1:, 1:]).all()
    rot = sample_geometric(("rotate90",), 1.0, b, 16, 16, rng)
    assert set(rot[:, :2, :2].flatten().tolist()) <= {-1.0, 0.0, 1.0}
    shift = sample_geometric(("xint",), 1.0, b, 16, 16, rng)[:, :2, 2]
    assert torch.equal(shift, shift.round()) and shift.abs().max() <= 2  # 0.125 of 16 pixels
    scale = sample_geometric(("scale",), 1.0, b, 16, 16, rng)
    assert torch.allclose(scale[:, 0, 0], scale[:, 1, 1]) and (scale[:, 0, 0] > 0).all()
    assert scale[:, 0, 0].log().std().item() == pytest.approx(0.2 * math.log(2), rel=0.2)
    aniso = sample_geometric(("aniso",), 1.0, b, 16, 16, rng)
    assert torch.allclose(aniso[:, 0, 0] * aniso[:, 1, 1], torch.ones(b))
    rotate = sample_geometric(("rotate",), 1.0, b, 16, 16, rng)[:, :2, :2]
    assert torch.allclose(rotate @ rotate.transpose(1, 2), torch.eye(2).expand(b, 2, 2), atol=1e-6)
    assert torch.allclose(torch.linalg.det(rotate), torch.ones(b), atol=1e-5)
    xfrac = sample_geometric(("xfrac",), 1.0, b, 16, 16, rng)[:, :2, 2]
    assert xfrac.std().item() == pytest.approx(0.125 * 16, rel=0.2)


def test_rotation_fires_with_probability_p_overall(rng):
    """Two rotations each of probability 1 - sqrt(1 - p): some rotation with probability p."""
    rotated = ~_is_identity(sample_geometric(("rotate",), 0.5, 4000, 16, 16, rng))
    assert rotated.float().mean().item() == pytest.approx(0.5, abs=0.03)


# ------------------------------------------------------------------------------------------ inverses
def test_xflip_twice_is_the_identity_and_is_a_mirror():
    x = _images()
    flip = scale_2d(-torch.ones(4), torch.ones(4))
    once = resample_images(x, flip)
    assert torch.allclose(once, x.flip(3), atol=1e-5)
    assert torch.allclose(resample_images(once, flip), x, atol=1e-5)


def test_quarter_turn_four_times_is_the_identity():
    x = _images()
    quarter = rotate90_2d(torch.ones(4, dtype=torch.long))
    assert torch.allclose(resample_images(x, quarter), torch.rot90(x, -1, dims=(2, 3)), atol=1e-5)
    y = x
    for _ in range(4):
        y = resample_images(y, quarter)
    assert torch.allclose(y, x, atol=1e-5)


def test_integer_translation_moves_content_and_its_inverse_restores_the_interior():
    x = _images()
    tx, ty = torch.tensor([2.0, -1.0, 0.0, 3.0]), torch.tensor([1.0, 2.0, -2.0, 0.0])
    moved = resample_images(x, translate_2d(tx, ty))
    assert torch.allclose(moved[0, :, 1:, 2:], x[0, :, :-1, :-2], atol=1e-5)  # content at x goes to x + t
    back = resample_images(moved, translate_2d(-tx, -ty))
    assert torch.allclose(back[..., 3:-3, 3:-3], x[..., 3:-3, 3:-3], atol=1e-5)


def test_colour_matrices_invert():
    x = _images(b=3)
    b = torch.tensor([0.1, -0.3, 0.25])
    assert torch.allclose(apply_colour_matrix(x, translate_3d(b)), x + b[:, None, None, None])
    assert torch.allclose(apply_colour_matrix(apply_colour_matrix(x, translate_3d(b)), translate_3d(-b)), x, atol=1e-6)
    c = torch.tensor([0.5, 1.5, 2.0])
    assert torch.allclose(apply_colour_matrix(apply_colour_matrix(x, scale_3d(c)), scale_3d(1 / c)), x, atol=1e-6)
    flip = torch.ones(3)
    assert torch.allclose(apply_colour_matrix(apply_colour_matrix(x, luma_flip_3d(flip)), luma_flip_3d(flip)), x,
                          atol=1e-6)
    theta = torch.tensor([0.4, -2.0, 3.0])
    assert torch.allclose(apply_colour_matrix(apply_colour_matrix(x, hue_rotate_3d(theta)), hue_rotate_3d(-theta)),
                          x, atol=1e-5)
    s = torch.tensor([0.25, 2.0, 0.7])
    assert torch.allclose(apply_colour_matrix(apply_colour_matrix(x, saturate_3d(s)), saturate_3d(1 / s)), x,
                          atol=1e-5)


def test_colour_transforms_act_on_luma_and_chroma_as_described():
    x = _images(b=3)
    luma, chroma = x.mean(dim=1, keepdim=True), x - x.mean(dim=1, keepdim=True)
    flipped = apply_colour_matrix(x, luma_flip_3d(torch.ones(3)))
    assert torch.allclose(flipped, chroma - luma, atol=1e-6)  # luma negated, chroma kept
    hue = apply_colour_matrix(x, hue_rotate_3d(torch.tensor([1.0, 2.0, -1.0])))
    assert torch.allclose(hue.mean(dim=1, keepdim=True), luma, atol=1e-6)
    hue_chroma = hue - hue.mean(dim=1, keepdim=True)
    assert torch.allclose(hue_chroma.norm(dim=1), chroma.norm(dim=1), atol=1e-5) and not torch.allclose(hue, x)
    saturated = apply_colour_matrix(x, saturate_3d(torch.full((3,), 2.0)))
    assert torch.allclose(saturated, luma + 2 * chroma, atol=1e-5)


def test_dual_images_get_one_colour_transform_per_rgb_triple(rng):
    x = _images(b=2)
    matrix = sample_colour(COLOUR_TRANSFORMS, 1.0, 2, rng)
    dual = apply_colour_matrix(torch.cat([x, x.flip(3)], dim=1), matrix)
    single = apply_colour_matrix(x, matrix)
    assert torch.allclose(dual[:, :3], single) and torch.allclose(dual[:, 3:], single.flip(3))
    with pytest.raises(ValueError, match="3k"):
        apply_colour_matrix(torch.zeros(2, 4, 8, 8), matrix)


# ----------------------------------------------------------------------------------------- gradients
def test_gradients_flow_through_the_augmentation_to_second_order(rng):
    """The generator learns through augmented fakes; R1 differentiates augmented reals twice."""
    x = _images().requires_grad_(True)
    weights = _images(seed=1)
    y = augment_images(x, ALL, 1.0, rng)
    (grad,) = torch.autograd.grad((y * weights).square().sum(), x, create_graph=True)
    assert grad.abs().sum() > 0
    (second,) = torch.autograd.grad(grad.square().sum(), x)
    assert torch.isfinite(second).all() and second.abs().sum() > 0


@pytest.mark.parametrize("transforms", [("hue",), ("rotate", "xfrac"), ALL])
def test_a_group_shares_one_draw(transforms, rng):
    """group_size 4: the images of each run of 4 consecutive ones move alike, so copies of one image stay copies
    inside a group, while the next group gets its own draw; the last group may be short."""
    one = _images(b=1, seed=3)
    x = one.expand(10, -1, -1, -1).contiguous()
    augment = AdaptiveAugment(AugmentConfig(mode="ada", p=1.0, target=None, transforms=transforms, group_size=4),
                              batch_size=10)
    y = augment(x, rng)
    for group in (y[0:4], y[4:8], y[8:10]):
        assert torch.equal(group, group[:1].expand_as(group))
    assert not torch.equal(y[0], y[4]) and not torch.equal(y[4], y[8])
    # Per image (the default), the copies part.
    per_image = AdaptiveAugment(AugmentConfig(mode="ada", p=1.0, target=None, transforms=transforms), batch_size=10)
    z = per_image(x, rng)
    assert not torch.equal(z[0], z[1])


def test_a_shared_hue_rotation_keeps_the_hue_differences_inside_a_group(rng):
    """What a shared draw is for: red and green stay a third of the colour wheel apart after the rotation."""
    from pipelines.evaluation.colour import hue_and_saturation

    red, green = torch.tensor([0.8, 0.1, 0.1]), torch.tensor([0.1, 0.8, 0.1])
    x = torch.stack([red, green, red, green]).view(4, 3, 1, 1).expand(4, 3, 4, 4) * 2 - 1
    y = augment_images(x, ("hue",), 1.0, rng, group_size=4)
    hue, _ = hue_and_saturation((y.clamp(-1, 1) + 1) / 2)
    gap = torch.remainder(hue[1, 0, 0] - hue[0, 0, 0], 2 * torch.pi)
    assert gap == pytest.approx(2 * torch.pi / 3, abs=0.15)
    assert not torch.allclose(y, x, atol=1e-3)  # the group did move


def test_sampling_uses_only_the_given_generator():
    torch.manual_seed(0)
    global_state = torch.random.get_rng_state()
    a = augment_images(_images(), ALL, 0.6, torch.Generator().manual_seed(5))
    b = augment_images(_images(), ALL, 0.6, torch.Generator().manual_seed(5))
    assert torch.equal(a, b) and torch.equal(torch.random.get_rng_state(), global_state)


# ---------------------------------------------------------------------------------------- adapting p
def test_adjustment_follows_the_formula():
    assert ada_adjustment(1.0, 0.6, 64, 4, 500.0) == pytest.approx(64 * 4 / 500_000)
    assert ada_adjustment(0.2, 0.6, 64, 4, 500.0) == pytest.approx(-64 * 4 / 500_000)
    assert ada_adjustment(0.6, 0.6, 64, 4, 500.0) == 0.0


def _augment(**options):
    return AdaptiveAugment(AugmentConfig(mode="ada", **options), batch_size=8)


def test_p_rises_when_the_discriminator_overfits_and_falls_otherwise():
    augment = _augment(p=0.3, ada_interval=4)
    for step in range(4):
        augment.accumulate(torch.full((8, 1), 2.0))  # every real logit positive: r_t = 1 > 0.6
        before = augment.p
        augment.step(step)
        assert augment.p == (before if step < 3 else pytest.approx(0.3 + 8 * 4 / 500_000))
    rose = augment.p
    for step in range(4, 8):
        augment.accumulate(torch.tensor([1.0, -1.0, -2.0, 3.0, -1.0, -1.0, 1.0, -1.0]))  # r_t = -0.25 < 0.6
        augment.step(step)
    assert augment.p == pytest.approx(rose - 8 * 4 / 500_000)
    assert augment.state_dict()["count"] == 0.0  # the statistic restarts after each adjustment


def test_p_is_clamped_to_the_unit_interval():
    low, high = _augment(p=0.0, ada_interval=1), _augment(p=1.0, ada_interval=1)
    low.accumulate(-torch.ones(8))
    high.accumulate(torch.ones(8))
    low.step(0), high.step(0)
    assert low.p == 0.0 and high.p == 1.0


def test_fixed_p_does_not_move():
    augment = _augment(p=0.6, target=None, ada_interval=1)
    augment.accumulate(torch.ones(8))
    augment.step(0)
    assert augment.p == 0.6


def test_the_sign_statistic_is_averaged_over_processes(monkeypatch):
    """Another rank whose reals are all negative outweighs this rank's positives: p falls."""
    other = torch.tensor([-16.0, 16.0], dtype=torch.float64)
    monkeypatch.setattr(ada, "all_reduce_mean", lambda tensor, context: (tensor + other) / 2)
    augment = AdaptiveAugment(AugmentConfig(mode="ada", p=0.5, ada_interval=1), batch_size=16,
                              context=DistributedContext(rank=0, world_size=2))
    assert augment.accumulate(torch.ones(8)) == 1.0
    augment.step(0)  # global r_t = (8 - 16) / 24 < 0.6
    assert augment.p == pytest.approx(0.5 - 16 / 500_000)


def test_state_dict_round_trip_is_exact():
    augment = _augment(p=0.25, ada_interval=4)
    augment.accumulate(torch.tensor([1.0, -1.0, 2.0]))
    state = json.loads(json.dumps(augment.state_dict()))  # plain numbers
    other = _augment()
    other.load_state_dict(state)
    assert other.state_dict() == augment.state_dict() and other.p == 0.25


def test_config_round_trips_through_json_and_rejects_bad_values():
    config = AugmentConfig(mode="ada", p=0.1, target=None, transforms=("xflip", "hue"))
    assert config_from_dict(AugmentConfig, json.loads(json.dumps(config_to_dict(config)))) == config
    for bad, flag in ((dict(p=1.5), "p"), (dict(target=-0.1), "target"), (dict(ada_kimg=0.0), "ada-kimg"),
                      (dict(ada_interval=0), "ada-interval"), (dict(group_size=0), "group-size")):
        with pytest.raises(ValueError, match=f"--model.augment.{flag}"):
            AdaptiveAugment(AugmentConfig(mode="ada", **bad), batch_size=8)

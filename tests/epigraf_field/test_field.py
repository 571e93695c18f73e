"""Tri-plane field: plane projection, sampling, out-of-box density, activations and noise."""

import math

import pytest
import torch
import torch.nn.functional as F

from epigraf_field.decoder import MLPDecoder
from epigraf_field.field import (
    TriPlaneField,
    TriPlaneFieldConfig,
    aggregate_plane_features,
    project_onto_planes,
    sample_planes,
)
from epigraf_field.generator import TriPlaneGenerator


R = 4


def texel_centre(index: int) -> float:
    """Normalized coordinate of texel ``index``'s centre (align_corners=False)."""
    return 2 * (index + 0.5) / R - 1


def test_projection_on_hand_checked_point():
    coords = project_onto_planes(torch.tensor([[[0.25, -0.5, 0.1]]]), box_half_size=0.5)
    expected = torch.tensor([[0.5, -1.0], [0.5, 0.2], [-1.0, 0.2]])
    assert torch.allclose(coords[0, :, 0], expected)


def test_each_plane_sees_its_own_constant():
    planes = torch.arange(1.0, 4.0).view(1, 3, 1, 1, 1).expand(1, 3, 2, R, R).contiguous()
    points = torch.rand(1, 5, 3, generator=torch.Generator().manual_seed(0)) * 0.7 - 0.35
    samples = sample_planes(planes, project_onto_planes(points, 0.5))
    feats = aggregate_plane_features(samples, "concat")
    assert torch.allclose(feats[0], torch.tensor([1.0, 1.0, 2.0, 2.0, 3.0, 3.0]).expand(5, 6))
    assert torch.allclose(aggregate_plane_features(samples, "mean"), torch.full((1, 5, 2), 2.0))
    assert torch.allclose(aggregate_plane_features(samples, "sum"), torch.full((1, 5, 2), 6.0))


@pytest.mark.parametrize(
    "plane, axes",
    [(0, (0, 1)), (1, (0, 2)), (2, (1, 2))],  # xy, xz, yz: (column axis, row axis)
)
def test_marker_texel_is_seen_by_the_right_points(plane, axes):
    row, col = 2, 1
    planes = torch.zeros(1, 3, 1, R, R)
    planes[0, plane, 0, row, col] = 1.0
    free_axis = ({0, 1, 2} - set(axes)).pop()
    points = torch.zeros(1, 4, 3)
    points[0, :, axes[0]] = texel_centre(col)
    points[0, :, axes[1]] = texel_centre(row)
    points[0, :, free_axis] = torch.tensor([-0.9, -0.3, 0.2, 0.8])  # anywhere along the free axis
    samples = sample_planes(planes, project_onto_planes(points, box_half_size=1.0))
    assert torch.allclose(samples[0, plane, 0], torch.ones(4))
    other = [p for p in range(3) if p != plane]
    assert torch.all(samples[0, other] == 0)
    # Swapping the two plane axes moves the point off the marker.
    swapped = points.clone()
    swapped[0, :, axes[0]], swapped[0, :, axes[1]] = points[0, :, axes[1]], points[0, :, axes[0]]
    assert torch.all(sample_planes(planes, project_onto_planes(swapped, 1.0))[0, plane, 0] == 0)


def constant_field(raw_density: float, density_shift: float = 0.0, num_features: int = 0, **kwargs):
    """A field whose decoder outputs constants: zero weights, chosen output bias."""
    config = TriPlaneFieldConfig(box_half_size=0.5, density_shift=density_shift, num_feature_channels=num_features)
    out = 1 + (num_features or 3)
    decoder = MLPDecoder(4, out, hidden_features=8, num_layers=2, backend="torch")
    with torch.no_grad():
        for layer in decoder.layers:
            layer.weight.zero_()
        decoder.layers[-1].bias.copy_(torch.cat([torch.tensor([raw_density]), torch.linspace(-2, 2, out - 1)]))
    planes = torch.randn(2, 3, 4, R, R, generator=torch.Generator().manual_seed(0))
    return TriPlaneField(planes, decoder, config, **kwargs)


def test_softplus_density_with_shift_and_zero_outside_the_box():
    field = constant_field(raw_density=0.3, density_shift=-1.0)
    inside = torch.tensor([[[0.0, 0.0, 0.0], [0.49, -0.49, 0.2]], [[0.5, 0.5, 0.5], [-0.1, 0.3, 0.0]]])
    outside = torch.tensor([[[0.51, 0.0, 0.0], [0.0, 0.0, -2.0]], [[0.0, 0.7, 0.0], [3.0, 3.0, 3.0]]])
    expected = F.softplus(torch.tensor(0.3 - 1.0))
    assert torch.allclose(field.density(inside), expected.expand(2, 2, 1))
    out = field(outside)
    assert torch.all(out.density == 0.0)
    assert out.density.shape == (2, 2, 1) and out.rgb.shape == (2, 2, 3) and out.features is None


def test_a_plane_margin_widens_the_planes_box_and_keeps_density_in_the_scene_box():
    planes = torch.randn(2, 3, 4, R, R, generator=torch.Generator().manual_seed(0))
    decoder = MLPDecoder(4, 4, hidden_features=8, num_layers=2, backend="torch")
    with torch.no_grad():
        decoder.layers[-1].bias[0] = 5.0  # density well above 0 wherever the planes are sampled
    wide = TriPlaneField(planes, decoder, TriPlaneFieldConfig(box_half_size=0.5))
    field = TriPlaneField(planes, decoder, TriPlaneFieldConfig(box_half_size=0.4, plane_margin=0.25))
    assert field.config.plane_half_size == 0.5
    inside = torch.tensor([[[0.0, 0.0, 0.0], [0.4, -0.4, 0.2]], [[-0.1, 0.3, 0.39], [0.2, 0.2, -0.399]]])
    margin = torch.tensor([[[0.0, 0.0, 0.41], [0.5, 0.0, 0.0]], [[0.1, -0.48, 0.1], [0.45, 0.45, 0.45]]])
    # The planes are sampled as a field spanning the wider box samples them; density stops at the scene box.
    assert torch.equal(field(inside).density, wide(inside).density)
    assert torch.equal(field(inside).rgb, wide(inside).rgb)
    assert (wide.density(margin) > 0).all() and torch.all(field.density(margin) == 0.0)
    assert torch.equal(field(margin).rgb, wide(margin).rgb)
    assert not torch.allclose(field(margin).rgb[0, 0], field(margin).rgb[0, 1])  # rgb depends on the planes


@pytest.mark.parametrize("margin", [-0.1, float("inf"), float("nan")])
def test_a_negative_or_infinite_plane_margin_is_refused(margin):
    with pytest.raises(ValueError, match="plane_margin must be >= 0"):
        TriPlaneFieldConfig(plane_margin=margin)


def test_rgb_is_widened_sigmoid_and_features_contain_rgb():
    field = constant_field(raw_density=0.0, num_features=5)
    out = field(torch.zeros(2, 3, 3))
    expected = torch.sigmoid(torch.linspace(-2, 2, 5)) * 1.002 - 0.001
    assert field.num_feature_channels == 5
    assert torch.allclose(out.features[0, 0], expected)
    assert torch.equal(out.rgb, out.features[..., :3])
    plain = constant_field(raw_density=0.0)(torch.zeros(2, 3, 3))
    assert torch.allclose(plain.rgb[0, 0], torch.sigmoid(torch.linspace(-2, 2, 3)) * 1.002 - 0.001)


def test_density_noise_only_with_positive_std_and_reproducible():
    points = torch.zeros(2, 64, 3)
    clean = constant_field(0.2)(points).density
    assert torch.allclose(clean, F.softplus(torch.tensor(0.2)).expand_as(clean))
    same_a = constant_field(0.2, density_noise_std=1.0, rng=torch.Generator().manual_seed(5))(points).density
    same_b = constant_field(0.2, density_noise_std=1.0, rng=torch.Generator().manual_seed(5))(points).density
    other = constant_field(0.2, density_noise_std=1.0, rng=torch.Generator().manual_seed(6))(points).density
    assert torch.equal(same_a, same_b)
    assert not torch.allclose(same_a, other)
    assert same_a.std() > 0.1 and torch.all(same_a >= 0)
    # Noise goes in before the activation: softplus^{-1}(density) - 0.2 is N(0, 1).
    raw_noise = torch.log(torch.expm1(same_a)) - 0.2
    assert abs(raw_noise.mean().item()) < 0.3 and 0.7 < raw_noise.std().item() < 1.3


def test_field_from_generator_shapes_gradients_and_errors(rng, make_tiny_config):
    g = TriPlaneGenerator(make_tiny_config(num_feature_channels=6, aggregation="concat"), seed=0)
    planes = g.generate_planes(torch.randn(2, 16, generator=rng))
    field = g.field(planes)
    points = (torch.rand(2, 10, 3, generator=rng) - 0.5) * 0.9
    out = field(points, directions=torch.randn(2, 10, 3, generator=rng))
    assert out.features.shape == (2, 10, 6) and out.rgb.shape == (2, 10, 3)
    (out.density.sum() + out.features.sum()).backward()
    assert g.decoder.layers[0].weight.grad.abs().sum() > 0
    assert g.synthesis_network.blocks[-1].to_planes.bias.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="points must have shape"):
        field(points[:1])


def test_out_of_box_density_is_exactly_zero_for_a_generated_field(rng, make_tiny_config):
    g = TriPlaneGenerator(make_tiny_config(padding_mode="border"), seed=0)
    field = g.field(g.generate_planes(torch.randn(2, 16, generator=rng)))
    far = torch.tensor([[[0.0, 0.0, 0.5001], [-0.6, 0.0, 0.0]]]).expand(2, 2, 3)
    assert torch.all(field.density(far) == 0)
    assert torch.all(field.density(torch.zeros(2, 1, 3)) > 0)
    assert math.isclose(g.config.box_half_size, 0.5)

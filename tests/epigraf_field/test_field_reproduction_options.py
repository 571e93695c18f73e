"""Field options that reproduce released EG3D / EpiGRAF weights: plane axes, box mask, sampling corners, colour."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from epigraf_field.config_io import config_from_json, config_to_json
from epigraf_field.decoder import MLPDecoder
from epigraf_field.field import TriPlaneField, TriPlaneFieldConfig, project_onto_planes
from epigraf_field.generator import TriPlaneGenerator, TriPlaneGeneratorConfig


def test_eg3d_plane_axes_sample_zx_on_the_third_plane():
    coords = project_onto_planes(torch.tensor([[[0.25, -0.5, 0.1]]]), 0.5, plane_axes="xy_xz_zx")
    assert torch.allclose(coords[0, :, 0], torch.tensor([[0.5, -1.0], [0.5, 0.2], [0.2, 0.5]]))


def _field(config: TriPlaneFieldConfig, rng: torch.Generator) -> tuple[TriPlaneField, torch.Tensor]:
    planes = torch.randn(1, 3, 4, 6, 6, generator=rng)
    decoder = MLPDecoder(4, 4, hidden_features=8, backend="torch")
    return TriPlaneField(planes, decoder, config), planes


def test_unmasked_field_gives_density_outside_the_box_and_its_logits(rng):
    masked, _ = _field(TriPlaneFieldConfig(), rng)
    unmasked = TriPlaneField(masked.planes, masked.decoder, TriPlaneFieldConfig(mask_outside_box=False, density_shift=-1.0))
    outside = torch.tensor([[[0.7, 0.0, 0.0], [0.0, 0.0, -0.9]]])
    assert torch.equal(masked(outside).density, torch.zeros(1, 2, 1)) and masked(outside).density_logits is None
    out = unmasked(outside)
    assert (out.density > 0).all()
    assert torch.allclose(out.density, F.softplus(out.density_logits))
    assert torch.allclose(unmasked.density(outside), out.density)


def test_linear_colour_and_corner_aligned_sampling(rng):
    field, planes = _field(TriPlaneFieldConfig(color_activation="linear", align_corners=True), rng)
    corner = torch.tensor([[[-0.5, -0.5, -0.5]]])  # with align_corners the box corner is texel (0, 0) exactly
    features = planes[0, :, :, 0, 0].mean(0)
    raw = field.decoder(features[None, None])
    out = field(corner)
    assert torch.allclose(out.rgb, (raw[..., 1:] + 1) / 2, atol=1e-6)
    assert torch.allclose(out.density, F.softplus(raw[..., :1]), atol=1e-6)


def test_defaults_are_unchanged_and_options_round_trip_through_json():
    assert TriPlaneGeneratorConfig().field_config == TriPlaneFieldConfig()
    default = TriPlaneFieldConfig()
    assert (default.plane_axes, default.align_corners, default.mask_outside_box, default.color_activation) == (
        "xy_xz_yz", False, True, "widened_sigmoid")
    config = TriPlaneGeneratorConfig.small()
    config = TriPlaneGeneratorConfig(**{**config.__dict__, "plane_axes": "xy_xz_zx", "align_corners": True,
                                        "mask_outside_box": False, "color_activation": "linear",
                                        "plane_margin": 0.1})
    assert config_from_json(TriPlaneGeneratorConfig, config_to_json(config)) == config
    field = TriPlaneGenerator(config, seed=0).field(torch.zeros(1, 3, 8, 32, 32))
    assert field.config.plane_axes == "xy_xz_zx" and not field.config.mask_outside_box
    assert abs(field.config.plane_half_size - 0.55) < 1e-12

"""EpiGRAF snapshots (hydra config inside) convert into our tri-plane model with EpiGRAF's computation options."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from pipelines.checkpoint_import.registry import import_snapshot
from pipelines.model import TriPlaneModel
from tests.pipelines.checkpoint_import import lookalike


@pytest.fixture
def converted(tmp_path):
    marker = tmp_path / "executed"
    source = lookalike.module_source(marker)
    path = lookalike.write_snapshot(tmp_path / "network-snapshot-000000.pkl", lookalike.epigraf_snapshot(source))
    imported = import_snapshot(path)
    assert not marker.exists()
    return imported, lookalike.epigraf_generator(source).state_dict()


def test_every_tensor_lands_in_its_place(converted):
    imported, official = converted
    ours = imported.model.generator.state_dict()
    density_first = torch.tensor([3, 0, 1, 2])  # EpiGRAF outputs (r, g, b, density)
    expected = {
        "decoder.layers.0.weight": official["synthesis.tri_plane_mlp.model.0.weight"],
        "decoder.layers.0.bias": official["synthesis.tri_plane_mlp.model.0.bias"],
        "decoder.layers.1.weight": official["synthesis.tri_plane_mlp.model.1.weight"][density_first],
        "decoder.layers.1.bias": official["synthesis.tri_plane_mlp.model.1.bias"][density_first],
        "mapping_network.w_avg": official["mapping.w_avg"],
        "mapping_network.embed.weight": official["mapping.embed.weight"],
        "mapping_network.embed.bias": official["mapping.embed.bias"],
    }
    for i in range(2):
        for part in ("weight", "bias"):
            expected[f"mapping_network.layers.{i}.{part}"] = official[f"mapping.fc{i}.{part}"]
    syn = "synthesis.tri_plane_decoder."
    for block, res in enumerate((4, 8)):
        ours_block, theirs = f"synthesis_network.blocks.{block}.", f"{syn}b{res}."
        if block == 0:
            expected[ours_block + "const"] = official[theirs + "const"]
        for conv in ("conv0", "conv1") if block else ("conv1",):
            weight = official[f"{theirs}{conv}.weight"]
            expected[f"{ours_block}{conv}.conv.weight"] = weight.flip(2, 3) if conv == "conv0" else weight
            for part in ("affine.weight", "affine.bias"):
                expected[f"{ours_block}{conv}.conv.{part}"] = official[f"{theirs}{conv}.{part}"]
            for part in ("bias", "noise_strength", "noise_const"):
                expected[f"{ours_block}{conv}.{part}"] = official[f"{theirs}{conv}.{part}"]
        for part in ("affine.weight", "affine.bias", "weight"):
            expected[f"{ours_block}to_planes.conv.{part}"] = official[f"{theirs}torgb.{part}"]
        expected[f"{ours_block}to_planes.bias"] = official[f"{theirs}torgb.bias"]
    assert set(ours) == set(expected)
    for key, value in expected.items():
        assert torch.equal(ours[key], value), key


def test_config_comes_from_the_interpolated_hydra_config(converted):
    imported, _ = converted
    model = imported.model
    assert isinstance(model, TriPlaneModel) and model.num_classes == 2 and model.image_resolution == 16
    config = model.generator.config
    # cube_scale reaches the generator's cfg only through the ${dataset} interpolation.
    assert config.box_half_size == 0.2 and config.density_shift == -0.5
    assert (config.align_corners, config.color_activation, config.plane_axes) == (True, "linear", "xy_xz_yz")
    assert (model.cameras.config.near, model.cameras.config.far, model.cameras.config.fov_degrees) == (0.88, 1.12, 12.0)
    renderer = model.renderer.config
    assert renderer.num_coarse == 6 and (renderer.marcher, renderer.pixel_grid, renderer.background) == (
        "left_point", "corners", "black")


def test_field_is_epigraf_s_computation(converted, rng):
    imported, official = converted
    planes = torch.randn(1, 3, 4, 8, 8, generator=rng)
    points = (torch.rand(1, 40, 3, generator=rng) - 0.5) * 0.4
    out = imported.model.generator.field(planes)(points)
    q = points / 0.2
    grids = [q[..., [0, 1]], q[..., [0, 2]], q[..., [1, 2]]]
    features = torch.stack([F.grid_sample(planes[:, i], grids[i][:, None], align_corners=True)[:, :, 0]
                            for i in range(3)]).mean(0).transpose(1, 2)
    fc = lambda h, i: F.linear(h, official[f"synthesis.tri_plane_mlp.model.{i}.weight"] / h.shape[-1] ** 0.5,  # noqa: E731
                               official[f"synthesis.tri_plane_mlp.model.{i}.bias"])
    raw = fc(F.leaky_relu(fc(features, 0), 0.2) * 2 ** 0.5, 1)
    assert torch.allclose(out.density, F.softplus(raw[..., 3:] - 0.5), atol=1e-5)
    assert torch.allclose(out.rgb, (raw[..., :3] + 1) / 2, atol=1e-5)


def test_unsupported_settings_are_named(tmp_path):
    config = lookalike.epigraf_config()
    config["model"]["generator"]["bg_model"] = {"type": "sphere"}
    path = lookalike.write_snapshot(tmp_path / "sphere.pkl", lookalike.epigraf_snapshot("", config=config))
    with pytest.raises(ValueError, match="background model 'sphere'") as error:
        import_snapshot(path)
    assert str(path) in str(error.value)

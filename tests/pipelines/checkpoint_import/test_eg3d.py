"""EG3D snapshots convert tensor by tensor into our eg3d model, with EG3D's own computation options."""

from __future__ import annotations

import re

import pytest
import torch
import torch.nn.functional as F

from pipelines.checkpoint_import.registry import import_snapshot
from pipelines.eg3d.model import Eg3dModel
from tests.pipelines.checkpoint_import import lookalike


@pytest.fixture
def converted(tmp_path):
    marker = tmp_path / "executed"
    source = lookalike.module_source(marker)
    path = lookalike.write_snapshot(tmp_path / "network-snapshot-000000.pkl", lookalike.eg3d_snapshot(source))
    imported = import_snapshot(path)
    assert not marker.exists()
    return imported, lookalike.eg3d_generator(source).state_dict()


def _expected_source(ours: str) -> tuple[str, str]:
    """The official tensor each of ours comes from, and how it is transformed (written out for this layout)."""
    rules = [
        (r"triplane\.mapping_network\.layers\.(\d)\.(weight|bias)", r"backbone.mapping.fc\1.\2", "same"),
        (r"triplane\.mapping_network\.embed\.weight", "backbone.mapping.embed.weight", "c_scale"),
        (r"triplane\.mapping_network\.(embed\.bias|w_avg)", r"backbone.mapping.\1", "same"),
        (r"triplane\.synthesis_network\.blocks\.0\.const", "backbone.synthesis.b4.const", "same"),
        (r"triplane\.synthesis_network\.blocks\.0\.(conv1)\.conv\.(affine\.weight|affine\.bias|weight)",
         r"backbone.synthesis.b4.\1.\2", "same"),
        (r"triplane\.synthesis_network\.blocks\.0\.(conv1)\.(bias|noise_strength|noise_const)", r"backbone.synthesis.b4.\1.\2", "same"),
        (r"triplane\.synthesis_network\.blocks\.0\.to_planes\.conv\.(.+)", r"backbone.synthesis.b4.torgb.\1", "same"),
        (r"triplane\.synthesis_network\.blocks\.0\.to_planes\.bias", "backbone.synthesis.b4.torgb.bias", "same"),
        (r"triplane\.synthesis_network\.blocks\.1\.conv0\.conv\.weight", "backbone.synthesis.b8.conv0.weight", "flip"),
        (r"triplane\.synthesis_network\.blocks\.1\.(conv\d)\.conv\.(affine\.weight|affine\.bias|weight)",
         r"backbone.synthesis.b8.\1.\2", "same"),
        (r"triplane\.synthesis_network\.blocks\.1\.(conv\d)\.(bias|noise_strength|noise_const)", r"backbone.synthesis.b8.\1.\2", "same"),
        (r"triplane\.synthesis_network\.blocks\.1\.to_planes\.conv\.(.+)", r"backbone.synthesis.b8.torgb.\1", "same"),
        (r"triplane\.synthesis_network\.blocks\.1\.to_planes\.bias", "backbone.synthesis.b8.torgb.bias", "same"),
        (r"triplane\.decoder\.layers\.0\.(weight|bias)", r"decoder.net.0.\1", "lr_mul"),
        (r"triplane\.decoder\.layers\.1\.(weight|bias)", r"decoder.net.2.\1", "lr_mul"),
        (r"superresolution\.blocks\.1\.conv0\.conv\.weight", "superresolution.block1.conv0.weight", "flip"),
        (r"superresolution\.blocks\.(\d)\.(conv\d)\.conv\.(affine\.weight|affine\.bias|weight)",
         r"superresolution.block\1.\2.\3", "same"),
        (r"superresolution\.blocks\.(\d)\.(conv\d)\.bias", r"superresolution.block\1.\2.bias", "same"),
        (r"superresolution\.blocks\.(\d)\.to_rgb\.conv\.(.+)", r"superresolution.block\1.torgb.\2", "same"),
        (r"superresolution\.blocks\.(\d)\.to_rgb\.bias", r"superresolution.block\1.torgb.bias", "same"),
    ]
    for pattern, replacement, how in rules:
        if re.fullmatch(pattern, ours):
            return re.sub(pattern, replacement, ours), how
    raise AssertionError(f"no expectation for {ours}")


def test_every_tensor_lands_in_its_place(converted):
    imported, official = converted
    ours = imported.model.generator.state_dict()
    rendering = lookalike.EG3D_RENDERING
    used = set()
    for key, value in ours.items():
        source, how = _expected_source(key)
        expected = official[source]
        if how == "flip":  # official up=2 kernels are applied by a transposed convolution
            expected = expected.flip(2, 3)
        elif how == "lr_mul":
            expected = expected * rendering["decoder_lr_mul"]
        elif how == "c_scale":
            expected = expected * rendering["c_scale"]
        assert torch.equal(value, expected), key
        used.add(source)
    unused = {k for k in official if "resample_filter" not in k and "noise" not in k} - used
    assert not unused, f"official tensors not carried over: {sorted(unused)}"


def test_records_eg3d_computation_options(converted):
    imported, _ = converted
    model = imported.model
    assert isinstance(model, Eg3dModel) and model.neural_resolution == 8 and model.image_resolution == 16
    config = model.generator.config
    assert (config.plane_axes, config.mask_outside_box, config.decoder_activation) == ("xy_xz_zx", False, "softplus")
    assert (config.density_shift, config.num_feature_channels, config.box_half_size) == (-1.0, 5, 0.5)
    renderer = model.renderer.config
    assert (renderer.marcher, renderer.num_coarse, renderer.num_fine, renderer.background) == ("midpoint", 6, 4, "black")
    assert (model.cameras.config.near, model.cameras.config.far) == (2.25, 3.3)
    assert imported.summary["architecture"].endswith("SuperresolutionHybrid2X")


def test_field_is_eg3d_s_computation(converted, rng):
    """Planes sampled at (x, y), (x, z), (z, x), averaged, decoded by FC-softplus-FC with lr_mul, no box mask."""
    imported, official = converted
    generator = imported.model.generator
    planes = torch.randn(1, 3, 4, 8, 8, generator=rng)
    points = (torch.rand(1, 50, 3, generator=rng) - 0.5) * 1.4  # some outside the box
    out = generator.field(planes)(points)
    q = points / 0.5
    x, y, z = q.unbind(-1)
    grids = [torch.stack(pair, -1) for pair in ((x, y), (x, z), (z, x))]
    features = torch.stack([F.grid_sample(planes[:, i], grids[i][:, None], align_corners=False)[:, :, 0]
                            for i in range(3)]).mean(0).transpose(1, 2)
    lr = lookalike.EG3D_RENDERING["decoder_lr_mul"]
    fc = lambda h, i: F.linear(h, official[f"decoder.net.{i}.weight"] * lr / h.shape[-1] ** 0.5,  # noqa: E731
                               official[f"decoder.net.{i}.bias"] * lr)
    raw = fc(F.softplus(fc(features, 0)), 2)
    assert torch.allclose(out.density, F.softplus(raw[..., :1] - 1), atol=1e-5)
    assert torch.allclose(out.features, torch.sigmoid(raw[..., 1:]) * 1.002 - 0.001, atol=1e-5)
    assert (out.density[(points.abs() > 0.5).any(-1)] > 0).all()  # EG3D decodes outside the box too


def test_converted_model_renders_and_saves(converted, tmp_path):
    from pipelines.model import latents_from_seeds, open_model, render

    imported, _ = converted
    imported.model.save(tmp_path / "bundle")
    model = open_model(tmp_path / "bundle")
    assert model.generator.config == imported.model.generator.config
    cameras = model.cameras.center_pose()
    images = render(model, latents_from_seeds([0], model.z_dim), cameras, 16)
    assert images.rgb.shape == (1, 3, 16, 16) and torch.isfinite(images.rgb).all()


def test_unsupported_settings_are_named(tmp_path):
    snapshot = lookalike.eg3d_snapshot("")
    snapshot["G_ema"].rendering_kwargs = dict(lookalike.EG3D_RENDERING, ray_start="auto", ray_end="auto")
    path = lookalike.write_snapshot(tmp_path / "auto.pkl", snapshot)
    with pytest.raises(ValueError, match="ray_start/ray_end") as error:
        import_snapshot(path)
    assert str(path) in str(error.value)

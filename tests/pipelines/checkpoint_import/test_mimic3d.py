"""Mimic3D snapshots convert tensor by tensor into our mimic3d model: EG3D's parts as for EG3D, plus the 3D-aware
branch in Mimic3D's plane layout (planes xy, yz, zx; pooled inputs in plane order)."""

from __future__ import annotations

import math
import re

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from pipelines.checkpoint_import.registry import import_snapshot
from pipelines.mimic3d.aware_conv import pool_other_planes_mimic3d
from pipelines.mimic3d.model import Mimic3dModel
from tests.pipelines.checkpoint_import import lookalike

W_DIM, CHANNELS, PLANE_RES = 8, 4, 8  # the EG3D look-alike's w and planes (3 x 4 x 8^2)


def _aware_layer(source: str, cin: int, cout: int, res: int, gen: torch.Generator, roll_out: str, up: int = 1,
                 to_rgb: bool = False) -> nn.Module:
    """A Mimic3D SynthesisLayer / ToRGBLayer with ``roll_out`` 'b' (3D-aware: styles for 3 planes x 3 cin inputs)
    or 's' (per plane: styles for 3 planes x cin)."""
    name = "ToRGBLayer" if to_rgb else "SynthesisLayer"
    layer = lookalike.persistent(name, source, dict(in_channels=cin, out_channels=cout, w_dim=W_DIM, resolution=res,
                                                    up=up, roll_out=roll_out))
    inputs = cin * (3 if roll_out == "b" else 1)
    layer.affine = lookalike._fc(source, 3 * inputs, W_DIM, gen, bias_init=1)
    kernel = 1 if to_rgb else 3
    layer.weight = nn.Parameter(torch.randn(cout, inputs, kernel, kernel, generator=gen))
    layer.bias = nn.Parameter(torch.randn(cout, generator=gen))
    if not to_rgb:
        layer.noise_strength = nn.Parameter(torch.randn([], generator=gen))
        layer.register_buffer("noise_const", torch.randn(res, res, generator=gen))
        layer.register_buffer("resample_filter", lookalike._filter())
    return layer


def _aware_block(source: str, res: int, up: int, gen: torch.Generator, roll_out: str) -> nn.Module:
    block = lookalike.persistent("SynthesisBlock", source, dict(resolution=res * up, up=up, roll_out=roll_out))
    block.conv0 = _aware_layer(source, CHANNELS, CHANNELS, res * up, gen, roll_out, up=up)
    block.conv1 = _aware_layer(source, CHANNELS, CHANNELS, res * up, gen, roll_out)
    block.torgb = _aware_layer(source, CHANNELS, CHANNELS, res * up, gen, roll_out, to_rgb=True)
    block.register_buffer("resample_filter", lookalike._filter())
    return block


def mimic3d_generator(source: str, seed: int = 0, aware3d_att: bool = False) -> nn.Module:
    """The EG3D look-alike as a DualTriPlaneGenerator with 3D-aware blocks b3d4 (-> 8) and b3d8 (+ block2, block3
    lifting to the 16^2 detail planes)."""
    eg3d = lookalike.eg3d_generator(source, seed)
    kwargs = dict(eg3d._init_kwargs, triplane_resolution=PLANE_RES, triplane_channels=3 * CHANNELS, triplane_act=None,
                  aware3d_res=[4, 8], retidx=[-3, -1], aware3d_att=aware3d_att, decoder_output_dim=5)
    G = lookalike.persistent("DualTriPlaneGenerator", source, kwargs)
    for name in ("backbone", "decoder", "superresolution"):
        setattr(G, name, getattr(eg3d, name))
    G.rendering_kwargs, G.neural_rendering_resolution = dict(eg3d.rendering_kwargs), eg3d.neural_rendering_resolution
    G.depth_guided_sample, G.roll_out, G.plane_act = 0, "b", None
    gen = torch.Generator().manual_seed(seed + 100)
    for res in (4, 8):
        aware = lookalike.persistent("Aware3DBlock", source, dict(img_resolution=res))
        aware.block = _aware_block(source, res, 2 if res < PLANE_RES else 1, gen, "b")
        if res == PLANE_RES:
            aware.block2 = _aware_block(source, res, 2, gen, "s")
            aware.block3 = _aware_block(source, 2 * res, 1, gen, "s")
        setattr(G.backbone.synthesis, f"b3d{res}", aware)
    return G.eval().requires_grad_(False)


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    folder = tmp_path_factory.mktemp("mimic3d-pkl")
    marker = folder / "executed"
    source = lookalike.module_source(marker)
    G = mimic3d_generator(source)
    path = lookalike.write_snapshot(folder / "network-snapshot-000000.pkl", {"G": G, "G_ema": G})
    eg3d_path = lookalike.write_snapshot(folder / "eg3d.pkl", lookalike.eg3d_snapshot(source))
    imported = import_snapshot(path)
    assert not marker.exists()
    return imported, G.state_dict(), import_snapshot(eg3d_path)


def _official_aware_source(ours: str) -> tuple[str, str]:
    """The official tensor of one of our aware-branch tensors and its change (written out for the 4 -> 8 layout)."""
    rules = [
        (r"aware\.blocks\.0\.conv0\.weight", "backbone.synthesis.b3d4.block.conv0.weight", "flip"),
        (r"aware\.blocks\.(\d)\.to_planes\.weight", None, "sqrt3"),
        (r"aware\.detail_blocks\.0\.conv0\.weight", "backbone.synthesis.b3d8.block2.conv0.weight", "flip"),
        (r"aware\.detail_blocks\.(\d)\.to_planes\.(.+)", None, "same"),
        (r"aware\.(detail_blocks|blocks)\.(\d)\.(conv\d)\.(.+)", None, "same"),
        (r"aware\.blocks\.(\d)\.to_planes\.(.+)", None, "same"),
    ]
    block_of = {("blocks", "0"): "b3d4.block", ("blocks", "1"): "b3d8.block",
                ("detail_blocks", "0"): "b3d8.block2", ("detail_blocks", "1"): "b3d8.block3"}
    for pattern, official, how in rules:
        if re.fullmatch(pattern, ours):
            if official is None:
                kind, index, part, rest = re.fullmatch(r"aware\.(\w+?)\.(\d)\.(\w+)\.(.+)", ours).groups()
                part = "torgb" if part == "to_planes" else part
                official = f"backbone.synthesis.{block_of[(kind, index)]}.{part}.{rest}"
            return official, how
    raise AssertionError(f"no expectation for {ours}")


def test_every_aware_tensor_lands_in_its_place_and_the_rest_as_for_eg3d(converted):
    imported, official, eg3d = converted
    generator = imported.model.generator
    used = set()
    for key, value in generator.aware.state_dict().items():
        source, how = _official_aware_source(f"aware.{key}")
        expected = official[source]
        if how == "flip":  # an up=2 kernel, applied officially by a transposed convolution
            expected = expected.flip(2, 3)
        elif how == "sqrt3":  # official toRGB gain 1/sqrt(C) for its 3C inputs, ours 1/sqrt(3C)
            expected = expected * math.sqrt(3.0)
        assert torch.equal(value, expected), key
        used.add(source)
    aware_official = {k for k in official if ".b3d" in k and "resample_filter" not in k}
    assert aware_official == used, f"official tensors not carried over: {sorted(aware_official - used)}"
    for ours, theirs in ((generator.triplane, eg3d.model.generator.triplane),
                         (generator.superresolution, eg3d.model.generator.superresolution)):
        mine, reference = ours.state_dict(), theirs.state_dict()
        assert mine.keys() == reference.keys() and all(torch.equal(mine[k], reference[k]) for k in mine)


def test_records_mimic3d_s_layout_and_eg3d_s_options(converted):
    imported, _, _ = converted
    model = imported.model
    assert isinstance(model, Mimic3dModel) and model.branch == "3d"
    assert (model.neural_resolution, model.image_resolution) == (8, 16)
    config = model.generator.config
    assert (config.plane_axes, config.mask_outside_box, config.plane_resolution, config.plane_channels) == (
        "xy_yz_zx", False, 8, 4)
    assert model.generator.aware.blocks[0].conv0.pool is pool_other_planes_mimic3d
    assert model.renderer.config.marcher == "midpoint" and imported.family == "mimic3d"
    assert "3D-aware blocks at 4..8" in imported.summary["architecture"]


def _official_pooled(x: torch.Tensor) -> torch.Tensor:
    """Mimic3D's aware3d on planes rolled into the batch [b * 3, C, H, W] (stored xy, yz, zx), written out from its
    code: each plane and its transpose, means over one axis broadcast back, concatenated in plane order."""
    planes = x.view(-1, 3, *x.shape[1:])
    xy, yz, zx = planes.unbind(1)
    yx, zy, xz = xy.transpose(-1, -2), yz.transpose(-1, -2), zx.transpose(-1, -2)
    full = lambda t: t.expand(*t.shape[:-2], *x.shape[-2:])  # noqa: E731
    on_xy = torch.cat([xy, full(zy.mean(-1, keepdim=True)), full(xz.mean(-2, keepdim=True))], 1)
    on_yz = torch.cat([full(yx.mean(-2, keepdim=True)), yz, full(xz.mean(-1, keepdim=True))], 1)
    on_zx = torch.cat([full(yx.mean(-1, keepdim=True)), full(zy.mean(-2, keepdim=True)), zx], 1)
    return torch.stack([on_xy, on_yz, on_zx], 1).view(x.shape[0], -1, *x.shape[-2:])


def _official_styles(official: dict, layer: str, w: torch.Tensor) -> torch.Tensor:
    """The per-plane styles [b * 3, 3C] of an official 'b' layer (FullyConnectedLayer, gain 1/sqrt(w_dim))."""
    styles = F.linear(w, official[f"{layer}.affine.weight"] / math.sqrt(W_DIM), official[f"{layer}.affine.bias"])
    return styles.view(len(w) * 3, -1)


def test_aware_layers_compute_what_mimic3d_s_do(converted, rng):
    imported, official, _ = converted
    block = imported.model.generator.aware.blocks[1]  # b3d8.block: 8 -> 8, no upsampling
    planes, w = torch.randn(2, 3, CHANNELS, 8, 8, generator=rng), torch.randn(2, W_DIM, generator=rng)
    x = _official_pooled(planes.reshape(6, CHANNELS, 8, 8))
    # toRGB: styles times 1/sqrt(C) (C the nominal input channels), no demodulation.
    name = "backbone.synthesis.b3d8.block.torgb"
    styles = _official_styles(official, name, w) / math.sqrt(CHANNELS)
    expected = torch.einsum("oc,nchw->nohw", official[f"{name}.weight"][:, :, 0, 0], x * styles[:, :, None, None])
    expected = expected + official[f"{name}.bias"].view(1, -1, 1, 1)
    torch.testing.assert_close(block.to_planes(planes, w).reshape(6, CHANNELS, 8, 8), expected, atol=1e-4, rtol=1e-4)
    # conv1: modulated, demodulated 3x3 convolution, constant noise, bias, leaky ReLU times sqrt(2).
    name = "backbone.synthesis.b3d8.block.conv1"
    styles = _official_styles(official, name, w)
    weights = official[f"{name}.weight"][None] * styles[:, None, :, None, None]
    weights = weights * (weights.square().sum(dim=[2, 3, 4], keepdim=True) + 1e-8).rsqrt()
    out = torch.cat([F.conv2d(x[i:i + 1], weights[i], padding=1) for i in range(6)])
    out = out + official[f"{name}.noise_const"] * official[f"{name}.noise_strength"]
    expected = F.leaky_relu(out + official[f"{name}.bias"].view(1, -1, 1, 1), 0.2) * math.sqrt(2.0)
    ours = block.conv1(planes, w, noise_mode="const").reshape(6, CHANNELS, 8, 8)
    torch.testing.assert_close(ours, expected, atol=1e-4, rtol=1e-4)


def test_the_3d_field_samples_xy_yz_zx_and_sums_coarse_and_detail(converted, rng):
    imported, official, _ = converted
    generator = imported.model.generator
    coarse, detail = torch.randn(1, 3, 4, 8, 8, generator=rng), torch.randn(1, 3, 4, 16, 16, generator=rng)
    points = (torch.rand(1, 40, 3, generator=rng) - 0.5) * 1.2
    out = generator.detail_field(coarse, detail)(points)
    x, y, z = (points / 0.5).unbind(-1)
    grids = [torch.stack(pair, -1)[:, None] for pair in ((x, y), (y, z), (z, x))]
    features = torch.stack([
        (F.grid_sample(coarse[:, i], grids[i], align_corners=False)
         + F.grid_sample(detail[:, i], grids[i], align_corners=False))[:, :, 0] for i in range(3)
    ]).mean(0).transpose(1, 2)
    lr = lookalike.EG3D_RENDERING["decoder_lr_mul"]
    fc = lambda h, i: F.linear(h, official[f"decoder.net.{i}.weight"] * lr / h.shape[-1] ** 0.5,  # noqa: E731
                               official[f"decoder.net.{i}.bias"] * lr)
    raw = fc(F.softplus(fc(features, 0)), 2)
    torch.testing.assert_close(out.density, F.softplus(raw[..., :1] - 1), atol=1e-5, rtol=1e-5)


def test_converted_model_renders_both_branches_and_round_trips_as_a_bundle(converted, tmp_path):
    from pipelines.model import latents_from_seeds, open_model, render

    imported, _, _ = converted
    model = open_model(imported.model.save(tmp_path / "bundle"))
    assert isinstance(model, Mimic3dModel) and model.generator.config.plane_axes == "xy_yz_zx"
    assert model.generator.aware.blocks[0].conv0.pool is pool_other_planes_mimic3d
    z, cameras = latents_from_seeds([0], model.z_dim), model.cameras.center_pose()
    for branch in ("3d", "2d"):
        saved = render(model.with_options(branch=branch), z, cameras, 16).rgb
        before = render(imported.model.with_options(branch=branch), z, cameras, 16).rgb
        assert saved.shape == (1, 3, 16, 16) and torch.isfinite(saved).all()
        torch.testing.assert_close(saved, before)


@pytest.mark.parametrize(("change", "named"), [("aware3d_att", "aware3d_att"), ("missing_block3", "b3d8 holds"),
                                               ("plane_act", "triplane_act")])
def test_unsupported_settings_are_named(change, named, tmp_path):
    G = mimic3d_generator("", aware3d_att=change == "aware3d_att")
    if change == "missing_block3":
        del G.backbone.synthesis.b3d8.block3
    if change == "plane_act":
        G.plane_act = lookalike.persistent("Tanh", "")
    path = lookalike.write_snapshot(tmp_path / f"{change}.pkl", {"G": G, "G_ema": G})
    with pytest.raises(ValueError, match=named) as error:
        import_snapshot(path)
    assert str(path) in str(error.value) and "mimic3d generator DualTriPlaneGenerator" in str(error.value)

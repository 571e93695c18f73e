"""Tests of the patch- and camera-aware discriminator."""

import math

import pytest
import torch

from pipelines.gan.discriminator import Discriminator, DiscriminatorConfig, MinibatchStd
from renderers.patches import Patch


def tiny_config(**overrides) -> DiscriminatorConfig:
    base = dict(
        resolution=16, image_resolution=32, channel_base=128, channel_max=16, hyper_mod_dim=16, patch_table_dim=4
    )
    base.update(overrides)
    return DiscriminatorConfig(**base)


def make(config: DiscriminatorConfig, seed: int = 0) -> Discriminator:
    torch.manual_seed(seed)  # parameter init only; the code under test takes no random numbers
    return Discriminator(config)


def images(b=4, c=3, r=16, seed=0):
    return torch.randn(b, c, r, r, generator=torch.Generator().manual_seed(seed))


def test_output_shape_and_extra_blocks():
    cfg = tiny_config()
    d = make(cfg)
    assert cfg.num_extra_blocks == 1
    # Full-image depth at R = 32: blocks at 32, 16, 8 (the first one at the 16 px input, no downsampling).
    assert len(d.blocks) == 3
    assert d(images(), Patch.full(4)).shape == (4, 1)


def test_depth_matches_full_image_discriminator():
    cfg = tiny_config(resolution=8, image_resolution=32)
    assert len(make(cfg).blocks) == len(make(tiny_config(resolution=32, image_resolution=32)).blocks) == 3


def test_output_depends_on_patch_parameters():
    d = make(tiny_config())
    x = images()
    a = d(x, Patch(torch.full((4,), 0.5), torch.zeros(4, 2)))
    b = d(x, Patch(torch.full((4,), 0.5), torch.full((4, 2), 0.25)))
    c = d(x, Patch(torch.full((4,), 0.75), torch.zeros(4, 2)))
    assert not torch.allclose(a, b, atol=1e-6)
    assert not torch.allclose(a, c, atol=1e-6)


def test_hyper_modulation_alone_makes_output_patch_dependent():
    # With the projection head fed a constant, only the hypernetwork path can carry the patch.
    d = make(tiny_config())
    with torch.no_grad():
        for block in d.blocks:
            block.hyper_affine.weight.normal_()
    x = images()
    p1, p2 = Patch(torch.full((4,), 0.5), torch.zeros(4, 2)), Patch(torch.full((4,), 0.5), torch.full((4, 2), 0.5))
    feats = []
    for p in (p1, p2):
        h = d.hyper_mapping(d.patch_embedding(p.as_params()))
        y = None
        for i, block in enumerate(d.blocks):
            y = block(y, x if i == 0 else None, h)
        feats.append(d.epilogue(y))
    assert not torch.allclose(feats[0], feats[1], atol=1e-6)


def test_no_patch_dependence_when_conditioning_off():
    d = make(tiny_config(patch_conditioning=False))
    assert d.patch_embedding is None and d.head_mapping is None
    x = images()
    a = d(x, Patch(torch.full((4,), 0.5), torch.zeros(4, 2)))
    b = d(x, Patch(torch.full((4,), 0.25), torch.full((4, 2), 0.7)))
    assert torch.equal(a, b)
    assert torch.equal(a, d(x, None))


def test_camera_conditioning_changes_output():
    d = make(tiny_config(c_dim=25))
    x = images()
    c1 = torch.randn(4, 25, generator=torch.Generator().manual_seed(1))
    c2 = torch.randn(4, 25, generator=torch.Generator().manual_seed(2))
    assert not torch.allclose(d(x, Patch.full(4), c1), d(x, Patch.full(4), c2), atol=1e-6)
    with pytest.raises(ValueError, match="c must have shape"):
        d(x, Patch.full(4), None)


def test_projection_head_formula():
    d = make(tiny_config(c_dim=25, patch_conditioning=False))
    x = images()
    c = torch.randn(4, 25, generator=torch.Generator().manual_seed(1))
    features = d.epilogue(_trunk(d, x))
    cmap = d.head_mapping(c)
    expected = (features * cmap).sum(1, keepdim=True) / math.sqrt(d.cmap_dim)
    assert torch.allclose(d(x, None, c), expected, atol=1e-6)


def _trunk(d, x):
    y = None
    for i, block in enumerate(d.blocks):
        y = block(y, x if i == 0 else None, None)
    return y


def test_six_channel_input_dual_discrimination():
    d = make(tiny_config(in_channels=6, c_dim=25, resolution=32, image_resolution=32))
    out = d(images(c=6, r=32), None, torch.zeros(4, 25))
    assert out.shape == (4, 1)
    with pytest.raises(ValueError, match=r"\[b, 6, 32, 32\]"):
        d(images(c=3, r=32), None, torch.zeros(4, 25))


def test_gradients_reach_every_parameter():
    d = make(tiny_config(c_dim=25))
    x = images()
    patch = Patch(torch.tensor([0.5, 0.5, 0.75, 0.75]), torch.tensor([[0.1, 0.2]] * 2 + [[0.0, 0.25]] * 2))
    d(x, patch, torch.randn(4, 25, generator=torch.Generator().manual_seed(3))).sum().backward()
    for name, p in d.named_parameters():
        assert p.grad is not None, name
        assert p.grad.abs().sum() > 0, name


def test_r1_double_backward_through_discriminator():
    d = make(tiny_config())
    x = images().requires_grad_(True)
    logits = d(x, Patch.full(4))
    (g,) = torch.autograd.grad(logits.sum(), x, create_graph=True)
    g.square().sum().backward()
    assert d.blocks[0].conv0.weight.grad is not None
    assert d.blocks[0].conv0.weight.grad.abs().sum() > 0


def test_minibatch_std_groups_are_consecutive():
    layer = MinibatchStd(group_size=2, num_channels=1)
    x = torch.zeros(4, 2, 1, 1)
    x[0], x[1] = 1.0, -1.0  # group {0, 1}: std 1; group {2, 3}: std 0
    out = layer(x)
    assert out.shape == (4, 3, 1, 1)
    assert torch.allclose(out[:2, 2], torch.ones(2, 1, 1), atol=1e-3)
    assert torch.allclose(out[2:, 2], torch.zeros(2, 1, 1), atol=1e-3)
    with pytest.raises(ValueError, match="not divisible"):
        MinibatchStd(4)(torch.zeros(6, 2, 1, 1))


def test_invalid_config_raises():
    with pytest.raises(ValueError, match="image_resolution"):
        DiscriminatorConfig(resolution=64, image_resolution=32)
    with pytest.raises(ValueError, match="power of two"):
        DiscriminatorConfig(resolution=48, image_resolution=96)


def test_config_json_round_trip():
    import dataclasses
    import json

    cfg = tiny_config(c_dim=25, cmap_dim=8, conv_clamp=None)
    again = DiscriminatorConfig(**json.loads(json.dumps(dataclasses.asdict(cfg))))
    assert again == cfg


def test_default_width_matches_epigrafs_parameter_count():
    """EpiGRAF's patch discriminator at 256^2 images and 64^2 patches has 27.4M parameters (fmaps 0.5)."""
    with torch.device("meta"):
        d = Discriminator(DiscriminatorConfig(resolution=64, image_resolution=256, patch_conditioning=True))
    count = sum(p.numel() for p in d.parameters())
    assert abs(count - 27.4e6) / 27.4e6 < 0.01, count


@pytest.mark.parametrize("layers", [0, 2, 8])
def test_label_mapping_depth_follows_the_option(layers):
    # The projection head's label mapping has label_mapping_layers FC layers; the hypernetwork keeps mapping_layers.
    d = make(tiny_config(c_dim=25, label_mapping_layers=layers, mapping_layers=3))
    assert len(d.head_mapping.layers) == layers
    assert len(d.hyper_mapping.layers) == 3
    assert d(images(), Patch.full(4), torch.zeros(4, 25)).shape == (4, 1)


def test_eg3d_like_discriminator_has_an_8_layer_camera_mapping():
    d = make(tiny_config(c_dim=25, patch_conditioning=False, label_mapping_layers=8))
    assert d.hyper_mapping is None and len(d.head_mapping.layers) == 8


def test_label_mapping_defaults_to_two_layers_for_old_configs():
    from epigraf_field.config_io import config_from_dict

    # A config.json written before the option existed: the depth those runs trained with.
    saved = {"resolution": 16, "image_resolution": 32, "c_dim": 25, "mapping_layers": 2}
    config = config_from_dict(DiscriminatorConfig, saved)
    assert config.label_mapping_layers == 2
    assert len(make(config).head_mapping.layers) == 2


def test_negative_mapping_depth_is_rejected():
    with pytest.raises(ValueError, match="label_mapping_layers"):
        tiny_config(label_mapping_layers=-1)

"""Generator save/load: bit-exact round trip, extras, and clear errors for damaged checkpoints."""

import json

import pytest
import torch

from epigraf_field.generator import TriPlaneGenerator



@pytest.fixture
def saved(tmp_path, make_tiny_config):
    g = TriPlaneGenerator(make_tiny_config(c_dim=3, num_feature_channels=4), seed=1)
    with torch.no_grad():
        g.mapping_network.w_avg.normal_(generator=torch.Generator().manual_seed(2))
    g.save(tmp_path, extra_tensors={"occupancy": torch.ones(2, 4, 4, 4)})
    return g, tmp_path


def test_round_trip_is_bit_exact(saved, rng):
    g, path = saved
    loaded = TriPlaneGenerator.load(path)
    assert loaded.config == g.config
    z = torch.randn(2, 16, generator=rng)
    c = torch.randn(2, 3, generator=rng)
    points = torch.rand(2, 32, 3, generator=rng) - 0.5
    outs = []
    for model in (g, loaded):
        planes = model.generate_planes(z, c, truncation_psi=0.7, noise_mode="const")
        outs.append((planes, model.field(planes)(points)))
    assert torch.equal(outs[0][0], outs[1][0])
    assert torch.equal(outs[0][1].density, outs[1][1].density)
    assert torch.equal(outs[0][1].features, outs[1][1].features)
    assert torch.equal(TriPlaneGenerator.load_extra_tensors(path)["occupancy"], torch.ones(2, 4, 4, 4))


def test_files_are_json_and_safetensors(saved):
    _, path = saved
    meta = json.loads((path / "config.json").read_text())
    assert meta["format_version"] == 1 and meta["config"]["c_dim"] == 3
    assert sorted(p.name for p in path.iterdir()) == ["config.json", "weights.safetensors"]


def test_truncated_weights_file(saved):
    _, path = saved
    weights = path / "weights.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    with pytest.raises(ValueError, match="weights.safetensors.*truncated or corrupt"):
        TriPlaneGenerator.load(path)


def test_garbage_weights_file(saved):
    _, path = saved
    (path / "weights.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(ValueError, match="weights.safetensors"):
        TriPlaneGenerator.load(path)


def test_wrong_format_version(saved):
    _, path = saved
    meta = json.loads((path / "config.json").read_text())
    meta["format_version"] = 99
    (path / "config.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match=r"config.json: format_version is 99"):
        TriPlaneGenerator.load(path)


def test_mismatched_shapes(saved):
    _, path = saved
    meta = json.loads((path / "config.json").read_text())
    meta["config"]["decoder_hidden"] = 32
    (path / "config.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match=r"weights.safetensors: tensor 'decoder.layers.0.(weight|bias)' has shape"):
        TriPlaneGenerator.load(path)


def test_unknown_config_key_and_missing_files(saved, tmp_path_factory):
    _, path = saved
    meta = json.loads((path / "config.json").read_text())
    meta["config"]["plane_colour"] = 1
    (path / "config.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="plane_colour"):
        TriPlaneGenerator.load(path)
    empty = tmp_path_factory.mktemp("empty")
    with pytest.raises(FileNotFoundError, match="config.json"):
        TriPlaneGenerator.load(empty)

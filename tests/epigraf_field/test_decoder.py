"""MLP decoder backends: tcnn weight layout conversions (CPU) and the tcnn backend itself (CUDA)."""

import pytest
import torch
import torch.nn.functional as F

from epigraf_field.decoder import (
    MLPDecoder,
    tcnn_compatible,
    tcnn_params_to_torch_layout,
    torch_layout_to_tcnn_params,
)
from epigraf_field.config_io import config_from_dict
from epigraf_field.generator import TriPlaneGenerator, TriPlaneGeneratorConfig


IN, HIDDEN, OUT = 32, 64, 4


def tcnn_reference_forward(params, output_bias, x, num_layers, slope, pad_value=1.0):
    """What tiny-cuda-nn computes: padded input (our 1 column, then pad_value), bias-free
    matmuls with row-major [out_padded, in_padded] blocks, leaky ReLU, output rows trimmed."""
    in_padded = (IN + 1 + 15) // 16 * 16
    out_padded = (OUT + 15) // 16 * 16
    dims = [in_padded] + [HIDDEN] * (num_layers - 1) + [out_padded]
    h = torch.cat([x, torch.ones(x.shape[0], 1), torch.full((x.shape[0], in_padded - IN - 1), pad_value)], dim=1)
    offset = 0
    for i in range(num_layers):
        w = params[offset : offset + dims[i] * dims[i + 1]].view(dims[i + 1], dims[i])
        offset += w.numel()
        h = h @ w.t()
        if i < num_layers - 1:
            h = F.leaky_relu(h, slope)
    return h[:, :OUT] + output_bias


@pytest.mark.parametrize("num_layers", [2, 3])
def test_torch_backend_reads_tcnn_layout(rng, num_layers):
    n_params = 48 * 64 + (num_layers - 2) * 64 * 64 + 64 * 16
    params = torch.randn(n_params, generator=rng) * 0.2  # padded columns non-zero on purpose
    output_bias = torch.randn(OUT, generator=rng)
    weights, biases = tcnn_params_to_torch_layout(params, output_bias, IN, HIDDEN, OUT, num_layers)
    decoder = MLPDecoder(IN, OUT, HIDDEN, num_layers, negative_slope=0.01, backend="torch")
    decoder.load_plain_weights(weights, biases)
    x = torch.randn(50, IN, generator=rng)
    expected = tcnn_reference_forward(params, output_bias, x, num_layers, 0.01)
    assert torch.allclose(decoder(x), expected, atol=1e-5)


@pytest.mark.parametrize("num_layers", [2, 4])
def test_round_trip_torch_tcnn_torch(rng, num_layers):
    decoder = MLPDecoder(IN, OUT, HIDDEN, num_layers, negative_slope=0.01, backend="torch")
    with torch.no_grad():
        for layer in decoder.layers:
            if layer.bias is not None:
                layer.bias.normal_(generator=rng)
    weights, biases = decoder.plain_weights()
    params, out_bias = torch_layout_to_tcnn_params(weights, biases)
    assert params.numel() == 48 * 64 + (num_layers - 2) * 64 * 64 + 64 * 16
    x = torch.randn(20, IN, generator=rng)
    assert torch.allclose(tcnn_reference_forward(params, out_bias, x, num_layers, 0.01), decoder(x), atol=1e-5)
    back = MLPDecoder(IN, OUT, HIDDEN, num_layers, negative_slope=0.01, backend="torch")
    back.load_plain_weights(*tcnn_params_to_torch_layout(params, out_bias, IN, HIDDEN, OUT, num_layers))
    for (name, a), b in zip(decoder.state_dict().items(), back.state_dict().values()):
        assert torch.allclose(a, b, atol=1e-5), name


def test_layout_errors():
    with pytest.raises(ValueError, match="entries"):
        tcnn_params_to_torch_layout(torch.zeros(10), None, IN, HIDDEN, OUT, 2)
    with pytest.raises(ValueError, match=r"biases\[1\]"):
        torch_layout_to_tcnn_params([torch.zeros(4, 3)] * 3, [None, torch.zeros(4), None])


def test_state_dict_is_the_torch_layout():
    keys = set(MLPDecoder(IN, OUT, HIDDEN, 3, backend="torch").state_dict())
    assert keys == {"layers.0.weight", "layers.0.bias", "layers.1.weight", "layers.2.weight", "layers.2.bias"}


def test_unknown_backend_names_the_argument(make_tiny_config, tmp_path):
    TriPlaneGenerator(make_tiny_config(), seed=0).save(tmp_path)
    with pytest.raises(ValueError, match="backend"):
        MLPDecoder(IN, OUT, backend="jax")
    with pytest.raises(ValueError, match="decoder_backend"):
        config_from_dict(TriPlaneGeneratorConfig, {"decoder_backend": "cuda"})
    with pytest.raises(ValueError, match="backend"):
        TriPlaneGenerator.load(tmp_path, backend="jax")


def test_auto_is_torch_on_cpu_and_tcnn_compatibility_rules():
    assert MLPDecoder(IN, OUT, backend="auto", device="cpu").backend == "torch"
    assert tcnn_compatible(2, 64, 0.01) is None and tcnn_compatible(2, 64, 0.0) is None
    assert "LeakyReLU" in tcnn_compatible(2, 64, 0.2)
    assert "multiples of 16" in tcnn_compatible(2, 40, 0.01)


@pytest.mark.cuda
def test_tcnn_backend_matches_a_torch_checkpoint(tmp_path, rng, make_tiny_config):
    pytest.importorskip("tinycudann")
    config = make_tiny_config(decoder_negative_slope=0.01, decoder_hidden=64, decoder_backend="torch")
    torch_g = TriPlaneGenerator(config, seed=0, device="cuda")
    torch_g.save(tmp_path)
    tcnn_g = TriPlaneGenerator.load(tmp_path, device="cuda", backend="tcnn")
    assert tcnn_g.decoder.backend == "tcnn"
    z = torch.randn(2, 16, generator=rng).cuda()
    points = (torch.rand(2, 256, 3, generator=rng) - 0.5).cuda()
    planes = torch_g.generate_planes(z)
    expected = torch_g.field(planes)(points)
    got = tcnn_g.field(tcnn_g.generate_planes(z))(points)
    # tcnn runs in half precision.
    assert torch.allclose(got.density, expected.density, atol=2e-2, rtol=2e-2)
    assert torch.allclose(got.rgb, expected.rgb, atol=2e-2)
    # Saving from tcnn gives back the torch layout.
    for key, value in torch_g.decoder.state_dict().items():
        assert torch.allclose(tcnn_g.decoder.state_dict()[key], value, atol=1e-2), key


@pytest.mark.parametrize("num_layers", [2, 3])
def test_softplus_decoder_matches_a_manual_softplus_mlp(rng, num_layers):
    # EG3D's OSGDecoder: equalized-lr FC, Softplus (no gain), FC; middle layers have no bias here.
    decoder = MLPDecoder(IN, OUT, HIDDEN, num_layers, activation="softplus", backend="torch")
    with torch.no_grad():
        for layer in decoder.layers:
            if layer.bias is not None:
                layer.bias.normal_(generator=rng)
    x = torch.randn(30, IN, generator=rng)
    h = x
    for i, layer in enumerate(decoder.layers):
        h = h @ (layer.weight / decoder.dims[i] ** 0.5).t()
        if layer.bias is not None:
            h = h + layer.bias
        if i < num_layers - 1:
            h = torch.log1p(torch.exp(h))
    assert torch.allclose(decoder(x), h, atol=1e-5)
    # Not the leaky-ReLU decoder with the same weights.
    leaky = MLPDecoder(IN, OUT, HIDDEN, num_layers, backend="torch")
    leaky.load_state_dict(decoder.state_dict())
    assert not torch.allclose(leaky(x), h, atol=1e-3)


def test_softplus_plain_weights_round_trip(rng):
    decoder = MLPDecoder(IN, OUT, HIDDEN, 2, activation="softplus", backend="torch")
    back = MLPDecoder(IN, OUT, HIDDEN, 2, activation="softplus", backend="torch")
    back.load_plain_weights(*decoder.plain_weights())
    x = torch.randn(5, IN, generator=rng)
    assert torch.allclose(back(x), decoder(x), atol=1e-6)


def test_softplus_is_torch_only():
    from epigraf_field.decoder import resolve_backend

    reason = tcnn_compatible(2, 64, 0.01, "softplus")
    assert reason is not None and "softplus" in reason
    # auto never picks tcnn for it, on CUDA neither (the reason short-circuits before tcnn is loaded).
    assert resolve_backend("auto", "cuda", reason) == "torch"
    assert MLPDecoder(IN, OUT, backend="auto", device="cpu", activation="softplus").backend == "torch"
    with pytest.raises(ValueError, match="backend='tcnn' cannot run this decoder.*softplus"):
        MLPDecoder(IN, OUT, backend="tcnn", activation="softplus")
    with pytest.raises(ValueError, match="activation"):
        MLPDecoder(IN, OUT, backend="torch", activation="gelu")


def test_generator_decoder_activation_option(make_tiny_config, tmp_path, rng):
    config = make_tiny_config(decoder_activation="softplus", decoder_backend="auto")
    generator = TriPlaneGenerator(config, seed=0)
    assert generator.decoder.activation == "softplus" and generator.decoder.backend == "torch"
    generator.save(tmp_path)
    loaded = TriPlaneGenerator.load(tmp_path)
    assert loaded.config.decoder_activation == "softplus"
    features = torch.randn(7, generator.decoder.in_features, generator=rng)
    assert torch.equal(loaded.decoder(features), generator.decoder(features))
    # An explicit tcnn backend with softplus is an error naming both options, also when loading.
    with pytest.raises(ValueError, match="decoder_backend 'tcnn' cannot run decoder_activation 'softplus'"):
        make_tiny_config(decoder_activation="softplus", decoder_backend="tcnn")
    with pytest.raises(ValueError, match="decoder_activation 'softplus'"):
        TriPlaneGenerator.load(tmp_path, backend="tcnn")
    with pytest.raises(ValueError, match="decoder_activation"):
        config_from_dict(TriPlaneGeneratorConfig, {"decoder_activation": "relu6"})


def test_checkpoint_without_decoder_activation_loads_as_leaky_relu(make_tiny_config, tmp_path, rng):
    import json

    generator = TriPlaneGenerator(make_tiny_config(), seed=0)
    generator.save(tmp_path)
    meta = json.loads((tmp_path / "config.json").read_text())
    del meta["config"]["decoder_activation"]  # as written before the option existed
    (tmp_path / "config.json").write_text(json.dumps(meta))
    loaded = TriPlaneGenerator.load(tmp_path)
    assert loaded.config.decoder_activation == "leaky_relu" and loaded.decoder.activation == "leaky_relu"
    features = torch.randn(7, generator.decoder.in_features, generator=rng)
    assert torch.equal(loaded.decoder(features), generator.decoder(features))

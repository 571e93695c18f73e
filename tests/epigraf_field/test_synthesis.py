"""Tri-plane synthesis: shapes, gradients, noise modes and the skip architecture's ws layout."""

import pytest
import torch

from epigraf_field.generator import TriPlaneGenerator
from epigraf_field.synthesis import TriPlaneSynthesis, channels_at



def test_num_ws_and_widths():
    net = TriPlaneSynthesis(w_dim=8, plane_resolution=16, plane_channels=4, channel_base=64, channel_max=8)
    assert net.resolutions == [4, 8, 16]
    assert net.num_ws == 1 + 2 + 2 + 1  # convs (1 at 4x4, 2 per later block) + the last toPlanes
    assert [channels_at(r, 64, 8) for r in net.resolutions] == [8, 8, 4]
    with pytest.raises(ValueError, match="plane_resolution"):
        TriPlaneSynthesis(w_dim=8, plane_resolution=12, plane_channels=4, channel_base=64, channel_max=8)


def test_planes_shape_dtype_and_gradients(rng, tiny):
    g = TriPlaneGenerator(tiny, seed=0)
    z = torch.randn(2, tiny.z_dim, generator=rng)
    ws = g.mapping(z)
    assert ws.shape == (2, g.num_ws, tiny.w_dim)
    planes = g.synthesis(ws, noise_mode="random", rng=rng)
    assert planes.shape == (2, 3, 4, 8, 8) and planes.dtype == torch.float32
    planes.square().mean().backward()
    grads = {name: p.grad for name, p in g.named_parameters() if not name.startswith("decoder")}
    missing = [name for name, grad in grads.items() if grad is None]
    assert not missing, missing
    assert g.synthesis_network.blocks[0].const.grad.abs().sum() > 0


def test_noise_modes(rng, tiny):
    g = TriPlaneGenerator(tiny, seed=0)
    with torch.no_grad():
        for p in g.parameters():
            if p.ndim == 0:  # noise strengths start at 0; make the noise visible
                p.fill_(1.0)
    ws = g.mapping(torch.randn(2, tiny.z_dim, generator=rng))
    const_a, const_b = g.synthesis(ws, "const"), g.synthesis(ws, "const")
    assert torch.equal(const_a, const_b)
    rand_a = g.synthesis(ws, "random", rng=torch.Generator().manual_seed(1))
    rand_b = g.synthesis(ws, "random", rng=torch.Generator().manual_seed(1))
    rand_c = g.synthesis(ws, "random", rng=torch.Generator().manual_seed(2))
    assert torch.equal(rand_a, rand_b) and not torch.allclose(rand_a, rand_c)
    none = g.synthesis(ws, "none")
    assert not torch.allclose(none, const_a)
    with pytest.raises(ValueError, match="noise_mode"):
        g.synthesis(ws, "fixed")


def test_generate_planes_matches_two_steps(rng, make_tiny_config):
    g = TriPlaneGenerator(make_tiny_config(c_dim=25), seed=0)
    z = torch.randn(2, 16, generator=rng)
    c = torch.randn(2, 25, generator=rng)
    expected = g.synthesis(g.mapping(z, c, truncation_psi=0.7), "const")
    assert torch.equal(g.generate_planes(z, c, truncation_psi=0.7), expected)


def test_seeded_init_is_reproducible_and_leaves_global_rng_alone(tiny):
    state = torch.random.get_rng_state()
    a, b = TriPlaneGenerator(tiny, seed=3), TriPlaneGenerator(tiny, seed=3)
    assert torch.equal(torch.random.get_rng_state(), state)
    for (name, pa), pb in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(pa, pb), name


def test_benchmark_config_parameter_count():
    """Counted from shapes only (meta device): 9 convs + 5 toPlanes + const + mapping + decoder."""
    from epigraf_field.generator import TriPlaneGeneratorConfig

    with torch.device("meta"):
        g = TriPlaneGenerator(TriPlaneGeneratorConfig.benchmark())
    count = sum(p.numel() for p in g.parameters())
    conv = 512 * 512 * 9 + 512 + (512 * 512 + 512) + 1
    to_planes = 512 * 96 + 96 + (512 * 512 + 512)
    mapping = 8 * (512 * 512 + 512)
    decoder = 32 * 64 + 64 + 64 * 4 + 4
    assert count == 9 * conv + 5 * to_planes + 512 * 16 + mapping + decoder


def _reference_layer_tail(y, dcoefs, noise, strength, bias, clamp):
    """StyleGAN2's layer tail in its textbook order, one op per step."""
    from epigraf_field.layers import apply_activation

    x = y * dcoefs[:, :, None, None] if dcoefs is not None else y
    if noise is not None:
        x = x + noise * strength
    x = x + bias.view(1, -1, 1, 1)
    return apply_activation(x, "lrelu", clamp=clamp)


@pytest.mark.parametrize("noise_shape", [None, (3, 1, 5, 5), (5, 5)])
@pytest.mark.parametrize("with_dcoefs", [True, False])
@pytest.mark.parametrize("clamp", [None, 0.5])
def test_fused_layer_tail_matches_reference_values_and_gradients(rng, noise_shape, with_dcoefs, clamp):
    from epigraf_field.synthesis import fused_layer_epilogue

    y = torch.randn(3, 4, 5, 5, generator=rng)
    dcoefs = torch.rand(3, 4, generator=rng) + 0.5 if with_dcoefs else None
    noise = torch.randn(*noise_shape, generator=rng) if noise_shape else None
    strength = torch.tensor(0.7)
    bias = torch.randn(4, generator=rng)
    leaves = [t for t in (y, dcoefs, strength, bias) if t is not None]
    results = []
    for fn in (fused_layer_epilogue, _reference_layer_tail):
        inputs = [t.clone().requires_grad_(True) for t in leaves]
        it = iter(inputs)
        y_, d_, s_, b_ = next(it), (next(it) if with_dcoefs else None), next(it), next(it)
        out = fn(y_, d_, noise, s_ if noise is not None else None, b_, clamp)
        (out * torch.linspace(-1, 1, out.numel()).view_as(out)).sum().backward()
        results.append((out, [t.grad for t in inputs]))
    (out_fused, grads_fused), (out_ref, grads_ref) = results
    assert torch.allclose(out_fused, out_ref, atol=1e-6)
    for g_fused, g_ref in zip(grads_fused, grads_ref):
        if g_ref is None:  # the noise strength gets no gradient when there is no noise
            assert g_fused is None or torch.count_nonzero(g_fused) == 0
        else:
            assert torch.allclose(g_fused, g_ref, atol=1e-5)

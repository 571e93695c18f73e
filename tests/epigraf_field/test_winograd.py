"""Winograd F(4x4, 3x3) convolution: same values and gradients as conv2d, and when it is used."""

import os
import subprocess
import sys
import threading

import pytest
import torch
import torch.nn.functional as F
from jaxtyping import TypeCheckError

from epigraf_field.layers import resampled_conv2d
from epigraf_field.winograd import (
    conv3x3_algorithm,
    current_conv3x3_algorithm,
    use_winograd,
    winograd_conv2d_3x3,
)


@pytest.mark.parametrize("shape", [(2, 8, 12, 12), (1, 5, 13, 10), (3, 4, 1, 7), (2, 16, 32, 32)])
def test_matches_conv2d_values_and_gradients(shape):
    g = torch.Generator().manual_seed(sum(shape))
    x = torch.randn(*shape, generator=g, dtype=torch.float64).requires_grad_()
    weight = torch.randn(6, shape[1], 3, 3, generator=g, dtype=torch.float64).requires_grad_()
    upstream = torch.randn(shape[0], 6, *shape[2:], generator=g, dtype=torch.float64)
    expected = F.conv2d(x, weight, padding=1)
    expected_grads = torch.autograd.grad(expected, (x, weight), upstream)
    got = winograd_conv2d_3x3(x, weight)
    got_grads = torch.autograd.grad(got, (x, weight), upstream)
    assert got.shape == expected.shape
    torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-10)
    for a, b in zip(got_grads, expected_grads):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)


def test_float32_rounding_stays_small_at_training_widths():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 256, 32, 32, generator=g)
    weight = torch.randn(64, 256, 3, 3, generator=g) / 48.0  # unit-gain init, like equalized lr
    expected = F.conv2d(x.double(), weight.double(), padding=1)
    error = (winograd_conv2d_3x3(x, weight).double() - expected).abs().max() / expected.abs().max()
    direct = (F.conv2d(x, weight, padding=1).double() - expected).abs().max() / expected.abs().max()
    assert error < 1e-5, f"relative error {error:.2e}"
    assert error < 50 * direct + 1e-7


def test_rejects_a_weight_that_is_not_3x3_over_the_input_channels():
    # The shape annotation catches it when runtime checks are on; the function's own check otherwise.
    with pytest.raises((ValueError, TypeCheckError), match="3"):
        winograd_conv2d_3x3(torch.zeros(1, 4, 8, 8), torch.zeros(2, 3, 3, 3))


def test_auto_picks_wide_large_float32_cpu_layers_only():
    wide = torch.zeros(256, 256, 3, 3)
    with conv3x3_algorithm("auto"):
        assert use_winograd(torch.zeros(1, 256, 32, 32), wide, groups=1)
        assert not use_winograd(torch.zeros(1, 256, 16, 16), wide, groups=1)  # small maps: transforms dominate
        assert not use_winograd(torch.zeros(1, 128, 32, 32), torch.zeros(128, 128, 3, 3), groups=1)
        assert use_winograd(torch.zeros(1, 128, 64, 64), torch.zeros(128, 128, 3, 3), groups=1)
        assert use_winograd(torch.zeros(1, 512, 16, 16), torch.zeros(512, 512, 3, 3), groups=1)
        assert not use_winograd(torch.zeros(1, 512, 16, 16), torch.zeros(64, 512, 3, 3), groups=1)
        assert not use_winograd(torch.zeros(1, 256, 32, 32), torch.zeros(256, 128, 3, 3), groups=2)
        assert not use_winograd(torch.zeros(1, 256, 32, 32, dtype=torch.float64), wide.double(), groups=1)
        assert not use_winograd(torch.zeros(1, 256, 32, 32), torch.zeros(256, 256, 1, 1), groups=1)
        with conv3x3_algorithm("direct"):
            assert not use_winograd(torch.zeros(1, 256, 32, 32), wide, groups=1)
        with conv3x3_algorithm("winograd"):
            assert use_winograd(torch.zeros(1, 4, 8, 8), torch.zeros(4, 4, 3, 3), groups=1)
        assert use_winograd(torch.zeros(1, 256, 32, 32), wide, groups=1), "the context manager must restore auto"


def test_same_padded_convolutions_route_through_it():
    g = torch.Generator().manual_seed(1)
    x, weight = torch.randn(2, 8, 12, 12, generator=g), torch.randn(8, 8, 3, 3, generator=g)
    with conv3x3_algorithm("winograd"):
        fast = resampled_conv2d(x, weight)
    with conv3x3_algorithm("direct"):
        direct = resampled_conv2d(x, weight)
    assert not fast.is_contiguous(), "the Winograd path returns channels-last tensors"
    torch.testing.assert_close(fast, direct, rtol=1e-4, atol=1e-4)


def test_forcing_an_algorithm_on_one_thread_leaves_other_threads_alone():
    default = current_conv3x3_algorithm()
    forced_name = "direct" if default != "direct" else "winograd"
    wide_x, wide_weight = torch.zeros(1, 256, 32, 32), torch.zeros(256, 256, 3, 3)
    default_uses_winograd = use_winograd(wide_x, wide_weight, groups=1)
    forced, read = threading.Event(), threading.Event()
    seen = {}

    def forcing_thread():
        with conv3x3_algorithm(forced_name):
            seen["forcing"] = current_conv3x3_algorithm()
            forced.set()
            read.wait(timeout=30)  # keep the block open while the other thread reads
        seen["forcing_after"] = current_conv3x3_algorithm()

    def reading_thread():
        forced.wait(timeout=30)
        seen["reading"] = current_conv3x3_algorithm()
        seen["reading_uses_winograd"] = use_winograd(wide_x, wide_weight, groups=1)
        read.set()

    threads = [threading.Thread(target=forcing_thread), threading.Thread(target=reading_thread)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads)
    assert forced.is_set() and read.is_set()
    assert seen["forcing"] == forced_name
    assert seen["reading"] == default, "another thread's override leaked into this one"
    assert seen["reading_uses_winograd"] == default_uses_winograd
    assert seen["forcing_after"] == default
    assert current_conv3x3_algorithm() == default


def test_blocks_nest_and_restore_the_outer_choice():
    with conv3x3_algorithm("winograd"):
        with conv3x3_algorithm("direct"):
            assert current_conv3x3_algorithm() == "direct"
        assert current_conv3x3_algorithm() == "winograd"


def test_the_environment_is_read_once_at_import(monkeypatch):
    default = current_conv3x3_algorithm()
    monkeypatch.setenv("EPIGRAF_CONV3X3", "direct" if default != "direct" else "winograd")
    assert current_conv3x3_algorithm() == default
    code = "from epigraf_field.winograd import current_conv3x3_algorithm as c; print(c())"
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = {**os.environ, "EPIGRAF_CONV3X3": "direct", "PYTHONPATH": root}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "direct"


def test_unknown_algorithm_is_rejected():
    with pytest.raises(ValueError, match="direct"):
        with conv3x3_algorithm("fft"):
            pass


def test_second_order_gradients_match_conv2d():
    """R1 differentiates the input gradient again, through the weights."""
    g = torch.Generator().manual_seed(2)
    x = torch.randn(2, 3, 9, 7, generator=g, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(4, 3, 3, 3, generator=g, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradgradcheck(winograd_conv2d_3x3, (x, weight))

    def r1_weight_gradient(conv):
        (grad_x,) = torch.autograd.grad(conv(x, weight).square().sum(), x, create_graph=True)
        return torch.autograd.grad(grad_x.square().sum(), weight)[0]

    torch.testing.assert_close(r1_weight_gradient(winograd_conv2d_3x3),
                               r1_weight_gradient(lambda a, b: F.conv2d(a, b, padding=1)))

"""Every PNG mode Pillow reads decodes to the right 8-bit RGB, alpha composited over the background."""

from __future__ import annotations

import io
import struct

import numpy as np
import pytest
from tests.pipelines.data.data_test_utils import png_bytes, raw_png
from PIL import Image

from pipelines.data.images import load_image, to_rgb_uint8

GREEN = (0.0, 1.0, 0.0)


def _decode(data: bytes, size: int = 2, background=GREEN) -> np.ndarray:
    """uint8 [size, size, 3] at the image's own size (no resampling)."""
    return load_image(data, size, background, "error")


def _gray(values) -> np.ndarray:
    return np.stack([np.asarray(values, dtype=np.uint8)] * 3, axis=-1)


def test_16_bit_grayscale_is_scaled_not_clipped():
    samples = np.array([[0, 257 * 100], [32768, 65535]])  # v -> round(v / 257); 32768 is mid-grey
    expected = _gray([[0, 100], [128, 255]])
    np.testing.assert_array_equal(_decode(raw_png(samples, color_type=0, bit_depth=16)), expected)
    through_pillow = png_bytes(samples.astype(np.uint16))  # numpy uint16 -> Pillow I;16 -> PNG
    assert Image.open(io.BytesIO(through_pillow)).mode == "I;16"
    np.testing.assert_array_equal(_decode(through_pillow), expected)


@pytest.mark.parametrize("mode", ["I;16", "I;16B", "I"])
def test_16_bit_gray_modes_in_memory(mode):
    # Older Pillow opens 16-bit grey PNGs as I; I;16B is the big-endian layout.
    packed = struct.pack(">4H" if mode == "I;16B" else "<4H", 0, 257 * 7, 32768, 65535)
    image = Image.frombytes(mode, (2, 2), packed) if mode != "I" else Image.new("I", (2, 2))
    if mode == "I":
        image.putdata([0, 257 * 7, 32768, 65535])
    np.testing.assert_array_equal(to_rgb_uint8(image, 2, GREEN), _gray([[0, 7], [128, 255]]))


def test_16_bit_gray_with_transparent_colour_key():
    samples = np.array([[257 * 10, 257 * 90], [257 * 90, 257 * 10]])
    data = raw_png(samples, 0, 16, chunks=((b"tRNS", struct.pack(">H", 257 * 90)),))
    expected = np.array([[[10] * 3, [0, 255, 0]], [[0, 255, 0], [10] * 3]], dtype=np.uint8)
    np.testing.assert_array_equal(_decode(data), expected)


def test_16_bit_rgb_and_rgba():
    rgb = np.array([[[257 * 10, 257 * 20, 257 * 30], [65535, 0, 32896]]] * 2)
    expected = np.array([[[10, 20, 30], [255, 0, 128]]] * 2, dtype=np.uint8)
    np.testing.assert_array_equal(_decode(raw_png(rgb, 2, 16)), expected)
    alpha = np.array([[[65535], [0]]] * 2)
    composited = np.array([[[10, 20, 30], [0, 255, 0]]] * 2, dtype=np.uint8)
    np.testing.assert_array_equal(_decode(raw_png(np.concatenate([rgb, alpha], -1), 6, 16)), composited)


def test_16_bit_gray_alpha():
    samples = np.array([[[257 * 40, 65535], [257 * 40, 0]]] * 2)
    expected = np.array([[[40] * 3, [0, 255, 0]]] * 2, dtype=np.uint8)
    np.testing.assert_array_equal(_decode(raw_png(samples, 4, 16)), expected)


def test_8_bit_gray_rgb_and_alpha_modes():
    np.testing.assert_array_equal(_decode(raw_png(np.array([[0, 100], [200, 255]]), 0, 8)),
                                  _gray([[0, 100], [200, 255]]))
    rgb = np.array([[[1, 2, 3], [250, 128, 0]]] * 2)
    np.testing.assert_array_equal(_decode(raw_png(rgb, 2, 8)), rgb.astype(np.uint8))
    # alpha 51 = 0.2 over green: red = 200 * 0.2 + 0 * 0.8 = 40, green = 200 * 0.2 + 255 * 0.8 = 244
    la = np.array([[[200, 255], [200, 0]], [[200, 51], [200, 255]]])
    expected = np.array([[[200] * 3, [0, 255, 0]], [[40, 244, 40], [200] * 3]], dtype=np.uint8)
    np.testing.assert_array_equal(_decode(raw_png(la, 4, 8)), expected)
    rgba = np.array([[[255, 0, 0, 255], [9, 9, 9, 0]], [[255, 0, 0, 51], [0, 0, 255, 255]]])
    expected = np.array([[[255, 0, 0], [0, 255, 0]], [[51, 204, 0], [0, 0, 255]]], dtype=np.uint8)
    np.testing.assert_array_equal(_decode(raw_png(rgba, 6, 8)), expected)


def test_colour_keys_on_8_bit_gray_and_rgb():
    gray = raw_png(np.array([[100, 7], [7, 100]]), 0, 8, chunks=((b"tRNS", struct.pack(">H", 7)),))
    expected = np.array([[[100] * 3, [0, 255, 0]], [[0, 255, 0], [100] * 3]], dtype=np.uint8)
    np.testing.assert_array_equal(_decode(gray), expected)
    rgb = raw_png(np.array([[[1, 2, 3], [4, 5, 6]]] * 2), 2, 8, chunks=((b"tRNS", struct.pack(">3H", 4, 5, 6)),))
    np.testing.assert_array_equal(_decode(rgb), np.array([[[1, 2, 3], [0, 255, 0]]] * 2, dtype=np.uint8))


@pytest.mark.parametrize("transparent", [False, True])
def test_palette_with_and_without_transparency(transparent):
    palette = (b"PLTE", bytes([255, 0, 0, 0, 0, 255, 10, 20, 30]))
    chunks = (palette, (b"tRNS", bytes([0, 51]))) if transparent else (palette,)
    data = raw_png(np.array([[0, 1], [2, 0]]), 3, 8, chunks=chunks)
    assert Image.open(io.BytesIO(data)).mode == "P"
    if transparent:  # index 0 fully transparent, index 1 alpha 0.2, index 2 opaque (no tRNS entry)
        expected = [[[0, 255, 0], [0, 204, 51]], [[10, 20, 30], [0, 255, 0]]]
    else:
        expected = [[[255, 0, 0], [0, 0, 255]], [[10, 20, 30], [255, 0, 0]]]
    np.testing.assert_array_equal(_decode(data), np.array(expected, dtype=np.uint8))


@pytest.mark.parametrize("bit_depth", [1, 2, 4])
def test_low_bit_depth_gray(bit_depth):
    top = (1 << bit_depth) - 1
    data = raw_png(np.array([[0, top, 0, top], [top, 0, top, 0], [0, 0, top, top], [1, 1, 0, 0]]), 0, bit_depth)
    step = 255 // top
    expected = _gray([[0, 255, 0, 255], [255, 0, 255, 0], [0, 0, 255, 255], [step, step, 0, 0]])
    np.testing.assert_array_equal(_decode(data, size=4), expected)


def test_bilevel_mode_1_from_pillow():
    image = Image.new("1", (2, 2), 0)
    image.putpixel((1, 0), 1)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    assert Image.open(io.BytesIO(buffer.getvalue())).mode == "1"
    np.testing.assert_array_equal(_decode(buffer.getvalue()), _gray([[0, 255], [0, 0]]))


def test_background_is_used_for_transparent_pixels():
    rgba = np.zeros((2, 2, 4), dtype=np.uint8)  # fully transparent black
    np.testing.assert_array_equal(_decode(png_bytes(rgba), background=(1.0, 0.5, 0.0)),
                                  np.full((2, 2, 3), [255, 128, 0], dtype=np.uint8))

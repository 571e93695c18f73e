"""Decoding dataset images into uint8 RGB at the training resolution (alpha over a background)."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

MAX_SIZE_FACTOR = 16
"""Images wider or taller than MAX_SIZE_FACTOR x resolution pixels in area are refused before decoding.

A decoded RGBA image costs about 16 bytes a pixel while it is composited, per decode thread: at
resolution 64 the bound is 1024^2 pixels (16 MB), at 256 it is 4096^2 (270 MB). Datasets of
larger photos are resized offline once instead of on every load.
"""
SMALL_SIZE_DIVISOR = 4
"""Images with a side under resolution / SMALL_SIZE_DIVISOR are used but reported as warnings (heavy upscaling)."""
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_SIXTEEN_BIT_GRAY = ("I;16", "I;16L", "I;16B", "I;16N", "I")


class ImageProblem(Exception):
    """An image that cannot be used; ``kind``, ``problem`` and ``fix`` go into the dataset report."""

    def __init__(self, kind: str, problem: str, fix: str):
        super().__init__(problem)
        self.kind, self.problem, self.fix = kind, problem, fix


def open_image(data: bytes) -> Image.Image:
    """Reads an image's header only (size and mode); the pixels are decoded by :func:`decode`."""
    try:
        return Image.open(io.BytesIO(data))
    except Exception as error:  # noqa: BLE001 - PIL raises many types for bad files
        raise _corrupt(error) from error


def verify_checksums(data: bytes) -> None:
    """Raises :class:`ImageProblem` for a PNG whose chunk checksums do not match its bytes.

    Pillow skips the CRC of image data (IDAT) when decoding and stops once it has every pixel, so a
    flipped byte in a well-compressed PNG can decode, without an error, to other pixels. Other
    formats carry no checksum to check.
    """
    if not data.startswith(_PNG_SIGNATURE):
        return
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.verify()
    except Exception as error:  # noqa: BLE001 - PIL raises many types for bad files
        raise _corrupt(error) from error


def decode(image: Image.Image) -> Image.Image:
    """Fully decodes an image (a truncated or corrupt file fails here rather than during training)."""
    try:
        image.load()
    except Exception as error:  # noqa: BLE001 - PIL raises many types for bad files
        raise _corrupt(error) from error
    return image


def _corrupt(error: Exception) -> ImageProblem:
    return ImageProblem("corrupt_image", f"unreadable or corrupt image ({type(error).__name__}: {error})",
                        "re-export or remove this file")


def check_size(image: Image.Image, resolution: int, resize: str) -> ImageProblem | None:
    """Raises :class:`ImageProblem` for a size that cannot be used; returns a warning (not raised) or None.

    Refused: non-square images, images above (MAX_SIZE_FACTOR x resolution)^2 pixels, and with
    ``resize='error'`` any other size than the resolution. Warned about: a side under
    resolution / SMALL_SIZE_DIVISOR (e.g. a 1x1 image blown up to a 64x64 training image).
    """
    width, height = image.size
    if width != height:
        raise ImageProblem("non_square_image", f"image is {width}x{height}, not square",
                           "crop the image to a square (and adjust its intrinsics), or remove it")
    if resize == "error" and width != resolution:
        raise ImageProblem("wrong_resolution", f"image is {width}x{height}, expected {resolution}x{resolution}",
                           f"resize the dataset to {resolution}, or set resize='resize'")
    limit = MAX_SIZE_FACTOR * resolution
    if width * height > limit * limit:
        raise ImageProblem("image_too_large", f"image is {width}x{height}, more pixels than the {limit}x{limit} "
                           f"(= {MAX_SIZE_FACTOR} x resolution {resolution}) decoded per image",
                           f"resize the dataset offline to about {resolution}x{resolution} (e.g. with PIL or "
                           "ImageMagick's mogrify -resize), or train at a higher resolution")
    if width < resolution / SMALL_SIZE_DIVISOR:
        return ImageProblem("small_image", f"image is {width}x{height}, under 1/{SMALL_SIZE_DIVISOR} of the "
                            f"resolution {resolution}: it is upscaled into a blurry training image",
                            "remove it, or check that the right file was exported")
    return None


def _gray16_to_la(image: Image.Image) -> Image.Image:
    """16-bit grayscale (I;16 variants, or I holding 16-bit values) to 8-bit LA: value 257 k -> k."""
    values = np.clip(np.asarray(image), 0, 65535).astype(np.uint32)
    gray = ((values * 255 + 32767) // 65535).astype(np.uint8)  # round(v / 257)
    transparent = image.info.get("transparency")
    alpha = np.where(values == transparent, 0, 255).astype(np.uint8) if transparent is not None else None
    if alpha is None:
        return Image.fromarray(gray, "L")
    return Image.fromarray(np.stack([gray, alpha], axis=-1), "LA")


def _has_alpha(image: Image.Image) -> bool:
    return image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info


def to_rgb_uint8(image: Image.Image, resolution: int, background: tuple[float, float, float]) -> np.ndarray:
    """uint8 [R, R, 3]: alpha composited over ``background`` (values in [0, 1], rounded to 8 bits), then resized.

    Every PNG mode Pillow reads maps to the right 8-bit values: 1, L, LA, P (with or without a
    transparent colour), RGB, RGBA, 16-bit RGB(A) (Pillow keeps the high byte), 16-bit grayscale
    (I;16*: value v -> round(v / 257), where convert('RGB') would clip it to 255) and a tRNS
    colour key on any of them. Compositing comes before resizing so that colours hidden under
    alpha = 0 never bleed into the silhouette edges.
    """
    if image.mode in _SIXTEEN_BIT_GRAY:
        image = _gray16_to_la(image)
    if _has_alpha(image):
        fill = tuple(int(round(255.0 * min(max(c, 0.0), 1.0))) for c in background) + (255,)
        rgba = image if image.mode == "RGBA" else image.convert("RGBA")
        image = Image.alpha_composite(Image.new("RGBA", image.size, fill), rgba)
    if image.mode != "RGB":
        image = image.convert("RGB")
    if image.size != (resolution, resolution):
        image = image.resize((resolution, resolution), Image.Resampling.LANCZOS)
    return np.asarray(image, dtype=np.uint8)


def load_image_checked(data: bytes, resolution: int, background: tuple[float, float, float],
                       resize: str) -> tuple[np.ndarray, ImageProblem | None]:
    """Bytes of an image file to (uint8 [R, R, 3], size warning or None); raises :class:`ImageProblem`.

    The size is checked on the header, before any pixel is decoded.
    """
    image = open_image(data)
    warning = check_size(image, resolution, resize)
    verify_checksums(data)
    return to_rgb_uint8(decode(image), resolution, background), warning


def load_image(data: bytes, resolution: int, background: tuple[float, float, float], resize: str) -> np.ndarray:
    """Bytes of an image file to uint8 [R, R, 3]; raises :class:`ImageProblem`."""
    return load_image_checked(data, resolution, background, resize)[0]

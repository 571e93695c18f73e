"""Decoding dataset images into uint8 RGB at the training resolution (alpha over a background)."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image


class ImageProblem(Exception):
    """An image that cannot be used; ``kind``, ``problem`` and ``fix`` go into the dataset report."""

    def __init__(self, kind: str, problem: str, fix: str):
        super().__init__(problem)
        self.kind, self.problem, self.fix = kind, problem, fix


def open_image(data: bytes) -> Image.Image:
    """Fully decodes an image (a truncated or corrupt file fails here rather than during training)."""
    try:
        image = Image.open(io.BytesIO(data))
        image.load()
    except Exception as error:  # noqa: BLE001 - PIL raises many types for bad files
        raise ImageProblem("corrupt_image", f"unreadable or corrupt image ({type(error).__name__}: {error})",
                           "re-export or remove this file") from error
    return image


def check_size(image: Image.Image, resolution: int, resize: str) -> None:
    width, height = image.size
    if width != height:
        raise ImageProblem("non_square_image", f"image is {width}x{height}, not square",
                           "crop the image to a square (and adjust its intrinsics), or remove it")
    if resize == "error" and width != resolution:
        raise ImageProblem("wrong_resolution", f"image is {width}x{height}, expected {resolution}x{resolution}",
                           f"resize the dataset to {resolution}, or set resize='resize'")


def to_rgb_uint8(image: Image.Image, resolution: int, background: tuple[float, float, float]) -> np.ndarray:
    """uint8 [R, R, 3]: alpha composited over ``background`` (values in [0, 1]), then resized.

    Compositing comes before resizing so that colours hidden under alpha = 0 never bleed into
    the silhouette edges.
    """
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = np.asarray(image.convert("RGBA"), dtype=np.float32) / 255.0
        alpha = rgba[..., 3:4]
        rgb = rgba[..., :3] * alpha + np.asarray(background, dtype=np.float32) * (1.0 - alpha)
        image = Image.fromarray(np.clip(np.rint(rgb * 255.0), 0, 255).astype(np.uint8), "RGB")
    elif image.mode != "RGB":
        image = image.convert("RGB")
    if image.size != (resolution, resolution):
        image = image.resize((resolution, resolution), Image.Resampling.LANCZOS)
    return np.asarray(image, dtype=np.uint8)


def load_image(data: bytes, resolution: int, background: tuple[float, float, float], resize: str) -> np.ndarray:
    """Bytes of an image file to uint8 [R, R, 3]; raises :class:`ImageProblem`."""
    image = open_image(data)
    check_size(image, resolution, resize)
    return to_rgb_uint8(image, resolution, background)

"""Helpers of the data tests: tiny image files, zips, labels and a reference projection."""

from __future__ import annotations

import io
import json
import struct
import warnings
import zipfile
import zlib
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from renderers.cameras import Cameras

TINY = dict(num_objects=3, views_per_object=2, resolution=32, spp=4, progress=False, variant="scalar_rgb")


def png_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def write_zip(path: Path, files: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return path


def write_zip_members(path: Path, members: list[tuple[str, bytes]]) -> Path:
    """A zip holding ``members`` in order, repeated names included (zipfile warns about those)."""
    with warnings.catch_warnings(), zipfile.ZipFile(path, "w") as archive:
        warnings.simplefilter("ignore", UserWarning)
        for name, data in members:
            archive.writestr(name, data)
    return path


def _png_chunk(tag: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)


def raw_png(array: np.ndarray, color_type: int, bit_depth: int, chunks: tuple[tuple[bytes, bytes], ...] = (),
            size: tuple[int, int] | None = None) -> bytes:
    """A PNG written by hand: ``array`` [h, w] or [h, w, c] of samples at ``bit_depth`` 1, 2, 4, 8 or 16.

    ``color_type`` as in the PNG spec (0 gray, 2 RGB, 3 palette, 4 gray+alpha, 6 RGBA); ``chunks``
    (tag, data) go before IDAT (PLTE, tRNS); ``size`` (w, h) overrides the header's size.
    """
    height, width = array.shape[:2]
    rows = np.ascontiguousarray(array.astype(">u2" if bit_depth == 16 else np.uint8)).reshape(height, -1)
    if bit_depth < 8:  # samples packed MSB first, each row padded to a whole byte
        bits = (rows[..., None] >> np.arange(bit_depth - 1, -1, -1)) & 1
        rows = np.packbits(bits.reshape(height, -1).astype(np.uint8), axis=1)
    pixels = b"".join(b"\0" + row.tobytes() for row in rows)
    width, height = size if size is not None else (width, height)
    header = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    body = b"".join(_png_chunk(tag, data) for tag, data in chunks)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + body + _png_chunk(b"IDAT", zlib.compress(pixels))
            + _png_chunk(b"IEND", b""))


def front_label(yaw: float = 0.3, pitch: float = 0.2) -> list[float]:
    cams = Cameras.from_spherical(torch.tensor([yaw]), torch.tensor([pitch]), 1.3, 40.0)
    return cams.to_label()[0].tolist()


def random_image(size: int, seed: int, channels: int = 3) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (size, size, channels), dtype=np.uint8)


def labeled_files(count: int, size: int = 16) -> dict[str, bytes]:
    """``count`` random images with valid labels, as the files of an EG3D dataset."""
    files = {f"img{i}.png": png_bytes(random_image(size, i)) for i in range(count)}
    labels = [[name, front_label(0.1 * i)] for i, name in enumerate(files)]
    files["dataset.json"] = json.dumps({"labels": labels}).encode()
    return files


def project(label: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """(u, v) image units of world ``points [n, 3]`` through one 25-float label."""
    cams = Cameras.from_label(label.reshape(1, 25).double())
    world2cam = torch.linalg.inv(cams.cam2world[0])
    cam = points.double() @ world2cam[:3, :3].T + world2cam[:3, 3]
    uvw = cam @ cams.intrinsics[0].T
    return uvw[:, :2] / uvw[:, 2:3]

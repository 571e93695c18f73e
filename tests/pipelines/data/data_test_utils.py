"""Helpers of the data tests: tiny image files, zips, labels and a reference projection."""

from __future__ import annotations

import io
import json
import zipfile
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

"""Pictures of a run: image grids and turntable GIFs."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor


def images_to_grid(images: Tensor, columns: int) -> np.ndarray:
    """Tiles images [n, 3, h, w] in [0, 1] into one uint8 array [rows*h, columns*w, 3]."""
    n, channels, h, w = images.shape
    rows = math.ceil(n / columns)
    canvas = torch.ones(rows * columns, channels, h, w, dtype=images.dtype)
    canvas[:n] = images.detach().float().cpu()
    grid = canvas.reshape(rows, columns, channels, h, w).permute(0, 3, 1, 4, 2).reshape(rows * h, columns * w, channels)
    return (grid.clamp(0, 1) * 255 + 0.5).to(torch.uint8).numpy()


def save_grid(images: Tensor, columns: int, path: Path) -> Path:
    """Writes an image grid as PNG (images [n, 3, h, w] in [0, 1])."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(images_to_grid(images, columns)).save(path)
    return path


def save_gif(frames: list[np.ndarray], path: Path, fps: int = 12) -> Path:
    """Writes uint8 frames [h, w, 3] as a looping GIF."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pictures = [Image.fromarray(frame) for frame in frames]
    pictures[0].save(path, save_all=True, append_images=pictures[1:], duration=int(1000 / fps), loop=0)
    return path

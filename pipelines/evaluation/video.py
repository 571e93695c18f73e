"""Frames to files: MP4 (imageio-ffmpeg's bundled ffmpeg) and GIF, and depth/opacity maps as pictures."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

VIDEO_FORMATS = ("mp4", "gif")


def _even(frame: np.ndarray) -> np.ndarray:
    """H.264 with 4:2:0 chroma needs even sides: repeat the last row/column when one is odd."""
    h, w = frame.shape[:2]
    return np.pad(frame, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")


def write_video(frames: Sequence[np.ndarray], path: str | Path, fps: int = 30) -> Path:
    """Writes uint8 frames [h, w, 3] as MP4 (H.264) or GIF, chosen by the suffix of ``path``."""
    path = Path(path)
    suffix = path.suffix.lower().lstrip(".")
    if suffix not in VIDEO_FORMATS:
        raise ValueError(f"{path}: video format must be one of {', '.join(VIDEO_FORMATS)} (by suffix), got {suffix!r}")
    if not frames:
        raise ValueError(f"{path}: no frames to write")
    if fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    path.parent.mkdir(parents=True, exist_ok=True)
    if suffix == "gif":
        from PIL import Image

        pictures = [Image.fromarray(np.asarray(f, dtype=np.uint8)) for f in frames]
        pictures[0].save(path, save_all=True, append_images=pictures[1:], duration=round(1000 / fps), loop=0)
        return path
    import imageio.v2 as imageio

    try:
        import imageio_ffmpeg  # noqa: F401  (imageio's ffmpeg plug-in needs it; say so plainly)
    except ImportError as error:
        raise RuntimeError("MP4 output needs the imageio-ffmpeg package: pip install imageio-ffmpeg (or write .gif)") from error
    # macro_block_size=1: we pad to even sides ourselves instead of letting imageio rescale the frames.
    with imageio.get_writer(str(path), format="FFMPEG", mode="I", fps=fps, codec="libx264", quality=8,
                            macro_block_size=1, ffmpeg_log_level="error") as writer:
        for frame in frames:
            writer.append_data(_even(np.asarray(frame, dtype=np.uint8)))
    return path


def depth_to_images(depth: Tensor, opacity: Tensor, threshold: float = 0.5) -> Tensor:
    """Depth maps [b, 1, h, w] as grey images [b, 3, h, w] in [0, 1]: near is bright, background black.

    Each image is stretched over the depth range of its own foreground (opacity > ``threshold``).
    """
    foreground = opacity > threshold
    big = torch.finfo(depth.dtype).max
    low = torch.where(foreground, depth, torch.full_like(depth, big)).amin(dim=(1, 2, 3), keepdim=True)
    high = torch.where(foreground, depth, torch.full_like(depth, -big)).amax(dim=(1, 2, 3), keepdim=True)
    span = (high - low).clamp_min(1e-6)
    shade = 1.0 - 0.8 * ((depth - low) / span).clamp(0, 1)  # keep the farthest surface visible against black
    return torch.where(foreground, shade, torch.zeros_like(shade)).expand(-1, 3, -1, -1)


def opacity_to_images(opacity: Tensor) -> Tensor:
    """Opacity [b, 1, h, w] as grey images [b, 3, h, w]."""
    return opacity.clamp(0, 1).expand(-1, 3, -1, -1)

"""What the render/export/metrics commands share: device choice and loading a bundle with readable errors."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Literal

import torch

from pipelines.bundle import GeneratorBundle, load_bundle
from renderers.volume_renderer import VolumeRenderer

Device = Literal["auto", "cpu", "cuda"]


def choose_device(requested: Device) -> torch.device:
    if requested == "cuda" and not torch.cuda.is_available():
        raise SystemExit("error: --device cuda was asked for but no CUDA device is available; use --device cpu")
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(requested)


def open_bundle(checkpoint: Path, device: torch.device) -> GeneratorBundle:
    """Loads a bundle; a missing or damaged checkpoint ends the command with the reason, not a traceback."""
    try:
        return load_bundle(checkpoint, device=device)
    except (FileNotFoundError, ValueError) as error:
        raise SystemExit(f"error: cannot load checkpoint {checkpoint}: {error}") from None


def renderer_with(bundle: GeneratorBundle, num_coarse: int | None, num_fine: int | None,
                  chunk_size: int | None = None) -> VolumeRenderer:
    """The bundle's renderer with optional sample-count overrides (more samples: sharper, slower)."""
    config = bundle.renderer_config
    changes = {k: v for k, v in (("num_coarse", num_coarse), ("num_fine", num_fine), ("chunk_size", chunk_size))
               if v is not None}
    try:
        return VolumeRenderer(replace(config, **changes) if changes else config)
    except ValueError as error:
        raise SystemExit(f"error: {error}") from None

"""What the render/export/metrics/view commands share: opening a generator with readable errors."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import torch

from pipelines.model import GeneratorModel, ModelLoadError, open_model
from renderers.volume_renderer import VolumeRenderer


def open_model_or_exit(checkpoint: Path, device: torch.device) -> GeneratorModel:
    """Opens a run, checkpoint or bundle; a missing or damaged one ends the command with the reason, not a traceback."""
    try:
        return open_model(checkpoint, device=device)
    except ModelLoadError as error:
        raise SystemExit(f"error: {error}") from None


def with_sample_counts(model: GeneratorModel, num_coarse: int | None, num_fine: int | None,
                       chunk_size: int | None = None) -> GeneratorModel:
    """The model with its renderer's sample counts overridden (more samples: sharper, slower)."""
    config = model.renderer.config
    changes = {k: v for k, v in (("num_coarse", num_coarse), ("num_fine", num_fine), ("chunk_size", chunk_size))
               if v is not None}
    if not changes:
        return model
    try:
        return model.with_options(renderer=VolumeRenderer(replace(config, **changes)))
    except ValueError as error:
        raise SystemExit(f"error: {error}") from None

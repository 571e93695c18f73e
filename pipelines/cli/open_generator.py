"""Opening the generator a command works on (render, export, metrics, view), with one-line errors."""

from __future__ import annotations

from pathlib import Path

import torch

from pipelines.engine.checkpoints import CheckpointError, list_checkpoints
from pipelines.model import GeneratorModel, ModelLoadError, open_model


def open_generator(path: Path, device: torch.device) -> GeneratorModel:
    """A run folder (its newest checkpoint), a checkpoint directory, a generator bundle or an official .pkl as a model.

    Raises CheckpointError for a run without checkpoints and ModelLoadError otherwise, in one line
    (a list of skipped checkpoints is joined with "; ").
    """
    path = Path(path)
    if (path / "checkpoints").is_dir() and not list_checkpoints(path):
        raise CheckpointError(
            f"{path} has no checkpoint yet (the run has not written one): "
            "pass a run with checkpoints, a checkpoint directory (RUN/checkpoints/step-*) or a generator bundle"
        )
    try:
        return open_model(path, device=device)
    except ModelLoadError as error:
        lines = [line.strip() for line in str(error).splitlines() if line.strip()]
        raise ModelLoadError(lines[0] + "".join(f"; {line}" for line in lines[1:])) from None

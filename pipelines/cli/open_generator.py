"""Opening the generator a command works on (render, export, metrics, view), with one-line errors."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import torch

from pipelines.engine.checkpoints import CheckpointError, list_checkpoints
from pipelines.model import GeneratorModel, ModelLoadError, open_model

Branch = Literal["3d", "2d"]
"""Which branch of a two-branch generator makes the final images (the --branch option)."""
BRANCHED_PIPELINES = ("mimic3d",)
"""Pipelines whose generators have a 2D branch beside the direct 3D render (named in the --branch error)."""


def open_generator(path: Path, device: torch.device, branch: Branch = "3d") -> GeneratorModel:
    """A run folder (its newest checkpoint), a checkpoint directory, a generator bundle or an official .pkl as a model,
    showing ``branch`` ("3d": the model's own final images; "2d": a mimic3d generator's super-resolved branch).

    Raises CheckpointError for a run without checkpoints and ModelLoadError otherwise, in one line
    (a list of skipped checkpoints is joined with "; "); ``branch="2d"`` on a generator without
    branches is a ModelLoadError naming the path, its pipeline and the pipelines that have branches.
    """
    path = Path(path)
    if (path / "checkpoints").is_dir() and not list_checkpoints(path):
        raise CheckpointError(
            f"{path} has no checkpoint yet (the run has not written one): "
            "pass a run with checkpoints, a checkpoint directory (RUN/checkpoints/step-*) or a generator bundle"
        )
    try:
        model = open_model(path, device=device)
    except ModelLoadError as error:
        lines = [line.strip() for line in str(error).splitlines() if line.strip()]
        raise ModelLoadError(lines[0] + "".join(f"; {line}" for line in lines[1:])) from None
    return with_branch(model, branch, path)


def with_branch(model: GeneratorModel, branch: Branch, path: Path) -> GeneratorModel:
    """``model`` showing ``branch``; a model without branches (no ``branch`` setting) takes only "3d"."""
    if hasattr(model, "branch"):
        return model.with_options(branch=branch)
    if branch != "3d":
        raise ModelLoadError(
            f"--branch {branch}: {path} holds a {model.pipeline} generator, which has one branch (its final images "
            f"are the only ones it makes); only {', '.join(BRANCHED_PIPELINES)} generators have a 2D branch beside "
            "the direct 3D render: leave --branch out"
        )
    return model


def with_class_index(model: GeneratorModel, class_index: int | None, path: Path) -> GeneratorModel:
    """``model`` drawing every seed in ``class_index`` (None: each seed in its own class, unchanged); a generator
    that is not class-conditional takes only None, an index out of range is a ValueError naming the range."""
    if class_index is None:
        return model
    if not getattr(model, "num_classes", 0):
        raise ModelLoadError(f"--class-index {class_index} given, but {path} holds a generator that is not "
                             "class-conditional; leave --class-index out")
    return model.with_options(class_index=class_index)

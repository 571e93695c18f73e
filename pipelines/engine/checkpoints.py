"""Training checkpoints: atomic directory writes, the last few kept, safe loading, `latest` lookup.

A checkpoint is a directory ``checkpoints/step-<nimg>/`` holding
``training_state.pt`` (plain tensors and numbers only, read with ``weights_only=True``),
``generator/`` (the EMA generator as safetensors + JSON, loadable without this package) and
``checkpoint.json`` (format version, progress, the files' sizes). It is written under a
temporary name and renamed into place, so a run killed at any moment leaves either the whole
checkpoint or none.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch

FORMAT_VERSION = 1
STATE_FILE = "training_state.pt"
MANIFEST_FILE = "checkpoint.json"
GENERATOR_DIR = "generator"
_PREFIX = "step-"


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be used (missing, truncated, from another format)."""


@dataclass(frozen=True)
class CheckpointInfo:
    path: Path
    nimg: int


def checkpoint_dir(run_dir: Path) -> Path:
    return Path(run_dir) / "checkpoints"


def save_checkpoint(
    run_dir: Path,
    nimg: int,
    training_state: dict[str, Any],
    save_generator: Callable[[Path], None],
    keep_last: int = 3,
) -> Path:
    """Writes a checkpoint atomically and prunes all but the newest ``keep_last``."""
    root = checkpoint_dir(run_dir)
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"{_PREFIX}{nimg:012d}"
    staging = root / f".partial-{final.name}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    torch.save(training_state, staging / STATE_FILE)
    save_generator(staging / GENERATOR_DIR)
    files = {str(p.relative_to(staging)): p.stat().st_size for p in sorted(staging.rglob("*")) if p.is_file()}
    manifest = {"format_version": FORMAT_VERSION, "nimg": nimg, "files": files}
    (staging / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2))
    _fsync_tree(staging)
    if final.exists():
        shutil.rmtree(final)
    os.replace(staging, final)
    for old in list_checkpoints(run_dir)[:-keep_last] if keep_last > 0 else []:
        shutil.rmtree(old.path, ignore_errors=True)
    return final


def _fsync_tree(directory: Path) -> None:
    for path in directory.rglob("*"):
        if path.is_file():
            with open(path, "rb") as handle:
                os.fsync(handle.fileno())


def list_checkpoints(run_dir: Path) -> list[CheckpointInfo]:
    """Complete-looking checkpoints of a run, oldest first (partial writes are ignored)."""
    root = checkpoint_dir(run_dir)
    if not root.is_dir():
        return []
    found = []
    for path in root.iterdir():
        if path.is_dir() and path.name.startswith(_PREFIX) and path.name[len(_PREFIX) :].isdigit():
            found.append(CheckpointInfo(path, int(path.name[len(_PREFIX) :])))
    return sorted(found, key=lambda info: info.nimg)


def verify_checkpoint(path: Path) -> dict[str, Any]:
    """Checks a checkpoint's manifest and file sizes; returns the manifest or raises CheckpointError."""
    path = Path(path)
    manifest_path = path / MANIFEST_FILE
    if not manifest_path.is_file():
        raise CheckpointError(
            f"{manifest_path} is missing: {path} is not a complete checkpoint "
            "(pass a checkpoint directory such as runs/<run>/checkpoints/step-000000004000, or --resume latest)"
        )
    try:
        manifest = json.loads(manifest_path.read_text())
    except json.JSONDecodeError as error:
        raise CheckpointError(f"{manifest_path} is not valid JSON ({error}); the checkpoint is damaged") from error
    if manifest.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            f"{manifest_path}: format_version {manifest.get('format_version')!r} is not supported "
            f"(this version reads {FORMAT_VERSION})"
        )
    for name, size in manifest.get("files", {}).items():
        file = path / name
        if not file.is_file():
            raise CheckpointError(f"{file} is missing; the checkpoint {path} is incomplete")
        if file.stat().st_size != size:
            raise CheckpointError(
                f"{file} has {file.stat().st_size} bytes but the manifest records {size}: the file is truncated or "
                "damaged; resume from an earlier checkpoint (--resume latest skips damaged ones)"
            )
    return manifest


def load_training_state(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Reads a verified checkpoint's training state without unpickling arbitrary objects."""
    verify_checkpoint(path)
    state_file = Path(path) / STATE_FILE
    try:
        return torch.load(state_file, map_location=map_location, weights_only=True)
    except Exception as error:  # torch raises several types for damaged archives
        raise CheckpointError(f"{state_file} cannot be read ({error}); the checkpoint is damaged") from error


def find_latest_checkpoint(run_dir: Path) -> Path:
    """The newest checkpoint of ``run_dir`` that verifies; damaged newer ones are reported and skipped."""
    problems = []
    for info in reversed(list_checkpoints(run_dir)):
        try:
            verify_checkpoint(info.path)
            torch.load(info.path / STATE_FILE, map_location="cpu", weights_only=True)
        except (CheckpointError, Exception) as error:  # noqa: BLE001 - any failure means: try an older one
            problems.append(f"  skipped {info.path}: {error}")
            continue
        if problems:
            print("warning: newer checkpoints are damaged:\n" + "\n".join(problems))
        return info.path
    detail = ("\n" + "\n".join(problems)) if problems else ""
    raise CheckpointError(f"no usable checkpoint in {checkpoint_dir(run_dir)}{detail}")

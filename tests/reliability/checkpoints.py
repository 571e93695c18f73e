"""Damaged checkpoints and bundles built from a seed: which file, how, and what a command is pointed at."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from tests.reliability.fuzzing import case_rng, flip_bytes, truncate

NEWEST, OLDEST = "step-000000000008", "step-000000000004"
"""The two checkpoints of the tiny run (kimg 0.008, a checkpoint every 0.004 kimg)."""
GENERATOR_FILES = ("generator/weights.safetensors", "generator/camera_poses.safetensors", "generator/config.json",
                   "generator/pipeline.json", "generator/manifest.json", "generator/cameras.json",
                   "generator/renderer.json")
CHECKPOINT_FILES = ("training_state.pt", "checkpoint.json") + GENERATOR_FILES
DAMAGE = ("flip", "truncate", "delete")
Target = Literal["run", "checkpoint", "generator", "bundle"]
TARGETS: tuple[Target, ...] = ("run", "checkpoint", "generator", "bundle")


@dataclass(frozen=True)
class CheckpointCase:
    """One damaged file of a copy of the tiny run, and the path a command is given."""

    kind: str
    """How the file is damaged: flip, truncate or delete."""
    seed: int
    checkpoint: str
    """The checkpoint the damaged file belongs to (NEWEST or OLDEST)."""
    file: str
    """Path of the damaged file inside the checkpoint (``generator/...`` for a bundle's files)."""
    target: Target
    """What the command opens: the run folder, the checkpoint, its generator/ folder, or a standalone
    copy of that generator/ folder (a bundle, checked by its own manifest.json)."""
    detail: str = ""

    @property
    def name(self) -> str:
        return f"{self.kind}[seed={self.seed}] {self.checkpoint}/{self.file} via {self.target} {self.detail}"

    def damaged_path(self, run_dir: Path, bundle_dir: Path) -> Path:
        if self.target == "bundle":
            return bundle_dir / self.file.removeprefix("generator/")
        return run_dir / "checkpoints" / self.checkpoint / self.file

    def target_path(self, run_dir: Path, bundle_dir: Path) -> Path:
        checkpoint = run_dir / "checkpoints" / self.checkpoint
        return {"run": run_dir, "checkpoint": checkpoint, "generator": checkpoint / "generator",
                "bundle": bundle_dir}[self.target]

    def names_damage(self, message: str, run_dir: Path, bundle_dir: Path) -> bool:
        """Whether an error message names the damaged file, its checkpoint or its bundle."""
        file_name = self.file.rsplit("/", 1)[-1]
        where = bundle_dir.name if self.target == "bundle" else self.checkpoint
        return file_name in message or where in message


def build_case(kind: str, seed: int) -> CheckpointCase:
    rng = case_rng(f"checkpoint_{kind}", seed)
    target = TARGETS[seed % len(TARGETS)]
    files = GENERATOR_FILES if target == "bundle" else CHECKPOINT_FILES
    return CheckpointCase(kind, seed, rng.choice([NEWEST, NEWEST, OLDEST]), rng.choice(files), target)


def apply_damage(case: CheckpointCase, path: Path) -> CheckpointCase:
    """Damages ``path`` as ``case.kind`` says; returns the case with what was done in its detail."""
    rng = case_rng(f"damage_{case.kind}", case.seed)
    data = path.read_bytes()
    if case.kind == "delete":
        path.unlink()
        detail = "(deleted)"
    elif case.kind == "truncate":
        cut = truncate(data, rng)
        path.write_bytes(cut)
        detail = f"(cut to {len(cut)} of {len(data)} bytes)"
    else:
        damaged, offsets = flip_bytes(data, rng)
        path.write_bytes(damaged)
        detail = f"(bytes flipped at {offsets} of {len(data)})"
    return CheckpointCase(case.kind, case.seed, case.checkpoint, case.file, case.target, detail)


def copy_run(run_dir: Path, destination: Path) -> Path:
    """The checkpoints and config.json of a run (what commands read), copied for one case."""
    destination.mkdir(parents=True)
    shutil.copytree(run_dir / "checkpoints", destination / "checkpoints")
    shutil.copy2(run_dir / "config.json", destination / "config.json")
    return destination

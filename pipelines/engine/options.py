"""The command-line options of `epigraf-train` shared by every pipeline, and their validation."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pipelines.engine.trainer import TrainerConfig


@dataclass
class TrainConfig:
    """Options of `epigraf-train` common to every pipeline."""

    pipeline: str = "patch-gan"
    """Which training method to run (see `epigraf-train --help` for the registered ones)."""
    data: Path | None = None
    """Dataset: EG3D zip/folder with dataset.json, or a transforms.json capture. Default: the built-in synthetic dataset."""
    out: Path | None = None
    """Run folder. Default: a new folder under ./runs/ named after the pipeline and the start time."""
    kimg: float = 25000.0
    """Length of training in thousands of real images shown."""
    resolution: int = 256
    """Image resolution R the generator is trained for (a power of two)."""
    patch_resolution: int = 64
    """Pixels per side r of the rendered patch (a power of two, at most R)."""
    batch: int = 64
    """Total batch size over all processes."""
    data_workers: int | None = None
    """Processes decoding real images for each training process (--data-workers N; 0: on the training thread). None picks for the machine: min(4, cores - 1) with CUDA, where decoding must keep up with the GPU; min(1, cores - 1) on CPU, where the step already uses every core: one worker hides the decoding (a batch of 8 uncached 256^2 PNGs: 18 ms on the training thread on a quiet machine, 220-275 ms on a busy one, against a 0.2-2 s CPU-preset step; benchmarks/data.py on 2 cores), a second one only competes with the step."""
    resume: str | None = None
    """Continue a run: a checkpoint directory, a run folder, or 'latest' (newest run of this pipeline, or of --out)."""
    seed: int = 0
    """Seed of every random choice: a run is reproducible from it."""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    """Where to train; auto picks CUDA when present."""
    preset: Literal["auto", "gpu", "cpu"] = "auto"
    """Defaults to start from: paper-like for GPUs, or small and fast for CPUs; auto picks by the device."""
    skip_bad: bool = False
    """Train on the valid part of a dataset that has bad entries (the list is written into the run folder)."""
    mixed_precision: bool = False
    """Run forward passes in bfloat16 autocast on CUDA (ignored on CPU)."""
    viewer: bool = False
    """Serve the live 3D viewer on the EMA generator while training."""
    viewer_port: int = 8080
    """Port of the live viewer (the next free one if busy)."""
    viewer_host: str = "127.0.0.1"
    """Address the live viewer binds to (0.0.0.0 exposes it to the network)."""
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    """Logging, snapshot and checkpoint cadence."""


def _is_power_of_two(value: int) -> bool:
    return value > 0 and value & (value - 1) == 0


def validate_train_config(config: TrainConfig) -> None:
    """Rejects option values that cannot work, naming the option and the fix."""
    problems = []
    if not config.kimg > 0:
        problems.append(f"--kimg must be positive, got {config.kimg}")
    if not _is_power_of_two(config.resolution) or config.resolution < 8:
        problems.append(f"--resolution must be a power of two >= 8, got {config.resolution}")
    if not _is_power_of_two(config.patch_resolution) or config.patch_resolution < 8:
        problems.append(f"--patch-resolution must be a power of two >= 8, got {config.patch_resolution}")
    if config.patch_resolution > config.resolution:
        problems.append(
            f"--patch-resolution ({config.patch_resolution}) is larger than --resolution ({config.resolution}); "
            "a patch cannot have more pixels than the image"
        )
    if config.batch < 1:
        problems.append(f"--batch must be at least 1, got {config.batch}")
    if config.data_workers is not None and config.data_workers < 0:
        problems.append(
            f"--data-workers must be >= 0 (0 decodes on the training thread; leave it out for the default), "
            f"got {config.data_workers}"
        )
    if config.trainer.tick_kimg <= 0:
        problems.append(f"--trainer.tick-kimg must be positive, got {config.trainer.tick_kimg}")
    if config.trainer.keep_checkpoints < 1:
        problems.append(f"--trainer.keep-checkpoints must be at least 1, got {config.trainer.keep_checkpoints}")
    if config.data is not None and not Path(config.data).exists():
        problems.append(f"--data {config.data} does not exist; pass a dataset zip/folder or leave --data out")
    if problems:
        raise ValueError("invalid training options:\n  " + "\n  ".join(problems))

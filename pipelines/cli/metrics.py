"""`epigraf-metrics CHECKPOINT --data PATH --metrics fid kid swd mv_psnr geometry`: scores of a trained generator."""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

import torch
import tyro

from pipelines.devices import Device, choose_device
from pipelines.errors import DEBUG_HELP, check_writable_folder, run_command
from pipelines.cli.open_generator import Branch, open_generator
from pipelines.evaluation.inception import InceptionWeightsNotFoundError, find_inception_weights
from pipelines.evaluation.metrics import MetricsConfig, check_metric_names, compute_metrics


@dataclass
class MetricsCommand:
    """Compute metrics of a trained generator against a dataset."""

    checkpoint: Annotated[Path, tyro.conf.Positional, tyro.conf.arg(metavar="CHECKPOINT")]
    """A run folder (its newest checkpoint), a checkpoint directory, a generator bundle directory or an official EG3D /
    EpiGRAF / Mimic3D .pkl snapshot (converted without running it)."""
    data: Path
    """The dataset (zip or folder) the generator is compared with; geometry needs the synthetic dataset's metadata.json beside it."""
    metrics: tuple[str, ...] = ("fid", "kid", "swd", "mv_psnr")
    """Metrics to compute: fid, kid (need the Inception weights), swd, mv_psnr, geometry (needs ground-truth meshes)."""
    num_images: int = 1000
    """Real and generated images for fid, kid and swd (papers use 50,000 for FID; fewer images bias FID upwards)."""
    resolution: int | None = None
    """Image size of the comparison: dataset images are resized to it and fakes rendered at it (None: the resolution
    the generator was trained at, as its bundle records, else 64)."""
    branch: Branch = "3d"
    """Which branch of a mimic3d generator makes the final images: 3d (the direct volume render, consistent across
    views by construction) or 2d (the EG3D branch: neural render plus super-resolution). Other pipelines have one
    branch and take only 3d."""
    seed: int = 0
    """Seed of every random choice (latents, cameras, real subset, patches)."""
    out: Path | None = None
    """Append the result as one JSON line to this file (besides printing it)."""
    device: Device = "auto"
    """cpu, cuda, or auto (cuda when available)."""
    progress: bool = True
    """Show progress bars on stderr (also off with $EPIGRAF_NO_PROGRESS=1)."""
    settings: Annotated[MetricsConfig, tyro.conf.arg(name="")] = field(default_factory=MetricsConfig)
    """Metric settings."""


def run(command: MetricsCommand) -> dict[str, object]:
    try:
        names = check_metric_names(command.metrics)
    except ValueError as error:
        raise SystemExit(f"error: --metrics: {error}") from None
    if command.num_images < 2:
        raise SystemExit(f"error: --num-images must be >= 2, got {command.num_images}")
    if {"fid", "kid"} & set(names):
        try:  # before anything slow: a missing weight file is the most common problem
            find_inception_weights(command.settings.inception_weights)
        except InceptionWeightsNotFoundError as error:
            raise SystemExit(f"error: {error}") from None
    if not command.data.exists():
        raise SystemExit(f"error: --data {command.data} does not exist: pass the dataset zip or folder")
    if command.out is not None:
        check_writable_folder(command.out.parent, "--out")
    device = choose_device(command.device)
    model = open_generator(command.checkpoint, device, command.branch)
    from pipelines.data.image_dataset import DatasetConfig, ImageDataset
    from pipelines.data.problems import DatasetValidationError

    resolution = command.resolution or model.image_resolution or 64
    try:
        dataset = ImageDataset(DatasetConfig(path=command.data, resolution=resolution))
    except (DatasetValidationError, ValueError, FileNotFoundError) as error:
        raise SystemExit(f"error: --data {command.data}: {error}") from None
    start = time.perf_counter()
    try:
        scores = compute_metrics(model, dataset, names, command.num_images,
                                 torch.Generator().manual_seed(command.seed), command.settings,
                                 show_progress=command.progress)
    except ValueError as error:
        raise SystemExit(f"error: {error}") from None
    record: dict[str, object] = {
        "checkpoint": str(command.checkpoint), "pipeline": model.pipeline, "data": str(command.data),
        "num_images": min(command.num_images, len(dataset)), "resolution": resolution, "seed": command.seed, "seconds": round(time.perf_counter() - start, 2),
        "metrics": scores,
    }
    if hasattr(model, "branch"):  # a two-branch generator: which one was scored
        record["branch"] = model.branch
    if command.out is not None:
        command.out.parent.mkdir(parents=True, exist_ok=True)
        with command.out.open("a") as file:
            file.write(json.dumps(record) + "\n")
    return record


def metrics_command(argv: list[str]) -> int:
    command = tyro.cli(MetricsCommand, args=argv, prog="epigraf-metrics",
                       description="Compute FID, KID, SWD, multi-view consistency and geometry metrics of a generator. "
                       f"{DEBUG_HELP}")
    print(json.dumps(run(command), indent=2))
    return 0


def main(argv: list[str] | None = None) -> int:
    """epigraf-metrics; bad input ends it with one line ``error: ...`` (see :mod:`pipelines.errors`)."""
    return run_command(metrics_command, argv)


if __name__ == "__main__":
    sys.exit(main())

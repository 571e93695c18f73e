"""`epigraf-data`: build the synthetic dataset, check a dataset, or prepare the built-in one."""

from __future__ import annotations

import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import tyro

from pipelines.data.image_dataset import DatasetConfig, validate_dataset
from pipelines.data.synthetic import SynthConfig, build_synthetic_dataset
from pipelines.errors import DEBUG_HELP, check_writable_folder, run_command


@dataclass
class ValidateCommand:
    """Check a dataset and list every problem (missing files, corrupt images, bad labels, ...)."""

    path: tyro.conf.Positional[Path]
    """The zip or folder to check."""
    resolution: int = 64
    """Training resolution the images will be used at."""
    resize: Literal["resize", "error"] = "resize"
    """'error' also reports images whose size differs from the resolution."""
    labels: Literal["auto", "dataset.json", "transforms.json", "none"] = "auto"
    """Which label file to read."""
    write_report: Path | None = None
    """Folder to write bad_entries.txt and bad_entries.json into."""


@dataclass
class BuiltinCommand:
    """Build (or find) the built-in synthetic dataset in the cache and print its path."""

    resolution: int = 64
    """Image size in pixels."""
    num_objects: int = 256
    """Number of procedural objects."""
    views_per_object: int = 8
    """Images per object."""
    cameras: Literal["frontal", "360"] = "360"
    """Camera distribution of the renders."""
    seed: int = 0
    """Seed of the build."""
    family_classes: bool = True
    """Record each object's family as its class (the trainer's built-in dataset); --no-family-classes: no classes,
    for unconditional training on the same images."""


def _validate(command: ValidateCommand) -> int:
    if command.resolution < 1:
        raise ValueError(f"--resolution must be a positive number of pixels (the training resolution), "
                         f"got {command.resolution}")
    if not command.path.exists():
        raise FileNotFoundError(f"{command.path} does not exist: pass the dataset zip or folder to check")
    if command.write_report is not None:
        check_writable_folder(command.write_report, "--write-report")
    report = validate_dataset(DatasetConfig(path=command.path, resolution=command.resolution,
                                            resize=command.resize, labels=command.labels, cache="never"))
    print(report)
    if command.write_report is not None:
        for path in report.write(command.write_report):
            print(f"wrote {path}")
    return 0 if report.ok else 1


def _builtin(command: BuiltinCommand) -> int:
    from pipelines.data.builtin import ensure_builtin_dataset

    start = time.perf_counter()
    path = ensure_builtin_dataset(resolution=command.resolution, num_objects=command.num_objects,
                                  views_per_object=command.views_per_object, cameras=command.cameras,
                                  seed=command.seed, family_classes=command.family_classes)
    print(f"{path} ({time.perf_counter() - start:.1f} s)")
    return 0


def main(argv: list[str] | None = None) -> int:
    """epigraf-data; bad input ends it with one line ``error: ...`` (see :mod:`pipelines.errors`)."""
    return run_command(data_command, argv)


def _as_options(error: ValueError) -> ValueError:
    """``SynthConfig.num_objects must be ...`` as the command line spells it: ``--num-objects must be ...``."""
    flag = lambda match: "--" + match.group(1).replace("_", "-")  # noqa: E731
    return ValueError(re.sub(r"\b(?:SynthConfig|DatasetConfig)\.(\w+)", flag, str(error)))


def data_command(argv: list[str]) -> int:
    command = tyro.extras.subcommand_cli_from_dict(
        {"synth": SynthConfig, "validate": ValidateCommand, "builtin": BuiltinCommand},
        args=argv,
        prog="epigraf-data",
        description="Datasets for epigraf: synthetic renders with ground-truth meshes, and dataset checks. "
        f"{DEBUG_HELP}",
    )
    try:
        if isinstance(command, SynthConfig):
            start = time.perf_counter()
            path = build_synthetic_dataset(command)
            print(f"wrote {path}, {path.parent / 'meshes'}, {path.parent / 'metadata.json'} "
                  f"({time.perf_counter() - start:.1f} s)")
            return 0
        if isinstance(command, ValidateCommand):
            return _validate(command)
        return _builtin(command)
    except ValueError as error:
        if type(error) is not ValueError:  # a DatasetValidationError's report stays as it is
            raise
        raise _as_options(error) from None


if __name__ == "__main__":
    sys.exit(main())

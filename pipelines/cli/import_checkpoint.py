"""`epigraf-import FILE.pkl --out DIR`: convert an official EG3D / EpiGRAF / Mimic3D snapshot into a generator bundle,
reading the pickle without executing anything in it."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import tyro

from pipelines.errors import DEBUG_HELP, check_writable_folder, run_command


@dataclass
class ImportConfig:
    """Convert an official EG3D, EpiGRAF or Mimic3D network snapshot (.pkl) into a generator bundle."""

    snapshot: Annotated[Path, tyro.conf.Positional, tyro.conf.arg(metavar="FILE.pkl")]
    """An official network snapshot (network-snapshot-*.pkl or a released model such as ffhq512-128.pkl)."""
    out: Path
    """Folder to write the bundle to (opened by epigraf-view, -render, -export, -metrics)."""


def run(config: ImportConfig) -> Path:
    """Reads, converts and saves; prints what was found. Returns the bundle folder."""
    from pipelines.checkpoint_import.registry import import_snapshot

    imported = import_snapshot(config.snapshot)
    check_writable_folder(config.out, "--out")
    imported.model.save(config.out)
    print(f"{config.snapshot}: {imported.family} snapshot (read without executing any of its code)")
    width = max(len(key) for key in imported.summary)
    for key, value in imported.summary.items():
        print(f"  {key:<{width}}  {value}")
    for note in imported.notes:
        print(f"  note: {note}")
    print(f"wrote the bundle to {config.out}")
    return config.out


def main(argv: list[str] | None = None) -> int:
    """epigraf-import; bad input ends it with one line ``error: ...`` (see :mod:`pipelines.errors`)."""
    return run_command(import_command, argv)


def import_command(argv: list[str]) -> int:
    config = tyro.cli(
        ImportConfig,
        args=argv,
        prog="epigraf-import",
        description="Convert an official EG3D, EpiGRAF or Mimic3D network snapshot (.pkl) into a generator bundle. "
        "The pickle is read with an allow-list: the code it carries is never run, and any other object in it is refused. "
        f"{DEBUG_HELP}",
        config=(tyro.conf.OmitArgPrefixes,),
    )
    run(config)
    return 0


if __name__ == "__main__":
    sys.exit(main())

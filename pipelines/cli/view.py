"""`epigraf-view PATH`: open a trained generator in the browser (viser live 3D viewer)."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import tyro

from pipelines.errors import DEBUG_HELP, run_command
from pipelines.viewer.server import ViewerConfig


@dataclass
class ViewArgs:
    """Serve a run, checkpoint or generator bundle to a browser tab that follows your camera."""

    path: tyro.conf.Positional[Path]
    """A generator bundle, a checkpoint directory, a run folder (its newest checkpoint) or an official EG3D / EpiGRAF /
    Mimic3D .pkl snapshot (converted without running it)."""
    viewer: ViewerConfig = field(default_factory=ViewerConfig)
    """Viewer options (host, port, resolution, ...)."""
    branch: Literal["3d", "2d"] = "3d"
    """Which branch of a mimic3d generator makes the final images: 3d (the direct volume render, consistent across
    views by construction) or 2d (the EG3D branch: neural render plus super-resolution). Other pipelines have one
    branch and take only 3d."""
    seconds: float | None = None
    """Stop after this many seconds (default: run until Ctrl-C)."""


def main(argv: list[str] | None = None) -> int:
    """epigraf-view; bad input ends it with one line ``error: ...`` (see :mod:`pipelines.errors`)."""
    return run_command(view_command, argv)


def view_command(argv: list[str]) -> int:
    args = tyro.cli(
        ViewArgs,
        args=argv,
        prog="epigraf-view",
        description="Serve a run, checkpoint or generator bundle to a browser tab that follows your camera. "
        f"{DEBUG_HELP}",
        config=(tyro.conf.OmitArgPrefixes,),
    )
    from pipelines.devices import choose_device
    from pipelines.cli.open_generator import open_generator
    from pipelines.viewer.server import GeneratorViewer

    model = open_generator(args.path, choose_device(args.viewer.device or "auto"), args.branch)
    viewer = GeneratorViewer(model, args.viewer, title=f"epigraf · {model.pipeline} · {args.path}")
    viewer.start()
    try:
        deadline = None if args.seconds is None else time.monotonic() + args.seconds
        while deadline is None or time.monotonic() < deadline:
            time.sleep(0.2)
    except KeyboardInterrupt:
        pass
    finally:
        viewer.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())

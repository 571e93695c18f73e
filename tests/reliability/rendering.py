"""`epigraf-render` at the smallest size: one seed, an 8 px grid, 4 samples per ray."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from pipelines.cli import render as render_cli
from tests.reliability.fuzzing import Outcome, run_main

RENDER_ARGS = ("--seeds", "0", "--outputs", "grid", "--resolution", "8", "--num-coarse", "4", "--num-fine", "0",
               "--device", "cpu", "--no-progress")


def render(target: Path, out: Path) -> tuple[Outcome, dict[str, np.ndarray]]:
    """How epigraf-render on ``target`` ended, and the images it wrote into ``out`` by file name."""
    outcome = run_main(render_cli.main, [str(target), *RENDER_ARGS, "--out", str(out)])
    images = {}
    for path in sorted(out.glob("*.png")) if out.is_dir() else []:
        with Image.open(path) as image:
            images[path.name] = np.asarray(image)
    return outcome, images

"""README's "Opening the released EG3D, EpiGRAF and Mimic3D models" commands, run as written on a look-alike snapshot."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.integration.test_readme_commands import readme_commands
from tests.pipelines.checkpoint_import import lookalike

SECTION = "Opening the released EG3D, EpiGRAF and Mimic3D models"
SNAPSHOT_PLACEHOLDER = "ffhq512-128.pkl"


def _executable(name: str) -> str:
    path = Path(sys.executable).parent / name
    return str(path) if path.exists() else name


@pytest.mark.slow
def test_readme_import_commands_run_as_written(tmp_path, monkeypatch):
    marker = tmp_path / "executed"
    snapshot = lookalike.write_snapshot(tmp_path / SNAPSHOT_PLACEHOLDER,
                                        lookalike.eg3d_snapshot(lookalike.module_source(marker)))
    commands = readme_commands(SECTION)
    assert [command.split()[0] for command in commands] == ["epigraf-import", "epigraf-render", "epigraf-render"]
    environment = {"EPIGRAF_IMPORT_CACHE": str(tmp_path / "cache"), "EPIGRAF_NO_PROGRESS": "1"}
    grids = []
    for command in commands:
        arguments = shlex.split(command)
        arguments[0] = _executable(arguments[0])
        result = subprocess.run(arguments, cwd=tmp_path, capture_output=True, text=True, timeout=600,
                                env={**os.environ, **environment})
        assert result.returncode == 0, f"{command}\n{result.stdout}\n{result.stderr}"
        if arguments[0].endswith("epigraf-render"):
            grid = tmp_path / "renders" / "grid.png"  # the command's default --out
            grids.append(np.asarray(Image.open(grid)))
            grid.unlink()
    assert (tmp_path / "models" / "eg3d-ffhq").is_dir()
    # The bundle written by epigraf-import and the .pkl opened directly render the same grid.
    assert grids[0].shape == grids[1].shape and grids[0].std() > 0
    np.testing.assert_array_equal(grids[0], grids[1])
    assert not marker.exists()

"""Every `epigraf-train` line of README.md parses: its pipeline, recipe and options exist."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from pipelines.cli.train import parse_config

README = Path(__file__).resolve().parents[2] / "README.md"


def _train_lines() -> list[str]:
    lines = []
    for block in re.findall(r"```bash\n(.*?)```", README.read_text(), re.S):
        for line in block.splitlines():
            command = line.split("  #")[0].strip()
            if command.startswith("epigraf-train ") and "--help" not in command:
                lines.append(command)
    return lines


def test_readme_shows_the_new_pipelines():
    pipelines = {shlex.split(line)[shlex.split(line).index("--pipeline") + 1] for line in _train_lines()
                 if "--pipeline" in line}
    assert {"patch-gan", "eg3d", "mimic3d", "ig-gan"} <= pipelines


@pytest.mark.parametrize("line", _train_lines())
def test_readme_train_line_parses(line):
    arguments = shlex.split(line)[1:]
    if "..." in line:  # placeholders of paths the user fills in: the options must still parse
        arguments = [argument.replace("...", "x") for argument in arguments]
    config, _ = parse_config(arguments)
    if "--pipeline" in arguments:
        assert config.pipeline == arguments[arguments.index("--pipeline") + 1]

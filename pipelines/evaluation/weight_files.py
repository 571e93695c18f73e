"""Where metric networks find their weight files: a path given, an environment variable, the torch hub cache."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import torch


def hub_checkpoints() -> Path:
    """The torch hub cache's checkpoint folder ($TORCH_HOME/hub/checkpoints), where torchvision and others keep weights."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def find_weight_file(path: str | Path | None, option: str, env: str, names: tuple[str, ...],
                     missing: Callable[[str], Exception]) -> Path | None:
    """``path`` (given as ``option``), else ``$env``, else the first of ``names`` in :func:`hub_checkpoints`;
    None when none of them is there. A given path or environment value that is not a file raises
    ``missing(reason)``, the reason naming the option or variable.
    """
    if path is not None:
        path = Path(path).expanduser()
        if not path.is_file():
            raise missing(f"{option} {path} does not exist")
        return path
    value = os.environ.get(env)
    if value:
        env_path = Path(value).expanduser()
        if not env_path.is_file():
            raise missing(f"{env}={value} does not exist")
        return env_path
    cache = hub_checkpoints()
    return next((cache / name for name in names if (cache / name).is_file()), None)

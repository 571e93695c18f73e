"""Which device a command runs on: --device auto|cpu|cuda, decided in one place."""

from __future__ import annotations

from typing import Literal

import torch

Device = Literal["auto", "cpu", "cuda"]


def choose_device(requested: str) -> torch.device:
    """The device of --device: 'auto' picks CUDA when present; 'cuda' without a device is an error."""
    if requested == "cuda" and not torch.cuda.is_available():
        raise SystemExit("error: --device cuda was asked for but no CUDA device is available; use --device cpu")
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if requested not in ("cpu", "cuda"):
        raise SystemExit(f"error: --device must be auto, cpu or cuda, got {requested!r}")
    return torch.device(requested)

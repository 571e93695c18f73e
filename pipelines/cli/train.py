"""`epigraf-train --pipeline NAME [options]`: train a registered pipeline."""

from __future__ import annotations

import argparse
import copy
import os
import sys
from dataclasses import dataclass

import torch
import tyro

from pipelines.registry import get_pipeline_spec, registered_pipelines
from pipelines.devices import choose_device
from pipelines.engine.options import (
    RESUME_CHANGEABLE,
    TrainConfig,
    explicit_options,
    option_flag,
    validate_train_config,
)
from pipelines.errors import DEBUG_HELP, run_command


def choose_preset(requested: str, device: torch.device) -> tuple[str, str]:
    """Which defaults to start from, and why (printed first)."""
    if requested != "auto":
        return requested, f"--preset {requested}"
    if device.type == "cuda":
        return "gpu", f"CUDA device found ({torch.cuda.get_device_name(device)})"
    if torch.cuda.is_available():
        return "cpu", "--device cpu was asked for"
    return "cpu", "no CUDA device found: small widths, 64^2 images and 32^2 patches so a run finishes in minutes"


@dataclass
class ParsedCommand:
    config: TrainConfig
    """The options: the preset's defaults with the command line on top."""
    preset_line: str
    """Which preset and why (printed first)."""
    explicit: set[str]
    """Dotted names of the options the command line gives (what a resume must apply or refuse)."""


def parse_command(argv: list[str]) -> ParsedCommand:
    """Parses the command line on top of the chosen pipeline's preset."""
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--pipeline", default="patch-gan")
    pre.add_argument("--preset", default="auto")
    pre.add_argument("--device", default="auto")
    known, _ = pre.parse_known_args(argv)
    spec = get_pipeline_spec(known.pipeline)  # an unknown name: ValueError listing the registered ones
    device = choose_device(known.device) if known.device in ("auto", "cpu", "cuda") else torch.device("cpu")
    preset, reason = choose_preset(known.preset if known.preset in ("auto", "gpu", "cpu") else "auto", device)
    defaults = spec.preset(preset)()
    pipelines = "; ".join(f"{name}: {s.description}" for name, s in registered_pipelines().items())
    config = tyro.cli(
        type(defaults),
        default=copy.deepcopy(defaults),
        args=argv,
        prog="epigraf-train",
        description=f"Train a 3D-aware generator. Pipelines: {pipelines}. "
        f"Defaults shown are the {preset} preset of {spec.name}. With --resume the run's config.json decides: "
        f"only {', '.join(option_flag(n) + ('.*' if n == 'trainer' else '') for n in RESUME_CHANGEABLE)} "
        f"may change, other options given must match it. {DEBUG_HELP}",
    )
    return ParsedCommand(config, f"preset: {preset} ({reason})", explicit_options(config, defaults, argv))


def parse_config(argv: list[str]) -> tuple[TrainConfig, str]:
    """Parses the command line on top of the chosen pipeline's preset."""
    try:
        parsed = parse_command(argv)
    except ValueError as error:
        raise SystemExit(f"error: {error}") from None
    return parsed.config, parsed.preset_line


def train(argv: list[str]) -> int:
    parsed = parse_command(argv)
    if os.environ.get("RANK", "0") == "0":  # torchrun: the other ranks stay quiet
        print(parsed.preset_line, flush=True)
    validate_train_config(parsed.config)
    from pipelines.engine.launch import run_training  # heavy imports only once the options are valid

    run_training(parsed.config, parsed.explicit)
    return 0


def main(argv: list[str] | None = None) -> int:
    """epigraf-train; bad input ends it with one line ``error: ...`` (exit code 1), see :mod:`pipelines.errors`."""
    return run_command(train, argv)


if __name__ == "__main__":
    sys.exit(main())

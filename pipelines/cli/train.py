"""`epigraf-train --pipeline NAME [options]`: train a registered pipeline."""

from __future__ import annotations

import argparse
import os
import sys

import torch
import tyro

from pipelines.registry import get_pipeline_spec, registered_pipelines
from pipelines.devices import choose_device
from pipelines.engine.options import TrainConfig, validate_train_config


def choose_preset(requested: str, device: torch.device) -> tuple[str, str]:
    """Which defaults to start from, and why (printed first)."""
    if requested != "auto":
        return requested, f"--preset {requested}"
    if device.type == "cuda":
        return "gpu", f"CUDA device found ({torch.cuda.get_device_name(device)})"
    if torch.cuda.is_available():
        return "cpu", "--device cpu was asked for"
    return "cpu", "no CUDA device found: small widths, 64^2 images and 32^2 patches so a run finishes in minutes"


def parse_config(argv: list[str]) -> tuple[TrainConfig, str]:
    """Parses the command line on top of the chosen pipeline's preset."""
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--pipeline", default="patch-gan")
    pre.add_argument("--preset", default="auto")
    pre.add_argument("--device", default="auto")
    known, _ = pre.parse_known_args(argv)
    try:
        spec = get_pipeline_spec(known.pipeline)
    except ValueError as error:
        raise SystemExit(f"error: {error}") from None
    device = choose_device(known.device) if known.device in ("auto", "cpu", "cuda") else torch.device("cpu")
    preset, reason = choose_preset(known.preset if known.preset in ("auto", "gpu", "cpu") else "auto", device)
    defaults = spec.preset(preset)()
    pipelines = "; ".join(f"{name}: {s.description}" for name, s in registered_pipelines().items())
    config = tyro.cli(
        type(defaults),
        default=defaults,
        args=argv,
        prog="epigraf-train",
        description=f"Train a 3D-aware generator. Pipelines: {pipelines}. "
        f"Defaults shown are the {preset} preset of {spec.name}.",
    )
    return config, f"preset: {preset} ({reason})"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    config, preset_line = parse_config(argv)
    if os.environ.get("RANK", "0") == "0":  # torchrun: the other ranks stay quiet
        print(preset_line, flush=True)
    try:
        validate_train_config(config)
    except ValueError as error:
        raise SystemExit(f"error: {error}") from None
    from pipelines.engine.launch import run_training  # heavy imports only once the options are valid

    run_training(config, explicit_kimg="--kimg" in argv or any(a.startswith("--kimg=") for a in argv))
    return 0


if __name__ == "__main__":
    sys.exit(main())

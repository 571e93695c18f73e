"""`epigraf-train --pipeline NAME [--recipe NAME] [options]`: train a registered pipeline."""

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
from pipelines.recipes import apply_recipe, recipe_line, recipes_help


def choose_preset(requested: str, device: torch.device, recipe: str | None = None) -> tuple[str, str]:
    """Which defaults to start from, and why (printed first). A recipe is a paper's configuration: it starts
    from the GPU preset whatever the device."""
    if recipe is not None:
        if requested == "cpu":
            raise ValueError(
                f"--recipe {recipe} applies a paper's configuration over the GPU preset, not --preset cpu; leave "
                "--preset out (or give --preset gpu) and shrink what you need with options (--resolution, --batch, ...)"
            )
        return "gpu", f"--recipe {recipe}: a paper's configuration starts from the GPU preset"
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
    recipe_line: str | None = None
    """With --recipe: the values the recipe set (printed after the preset line)."""

    @property
    def lines(self) -> list[str]:
        """What the command prints before training: the preset and, with --recipe, the recipe's values."""
        return [self.preset_line] + ([self.recipe_line] if self.recipe_line else [])


def parse_command(argv: list[str]) -> ParsedCommand:
    """Parses the command line on top of the chosen pipeline's preset (with --recipe: the preset with the recipe
    applied, so that the options given still win)."""
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--pipeline", default="patch-gan")
    pre.add_argument("--preset", default="auto")
    pre.add_argument("--device", default="auto")
    pre.add_argument("--recipe", default=None)
    known, _ = pre.parse_known_args(argv)
    spec = get_pipeline_spec(known.pipeline)  # an unknown name: ValueError listing the registered ones
    recipe = None if known.recipe in (None, "None") else known.recipe
    device = choose_device(known.device) if known.device in ("auto", "cpu", "cuda") else torch.device("cpu")
    preset, reason = choose_preset(known.preset if known.preset in ("auto", "gpu", "cpu") else "auto", device, recipe)
    preset_defaults = spec.preset(preset)()
    # The recipe changes the defaults tyro starts from: an option on the command line still wins.
    defaults = preset_defaults if recipe is None else apply_recipe(spec, recipe, preset_defaults)
    pipelines = "; ".join(f"{name}: {s.description}" for name, s in registered_pipelines().items())
    shown = f"the {preset} preset of {spec.name}" + (f" with the {recipe} recipe" if recipe else "")
    config = tyro.cli(
        type(defaults),
        default=copy.deepcopy(defaults),
        args=argv,
        prog="epigraf-train",
        description=f"Train a 3D-aware generator. Pipelines: {pipelines}.\n\n{recipes_help(spec)}\n\n"
        f"Defaults shown are {shown}. With --resume the run's config.json decides: "
        f"only {', '.join(option_flag(n) + ('.*' if n == 'trainer' else '') for n in RESUME_CHANGEABLE)} "
        f"may change, other options given must match it. {DEBUG_HELP}",
    )
    line = None if recipe is None else recipe_line(recipe, preset_defaults, defaults, config)
    return ParsedCommand(config, f"preset: {preset} ({reason})", explicit_options(config, defaults, argv), line)


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
        print("\n".join(parsed.lines), flush=True)
    validate_train_config(parsed.config)
    from pipelines.engine.launch import run_training  # heavy imports only once the options are valid

    run_training(parsed.config, parsed.explicit)
    return 0


def main(argv: list[str] | None = None) -> int:
    """epigraf-train; bad input ends it with one line ``error: ...`` (exit code 1), see :mod:`pipelines.errors`."""
    return run_command(train, argv)


if __name__ == "__main__":
    sys.exit(main())

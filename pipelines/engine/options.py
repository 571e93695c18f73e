"""The command-line options of `epigraf-train` shared by every pipeline, and their validation."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePath
from typing import Any, Literal

from pipelines.engine.trainer import TrainerConfig


@dataclass
class TrainConfig:
    """Options of `epigraf-train` common to every pipeline."""

    pipeline: str = "patch-gan"
    """Which training method to run (see `epigraf-train --help` for the registered ones)."""
    data: Path | None = None
    """Dataset: EG3D zip/folder with dataset.json, or a transforms.json capture. Default: the built-in synthetic dataset."""
    out: Path | None = None
    """Run folder. Default: a new folder under ./runs/ named after the pipeline and the start time."""
    kimg: float = 25000.0
    """Length of training in thousands of real images shown."""
    resolution: int = 256
    """Image resolution R the generator is trained for (a power of two)."""
    patch_resolution: int = 64
    """Pixels per side r of the rendered patch (a power of two, at most R)."""
    batch: int = 64
    """Total batch size over all processes."""
    data_workers: int | None = None
    """Processes decoding real images for each training process (--data-workers N; 0: on the training thread). None picks for the machine: min(4, cores - 1) with CUDA, where decoding must keep up with the GPU; on a CPU one worker from 4 cores up and none below, where the step already uses every core (benchmarks/data.py on 2 quiet cores: the CPU-preset step ran faster fed without a worker)."""
    resume: str | None = None
    """Continue a run: a checkpoint directory, a run folder, or 'latest' (the run --out names, which must exist; without --out the newest run of this pipeline under ./runs). The run's config.json decides every setting: --kimg, --device, --data-workers, --mixed-precision, --viewer* and --trainer.* given here are applied (and printed); any other option given must match the run."""
    init_from: str | None = None
    """Start a new run from another run's weights: a run folder (its newest checkpoint) or a checkpoint directory. G, its EMA copy and the discriminators take every tensor whose name and shape match (mimic3d from an eg3d or a stage-1 mimic3d run); optimizers and progress start afresh. A resumed run never applies it again."""
    seed: int = 0
    """Seed of every random choice: a run is reproducible from it."""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    """Where to train; auto picks CUDA when present."""
    preset: Literal["auto", "gpu", "cpu"] = "auto"
    """Defaults to start from: paper-like for GPUs, or small and fast for CPUs; auto picks by the device."""
    skip_bad: bool = False
    """Train on the valid part of a dataset that has bad entries (the list is written into the run folder)."""
    mirror: bool = True
    """x-flip mirroring (--mirror / --no-mirror): every image is also used flipped left-right with its camera mirrored (yaw -> -yaw), doubling the dataset, as EpiGRAF does by default. Turn it off for asymmetric subjects (text, one-sided objects)."""
    mixed_precision: bool = False
    """Run forward passes in bfloat16 autocast on CUDA (ignored on CPU)."""
    viewer: bool = False
    """Serve the live 3D viewer on the EMA generator while training."""
    viewer_port: int = 8080
    """Port of the live viewer (the next free one if busy)."""
    viewer_host: str = "127.0.0.1"
    """Address the live viewer binds to (0.0.0.0 exposes it to the network)."""
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    """Logging, snapshot and checkpoint cadence."""


def _is_power_of_two(value: int) -> bool:
    return value > 0 and value & (value - 1) == 0


def validate_train_config(config: TrainConfig) -> None:
    """Rejects option values that cannot work, naming the option and the fix."""
    problems = []
    if not (config.kimg > 0 and math.isfinite(config.kimg)):
        problems.append(f"--kimg must be positive and finite (thousands of images shown), got {config.kimg}")
    if not _is_power_of_two(config.resolution) or config.resolution < 8:
        problems.append(f"--resolution must be a power of two >= 8, got {config.resolution}")
    if not _is_power_of_two(config.patch_resolution) or config.patch_resolution < 8:
        problems.append(f"--patch-resolution must be a power of two >= 8, got {config.patch_resolution}")
    if config.patch_resolution > config.resolution:
        problems.append(
            f"--patch-resolution ({config.patch_resolution}) is larger than --resolution ({config.resolution}); "
            "a patch cannot have more pixels than the image"
        )
    if config.batch < 1:
        problems.append(f"--batch must be at least 1, got {config.batch}")
    if config.data_workers is not None and config.data_workers < 0:
        problems.append(
            f"--data-workers must be >= 0 (0 decodes on the training thread; leave it out for the default), "
            f"got {config.data_workers}"
        )
    problems += _trainer_problems(config)
    if config.data is not None and not Path(config.data).exists():
        problems.append(f"--data {config.data} does not exist; pass a dataset zip/folder or leave --data out")
    if config.out is not None and Path(config.out).exists() and not Path(config.out).is_dir():
        problems.append(f"--out {config.out} is a file, not a folder; pass a run folder (it is created if missing)")
    if problems:
        raise ValueError("; ".join(problems))


def _trainer_problems(config: TrainConfig) -> list[str]:
    trainer = config.trainer
    problems = []
    if not (trainer.tick_kimg > 0 and math.isfinite(trainer.tick_kimg)):
        problems.append(f"--trainer.tick-kimg must be positive and finite, got {trainer.tick_kimg}")
    if trainer.keep_checkpoints < 1:
        problems.append(f"--trainer.keep-checkpoints must be at least 1, got {trainer.keep_checkpoints}")
    if len(trainer.snapshot_grid) != 2 or min(trainer.snapshot_grid) < 1:
        problems.append(
            "--trainer.snapshot-grid must be two numbers >= 1, COLUMNS ROWS (e.g. 8 4), got "
            + " ".join(str(n) for n in trainer.snapshot_grid)
        )
    for name in ("snapshot_ticks", "checkpoint_ticks", "metrics_ticks", "turntable_samples"):
        if getattr(trainer, name) < 0:
            problems.append(f"--trainer.{name.replace('_', '-')} must be >= 0 (0: only at the end / none), "
                            f"got {getattr(trainer, name)}")
    for name in ("turntable_frames", "turntable_columns", "metrics_images"):
        if getattr(trainer, name) < 1:
            problems.append(f"--trainer.{name.replace('_', '-')} must be at least 1, got {getattr(trainer, name)}")
    if trainer.turntable_resolution is not None and trainer.turntable_resolution < 1:
        problems.append(f"--trainer.turntable-resolution must be at least 1 (or None: the training resolution), "
                        f"got {trainer.turntable_resolution}")
    return problems


# ----------------------------------------------------------------------------------------- resuming
RESUME_CHANGEABLE: tuple[str, ...] = (
    "kimg", "device", "data_workers", "mixed_precision", "viewer", "viewer_port", "viewer_host", "trainer",
)
"""Options a resumed run takes from the command line (dotted names; "trainer" means every --trainer.* option).

They say how long to train, on what hardware, and how the loop reports (logging, snapshot and
checkpoint cadence, metrics, progress bar, viewer); none changes what the networks learn. Every
other option (--data, --resolution, --patch-resolution, --batch, --seed, --skip-bad, --pipeline,
--model.*) is the run's: given with another value than the run's config.json, it is refused.
"""
RESUME_CONSUMED: tuple[str, ...] = ("resume", "out", "preset")
"""Options that pick the run to resume (--resume, --out) or only the defaults (--preset): never compared."""


def flatten_options(config: Any, prefix: str = "") -> dict[str, Any]:
    """Every leaf option of a config dataclass under its dotted name: ``{"trainer.tick_kimg": 4.0, ...}``."""
    leaves: dict[str, Any] = {}
    for item in dataclasses.fields(config):
        if not item.init:
            continue
        value = getattr(config, item.name)
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            leaves.update(flatten_options(value, f"{prefix}{item.name}."))
        else:
            leaves[f"{prefix}{item.name}"] = value
    return leaves


def options_in_argv(argv: Sequence[str], names: Collection[str]) -> set[str]:
    """Dotted option names (of ``names``) that ``argv`` spells out: ``--trainer.no-progress-bar`` gives
    ``trainer.progress_bar``, ``--batch=4`` gives ``batch``."""
    found = set()
    for arg in argv:
        if not arg.startswith("--") or arg == "--":
            continue
        key = arg[2:].split("=", 1)[0].replace("-", "_")
        head, _, last = key.rpartition(".")
        negated = f"{head}.{last[3:]}" if head else last[3:]
        if key in names:
            found.add(key)
        elif last.startswith("no_") and negated in names:
            found.add(negated)
    return found


def explicit_options(config: Any, defaults: Any, argv: Sequence[str]) -> set[str]:
    """Options given on the command line: spelled out in ``argv`` or different from the preset ``defaults``."""
    given, preset = flatten_options(config), flatten_options(defaults)
    differing = {key for key, value in given.items() if key not in preset or not same_value(value, preset[key])}
    return differing | options_in_argv(argv, given.keys())


def same_value(a: Any, b: Any) -> bool:
    """Equality of option values across JSON round trips (tuples/lists, 16 and 16.0, relative/absolute paths)."""
    if isinstance(a, PurePath) or isinstance(b, PurePath):
        if a is None or b is None:
            return a is b
        return Path(a).expanduser().resolve() == Path(b).expanduser().resolve()
    if isinstance(a, (tuple, list)) and isinstance(b, (tuple, list)):
        return len(a) == len(b) and all(same_value(x, y) for x, y in zip(a, b))
    return a == b


def option_flag(name: str) -> str:
    """``trainer.tick_kimg`` -> ``--trainer.tick-kimg``."""
    return "--" + name.replace("_", "-")


def format_value(value: Any) -> str:
    """An option value as it is typed on the command line."""
    if isinstance(value, (tuple, list)):
        return " ".join(format_value(v) for v in value) if value else "(none)"
    return str(value)


def is_changeable_on_resume(name: str) -> bool:
    return any(name == allowed or name.startswith(allowed + ".") for allowed in RESUME_CHANGEABLE)


def merge_resumed_config(run_config: Any, given: Any, explicit: Collection[str],
                         config_file: Path) -> tuple[Any, list[str]]:
    """The run's config with the command line's changeable options applied, and the lines that say so.

    Raises ValueError naming each option that contradicts the run (its value in ``config_file`` and
    the given one); options in :data:`RESUME_CHANGEABLE` are applied instead.
    """
    run_options, given_options = flatten_options(run_config), flatten_options(given)
    applied, conflicts = [], []
    merged = dataclasses.replace(run_config)
    for name in sorted(explicit):
        if name in RESUME_CONSUMED or name not in given_options:
            continue
        value = given_options[name]
        if name not in run_options:
            conflicts.append(f"{option_flag(name)}: the run ({run_config.pipeline}) has no such option")
            continue
        if same_value(value, run_options[name]):
            continue
        if is_changeable_on_resume(name):
            _set_option(merged, name, value)
            applied.append(f"resume: applying {option_flag(name)} {format_value(value)} "
                           f"(was {format_value(run_options[name])})")
        else:
            conflicts.append(f"{option_flag(name)}: the run has {format_value(run_options[name])}, "
                             f"the command line {format_value(value)}")
    if conflicts:
        changeable = ", ".join(option_flag(name) + (".*" if name == "trainer" else "") for name in RESUME_CHANGEABLE)
        raise ValueError(
            f"--resume: options contradict the run's {config_file}: {'; '.join(conflicts)}. A resumed run keeps its "
            f"settings: leave these options out, or start a new run without --resume to train with them "
            f"(to change the run on purpose, edit {config_file}). Options that may change on resume: {changeable}"
        )
    return merged, applied


def _set_option(config: Any, name: str, value: Any) -> None:
    *parents, last = name.split(".")
    target = config
    for parent in parents:
        child = dataclasses.replace(getattr(target, parent))  # copies: the run's config object stays as read
        setattr(target, parent, child)
        target = child
    setattr(target, last, value)

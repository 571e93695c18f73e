"""Sets up one training run (run folder, dataset, pipeline, resume) and hands it to the trainer."""

from __future__ import annotations

import json
from collections.abc import Collection
from datetime import datetime
from pathlib import Path

import torch
import torch.distributed as dist

from epigraf_field.config_io import config_from_dict, config_to_dict
from pipelines.engine.distributed import DistributedContext, init_distributed, shutdown
from pipelines.registry import get_pipeline_spec
from pipelines.devices import choose_device
from pipelines.engine.options import TrainConfig, merge_resumed_config, validate_train_config
from pipelines.engine.trainer import Trainer, resolve_resume
from pipelines.errors import check_writable_folder

RUNS_ROOT = Path("runs")
CONFIG_FILE = "config.json"


def new_run_dir(pipeline: str, context: DistributedContext) -> Path:
    """runs/<pipeline>-<start time>, the same on every process."""
    stem = f"{pipeline}-{datetime.now().strftime('%Y%m%d-%H%M%S')}"
    path, suffix = RUNS_ROOT / stem, 1
    while path.exists():
        path = RUNS_ROOT / f"{stem}-{suffix}"
        suffix += 1
    chosen = [path]
    if context.enabled:  # rank 0's choice (clock and folders can differ between processes)
        dist.broadcast_object_list(chosen, src=0)
    return chosen[0]


def create_run_dir(config: TrainConfig, run_dir: Path) -> None:
    """Makes the run folder and writes its resolved config.json (only once the dataset and pipeline are built)."""
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        write_config(config, run_dir)
    except OSError as error:
        raise OSError(
            f"cannot write the run folder {run_dir} ({error.strerror or error}); "
            "pass --out in a folder you may write to"
        ) from error


def write_config(config: TrainConfig, run_dir: Path) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / CONFIG_FILE).write_text(json.dumps(config_to_dict(config), indent=2))


OPTIONS_ADDED_LATER = {"mirror": False}
"""Options newer than some runs' config.json, with the value those runs trained with (not today's default)."""


def read_config(run_dir: Path, config_type: type | None = None) -> TrainConfig:
    """The run's resolved config.json, as its own pipeline's config type (``config_type`` forces one)."""
    path = Path(run_dir) / CONFIG_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: cannot resume a run without its resolved config")
    try:
        data = json.loads(path.read_text())
        if config_type is None:
            config_type = type(get_pipeline_spec(str(data.get("pipeline", "patch-gan"))).preset("cpu")())
        for option, before in OPTIONS_ADDED_LATER.items():  # a run keeps training the way it started
            data.setdefault(option, before)
        return config_from_dict(config_type, data)
    except (json.JSONDecodeError, UnicodeDecodeError, AttributeError, ValueError) as error:
        raise ValueError(f"{path} cannot be read as the run's config ({error}); restore it from a backup") from error


def build_dataset(config: TrainConfig, context: DistributedContext):
    """The training images, checked entry by entry (before anything is written)."""
    from pipelines.data.builtin import ensure_builtin_dataset
    from pipelines.data.image_dataset import DatasetConfig, ImageDataset
    from pipelines.data.problems import DatasetValidationError

    path = config.data
    if path is None:
        if context.is_main:
            print("no --data given: using the built-in synthetic dataset", flush=True)
            path = ensure_builtin_dataset(resolution=config.resolution)
        if context.enabled:
            shared = [path]
            dist.broadcast_object_list(shared, src=0)
            path = shared[0]
    try:
        dataset = ImageDataset(DatasetConfig(path=Path(path), resolution=config.resolution, skip_bad=config.skip_bad,
                                             xflip=config.mirror))
    except DatasetValidationError as error:
        report = error.report
        usable = report.num_entries - len(report.bad_entries)
        hint = "" if report.fatal or usable <= 0 else (
            f"Fix the entries above, or pass --skip-bad to train on the other {usable} (the list of skipped "
            "entries is written into the run folder)."
        )
        raise DatasetValidationError(report, hint) from None
    if context.is_main:  # e.g. "dataset: 2048 images, x-flip mirroring on: 4096 training items"
        classes = f" in {dataset.num_classes} classes" if dataset.num_classes else ""
        mirroring = "on" if config.mirror else "off (--no-mirror)"
        print(f"dataset: {len(dataset.names)} images{classes}, x-flip mirroring {mirroring}: {len(dataset)} "
              "training items", flush=True)
    return dataset


def check_dataset_cameras(config: TrainConfig, dataset) -> None:
    """A pipeline whose cameras come from the dataset needs a labelled one: say so naming --data."""
    cameras = getattr(getattr(config, "model", None), "cameras", None)
    if getattr(cameras, "source", None) == "dataset" and not getattr(dataset, "has_labels", True):
        data = config.data if config.data is not None else "(the built-in dataset)"
        raise ValueError(
            f"--data {data} has no camera labels (no dataset.json or transforms.json), but --model.cameras.source "
            "is dataset (cameras drawn from the dataset's labels, the default): add the labels, or pass "
            "--model.cameras.source parametric with the yaw/pitch/radius/fov options"
        )


def prepare_resume(config: TrainConfig, explicit: Collection[str]) -> tuple[TrainConfig, Path, Path, list[str]]:
    """The run's own config (with the command line's changeable options applied), its folder, its checkpoint
    and the lines to print about them."""
    checkpoint = resolve_resume(config.resume, config.out, RUNS_ROOT, config.pipeline)
    run_dir = checkpoint.parent.parent
    run_config = read_config(run_dir)
    merged, lines = merge_resumed_config(run_config, config, explicit, run_dir / CONFIG_FILE)
    if merged.data is not None and not Path(merged.data).exists():
        raise FileNotFoundError(
            f"the run's dataset {merged.data} (data in {run_dir / CONFIG_FILE}) does not exist: put it back, or set "
            f"data in {run_dir / CONFIG_FILE} to where the same dataset is now"
        )
    validate_train_config(merged)
    if "preset" in explicit:
        lines.append(f"resume: --preset is not used: {run_dir / CONFIG_FILE} holds every setting of the run")
    return merged, run_dir, checkpoint, lines + [f"resuming from {checkpoint}"]


def run_training(config: TrainConfig, explicit: Collection[str] = ()) -> Path | None:
    """Trains a new run, or resumes one with ``config.resume``; ``explicit`` names the options given on the
    command line (dotted, as :func:`pipelines.engine.options.explicit_options` finds them).

    The dataset is checked and the pipeline built before the run folder is made: bad input leaves nothing behind.
    """
    checkpoint, resume_lines = None, []
    if config.resume is not None:  # first: the run's config says which device it trains on
        config, run_dir, checkpoint, resume_lines = prepare_resume(config, explicit)
    device = choose_device(config.device)
    context = init_distributed(device)
    if device.type == "cuda" and context.enabled:
        device = torch.device("cuda", context.local_rank)
        torch.cuda.set_device(device)
    if checkpoint is None:
        run_dir = Path(config.out) if config.out is not None else new_run_dir(config.pipeline, context)
        if context.is_main:
            check_writable_folder(run_dir, "--out")
    elif context.is_main:
        print("\n".join(resume_lines), flush=True)
    spec = get_pipeline_spec(config.pipeline)
    torch.manual_seed(config.seed)  # only for third-party code that insists on the global generator
    dataset = build_dataset(config, context)
    check_dataset_cameras(config, dataset)
    pipeline = spec.build_pipeline(config, device, dataset, context)
    if checkpoint is None and config.init_from is not None:  # a resumed run has its weights already
        from pipelines.engine.init_from import initialize_from

        lines = initialize_from(pipeline, Path(config.init_from), device)
        if context.is_main:
            print("\n".join(lines), flush=True)
    if context.is_main:
        create_run_dir(config, run_dir)
        report = dataset.validate()
        if config.skip_bad and report.problems:  # the list of what was left out goes with the run
            report.write(run_dir)
            print(report.summary(run_dir), flush=True)
        print(f"run folder: {run_dir.resolve()}", flush=True)
    trainer = None
    try:
        trainer = Trainer(config, pipeline, dataset, run_dir, device, context)
        if checkpoint is not None:
            trainer.resume(checkpoint)
        final = trainer.run()
    finally:
        # DistributedDataParallel wrappers hold the process group: release them before it goes.
        del trainer, pipeline
        shutdown(context)
    if context.is_main:
        print(f"done: {run_dir.resolve()}", flush=True)
        print(f"  final checkpoint: {final}", flush=True)
        print(f"  snapshots: {(run_dir / 'snapshots').resolve()}", flush=True)
        print(f"  log: {(run_dir / 'log.jsonl').resolve()}", flush=True)
    return final

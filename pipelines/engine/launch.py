"""Sets up one training run (run folder, dataset, pipeline, resume) and hands it to the trainer."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import torch
import torch.distributed as dist

from epigraf_field.config_io import config_from_dict, config_to_dict
from pipelines.engine.distributed import DistributedContext, init_distributed, shutdown
from pipelines.registry import get_pipeline_spec
from pipelines.devices import choose_device
from pipelines.engine.options import TrainConfig
from pipelines.engine.trainer import Trainer, resolve_resume

RUNS_ROOT = Path("runs")
CONFIG_FILE = "config.json"


def new_run_dir(pipeline: str, context: DistributedContext) -> Path:
    """runs/<pipeline>-<start time>, the same on every process."""
    name = [f"{pipeline}-{datetime.now().strftime('%Y%m%d-%H%M%S')}"]
    if context.enabled:
        dist.broadcast_object_list(name, src=0)
    path = RUNS_ROOT / name[0]
    suffix = 1
    while context.is_main and path.exists():
        path = RUNS_ROOT / f"{name[0]}-{suffix}"
        suffix += 1
    return path


def write_config(config: TrainConfig, run_dir: Path) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / CONFIG_FILE).write_text(json.dumps(config_to_dict(config), indent=2))


def read_config(run_dir: Path, config_type: type) -> TrainConfig:
    path = Path(run_dir) / CONFIG_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: cannot resume a run without its resolved config")
    return config_from_dict(config_type, json.loads(path.read_text()))


def build_dataset(config: TrainConfig, run_dir: Path, context: DistributedContext):
    from pipelines.data.builtin import ensure_builtin_dataset
    from pipelines.data.image_dataset import DatasetConfig, ImageDataset

    path = config.data
    if path is None:
        if context.is_main:
            print("no --data given: using the built-in synthetic dataset", flush=True)
            path = ensure_builtin_dataset(resolution=config.resolution)
        if context.enabled:
            shared = [path]
            dist.broadcast_object_list(shared, src=0)
            path = shared[0]
    dataset = ImageDataset(DatasetConfig(path=Path(path), resolution=config.resolution, skip_bad=config.skip_bad))
    report = dataset.validate()
    if config.skip_bad and context.is_main and report.problems:
        report.write(run_dir / "bad_entries.txt")
    return dataset


def run_training(config: TrainConfig, explicit_kimg: bool = False) -> Path | None:
    device = choose_device(config.device)
    context = init_distributed(device)
    if device.type == "cuda" and context.enabled:
        device = torch.device("cuda", context.local_rank)
        torch.cuda.set_device(device)
    spec = get_pipeline_spec(config.pipeline)
    checkpoint = None
    if config.resume is not None:
        checkpoint = resolve_resume(config.resume, config.out, RUNS_ROOT, config.pipeline)
        run_dir = checkpoint.parent.parent
        kimg = config.kimg
        config = read_config(run_dir, type(config))
        if explicit_kimg:
            config.kimg = kimg
        if context.is_main:
            print(f"resuming from {checkpoint}", flush=True)
    else:
        run_dir = Path(config.out) if config.out is not None else new_run_dir(config.pipeline, context)
    if context.is_main:
        write_config(config, run_dir)
        print(f"run folder: {run_dir.resolve()}", flush=True)
    torch.manual_seed(config.seed)  # only for third-party code that insists on the global generator
    dataset = build_dataset(config, run_dir, context)
    pipeline = spec.build_pipeline(config, device, dataset, context)
    trainer = Trainer(config, pipeline, dataset, run_dir, device, context)
    if checkpoint is not None:
        trainer.resume(checkpoint)
    try:
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

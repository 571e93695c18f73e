"""Data loading benchmark: images/s the training loader delivers from a zip, against what a training step consumes.

Writes EG3D-layout zip datasets (random smooth PNG images, valid camera labels in dataset.json)
at 64^2 and 256^2 into a temporary folder, opens them with the decoded-image cache off so every
item is read from the zip and decoded, and times ``TrainingBatches`` (the trainer's loader) with
0, 1 and 2 worker processes. For comparison it times ``PatchGanPipeline.train_step`` at the CPU
preset (32^2 patches of the dataset's images; steps without R1) on one fixed batch, which gives
the images/s a training step consumes (the loader keeps up when its rows are above that figure),
and then fed by the loader with 0 and 1 workers from the same zip, which shows whether decoding
on the training thread costs anything or a worker process only competes with the step for the
cores. Patch training makes the step cost nearly independent of the image size, the decoding
cost is not: the 256^2 rows are where the choice of workers matters.

    python benchmarks/data.py                       # 1-3 minutes on 2 CPU cores
    python benchmarks/data.py --images 512 --steps 40 --workers 0 1 2 4
    python benchmarks/data.py --device cuda

The machine's load average is printed with the table: timings taken on a busy machine are
inflated, compare rows only at similar load.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.pipelines.data helpers live in the repo

from pipelines.data.image_dataset import DatasetConfig, ImageDataset  # noqa: E402
from pipelines.engine.data_loader import TrainingBatches  # noqa: E402
from pipelines.patch_gan.pipeline import PatchGanPipeline, cpu_preset  # noqa: E402
from pipelines.pipeline import Progress  # noqa: E402
from tests.pipelines.data.data_test_utils import front_label, png_bytes  # noqa: E402
from timing import synchronize  # noqa: E402

RESOLUTIONS = (64, 256)


@dataclasses.dataclass
class LoaderTiming:
    resolution: int
    workers: int
    images_per_second: float
    """Images delivered per second once the loader runs (after the first batch)."""
    first_batch_seconds: float
    """Seconds until the first batch arrives (worker start-up included)."""


def smooth_image(resolution: int, rng: np.random.Generator) -> np.ndarray:
    """uint8 [R, R, 3]: a coarse random colour field upsampled, plus fine noise.

    Pure noise would be the worst case for PNG (no compression, slowest decode); real photos sit
    between this and a flat image.
    """
    coarse = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
    field = np.asarray(Image.fromarray(coarse).resize((resolution, resolution), Image.BICUBIC), dtype=np.int16)
    noise = rng.integers(-8, 9, (resolution, resolution, 3), dtype=np.int16)
    return np.clip(field + noise, 0, 255).astype(np.uint8)


def write_dataset(path: Path, count: int, resolution: int, seed: int = 0) -> Path:
    """An EG3D zip: ``img00000.png ...`` and ``dataset.json`` with one camera label per image."""
    rng = np.random.default_rng(seed)
    labels = []
    with zipfile.ZipFile(path, "w") as archive:
        for index in range(count):
            name = f"img{index:05d}.png"
            archive.writestr(name, png_bytes(smooth_image(resolution, rng)))
            yaw, pitch = rng.uniform(-0.8, 0.8), rng.uniform(-0.3, 0.3)
            labels.append([name, front_label(float(yaw), float(pitch))])
        archive.writestr("dataset.json", json.dumps({"labels": labels}))
    return path


def open_uncached(path: Path, resolution: int) -> ImageDataset:
    """The dataset with the decoded-image cache off, so every item is decoded when it is read."""
    return ImageDataset(DatasetConfig(path=path, resolution=resolution, cache="never", check_images="header"))


def time_loader(dataset: ImageDataset, batch: int, steps: int, workers: int, device: torch.device) -> LoaderTiming:
    start = time.perf_counter()
    with TrainingBatches(dataset, batch, seed=0, workers=workers, device=device) as batches:
        batches.next_batch()
        synchronize(device)
        first = time.perf_counter() - start
        start = time.perf_counter()
        for _ in range(steps):
            batches.next_batch()
        synchronize(device)
        seconds = time.perf_counter() - start
    return LoaderTiming(dataset.config.resolution, workers, steps * batch / seconds, first)


def training_pipeline(dataset: ImageDataset, batch: int, device: torch.device) -> PatchGanPipeline:
    """The CPU preset's patch-gan pipeline (32^2 patches) for the dataset's resolution, at batch ``batch``."""
    config = cpu_preset()
    config.batch = batch
    config.device = device.type
    config.resolution = dataset.config.resolution
    config.patch_resolution = min(config.patch_resolution, config.resolution)
    discriminator = dataclasses.replace(config.model.discriminator,
                                        mbstd_group_size=math.gcd(batch, config.model.discriminator.mbstd_group_size))
    config.model = dataclasses.replace(config.model, discriminator=discriminator)
    return PatchGanPipeline(config, device, dataset)


def time_training(pipeline: PatchGanPipeline, dataset: ImageDataset, batch: int, steps: int,
                  workers: int | None, device: torch.device) -> float:
    """Images/s of a training step fed by the loader with ``workers`` processes (fetching the batch
    included), or with ``workers=None`` on one fixed batch: what the step alone consumes.

    The median over ``steps`` steps (after one warm-up) is reported: on a shared machine single
    steps are sometimes several times slower.
    """
    with TrainingBatches(dataset, batch, seed=0, workers=0 if workers is None else workers, device=device) as batches:
        fixed = batches.next_batch() if workers is None else None
        times = []
        for index in range(steps + 1):
            synchronize(device)
            start = time.perf_counter()
            real = fixed if fixed is not None else batches.next_batch()
            # Step numbers that are not multiples of the R1 interval (16) run no R1.
            pipeline.train_step(real, Progress(step=1 + index, nimg=(1 + index) * batch))
            synchronize(device)
            if index > 0:
                times.append(time.perf_counter() - start)
    return batch / sorted(times)[len(times) // 2]


def load_average() -> float:
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=256, help="images in each generated zip dataset")
    parser.add_argument("--batch", type=int, default=8, help="images per batch (the CPU preset's is 8)")
    parser.add_argument("--steps", type=int, default=24, help="timed loader batches per row")
    parser.add_argument("--train-steps", type=int, default=5,
                        help="timed training steps per training row, median reported (0: skip those rows)")
    parser.add_argument("--train-workers", type=int, nargs="*", default=[0, 1],
                        help="loader worker counts of the rows where the loader feeds training steps")
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2], help="loader worker counts to time")
    parser.add_argument("--resolutions", type=int, nargs="+", default=list(RESOLUTIONS), help="image sides")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (where batches are delivered)")
    args = parser.parse_args()
    device = torch.device(args.device)
    if args.images < args.batch:
        parser.error(f"--images ({args.images}) must be at least --batch ({args.batch})")
    print(f"torch {torch.__version__}, device {device}, threads {torch.get_num_threads()}, "
          f"cores {os.cpu_count()}, load average {load_average():.2f} (1 min)", flush=True)

    rows: list[LoaderTiming] = []
    datasets: dict[int, ImageDataset] = {}
    with tempfile.TemporaryDirectory(prefix="epigraf-data-bench-") as folder:
        for resolution in args.resolutions:
            path = write_dataset(Path(folder) / f"images{resolution}.zip", args.images, resolution)
            datasets[resolution] = dataset = open_uncached(path, resolution)
            print(f"{resolution}^2: {args.images} images, {path.stat().st_size / 2**20:.1f} MiB zip", flush=True)
            for workers in args.workers:
                rows.append(time_loader(dataset, args.batch, args.steps, workers, device))
        training: list[tuple[int, int | None, float]] = []
        if args.train_steps > 0:
            for resolution, dataset in datasets.items():
                pipeline = training_pipeline(dataset, args.batch, device)
                time_training(pipeline, dataset, args.batch, 1, None, device)  # first calls allocate and initialize
                for workers in [None, *args.train_workers]:
                    images_per_second = time_training(pipeline, dataset, args.batch, args.train_steps, workers, device)
                    training.append((resolution, workers, images_per_second))

    print(f"\nbatch {args.batch}, {args.steps} timed batches per row, cache off (every image decoded), "
          f"load average {load_average():.2f}")
    print(f"{'source':<34} {'res':>5} {'workers':>7} {'img/s':>9} {'ms/batch':>9} {'first s':>8}")
    for timing in rows:
        print(f"{'loader (zip, PNG decode)':<34} {timing.resolution:>5} {timing.workers:>7} "
              f"{timing.images_per_second:9.1f} {1000 * args.batch / timing.images_per_second:9.1f} "
              f"{timing.first_batch_seconds:8.2f}")
    for resolution, workers, images_per_second in training:
        source = "train_step, one fixed batch" if workers is None else "train_step fed by the loader"
        print(f"{source:<34} {resolution:>5} {'-' if workers is None else workers:>7} {images_per_second:9.1f} "
              f"{1000 * args.batch / images_per_second:9.1f} {'-':>8}")


if __name__ == "__main__":
    main()

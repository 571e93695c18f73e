"""ADA benchmark: what adaptive discriminator augmentation adds to a patch-gan training step.

Times ``PatchGanPipeline.train_step`` at the CPU preset (64^2 images, 32^2 patches, batch 8) on one
fixed batch of random images, with ADA off and with ADA on at a fixed p = 0.6 (every transform of
StyleGAN2-ADA's default set may fire; p fixed so both runs do the same work at every step). Steps
of the two pipelines alternate (which goes first alternates too), so a change in the machine's
load hits both alike; the median seconds per step of each and the relative overhead are printed
(the budget is 15% of a step). Steps whose number is a multiple of the lazy R1 interval (16) also
differentiate the augmentation twice; the median is over all timed steps. The last row is the cost
of one augmentation call alone, forward and backward (a step makes three: the generator phase's
fakes, the discriminator phase's fakes and reals): on a loaded machine the step medians scatter by
more than ADA costs, and that row is ADA's own cost without the noise.

    python benchmarks/ada.py                  # 1-2 minutes on 2 CPU cores
    python benchmarks/ada.py --steps 40 --p 0.8
    python benchmarks/ada.py --device cuda

The machine's load average is printed with the table: timings taken on a busy machine are
inflated, compare rows only at similar load.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipelines.camera_distributions import CameraDistributionConfig, sample_cameras  # noqa: E402
from pipelines.gan.ada import AugmentConfig, augment_images  # noqa: E402
from pipelines.patch_gan.pipeline import PatchGanPipeline, cpu_preset  # noqa: E402
from pipelines.pipeline import Progress, TrainBatch  # noqa: E402
from timing import synchronize  # noqa: E402

OVERHEAD_BUDGET = 0.15
"""ADA may cost at most this fraction of a training step."""


class RandomImages(torch.utils.data.Dataset):
    """Smooth random images in [-1, 1] with camera labels from the synthetic frontal distribution."""

    def __init__(self, size: int, resolution: int, seed: int = 0) -> None:
        rng = torch.Generator().manual_seed(seed)
        coarse = torch.rand(size, 3, 8, 8, generator=rng) * 2 - 1
        self.images = torch.nn.functional.interpolate(coarse, size=resolution, mode="bilinear", align_corners=False)
        self.labels = sample_cameras(CameraDistributionConfig.synthetic("frontal"), size, rng).to_label()
        self.has_labels = True

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int):
        return self.images[index], self.labels[index]


def build_pipeline(dataset: RandomImages, batch: int, resolution: int, augment: AugmentConfig,
                   device: torch.device) -> PatchGanPipeline:
    """The CPU preset's patch-gan pipeline at ``batch`` and ``resolution`` with the given augmentation."""
    config = cpu_preset()
    config.batch, config.resolution, config.device = batch, resolution, device.type
    config.patch_resolution = min(config.patch_resolution, resolution)
    discriminator = dataclasses.replace(config.model.discriminator,
                                        mbstd_group_size=math.gcd(batch, config.model.discriminator.mbstd_group_size))
    config.model = dataclasses.replace(config.model, discriminator=discriminator, augment=augment)
    return PatchGanPipeline(config, device, dataset)


def time_step(pipeline: PatchGanPipeline, batch: TrainBatch, step: int, device: torch.device) -> float:
    synchronize(device)
    start = time.perf_counter()
    pipeline.train_step(batch, Progress(step=step, nimg=step * batch.images.shape[0]))
    synchronize(device)
    return time.perf_counter() - start


def time_augment_call(batch: int, resolution: int, p: float, device: torch.device, repeats: int = 50) -> float:
    """Median seconds of one augmentation of a [batch, 3, r, r] patch batch at p (every transform allowed),
    forward and backward to the images."""
    images = (torch.rand(batch, 3, resolution, resolution, device=device) * 2 - 1).requires_grad_(True)
    rng = torch.Generator(device).manual_seed(0)
    transforms = AugmentConfig().transforms
    times = []
    for _ in range(repeats + 1):
        synchronize(device)
        start = time.perf_counter()
        augment_images(images, transforms, p, rng).sum().backward()
        synchronize(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times[1:])


def load_average() -> float:
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20, help="timed train steps per setting (after one warm-up)")
    parser.add_argument("--batch", type=int, default=8, help="images per batch (the CPU preset's is 8)")
    parser.add_argument("--resolution", type=int, default=64, help="image side (patches are min(32, this))")
    parser.add_argument("--p", type=float, default=0.6, help="the fixed augmentation probability of the ADA row")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    args = parser.parse_args()
    device = torch.device(args.device)
    print(f"torch {torch.__version__}, device {device}, threads {torch.get_num_threads()}, "
          f"cores {os.cpu_count()}, load average {load_average():.2f} (1 min)", flush=True)

    dataset = RandomImages(max(args.batch, 4), args.resolution)
    off = build_pipeline(dataset, args.batch, args.resolution, AugmentConfig(mode="none"), device)
    on = build_pipeline(dataset, args.batch, args.resolution,
                        AugmentConfig(mode="ada", p=args.p, target=None), device)
    batch = TrainBatch(dataset.images[: args.batch].to(device), dataset.labels[: args.batch].to(device))
    times: dict[str, list[float]] = {"off": [], "on": []}
    for index in range(args.steps + 1):  # index 0 warms up (allocations, first calls)
        pair = (("off", off), ("on", on)) if index % 2 == 0 else (("on", on), ("off", off))  # neither always first
        for name, pipeline in pair:
            seconds = time_step(pipeline, batch, 1 + index, device)
            if index > 0:
                times[name].append(seconds)
    patch = off.train_config.patch_resolution
    call = time_augment_call(args.batch, patch, args.p, device)
    median_off, median_on = statistics.median(times["off"]), statistics.median(times["on"])
    overhead = (median_on - median_off) / median_off

    print(f"\npatch-gan CPU preset: {args.resolution}^2 images, {patch}^2 patches, batch {args.batch}; "
          f"{args.steps} timed steps per row (alternating), load average {load_average():.2f}")
    print(f"{'ADA':<18} {'median s/step':>14} {'min s/step':>11} {'max s/step':>11}")
    for name, label in (("off", "off"), ("on", f"on, p = {args.p:g} fixed")):
        print(f"{label:<18} {statistics.median(times[name]):14.4f} {min(times[name]):11.4f} {max(times[name]):11.4f}")
    print(f"{'overhead':<18} {100 * overhead:+13.1f}% of a step (budget {100 * OVERHEAD_BUDGET:.0f}%: "
          f"{'within' if overhead < OVERHEAD_BUDGET else 'OVER'})")
    print(f"{'one augment call':<18} {1000 * call:12.2f}ms (forward + backward, {args.batch} x 3 x {patch}^2; "
          f"3 calls per step = "
          f"{100 * 3 * call / median_off:.1f}% of a step)")


if __name__ == "__main__":
    main()

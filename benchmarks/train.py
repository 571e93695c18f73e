"""Training benchmark: seconds per patch-gan iteration, images/s and peak memory, patches vs full images.

Every row times whole ``PatchGanPipeline.train_step`` calls (G step + D step, each with its own
generator forward, EMA update) on an in-memory dataset. ``--preset sweep`` compares patch
training (beta-sampled scales, r x r patches) with full-resolution training (patch scale fixed
to 1, patch resolution = image resolution) at several image sizes; ``--preset official`` is the
configuration of the EpiGRAF speed reference (batch 4, 64^2 images, 32^2 patches, tri-plane
64^2 x 32, 512 channels at every resolution, 24 + 24 samples per ray, R1 every 16th step).

    python benchmarks/train.py --quick                    # a few minutes on 2 CPU cores
    python benchmarks/train.py                            # full sweep (512-channel networks)
    python benchmarks/train.py --preset official          # the EpiGRAF reference configuration
    python benchmarks/train.py --preset official --compile   # plus torch.compile of the synthesis
    python benchmarks/train.py --preset official --conv3x3 direct   # without Winograd 3x3 layers
    python benchmarks/train.py --device cuda

The machine's load average is printed with every row: timings taken on a busy machine are
inflated, compare rows only at similar load.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.pipelines.tiny lives in the repo

from epigraf_field.generator import TriPlaneGeneratorConfig  # noqa: E402
from epigraf_field.winograd import ALGORITHMS, conv3x3_algorithm  # noqa: E402
from pipelines.pipeline import Progress, TrainBatch  # noqa: E402
from pipelines.gan.discriminator import DiscriminatorConfig  # noqa: E402
from pipelines.gan.losses import AdamConfig  # noqa: E402
from pipelines.patch_gan.patch_sampler import PatchSamplerConfig  # noqa: E402
from pipelines.patch_gan.pipeline import (  # noqa: E402
    PatchGanConfig,
    PatchGanLossConfig,
    PatchGanPipeline,
    PatchGanTrainConfig,
)
from renderers.patches import Patch  # noqa: E402
from renderers.volume_renderer import VolumeRendererConfig  # noqa: E402
from tests.pipelines.tiny import TinyDataset  # noqa: E402
from timing import record_result, synchronize  # noqa: E402

R1_INTERVAL = 16
ROW_PREFIX = "ROW "


@dataclasses.dataclass
class Sizes:
    """Network widths of one benchmark mode."""

    generator: TriPlaneGeneratorConfig
    discriminator: DiscriminatorConfig
    num_coarse: int
    num_fine: int


def official_sizes() -> Sizes:
    """EpiGRAF's speed reference: G 25.70M parameters (map_depth 2), D 26.74M, 24 + 24 samples.

    The discriminator is the official patch discriminator's default at 32^2 patches of 64^2 images:
    one additional start block, hyper-modulation, ``channel_base`` 16384 (the official configs'
    32768 times the discriminator's fmaps 0.5), ``channel_max`` 512.
    """
    generator = dataclasses.replace(TriPlaneGeneratorConfig.benchmark(), mapping_layers=2, decoder_backend="torch")
    discriminator = DiscriminatorConfig(channel_base=16384, channel_max=512)
    return Sizes(generator, discriminator, num_coarse=24, num_fine=24)


def quick_sizes() -> Sizes:
    """Small widths (the CPU preset's) so the whole sweep runs in minutes on 2 cores."""
    generator = TriPlaneGeneratorConfig(
        z_dim=64, w_dim=64, mapping_layers=2, plane_resolution=32, plane_channels=16,
        channel_base=2048, channel_max=64, decoder_hidden=32, decoder_backend="torch",
    )
    discriminator = DiscriminatorConfig(channel_base=2048, channel_max=64, hyper_mod_dim=64, patch_table_dim=32)
    return Sizes(generator, discriminator, num_coarse=12, num_fine=12)


def train_config(sizes: Sizes, resolution: int, patch_resolution: int, mode: str, batch: int, device: str) -> PatchGanTrainConfig:
    """A patch-gan run at ``resolution`` with ``patch_resolution`` patches ('full': patch = image)."""
    return PatchGanTrainConfig(
        pipeline="patch-gan",
        resolution=resolution,
        patch_resolution=patch_resolution,
        batch=batch,
        device=device,
        model=PatchGanConfig(
            generator=sizes.generator,
            discriminator=dataclasses.replace(sizes.discriminator, mbstd_group_size=min(4, batch)),
            renderer=VolumeRendererConfig(sampler="importance", num_coarse=sizes.num_coarse, num_fine=sizes.num_fine),
            patches=PatchSamplerConfig(mode=mode),
            losses=PatchGanLossConfig(),
            g_optimizer=AdamConfig.epigraf_generator(),
            d_optimizer=AdamConfig(lr=0.002, reg_interval=R1_INTERVAL),
        ),
    )


class PeakMemory:
    """Peak memory while active: CUDA's allocator peak, or on CPU the growth of the process's peak
    resident set over its size at entry (run one configuration per process for a clean figure)."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.peak = 0
        self._baseline = 0

    @staticmethod
    def _rss() -> int:
        try:
            with open("/proc/self/statm") as f:
                return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except OSError:
            return 0

    def __enter__(self) -> PeakMemory:
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        else:
            self._baseline = self._rss()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.device.type == "cuda":
            self.peak = torch.cuda.max_memory_allocated(self.device)
        else:
            import resource

            self.peak = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - self._baseline, 0)


def load_average() -> float:
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")


@dataclasses.dataclass
class Timing:
    seconds: float
    """Median seconds per iteration without R1."""
    cpu_seconds: float
    """Median process CPU seconds per iteration (all threads): less sensitive to a busy machine."""
    r1_seconds: float | None
    """Seconds of one iteration with the R1 penalty (None when not measured)."""
    synthesis: float
    """Seconds of one synthesis forward + backward (the part that does not scale with pixels)."""
    discriminator: float
    """Seconds of one D forward + backward on a batch of fake patches."""
    peak_bytes: int
    load: float
    warmup_seconds: float
    """Seconds of the untimed warm-up iterations (includes compilation with --compile)."""
    iteration_seconds: list[float] = dataclasses.field(default_factory=list)
    """Every timed iteration, in the order they ran."""

    @property
    def amortized(self) -> float:
        """Seconds per iteration with R1 every 16th step."""
        if self.r1_seconds is None:
            return self.seconds
        return ((R1_INTERVAL - 1) * self.seconds + self.r1_seconds) / R1_INTERVAL


def time_component(device: torch.device, fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        synchronize(device)
        start = time.perf_counter()
        fn()
        synchronize(device)
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def benchmark(
    config: PatchGanTrainConfig, device: torch.device, iterations: int, warmup: int, r1: bool, compile: bool = False
) -> Timing:
    dataset = TinyDataset(size=max(config.batch, 4), resolution=config.resolution)
    memory = PeakMemory(device)
    memory.__enter__()  # construction, optimizer state and the timed steps all count
    pipeline = PatchGanPipeline(config, device, dataset)
    if compile:
        # Compile the bound forward, not the module: parameter names (EMA, checkpoints) stay unchanged.
        synthesis = pipeline.G.synthesis_network
        synthesis.forward = torch.compile(synthesis.forward, dynamic=False)
    images = dataset.images[: config.batch].to(device)
    labels = dataset.labels[: config.batch].to(device)
    batch = TrainBatch(images=images, labels=labels)
    b = config.batch

    def step(index: int) -> None:
        # Step numbers that are not multiples of the R1 interval run no R1; index 0 of R1_INTERVAL does.
        pipeline.train_step(batch, Progress(step=index, nimg=index * b))

    start = time.perf_counter()
    for i in range(warmup):
        step(1 + i)
    warmup_seconds = time.perf_counter() - start
    times, cpu_times = [], []
    for i in range(iterations):
        synchronize(device)
        start, cpu_start = time.perf_counter(), time.process_time()
        step(1 + warmup + i)
        synchronize(device)
        times.append(time.perf_counter() - start)
        cpu_times.append(time.process_time() - cpu_start)
    r1_seconds = None
    if r1:
        synchronize(device)
        start = time.perf_counter()
        step(R1_INTERVAL * 10)
        synchronize(device)
        r1_seconds = time.perf_counter() - start
    memory.__exit__(None, None, None)
    iteration_seconds = list(times)
    times.sort()
    cpu_times.sort()

    # Components that explain the full/patch gap: synthesis does not depend on the pixels rendered.
    G, D = pipeline.G, pipeline.D
    rng = torch.Generator(device).manual_seed(0)
    z = torch.randn(b, G.config.z_dim, device=device, generator=rng)

    def synthesis() -> None:
        G.requires_grad_(True)
        planes = G.synthesis(G.mapping(z), noise_mode="random", rng=rng)
        planes.square().mean().backward()
        G.zero_grad(set_to_none=True)

    r = config.patch_resolution
    fakes = torch.rand(b, 3, r, r, device=device, generator=rng) * 2 - 1
    patch = Patch.full(b, device)

    def discriminator() -> None:
        D.requires_grad_(True)
        D(fakes, patch).sum().backward()
        D.zero_grad(set_to_none=True)

    repeats = max(1, min(iterations, 3))
    return Timing(
        seconds=times[len(times) // 2],
        cpu_seconds=cpu_times[len(cpu_times) // 2],
        r1_seconds=r1_seconds,
        synthesis=time_component(device, synthesis, repeats),
        discriminator=time_component(device, discriminator, repeats),
        peak_bytes=memory.peak,
        load=load_average(),
        warmup_seconds=warmup_seconds,
        iteration_seconds=iteration_seconds,
    )


def parameter_counts(config: PatchGanTrainConfig) -> str:
    from epigraf_field.generator import TriPlaneGenerator
    from pipelines.gan.discriminator import Discriminator
    from pipelines.patch_gan.pipeline import resolve_model_config

    model = resolve_model_config(config)
    with torch.device("meta"):
        g = sum(p.numel() for p in TriPlaneGenerator(model.generator).parameters())
        d = sum(p.numel() for p in Discriminator(model.discriminator).parameters())
    return f"G {g / 1e6:.2f}M parameters, D {d / 1e6:.2f}M parameters"


def header() -> str:
    return (
        f"{'image':>5} {'patch':>5} {'mode':>4} {'px/img':>7} {'s/it':>7} {'cpu s/it':>8} {'img/s':>7} {'s/it+R1':>8} "
        f"{'G synth':>8} {'D f+b':>7} {'peak MiB':>9} {'load':>5}"
    )


def row(config: PatchGanTrainConfig, mode: str, t: Timing) -> str:
    r1 = f"{t.amortized:8.3f}" if t.r1_seconds is not None else f"{'-':>8}"
    return (
        f"{config.resolution:>5} {config.patch_resolution:>5} {mode:>4} {config.patch_resolution ** 2:>7} "
        f"{t.seconds:7.3f} {t.cpu_seconds:8.2f} {config.batch / t.seconds:7.2f} {r1} {t.synthesis:8.3f} {t.discriminator:7.3f} "
        f"{t.peak_bytes / 2**20:9.0f} {t.load:5.1f}"
    )


def run_row(args: argparse.Namespace, resolution: int, patch_resolution: int, mode: str) -> Timing:
    """One sweep row in a fresh process, so its peak memory and allocator state are its own."""
    command = [sys.executable, __file__, "--row", str(resolution), str(patch_resolution), mode,
               "--device", args.device, "--batch", str(args.batch), "--warmup", str(args.warmup),
               "--iterations", str(args.iterations)]
    command += ["--quick"] * args.quick + ["--compile"] * args.compile + ["--conv3x3", args.conv3x3]
    if args.threads is not None:
        command += ["--threads", str(args.threads)]
    result = subprocess.run(command, capture_output=True, text=True)
    lines = [line for line in result.stdout.splitlines() if line.startswith(ROW_PREFIX)]
    if result.returncode != 0 or not lines:
        raise RuntimeError(
            f"benchmark row {resolution}/{patch_resolution}/{mode} failed (exit {result.returncode}):\n"
            f"{result.stderr[-3000:]}"
        )
    return Timing(**json.loads(lines[-1][len(ROW_PREFIX):]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--preset", choices=["sweep", "official"], default="sweep",
                        help="sweep: patch vs full at several sizes; official: the EpiGRAF speed reference")
    parser.add_argument("--quick", action="store_true", help="small widths and few iterations (minutes on 2 cores)")
    parser.add_argument("--resolutions", type=int, nargs="+", default=None, help="image sides (sweep)")
    parser.add_argument("--patches", type=int, nargs="+", default=None, help="patch sides (sweep)")
    parser.add_argument("--batch", type=int, default=4, help="images per iteration")
    parser.add_argument("--iterations", type=int, default=None, help="timed iterations per row (median reported)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed iterations before timing")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--max-points", type=float, default=2.0e7,
                        help="skip rows that render more field points per render than this (CPU memory guard)")
    parser.add_argument("--row", nargs=3, default=None, metavar=("IMAGE", "PATCH", "MODE"), help=argparse.SUPPRESS)
    parser.add_argument("--conv3x3", choices=ALGORITHMS, default="auto",
                        help="how same-padded 3x3 convolutions run (auto: Winograd for wide layers on CPU)")
    parser.add_argument("--record", default=None, metavar="FILE",
                        help="append the result (command, machine, torch version, per-iteration times) to FILE as a "
                             "JSON line, e.g. benchmarks/results/train-official.jsonl")
    parser.add_argument("--compile", action="store_true",
                        help="torch.compile the synthesis network (inductor; needs a C++ compiler on CPU)")
    args = parser.parse_args()
    with conv3x3_algorithm(args.conv3x3):
        run(args)


def run(args: argparse.Namespace) -> None:
    device = torch.device(args.device)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    sizes = quick_sizes() if args.quick else official_sizes()
    args.iterations = iterations = args.iterations or (2 if args.quick else 3)
    if args.row is not None:
        resolution, patch_resolution, mode = int(args.row[0]), int(args.row[1]), args.row[2]
        config = train_config(sizes, resolution, patch_resolution, mode, args.batch, args.device)
        t = benchmark(config, device, iterations, args.warmup, r1=False, compile=args.compile)
        print(ROW_PREFIX + json.dumps(dataclasses.asdict(t)))
        return
    print(f"torch {torch.__version__}, device {device}, threads {torch.get_num_threads()}, "
          f"load average {load_average():.2f} (1 min)")

    if args.preset == "official":
        config = train_config(official_sizes(), 64, 32, "beta", args.batch, args.device)
        print("preset official: batch", args.batch, "64^2 images, 32^2 beta patches, 24 + 24 samples;", parameter_counts(config))
        print(header())
        t = benchmark(config, device, iterations, args.warmup, r1=True, compile=args.compile)
        print(row(config, "beta", t))
        print(f"warm-up ({args.warmup} it{', with compilation' if args.compile else ''}): {t.warmup_seconds:.1f} s")
        print(f"R1 step {t.r1_seconds:.3f} s; per iteration: {', '.join(f'{s:.3f}' for s in t.iteration_seconds)}")
        if args.record:
            record_result(args.record, sys.argv, {
                "preset": "official", "batch": args.batch, "conv3x3": args.conv3x3, "compile": args.compile,
                "parameters": parameter_counts(config), **dataclasses.asdict(t)})
            print(f"recorded in {args.record}")
        return

    resolutions = args.resolutions or ([64, 128] if args.quick else [64, 128, 256])
    patches = args.patches or ([32] if args.quick else [32, 64])
    samples = sizes.num_coarse + sizes.num_fine
    print(f"preset sweep ({'quick' if args.quick else 'full'}): batch {args.batch}, {sizes.num_coarse} + "
          f"{sizes.num_fine} samples;", parameter_counts(train_config(sizes, 64, 32, "beta", args.batch, args.device)))
    print(header())
    for resolution in resolutions:
        full_time = None
        rows = [(p, "beta") for p in patches if p < resolution] + [(resolution, "full")]
        patch_times = {}
        for patch_resolution, mode in rows:
            config = train_config(sizes, resolution, patch_resolution, mode, args.batch, args.device)
            points = args.batch * patch_resolution**2 * samples
            if device.type == "cpu" and points > args.max_points:
                print(f"{resolution:>5} {patch_resolution:>5} {mode:>4} skipped: {points:.2e} points per render "
                      f"> --max-points {args.max_points:.0e}")
                continue
            t = run_row(args, resolution, patch_resolution, mode)
            print(row(config, mode, t), flush=True)
            if mode == "full":
                full_time = t
            else:
                patch_times[patch_resolution] = t
        for patch_resolution, t in patch_times.items():
            if full_time is None:
                continue
            pixels = (resolution / patch_resolution) ** 2
            fixed = t.synthesis
            print(f"  {resolution}^2: full / patch {patch_resolution} cost {full_time.seconds / t.seconds:.2f}x, "
                  f"rendered pixels {pixels:.0f}x; G synthesis (pixel-independent) {fixed:.2f} s of "
                  f"{t.seconds:.2f} s per patch iteration")


if __name__ == "__main__":
    main()

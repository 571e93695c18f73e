"""patch-gan (EpiGRAF) vs eg3d vs mimic3d: seconds per iteration and peak memory, and quality at equal wall time.

Speed: each (pipeline, resolution) runs in its own fresh process (so peak memory is its own) on random
images with camera labels; after one warm-up step, ``--steps`` consecutive training steps are timed
(steps 1..N: eg3d's density regularization every 4 steps is included in proportion; lazy R1 every 16
steps is left out for all alike; mimic3d is timed in its 3D stage, the dearer one). The whole sweep runs
twice, the second time in reverse order, so a change of machine load hits every pipeline; the median,
min and max over all timed steps are printed with the load average, and the G / G-reg / D phase split
shows where the time goes.

Quality: every pipeline trains on the built-in dataset (64^2, 32^2 patches / neural rendering) for the
same wall time (``--train-seconds``; or the same kimg with ``--train-kimg``); mimic3d spends the first
``--mimic3d-stage1`` of it in stage 1. Then each output is scored: patch-gan's render, eg3d's
super-resolved image and raw render, mimic3d's direct 3D render and its 2D branch. Columns: SWD to real
images (x 1e3, lower is better), SWD to the same pipeline's super-resolved images of the same latents and
cameras (how close a consistent render comes to the upsampler's look), the shared multi-view PSNR (a view
warped into one turned by 5 degrees with the field's depth; higher = more consistent) and COV / MMD of
marching-cubes meshes against the dataset's ground-truth meshes.

    python benchmarks/compare.py --quick                 # CPU: small widths
    python benchmarks/compare.py --quick --skip-speed --train-seconds 600
    python benchmarks/compare.py --device cuda           # paper-like widths, batch 8 per step
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import time
from dataclasses import replace

import torch

from pipelines.pipeline import Progress, TrainBatch
from timing import synchronize

PIPELINES = ("patch-gan", "eg3d", "mimic3d")


# ------------------------------------------------------------------------------------------- configs
def build_config(pipeline: str, resolution: int, patch: int, batch: int, quick: bool, seed: int = 0):
    """The pipeline's GPU preset (or CPU preset with --quick) at ``resolution`` with ``patch`` px renders."""
    from pipelines.registry import get_pipeline_spec

    config = get_pipeline_spec(pipeline).preset("cpu" if quick else "gpu")()
    config.resolution, config.patch_resolution, config.batch, config.seed = resolution, patch, batch, seed
    config.device = "cpu" if quick else "cuda"
    if quick:
        config.model.renderer = replace(config.model.renderer, num_coarse=12, num_fine=12)
    if pipeline == "mimic3d":  # the 3D stage from the first step (the quality runs switch it on by time)
        config.model.stage_3d_kimg = 0.0
        if quick:  # no LPIPS weights on a CPU machine as a rule: the weight-free imitation, the same every time
            config.model.losses = replace(config.model.losses, imitation="feature_matching")
    return config


class RandomImages(torch.utils.data.Dataset):
    """Random images in [-1, 1] with labels from the built-in dataset's camera distribution (speed only)."""

    def __init__(self, resolution: int, size: int, seed: int = 0) -> None:
        from pipelines.camera_distributions import CameraDistributionConfig, sample_cameras

        rng = torch.Generator().manual_seed(seed)
        self.images = torch.rand(size, 3, resolution, resolution, generator=rng) * 2 - 1
        self.labels = sample_cameras(CameraDistributionConfig.synthetic("360"), size, rng).to_label()
        self.has_labels = True

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int):
        return self.images[index], self.labels[index]


def make_pipeline(name: str, config, device: torch.device, dataset):
    from pipelines.registry import get_pipeline_spec

    return get_pipeline_spec(name).build_pipeline(config, device, dataset)


# ------------------------------------------------------------------------------------------- speed
def _timed_phases(pipeline, device: torch.device, totals: dict[str, float]) -> None:
    """Wraps the pipeline's phases (instance attributes only) to add their wall time to ``totals``."""
    for key, attribute in (("G", "_generator_phase"), ("Greg", "_generator_regularization_phase"),
                           ("D", "_discriminator_phase")):
        method = getattr(pipeline, attribute)

        def wrapper(*args, _method=method, _key=key, **kwargs):
            synchronize(device)
            start = time.perf_counter()
            result = _method(*args, **kwargs)
            synchronize(device)
            totals[_key] = totals.get(_key, 0.0) + time.perf_counter() - start
            return result

        setattr(pipeline, attribute, wrapper)


def measure_speed(name: str, resolution: int, args: dict) -> dict:
    """One (pipeline, resolution) in this process: step times, phase split, peak memory."""
    if args["threads"]:
        torch.set_num_threads(args["threads"])
    device = torch.device(args["device"])
    config = build_config(name, resolution, args["patch"], args["batch"], args["quick"])
    dataset = RandomImages(resolution, args["batch"])
    pipeline = make_pipeline(name, config, device, dataset)
    batch = TrainBatch(dataset.images.to(device), dataset.labels.to(device))
    pipeline.train_step(batch, Progress(0, 0))  # warm-up: allocator, kernels, both regularizers
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    phases: dict[str, float] = {}
    _timed_phases(pipeline, device, phases)
    times = []
    for step in range(1, args["steps"] + 1):
        synchronize(device)
        start = time.perf_counter()
        pipeline.train_step(batch, Progress(step, step * args["batch"]))
        synchronize(device)
        times.append(time.perf_counter() - start)
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated(device) / 2**20
    else:
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    g_params = sum(p.numel() for p in pipeline.G.parameters())
    d_params = sum(p.numel() for p in pipeline.D.parameters())
    return {"times": times, "phases": {k: v / len(times) for k, v in phases.items()}, "peak_mb": peak,
            "g_params": g_params, "d_params": d_params,
            "d_input": f"{pipeline.config.discriminator.in_channels}x{pipeline.config.discriminator.resolution}^2"}


def baseline_rss_mb(args: dict) -> float:
    """Peak RSS of a process that only imports the pipelines (what every CPU peak includes)."""
    import resource

    import pipelines.eg3d.pipeline  # noqa: F401
    import pipelines.mimic3d.pipeline  # noqa: F401
    import pipelines.patch_gan.pipeline  # noqa: F401

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def in_fresh_process(function, *call_args):
    context = multiprocessing.get_context("spawn")
    with context.Pool(1) as pool:
        return pool.apply(function, call_args)


def speed_table(args: dict) -> None:
    resolutions = args["resolutions"]
    order = [(name, res) for res in resolutions for name in PIPELINES]
    results: dict[tuple[str, int], list[dict]] = {key: [] for key in order}
    loads = [os.getloadavg()[0]]
    for round_order in (order, list(reversed(order))):
        for name, res in round_order:
            print(f"  measuring {name} at {res}^2 ...", flush=True)
            results[(name, res)].append(in_fresh_process(measure_speed, name, res, args))
            loads.append(os.getloadavg()[0])
    unit = "peak CUDA alloc MB" if args["device"] == "cuda" else "peak RSS MB"
    print(f"\nSpeed ({args['device']}, batch {args['batch']}, patch / neural rendering {args['patch']}^2, "
          f"{args['steps']} timed steps x 2 rounds; 1-min load average during the runs "
          f"{min(loads):.1f}..{max(loads):.1f} on {os.cpu_count()} CPUs)")
    if args["device"] != "cuda":
        print(f"  CPU peaks include the interpreter + torch baseline of {in_fresh_process(baseline_rss_mb, args):.0f} MB")
    header = f"{'R':>5} {'pipeline':<10} {'s/it median':>11} {'min':>7} {'max':>7} {'G':>7} {'G-reg':>7} {'D':>7} " \
             f"{unit:>18} {'D input':>10} {'G params':>9}"
    print(header)
    for res in resolutions:
        medians = {}
        for name in PIPELINES:
            runs = results[(name, res)]
            times = [t for run in runs for t in run["times"]]
            phase = {k: statistics.median(run["phases"].get(k, 0.0) for run in runs) for k in ("G", "Greg", "D")}
            medians[name] = statistics.median(times)
            print(f"{res:>5} {name:<10} {medians[name]:>11.3f} {min(times):>7.3f} {max(times):>7.3f} "
                  f"{phase['G']:>7.3f} {phase['Greg']:>7.3f} {phase['D']:>7.3f} "
                  f"{max(run['peak_mb'] for run in runs):>18.0f} {runs[0]['d_input']:>10} {runs[0]['g_params']:>9}")
        print(f"{'':>5} time relative to patch-gan: eg3d {medians['eg3d'] / medians['patch-gan']:.2f}x, "
              f"mimic3d {medians['mimic3d'] / medians['patch-gan']:.2f}x")
    print("G, G-reg, D: mean seconds per iteration of each phase (G-reg = the density regularization of eg3d and "
          "mimic3d, every 4th step; mimic3d's G and D include its 3D patch, patch discriminator and imitation).")


# ------------------------------------------------------------------------------------------- quality
def scored_outputs(name: str, final) -> dict[str, tuple[object, object | None]]:
    """The outputs of a trained pipeline to score, each with the super-resolved model of the same pipeline
    (None: the output is that model, or the pipeline has none)."""
    from pipelines.model import TriPlaneModel

    if name == "patch-gan":
        return {"render": (final, None)}
    if name == "eg3d":
        raw = TriPlaneModel(final.network.triplane, final.renderer, final.cameras)
        return {"super-resolved": (final, None), "raw render": (raw, final)}
    two_d = final.with_options(branch="2d")
    return {"2D branch (SR)": (two_d, None), "direct 3D render": (final, two_d)}


def score_model(model, reference, dataset, args: dict) -> dict[str, float]:
    """SWD to reals, SWD to ``reference``'s images of the same latents and cameras, mv PSNR and COV / MMD."""
    from pipelines.evaluation.meshes import MeshExtractionConfig
    from pipelines.evaluation.metrics import MetricsConfig, _fake_images, compute_metrics
    from pipelines.evaluation.swd import sliced_wasserstein_distance

    config = MetricsConfig(consistency_scenes=args["scenes"], geometry_shapes=args["scenes"],
                           mesh=MeshExtractionConfig(resolution=64))
    rng = lambda: torch.Generator().manual_seed(args["seed"])  # noqa: E731 - every output sees the same draws
    out = compute_metrics(model, dataset, ["swd", "mv_psnr", "geometry"], args["images"], rng(), config,
                          args["cache"])
    if reference is not None:
        fakes = _fake_images(model, args["images"], 64, config.render_batch, rng(), False)
        teacher = _fake_images(reference, args["images"], 64, config.render_batch, rng(), False)
        out["swd_to_sr"] = sliced_wasserstein_distance(fakes, teacher, rng(), config.swd)["swd"]
    return out


def train_and_score(name: str, args: dict) -> dict:
    """Trains ``name`` on the built-in dataset for --train-seconds (or --train-kimg), then scores its outputs."""
    if args["threads"]:
        torch.set_num_threads(args["threads"])
    import resource

    from pipelines.data import DatasetConfig, ImageDataset, ensure_builtin_dataset
    from pipelines.engine.data_loader import BatchStream
    from pipelines.evaluation.metrics import MetricsCache

    device = torch.device(args["device"])
    resolution = 64
    dataset = ImageDataset(DatasetConfig(path=ensure_builtin_dataset(resolution=resolution), resolution=resolution))
    config = build_config(name, resolution, 32, args["train_batch"], args["quick"], seed=args["seed"])
    if name == "mimic3d":
        config.model.stage_3d_kimg = float("inf")  # stage 1 until its share of the time is spent
    pipeline = make_pipeline(name, config, device, dataset)
    stream = BatchStream(dataset, config.batch, config.seed)
    seconds, kimg = args["train_seconds"], args["train_kimg"]
    start, step, stage_1_steps = time.perf_counter(), 0, None
    while (time.perf_counter() - start < seconds) if seconds else (step * config.batch < kimg * 1000):
        done = (time.perf_counter() - start) / seconds if seconds else step * config.batch / (kimg * 1000)
        if name == "mimic3d" and stage_1_steps is None and done >= args["mimic3d_stage1"]:
            stage_1_steps = step
            pipeline.config = replace(pipeline.config, stage_3d_kimg=step * config.batch / 1000)
        pipeline.train_step(stream.batch(step, device), Progress(step, step * config.batch))
        step += 1
    elapsed = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    args = {**args, "cache": MetricsCache()}
    final = pipeline.model()
    scores = {label: score_model(model, reference, dataset, args)
              for label, (model, reference) in scored_outputs(name, final).items()}
    return {"steps": step, "train_seconds": elapsed, "sec_per_it": elapsed / max(step, 1), "peak_mb": peak,
            "stage_1_steps": stage_1_steps, "scores": scores}


def quality_table(args: dict) -> None:
    budget = (f"{args['train_seconds']:.0f} s of wall time each" if args["train_seconds"]
              else f"{args['train_kimg']} kimg each")
    print(f"\nQuality after {budget} on the built-in dataset (64^2, batch {args['train_batch']}, seed {args['seed']}; "
          f"mimic3d: stage 1 for the first {args['mimic3d_stage1']:.0%}); {args['images']} images for SWD, "
          f"{args['scenes']} scenes for mv PSNR and meshes (64^3 marching cubes)")
    header = (f"{'pipeline':<10} {'output':<18} {'steps':>6} {'s/it':>6} {'peak RSS MB':>11} {'SWD real':>9} "
              f"{'SWD to SR':>9} {'mv PSNR dB':>10} {'COV':>6} {'MMD':>8}")
    rows, loads = [], [os.getloadavg()[0]]
    for name in PIPELINES:
        print(f"  training {name} ...", flush=True)
        rows.append((name, in_fresh_process(train_and_score, name, args)))
        loads.append(os.getloadavg()[0])
    print(f"1-min load average during the runs {min(loads):.1f}..{max(loads):.1f} on {os.cpu_count()} CPUs")
    print(header)
    for name, result in rows:
        for label, score in result["scores"].items():
            to_sr = f"{score['swd_to_sr']:>9.1f}" if "swd_to_sr" in score else f"{'-':>9}"
            print(f"{name:<10} {label:<18} {result['steps']:>6} {result['sec_per_it']:>6.2f} "
                  f"{result['peak_mb']:>11.0f} {score['swd']:>9.1f} {to_sr} {score['mv_psnr']:>10.2f} {score['cov']:>6.3f} {score['mmd']:>8.5f}")
        if result["stage_1_steps"] is not None:
            print(f"{'':<10} (mimic3d: {result['stage_1_steps']} stage-1 steps, then the 3D stage)")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", choices=("cpu", "cuda"))
    parser.add_argument("--quick", action="store_true", help="CPU presets' small widths, 12 + 12 samples, 32^2 renders")
    parser.add_argument("--resolutions", type=int, nargs="+", default=[128, 256, 512])
    parser.add_argument("--patch", type=int, default=None, help="patch / neural rendering resolution (64; --quick 32)")
    parser.add_argument("--batch", type=int, default=None, help="images per step for speed (8; --quick 2)")
    parser.add_argument("--steps", type=int, default=None, help="timed steps per round (8; --quick 4)")
    parser.add_argument("--train-seconds", type=float, default=None,
                        help="wall time each pipeline trains for quality (600; --quick 300); 0: use --train-kimg")
    parser.add_argument("--train-kimg", type=float, default=20.0, help="training length with --train-seconds 0")
    parser.add_argument("--mimic3d-stage1", type=float, default=0.375,
                        help="share of mimic3d's training spent in stage 1 (its CPU preset: 3 of 8 kimg)")
    parser.add_argument("--images", type=int, default=256, help="generated and real images for SWD")
    parser.add_argument("--train-batch", type=int, default=8)
    parser.add_argument("--scenes", type=int, default=16, help="scenes scored for consistency and geometry")
    parser.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: torch's default)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-speed", action="store_true")
    parser.add_argument("--skip-quality", action="store_true")
    ns = parser.parse_args(argv)
    if ns.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device; use --device cpu --quick")
    if ns.device == "cpu" and not ns.quick:
        print("note: paper-like widths on a CPU take very long; consider --quick", flush=True)
    q = ns.quick
    args = {
        "device": ns.device, "quick": q, "resolutions": ns.resolutions, "threads": ns.threads, "seed": ns.seed,
        "patch": ns.patch or (32 if q else 64), "batch": ns.batch or (2 if q else 8), "steps": ns.steps or (4 if q else 8),
        "train_seconds": ns.train_seconds if ns.train_seconds is not None else (300.0 if q else 600.0),
        "train_kimg": ns.train_kimg, "mimic3d_stage1": ns.mimic3d_stage1, "images": ns.images,
        "train_batch": ns.train_batch, "scenes": ns.scenes,
    }
    print(f"torch {torch.__version__}, device {ns.device}"
          + (f" ({torch.cuda.get_device_name()})" if ns.device == "cuda" else f", {torch.get_num_threads()} threads"))
    print("Timings on a shared machine are noisy: compare the pipelines within one run, not across runs.")
    if not ns.skip_speed:
        speed_table(args)
    if not ns.skip_quality:
        quality_table(args)


if __name__ == "__main__":
    main()

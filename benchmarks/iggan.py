"""IG-GAN's claims measured on the built-in dataset at equal CPU wall time: proxy fidelity, geometry, SWD, DOM.

Arms, each trained in this process on the built-in dataset (64^2, 2,048 images) from its CPU preset:

* ``ig-gan``: the CPU preset (DOM weight 10);
* ``ig-gan-no-dom``: the same with lambda = 0 (the paper's ablation), from the same pre-trained f;
* ``patch-gan``: EpiGRAF's CPU preset, for the geometry yardstick.

f is pre-trained once (``--pretrain-steps`` steps on random voxel shapes, L2 to R) and both ig-gan
arms start from that copy; each arm then trains for ``--minutes`` of wall time (patch-gan gets the
pre-training time on top, so every arm has used the same CPU time). Printed per arm:

* s/iter and the share of it spent in R (Mitsuba);
* proxy fidelity: PSNR of f(x) against R(x) on held-out grids, before (right after pre-training) and
  after GAN training, on held-out random shapes and on the generator's own samples;
* SWD (x 1e3) of R's renders of generated shapes to real images (patch-gan: of its volume renders);
* COV / MMD / 1-NNA of generated meshes against the dataset's ground-truth meshes (ig-gan meshes
  are cut at occupancy 0.5, the binarization R renders).

    python benchmarks/iggan.py --minutes 5     # about 22 minutes on 2 cores
"""

from __future__ import annotations

import argparse
import copy
import math
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from pipelines.pipeline import Progress  # noqa: E402
from timing import machine_description, record_result  # noqa: E402

HELD_OUT_SEED = 987_654


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """PSNR in dB of images in [-1, 1] (peak-to-peak 2)."""
    mse = (a.clamp(-1, 1) - b.clamp(-1, 1)).square().mean().item()
    return 10 * math.log10(4.0 / max(mse, 1e-12))


@torch.no_grad()
def proxy_fidelity(pipeline, count: int) -> dict[str, float]:
    """PSNR of f against R on held-out random shapes and on EMA generator samples (fixed seeds)."""
    from pipelines.ig_gan.random_shapes import random_voxel_shapes

    rng = torch.Generator().manual_seed(HELD_OUT_SEED)
    config = pipeline.config.generator
    shapes = random_voxel_shapes(count, config.resolution, config.box_half_size, rng)
    generated = pipeline.G_ema(torch.randn(count, config.z_dim, generator=rng))
    cameras = pipeline.sample_cameras(count, rng)
    pipeline.f.eval()
    result = {}
    for name, voxels in (("random", shapes), ("generated", generated)):
        result[f"psnr_{name}"] = psnr(pipeline.f(voxels, cameras), pipeline.R(voxels, cameras, seed=HELD_OUT_SEED))
    pipeline.f.train()
    return result


def train_for(pipeline, stream, seconds: float, start_step: int, batch: int) -> dict[str, float]:
    """Training steps until ``seconds`` of wall time are used; s/iter and R's share."""
    r_before = getattr(getattr(pipeline, "R", None), "seconds", 0.0)
    step, begin = start_step, time.perf_counter()
    while time.perf_counter() - begin < seconds:
        pipeline.train_step(stream.batch(step, torch.device("cpu")), Progress(step, step * batch))
        step += 1
    elapsed = time.perf_counter() - begin
    r_seconds = getattr(getattr(pipeline, "R", None), "seconds", 0.0) - r_before
    return {"steps": step - start_step, "s_per_iter": elapsed / max(step - start_step, 1),
            "R_share": r_seconds / elapsed, "end_step": step}


def evaluate(model, dataset, meshes, count: int, mesh_resolution: int, level: float, r_images=None) -> dict:
    """SWD to the reals (of ``r_images`` when given, else of the model's volume renders) and geometry."""
    from pipelines.evaluation.meshes import MeshExtractionConfig
    from pipelines.evaluation.metrics import model_geometry
    from pipelines.evaluation.swd import sliced_wasserstein_distance
    from pipelines.model import render

    rng = torch.Generator().manual_seed(HELD_OUT_SEED + 1)
    reals = torch.stack([dataset[int(i)][0] for i in torch.randperm(len(dataset), generator=rng)[:count]])
    if r_images is None:
        z = torch.randn(count, model.z_dim, generator=rng)
        r_images = render(model, z, model.cameras.sample(count, rng), reals.shape[-1]).rgb * 2 - 1
    result = {"swd": sliced_wasserstein_distance(r_images, reals, rng)["swd"]}
    geometry = model_geometry(model, meshes, count, 1024, MeshExtractionConfig(resolution=mesh_resolution, level=level),
                              rng)
    result.update({k: geometry[k] for k in ("cov", "mmd", "1nna", "empty_meshes")})
    return result


@torch.no_grad()
def r_renders_of_samples(pipeline, count: int) -> torch.Tensor:
    rng = torch.Generator().manual_seed(HELD_OUT_SEED + 1)
    rng_z = torch.Generator().manual_seed(HELD_OUT_SEED + 2)
    voxels = pipeline.G_ema(torch.randn(count, pipeline.z_dim, generator=rng_z))
    return pipeline.R(voxels, pipeline.sample_cameras(count, rng), seed=1)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=5.0, help="wall time of each arm's GAN training")
    parser.add_argument("--pretrain-steps", type=int, default=None,
                        help="f pre-training steps, shared by both ig-gan arms (default: the CPU preset's)")
    parser.add_argument("--eval-count", type=int, default=32, help="images and shapes per evaluation")
    parser.add_argument("--mesh-resolution", type=int, default=64, help="marching-cubes grid of the geometry metrics")
    parser.add_argument("--record", default=None, help="append the result as a JSON line to this file")
    args = parser.parse_args(argv)
    torch.set_num_threads(min(2, os.cpu_count() or 1))

    from pipelines.data.builtin import ensure_builtin_dataset
    from pipelines.data.image_dataset import DatasetConfig, ImageDataset
    from pipelines.engine.data_loader import BatchStream
    from pipelines.evaluation.shape_metrics import find_reference_meshes, load_meshes
    from pipelines.ig_gan.pipeline import IgGanPipeline, cpu_preset
    from pipelines.patch_gan.pipeline import PatchGanPipeline
    from pipelines.patch_gan.pipeline import cpu_preset as patch_gan_preset

    archive = ensure_builtin_dataset(resolution=64)
    dataset = ImageDataset(DatasetConfig(path=archive, resolution=64))
    meshes = load_meshes(find_reference_meshes(archive))
    print(f"machine: {machine_description()}", flush=True)
    results: dict[str, dict] = {}

    config = cpu_preset()
    if args.pretrain_steps is None:
        args.pretrain_steps = config.model.losses.proxy_pretrain_steps
    config.model.losses = replace(config.model.losses, proxy_pretrain_steps=args.pretrain_steps)
    base = IgGanPipeline(config, torch.device("cpu"), dataset)
    stream = BatchStream(dataset, config.batch, config.seed)
    begin = time.perf_counter()
    for step in range(args.pretrain_steps):
        base.train_step(stream.batch(step, torch.device("cpu")), Progress(step, step * config.batch))
    pretrain_seconds = time.perf_counter() - begin
    before = proxy_fidelity(base, args.eval_count)
    print(f"f pre-training: {args.pretrain_steps} steps in {pretrain_seconds:.0f} s; fidelity {before}", flush=True)
    density_level = 0.5 * config.model.generator.density_scale

    for name, dom in (("ig-gan", config.model.losses.dom_weight), ("ig-gan-no-dom", 0.0)):
        arm_config = copy.deepcopy(config)
        arm_config.model.losses = replace(arm_config.model.losses, dom_weight=dom)
        pipeline = IgGanPipeline(arm_config, torch.device("cpu"), dataset)
        pipeline.load_state_dict(copy.deepcopy(base.state_dict()))  # the same pre-trained f, G, D and RNG states
        timing = train_for(pipeline, stream, 60 * args.minutes, args.pretrain_steps, config.batch)
        after = proxy_fidelity(pipeline, args.eval_count)
        quality = evaluate(pipeline.model(), dataset, meshes, args.eval_count, args.mesh_resolution, density_level,
                           r_renders_of_samples(pipeline, args.eval_count))
        results[name] = {"dom_weight": dom, **timing, "psnr_before": before, "psnr_after": after, **quality,
                         "load_average": os.getloadavg()[0]}
        print(name, results[name], flush=True)

    patch_config = patch_gan_preset()
    patch = PatchGanPipeline(patch_config, torch.device("cpu"), dataset)
    patch_stream = BatchStream(dataset, patch_config.batch, patch_config.seed)
    timing = train_for(patch, patch_stream, 60 * args.minutes + pretrain_seconds, 0, patch_config.batch)
    quality = evaluate(patch.model(), dataset, meshes, args.eval_count, args.mesh_resolution, 10.0)
    results["patch-gan"] = {**timing, **quality, "load_average": os.getloadavg()[0]}
    print("patch-gan", results["patch-gan"], flush=True)

    print(f"\n{'arm':<15}{'steps':>7}{'s/iter':>8}{'R share':>9}{'PSNR f rnd':>12}{'PSNR f gen':>12}"
          f"{'SWD':>8}{'COV':>7}{'MMD':>9}{'1-NNA':>7}")
    for name, r in results.items():
        fid = r.get("psnr_after", {})
        print(f"{name:<15}{r['steps']:>7}{r['s_per_iter']:>8.2f}{r['R_share']:>9.2f}"
              f"{fid.get('psnr_random', float('nan')):>12.2f}{fid.get('psnr_generated', float('nan')):>12.2f}"
              f"{r['swd']:>8.1f}{r['cov']:>7.2f}{r['mmd']:>9.4f}{r['1nna']:>7.2f}")
    print(f"PSNR of f before GAN training (after pre-training): random {before['psnr_random']:.2f} dB, "
          f"generated {before['psnr_generated']:.2f} dB; load average now {os.getloadavg()}")
    if args.record:
        record_result(args.record, sys.argv, {"pretrain_seconds": pretrain_seconds, "arms": results})


if __name__ == "__main__":
    main()

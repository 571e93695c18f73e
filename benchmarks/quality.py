"""Quality benchmark: one table that scores trained runs the same way every time on the built-in dataset.

For each run (a run folder, checkpoint or generator bundle): SWD of its images to real images,
multi-view warp PSNR, COV / MMD / 1-NNA of its marching-cubes meshes against the ground-truth meshes,
and the family histogram (the family of each generated shape's nearest ground-truth mesh, beside the
dataset's shares; see pipelines/evaluation/families.py), the spread of hue inside its objects and the
variety of hue between the objects of a class and the change of an object's hue as the camera goes
around it, beside the real objects' (pipelines/evaluation/colour.py), and the floaters: the share of an
object's opaque pixels and of its voxels apart from its largest connected body
(pipelines/evaluation/floaters.py).
Every random choice comes from --seed, so two invocations on the same run print the same row.

    python benchmarks/quality.py runs/patch-gan-A runs/patch-gan-B --labels old new \\
        --json quality.json --grid side-by-side.png

It prints the seconds each stage took per run. For a quick look, --images 256 --shapes 32
--mesh-resolution 64 (rows made with other settings are not comparable).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import torch

from pipelines.data.image_dataset import DatasetConfig, ImageDataset
from pipelines.evaluation.colour import (
    hue_change_across_views,
    hue_variety,
    mean_hue,
    median_hue_spread,
    real_object_mask,
)
from pipelines.evaluation.families import RECOGNITION_QUANTILE, family_histogram, reference_families
from pipelines.evaluation.floaters import detached_density, detached_pixel_shares
from pipelines.evaluation.meshes import MeshExtractionConfig, density_grid, meshes_from_grids
from pipelines.evaluation.metrics import MetricsConfig, compute_metrics
from pipelines.evaluation.shape_metrics import (
    compare_shapes,
    find_reference_meshes,
    find_synthetic_metadata,
    load_meshes,
)
from pipelines.evaluation.trajectories import OrbitConfig, turntable_cameras
from pipelines.model import GeneratorModel, drawn_classes, fields, open_model, render
from renderers.cameras import Cameras

COLUMNS = ("swd", "mv_psnr", "cov", "mmd", "1nna", "empty")


def generated_meshes(model: GeneratorModel, count: int, config: MeshExtractionConfig, rng: torch.Generator,
                     batch: int = 4) -> tuple[list, list]:
    """``count`` marching-cubes meshes of latents drawn from ``rng`` (pose-conditioned on sampled cameras), and
    where each one's density lies apart from its largest body (:func:`detached_density`)."""
    z = torch.randn(count, model.z_dim, generator=rng)
    condition = model.cameras.sample(count, rng)
    meshes, detached = [], []
    for start in range(0, count, batch):
        sl = slice(start, start + batch)
        with torch.no_grad():
            grids = density_grid(fields(model, z[sl].to(model.device), condition[sl]), len(z[sl]), config,
                                 model.device)
        meshes += meshes_from_grids(grids, config)
        detached += [detached_density(grid, config.level) for grid in grids]
    return meshes, detached


def score_run(path: Path, data: Path, references: list, families: list[str], args: argparse.Namespace) -> dict:
    """The scores of one run; each part of the evaluation starts from its own seeded generator."""
    start = time.perf_counter()
    stages: dict[str, float] = {}

    def lap(name: str) -> None:
        stages[name] = round(time.perf_counter() - start - sum(stages.values()), 1)

    model = open_model(path, args.device)
    resolution = model.image_resolution or 64
    dataset = ImageDataset(DatasetConfig(path=data, resolution=resolution))
    settings = MetricsConfig(consistency_scenes=args.consistency_scenes, render_batch=args.batch)
    scores: dict[str, float] = compute_metrics(model, dataset, ["swd", "mv_psnr"], args.images,
                                               torch.Generator().manual_seed(args.seed), settings)
    lap("swd_mv_psnr")
    mesh_config = MeshExtractionConfig(resolution=args.mesh_resolution, level=args.level, colors=False,
                                       box_half_size=model.box_half_size)
    meshes, detached = generated_meshes(model, args.shapes, mesh_config, torch.Generator().manual_seed(args.seed + 1))
    scores["floaters_3d"] = sum(d.share for d in detached) / len(detached)
    scores["floaters_3d_at_faces"] = sum(d.at_faces for d in detached if d.share > 0) / max(
        1, sum(d.share > 0 for d in detached))
    scores["floater_faces"] = [sum(d.faces[k] for d in detached) for k in range(6)]
    lap("meshes")
    rng = torch.Generator().manual_seed(args.seed + 2)
    pick = torch.randperm(len(references), generator=rng)[: args.shapes]
    scores.update(compare_shapes(meshes, [references[int(i)] for i in pick], args.points, rng).as_dict())
    scores["empty"] = sum(len(m.faces) == 0 for m in meshes) / len(meshes)
    lap("cov_mmd_1nna")
    histogram = family_histogram(meshes, references, families, args.family_points,
                                 torch.Generator().manual_seed(args.seed + 3), threshold_sample=args.shapes)
    scores.update(histogram.as_dict())
    lap("families")
    scores["hue_spread"], scores["hue_variety"], scores["floaters_2d"] = generated_colour_and_floaters(
        model, resolution, args)
    lap("hue_spread_floaters")
    scores["hue_across_views"] = generated_hue_across_views(model, resolution, args)
    lap("hue_across_views")
    return {"run": str(path), "pipeline": model.pipeline, "resolution": resolution, "scores": scores,
            "family_counts": histogram.counts, "reference_shares": histogram.reference_shares,
            "recognition_threshold": histogram.threshold,
            "seconds": round(time.perf_counter() - start, 1), "stage_seconds": stages}


def generated_colour_and_floaters(model: GeneratorModel, resolution: int, args: argparse.Namespace
                                  ) -> tuple[float, float, float]:
    """Median hue spread inside ``args.colour_images`` generated objects (pixels at opacity above 0.5), the hue
    variety between the objects of a class (each latent in its own class, as every command draws it), and the
    mean share of object pixels apart from each image's largest blob."""
    rng = torch.Generator().manual_seed(args.seed + 4)
    z = torch.randn(args.colour_images, model.z_dim, generator=rng)
    classes = drawn_classes(z, getattr(model, "num_classes", 0), getattr(model, "class_index", None))
    cameras = model.cameras.sample(args.colour_images, rng)
    rgb, masks = [], []
    for start in range(0, args.colour_images, args.batch):
        sl = slice(start, start + args.batch)
        with torch.no_grad():
            out = render(model, z[sl].to(model.device), cameras[sl], resolution)
        rgb.append(out.rgb.cpu())
        masks.append(out.opacity[:, 0].cpu() > 0.5)
    rgb, masks = torch.cat(rgb), torch.cat(masks)
    return (median_hue_spread(rgb, masks), hue_variety(mean_hue(rgb, masks), classes),
            float(detached_pixel_shares(masks).mean()))


def generated_hue_across_views(model: GeneratorModel, resolution: int, args: argparse.Namespace) -> float:
    """How much ``args.view_objects`` generated objects change their mean hue over ``args.views`` cameras evenly
    around them on the centre orbit (:func:`hue_change_across_views`); each latent in its own class, and a
    pose-conditioned generator keeps the centre pose as its condition so that the object stays the same."""
    rng = torch.Generator().manual_seed(args.seed + 5)
    z = torch.randn(args.view_objects, model.z_dim, generator=rng).to(model.device)
    path = turntable_cameras(OrbitConfig().resolve(model.cameras), args.views)
    condition = Cameras.cat([model.cameras.center_pose()] * len(z))
    view_hues = []
    for view in range(args.views):
        cameras = Cameras.cat([path[view]] * len(z)).to(model.device)
        with torch.no_grad():
            out = render(model, z, cameras, resolution, condition.to(model.device), batch_size=args.batch)
        view_hues.append(mean_hue(out.rgb.cpu(), out.opacity[:, 0].cpu() > 0.5))
    return hue_change_across_views(torch.stack(view_hues, dim=1))


def real_hue_across_views(data: Path, dataset: ImageDataset, count: int, seed: int) -> float:
    """The same for ``count`` real objects, over every view of each that the dataset holds (the synthetic dataset's
    metadata.json lists each object's images); NaN when it lists none."""
    metadata = find_synthetic_metadata(data)
    objects = json.loads(metadata.read_text())["objects"] if metadata is not None else []
    index_of = {name: index for index, name in enumerate(dataset.names)}
    views = [[index_of[name] for name in obj.get("images", []) if name in index_of] for obj in objects]
    views = [indices for indices in views if len(indices) >= 2]
    pick = torch.randperm(len(views), generator=torch.Generator().manual_seed(seed + 5))[:count].tolist()
    width = max((len(views[i]) for i in pick), default=0)
    view_hues = torch.full((len(pick), width), float("nan"))
    for row, i in enumerate(pick):
        images = (torch.stack([dataset[index][0] for index in views[i]]) + 1) / 2
        view_hues[row, : len(images)] = mean_hue(images, real_object_mask(images))
    return hue_change_across_views(view_hues)


def real_colour_and_floaters(dataset: ImageDataset, count: int, seed: int) -> tuple[float, float, float]:
    """Median hue spread inside ``count`` real objects of the dataset (pixels away from the white background), the
    hue variety between the objects of a class, and the mean share of object pixels apart from each image's
    largest blob."""
    pick = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(seed + 4))[:count]
    images = (torch.stack([dataset[int(i)][0] for i in pick]) + 1) / 2
    masks = real_object_mask(images)
    labels = dataset.class_labels
    classes = labels[pick].long() if labels is not None else torch.zeros(len(pick), dtype=torch.long)
    return (median_hue_spread(images, masks), hue_variety(mean_hue(images, masks), classes),
            float(detached_pixel_shares(masks).mean()))


def side_by_side(paths: list[Path], labels: list[str], out: Path, count: int, columns: int, seed: int,
                 device: str) -> Path:
    """The same latents and cameras (from ``seed``) rendered by each run, grids side by side with a gap."""
    from PIL import Image, ImageDraw

    from pipelines.engine.snapshots import images_to_grid

    grids = []
    for path in paths:
        model = open_model(path, device)
        rng = torch.Generator().manual_seed(seed)
        z = torch.randn(count, model.z_dim, generator=rng)
        cameras = model.cameras.sample(count, rng)
        images = render(model, z.to(model.device), cameras.to(model.device), model.image_resolution or 64).rgb
        grids.append(Image.fromarray(images_to_grid(images, columns)))
    gap, caption = 16, 14
    width = sum(g.width for g in grids) + gap * (len(grids) - 1)
    canvas = Image.new("RGB", (width, caption + max(g.height for g in grids)), (255, 255, 255))
    draw, x = ImageDraw.Draw(canvas), 0
    for grid, label in zip(grids, labels):
        draw.text((x + 2, 1), label, fill=(0, 0, 0))
        canvas.paste(grid, (x, caption))
        x += grid.width + gap
    out.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(out)
    return out


def print_table(rows: list[dict], families: list[str], reference_shares: dict[str, float],
                real_hue: float, real_variety: float, real_floaters: float, real_across_views: float) -> None:
    names = list(dict.fromkeys(families))
    head = ["run", *COLUMNS, *names, "present", "tv", "recog", "hue", "hue var", "view hue", "float2d",
            "float3d"]
    widths = [max(12, *(len(r["label"]) for r in rows)), *[8] * (len(head) - 1)]
    line = lambda cells: "| " + " | ".join(f"{c:>{w}}" for c, w in zip(cells, widths)) + " |"  # noqa: E731
    print(line(head))
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in rows:
        s = row["scores"]
        cells = [row["label"], f"{s['swd']:.1f}", f"{s['mv_psnr']:.2f}", f"{s['cov']:.3f}", f"{s['mmd']:.4f}",
                 f"{s['1nna']:.3f}", f"{s['empty']:.2f}", *[f"{s[f'family_{n}']:.2f}" for n in names],
                 f"{s['family_present']:.0f}/{len(names)}", f"{s['family_tv']:.2f}", f"{s['family_recognised']:.2f}",
                 f"{s['hue_spread']:.2f}", f"{s['hue_variety']:.2f}", f"{s['hue_across_views']:.2f}",
                 f"{s['floaters_2d']:.3f}", f"{s['floaters_3d']:.3f}"]
        print(line(cells))
    print(line(["dataset", *[""] * len(COLUMNS), *[f"{reference_shares[n]:.2f}" for n in names],
                f"{len(names)}/{len(names)}", "0.00", f"{RECOGNITION_QUANTILE:.2f}", f"{real_hue:.2f}",
                f"{real_variety:.2f}", f"{real_across_views:.2f}", f"{real_floaters:.3f}", ""]))
    print("family columns: share of generated shapes whose nearest ground-truth mesh is of that family; present: "
          "families that occur; tv: total variation to the dataset's shares; recog: share of shapes no farther from "
          "their nearest mesh than the dataset's meshes are from theirs (95th percentile); hue: median circular spread "
          "of hue (radians) inside an object, 0 for one flat colour; hue var: circular variance (0 to 1) of the "
          "objects' mean hues within a class, averaged over the classes, 0 when all objects of a class share one hue; "
          "view hue: circular variance (0 to 1) of an object's mean hue over views from around it, 0 when its hue "
          "does not turn with the camera; "
          "float2d: mean share of an image's object pixels apart from its largest blob; float3d: mean share of a "
          "shape's voxels above the level apart from its largest body")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path, help="run folders, checkpoints or generator bundles")
    parser.add_argument("--labels", nargs="+", help="row names (default: the folder names)")
    parser.add_argument("--data", type=Path, default=None,
                        help="synthetic dataset zip with metadata.json beside it (default: the built-in dataset)")
    parser.add_argument("--images", type=int, default=1000, help="real and generated images for SWD")
    parser.add_argument("--consistency-scenes", type=int, default=16, help="view pairs for mv_psnr")
    parser.add_argument("--shapes", type=int, default=64, help="generated meshes (and as many references for COV/MMD)")
    parser.add_argument("--mesh-resolution", type=int, default=128, help="marching cubes grid per side")
    parser.add_argument("--level", type=float, default=10.0, help="density iso-level of the meshes")
    parser.add_argument("--points", type=int, default=2048, help="surface points per shape for COV/MMD/1-NNA")
    parser.add_argument("--family-points", type=int, default=512,
                        help="surface points per shape for the family histogram (against every reference mesh)")
    parser.add_argument("--colour-images", type=int, default=64,
                        help="generated and real images for the hue spread inside objects")
    parser.add_argument("--view-objects", type=int, default=16,
                        help="generated and real objects whose hue is compared across views")
    parser.add_argument("--views", type=int, default=8, help="views around each generated object for the view hue")
    parser.add_argument("--batch", type=int, default=8, help="scenes rendered at once")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", type=Path, default=None, help="write the rows (and settings) to this JSON file")
    parser.add_argument("--grid", type=Path, default=None, help="write the runs' sample grids side by side (PNG)")
    parser.add_argument("--grid-samples", type=int, default=32)
    parser.add_argument("--grid-columns", type=int, default=8)
    args = parser.parse_args()
    labels = args.labels or [p.name for p in args.runs]
    if len(labels) != len(args.runs):
        parser.error(f"--labels: {len(labels)} names for {len(args.runs)} runs; give one per run")
    if args.data is None:
        from pipelines.data.builtin import ensure_builtin_dataset

        args.data = ensure_builtin_dataset(progress=False)
    references = load_meshes(find_reference_meshes(args.data))
    families = reference_families(args.data)
    if len(families) != len(references):
        raise SystemExit(f"error: {args.data}: metadata.json lists {len(references)} meshes but {len(families)} "
                         "families")

    rows = [{"label": label, **score_run(path, args.data, references, families, args)}
            for path, label in zip(args.runs, labels)]
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"data {args.data}, seed {args.seed}, {args.images} images for SWD, {args.shapes} shapes at "
          f"{args.mesh_resolution}^3 (level {args.level:g}), torch threads {torch.get_num_threads()}, "
          f"load average {load:.1f}")
    reals = ImageDataset(DatasetConfig(path=args.data, resolution=64))
    real_hue, real_variety, real_floaters = real_colour_and_floaters(reals, args.colour_images, args.seed)
    real_across_views = real_hue_across_views(args.data, reals, args.view_objects, args.seed)
    print_table(rows, families, rows[0]["reference_shares"], real_hue, real_variety, real_floaters, real_across_views)
    for r in rows:
        stages = ", ".join(f"{k} {v:.0f}" for k, v in r["stage_seconds"].items())
        print(f"{r['label']}: {r['seconds']:.0f} s ({stages})")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        settings = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()
                    if k not in ("runs", "labels", "json", "grid")}
        report = {"settings": settings, "rows": rows, "dataset_hue_spread": real_hue,
                  "dataset_hue_variety": real_variety, "dataset_hue_across_views": real_across_views,
                  "dataset_floaters_2d": real_floaters}
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    if args.grid is not None:
        side_by_side(args.runs, labels, args.grid, args.grid_samples, args.grid_columns, args.seed, args.device)
        print(f"grids side by side: {args.grid}")


if __name__ == "__main__":
    main()

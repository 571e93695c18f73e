"""Does a patch-gan run's discriminator see colour? Its logits on real images and on edited copies of them.

A generator early in training paints its objects with hue gradients where every real object has one
colour. Whether the discriminator can object to that is measured here: each real image (whole, as
one scale-1 patch) is scored as it is and in three edits of it:

* hue sweep: hues turned by an angle growing across the image (one full turn corner to corner), the
  blend the generator paints;
* global hue: the whole image turned by one random angle, a recolouring the dataset could hold;
* flat: every object pixel set to the object's mean colour, its shading gone;
* one hue per group: every image of each minibatch-std group (consecutive images, the groups D's last
  block compares) turned to the mean hue of the group's first, so the group holds one hue where the
  reals hold several. Scored about as the reals, D's group statistic does not see hue variety.
  For a run with class-grouped batches the images are picked class by class, as it trained.

It prints the mean logit of each, its difference to the real images' and the share of images scored
below their own real version (0.5: the edit makes no difference to D). A discriminator blind to hue
gives the hue sweep about the real logits.

On a synthetic dataset (``metadata.json`` beside it) a second table gives D's mean logit on one view
of every object of each family, and on as many of the run's EMA samples: a family the generator has
dropped shows up as real images D scores well above the others. A class-conditional discriminator is
told each real image's class and each sample's own class.

    python benchmarks/discriminator_colour.py runs/patch-gan-... --images 64
"""

from __future__ import annotations

import argparse
import json
import math
import os
from pathlib import Path

import torch

from pipelines.data.image_dataset import DatasetConfig, ImageDataset
from pipelines.engine.checkpoints import find_latest_checkpoint, load_training_state
from pipelines.engine.launch import read_config
from pipelines.evaluation.colour import mean_hue, real_object_mask, rotate_hue
from pipelines.evaluation.families import reference_families
from pipelines.evaluation.shape_metrics import find_synthetic_metadata
from pipelines.model import latent_classes, render
from pipelines.patch_gan.pipeline import PatchGanPipeline
from renderers.patches import Patch, crop_patches


def edited_images(reals: torch.Tensor, rng: torch.Generator, group_size: int) -> dict[str, torch.Tensor]:
    """The real images [b, 3, R, R] in [0, 1] and their edits, by name; ``group_size`` consecutive images form
    one minibatch-std group."""
    b, _, size, _ = reals.shape
    ramp = torch.linspace(0, 0.5, size)
    sweep = 2 * math.pi * (ramp[None, :] + ramp[:, None])
    mask = real_object_mask(reals)[:, None]
    mean = (reals * mask).sum(dim=(2, 3), keepdim=True) / mask.sum(dim=(2, 3), keepdim=True).clamp(min=1)
    hues = mean_hue(reals, mask[:, 0])
    to_first = hues[torch.div(torch.arange(b), group_size, rounding_mode="floor") * group_size] - hues
    to_first = torch.nan_to_num(to_first, nan=0.0)  # an image (or a first) without a hue stays as it is
    return {
        "real": reals,
        "hue sweep": rotate_hue(reals, sweep.expand(b, 1, size, size)),
        "global hue": rotate_hue(reals, torch.rand(b, 1, 1, 1, generator=rng) * 2 * math.pi),
        "flat": torch.where(mask, mean.expand_as(reals), reals),
        "one hue per group": rotate_hue(reals, to_first.view(b, 1, 1, 1).expand(b, 1, size, size)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="a patch-gan run folder (its newest checkpoint is used)")
    parser.add_argument("--checkpoint", type=Path, default=None, help="a checkpoint of the run instead of its newest")
    parser.add_argument("--data", type=Path, default=None, help="the dataset (default: the run's)")
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    config = read_config(args.run)
    if config.pipeline != "patch-gan":
        raise SystemExit(f"error: {args.run}: a {config.pipeline} run; this probe reads a patch-gan discriminator")
    data = args.data or config.data
    if data is None:
        from pipelines.data.builtin import ensure_builtin_dataset

        data = ensure_builtin_dataset(progress=False)
    dataset = ImageDataset(DatasetConfig(path=data, resolution=config.resolution))
    pipeline = PatchGanPipeline(config, torch.device("cpu"), dataset)
    if pipeline.config.discriminator.c_dim != pipeline.num_classes:
        raise SystemExit(f"error: {args.run}: its discriminator is conditioned on the camera; this probe scores whole "
                         "images without camera labels")
    checkpoint = args.checkpoint or find_latest_checkpoint(args.run)
    pipeline.load_state_dict(load_training_state(checkpoint)["pipeline"])

    rng = torch.Generator().manual_seed(args.seed)
    pick = torch.randperm(len(dataset), generator=rng)[: args.images]
    if pipeline.real_class_group > 1:  # class-grouped batches: D trained on groups of one class
        pick = pick[torch.argsort(dataset.class_labels[pick].long(), stable=True)]
    reals = (torch.stack([dataset[int(i)][0] for i in pick]) + 1) / 2
    classes = dataset_classes(pipeline, dataset, pick)
    logits = {}
    for name, images in edited_images(reals, rng, pipeline.config.discriminator.mbstd_group_size).items():
        with torch.no_grad():  # as D sees images once the input blur has faded, without augmentation
            logits[name] = whole_image_logits(pipeline, images * 2 - 1, config.patch_resolution, classes)

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"{checkpoint}, {len(pick)} real images of {data}, load average {load:.1f}")
    print(f"| {'images':<17} | mean logit | vs real | below own real |")
    print(f"|{'-' * 19}|{'-' * 12}|{'-' * 9}|{'-' * 16}|")
    for name, values in logits.items():
        below = (values < logits["real"]).float().mean()
        print(f"| {name:<17} | {values.mean():+10.2f} | {values.mean() - logits['real'].mean():+7.2f} | "
              f"{below:14.2f} |")
    by_family = family_logits(pipeline, dataset, Path(data), config.patch_resolution, config.resolution, args.seed)
    if by_family is not None:
        print()
        print(f"| {'family':<10} | mean logit | images |")
        print(f"|{'-' * 12}|{'-' * 12}|{'-' * 8}|")
        for name, (mean, count) in by_family.items():
            print(f"| {name:<10} | {mean:+10.2f} | {count:6d} |")


def dataset_classes(pipeline: PatchGanPipeline, dataset: ImageDataset, indices) -> torch.Tensor | None:
    """The classes [n] of dataset items ``indices`` for a class-conditional run (None for an unconditional one)."""
    if not pipeline.num_classes:
        return None
    return dataset.class_labels[torch.as_tensor(indices, dtype=torch.long)].long()


def whole_image_logits(pipeline: PatchGanPipeline, images: torch.Tensor, patch_resolution: int,
                       classes: torch.Tensor | None = None) -> torch.Tensor:
    """D's logits [n] of images [n, 3, R, R] in [-1, 1], each as one scale-1 patch; a class-conditional D is told
    ``classes`` [n]. The batch is padded with its own images, in turn, to a multiple of D's minibatch-std group
    (whose statistics need whole groups)."""
    count = len(images)
    group = pipeline.config.discriminator.mbstd_group_size
    order = torch.arange(-(-count // group) * group) % count
    padded = images[order]
    c = None
    if pipeline.num_classes:
        c = torch.nn.functional.one_hot(classes[order], pipeline.num_classes).float()
    whole = Patch(scales=torch.ones(len(padded)), offsets=torch.zeros(len(padded), 2))
    return pipeline.D(crop_patches(padded, whole, patch_resolution), whole, c).float().flatten()[:count]


def family_logits(pipeline: PatchGanPipeline, dataset: ImageDataset, data: Path, patch_resolution: int,
                  resolution: int, seed: int) -> dict[str, tuple[float, int]] | None:
    """(mean logit, count) of D on one view of each object per family, and on as many EMA samples ("generated");
    None when the dataset has no metadata.json (a damaged one is an error)."""
    metadata = find_synthetic_metadata(data)
    if metadata is None:
        return None
    families = reference_families(metadata)
    objects = json.loads(metadata.read_text())["objects"]
    first_view = {obj["images"][0]: family for obj, family in zip(objects, families)}
    picks = [(i, first_view[name]) for i, name in enumerate(dataset.names) if name in first_view]
    if not picks:
        return None
    reals = torch.stack([dataset[i][0] for i, _ in picks])
    rng = torch.Generator().manual_seed(seed)
    z = torch.randn(len(picks), pipeline.z_dim, generator=rng)
    cameras = pipeline.camera_distribution.sample(len(picks), rng)
    model = pipeline.model()
    fake_classes = latent_classes(z, pipeline.num_classes) if pipeline.num_classes else None  # as render draws them
    with torch.no_grad():
        fakes = render(model, z, cameras, resolution).rgb * 2 - 1
        real_logits = whole_image_logits(pipeline, reals, patch_resolution,
                                         dataset_classes(pipeline, dataset, [i for i, _ in picks]))
        fake_logits = whole_image_logits(pipeline, fakes, patch_resolution, fake_classes)
    out = {}
    for family in dict.fromkeys(f for _, f in picks):
        mask = torch.tensor([f == family for _, f in picks])
        out[family] = (real_logits[mask].mean().item(), int(mask.sum()))
    out["generated"] = (fake_logits.mean().item(), len(picks))
    return out


if __name__ == "__main__":
    main()

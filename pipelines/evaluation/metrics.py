"""All evaluation metrics behind one call, for the ``epigraf-metrics`` command and for periodic evaluation in training."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
from torch import Tensor

from pipelines.evaluation.consistency import multiview_psnr, rotate_cameras_about_y
from pipelines.evaluation.fid import fid_from_features, kernel_inception_distance
from pipelines.evaluation.inception import InceptionV3Features, inception_features
from pipelines.evaluation.meshes import MeshExtractionConfig, extract_meshes
from pipelines.evaluation.shape_metrics import compare_shapes, find_reference_meshes, load_meshes
from pipelines.evaluation.swd import SWDConfig, sliced_wasserstein_distance
from pipelines.model import GeneratorModel, fields, render
from pipelines.progress import advance, progress_bar

METRICS: dict[str, str] = {
    "fid": "Fréchet Inception Distance, lower is better (needs the Inception weights)",
    "kid": "Kernel Inception Distance x 1e3 (with kid_std), lower is better (needs the Inception weights)",
    "swd": "Sliced Wasserstein distance x 1e3 on Laplacian-pyramid patches (ProGAN), lower is better",
    "mv_psnr": "multi-view consistency: PSNR (dB) of a view warped into a nearby one with depth, higher is better",
    "geometry": "COV / MMD / 1-NNA of marching-cubes meshes against the dataset's ground-truth meshes",
}


def check_metric_names(names: list[str] | tuple[str, ...]) -> list[str]:
    """The names, validated (ValueError naming the unknown ones and listing the known)."""
    names = list(names)
    unknown = [n for n in names if n not in METRICS]
    if unknown or not names:
        known = "; ".join(f"{k}: {v}" for k, v in METRICS.items())
        raise ValueError(f"unknown metric name(s) {unknown or '(none given)'}; choose from: {known}")
    return names


@dataclass
class MetricsConfig:
    """Settings of the metrics (defaults follow the papers; fewer images and shapes for quick checks)."""

    inception_weights: Path | None = None
    """Inception-v3 weight file for FID/KID (else $EPIGRAF_INCEPTION_WEIGHTS, else the torch hub cache)."""
    render_batch: int = 8
    """Scenes rendered at once."""
    inception_batch: int = 50
    """Images per Inception forward pass."""
    kid_subsets: int = 100
    """KID: random subsets averaged."""
    kid_subset_size: int = 1000
    """KID: features per subset (capped by the number of images)."""
    swd: SWDConfig = field(default_factory=SWDConfig)
    """SWD settings (ProGAN's)."""
    consistency_scenes: int = 16
    """mv_psnr: scenes rendered from two views each."""
    consistency_yaw_degrees: float = 5.0
    """mv_psnr: yaw between the two views."""
    consistency_resolution: int | None = None
    """mv_psnr: render size (None: the dataset resolution)."""
    consistency_depth_tolerance: float = 0.03
    """mv_psnr: relative depth disagreement above which a pixel counts as occluded."""
    geometry_shapes: int = 64
    """geometry: generated meshes, compared with as many (randomly chosen) ground-truth meshes."""
    geometry_points: int = 2048
    """geometry: points sampled on each surface."""
    mesh: MeshExtractionConfig = field(default_factory=lambda: MeshExtractionConfig(resolution=128))
    """geometry: marching cubes settings (128^3 by default to keep evaluation affordable)."""


@dataclass
class MetricsCache:
    """What stays valid between evaluations of one training run: the Inception net and the real features."""

    inception: InceptionV3Features | None = None
    real_features: dict[tuple, Tensor] = field(default_factory=dict)
    reference_meshes: dict[str, list] = field(default_factory=dict)


def _real_images(dataset: object, count: int, rng: torch.Generator) -> Tensor:
    order = torch.randperm(len(dataset), generator=rng)[:count]
    return torch.stack([dataset[int(i)][0] for i in order])


def _fake_images(model: GeneratorModel, count: int, resolution: int, batch: int, rng: torch.Generator,
                 show_progress: bool) -> Tensor:
    """``count`` final images from the model's own camera distribution, in [-1, 1]."""
    z = torch.randn(count, model.z_dim, generator=rng)
    cameras = model.cameras.sample(count, rng)
    with progress_bar(count, "rendering generated images", "img", show_progress) as bar:
        return render(model, z, cameras, resolution, batch_size=batch, progress=advance(bar)).rgb * 2.0 - 1.0


def _dataset_resolution(dataset: object) -> int:
    config = getattr(dataset, "config", None)
    if config is not None and getattr(config, "resolution", None):
        return int(config.resolution)
    return int(dataset[0][0].shape[-1])


def model_consistency(model: GeneratorModel, num_scenes: int, resolution: int, rng: torch.Generator,
                      yaw_degrees: float = 5.0, depth_tolerance: float = 0.03, batch_size: int = 8,
                      show_progress: bool = False) -> float:
    """mv_psnr of a generator: each scene rendered from a sampled camera and one turned by ``yaw_degrees``.

    Both renders come from the same field and latent; a camera-conditioned generator is conditioned on
    the first camera for both views so only the viewpoint changes. Returns the mean PSNR over scenes.
    """
    z = torch.randn(num_scenes, model.z_dim, generator=rng)
    cameras_a = model.cameras.sample(num_scenes, rng)
    cameras_b = rotate_cameras_about_y(cameras_a, yaw_degrees)
    with progress_bar(2 * num_scenes, "mv_psnr: rendering view pairs", "img", show_progress) as bar:
        view_a = render(model, z, cameras_a, resolution, cameras_a, batch_size, progress=advance(bar))
        view_b = render(model, z, cameras_b, resolution, cameras_a, batch_size, progress=advance(bar))
    result = multiview_psnr(view_a.rgb, view_a.depth, cameras_a.to("cpu"), view_b.rgb, view_b.depth,
                            cameras_b.to("cpu"), view_a.opacity, view_b.opacity, depth_tolerance)
    valid = result.psnr[~torch.isnan(result.psnr)]
    return float(valid.mean()) if len(valid) else math.nan


def model_geometry(model: GeneratorModel, reference_meshes: list, num_shapes: int, num_points: int,
                   mesh_config: MeshExtractionConfig, rng: torch.Generator, batch_size: int = 4,
                   show_progress: bool = False) -> dict[str, float]:
    """COV / MMD / 1-NNA of ``num_shapes`` generated meshes against as many random reference meshes."""
    mesh_config = replace(mesh_config, box_half_size=model.box_half_size)
    z = torch.randn(num_shapes, model.z_dim, generator=rng)
    condition = model.cameras.sample(num_shapes, rng)
    generated = []
    with progress_bar(num_shapes, "geometry: marching cubes", "mesh", show_progress) as bar:
        for start in range(0, num_shapes, batch_size):
            sl = slice(start, start + batch_size)
            with torch.no_grad():
                scene_fields = fields(model, z[sl], condition[sl])
            generated += extract_meshes(scene_fields, len(z[sl]), mesh_config, model.device)
            bar.update(len(z[sl]))
    pick = torch.randperm(len(reference_meshes), generator=rng)[:num_shapes]
    references = [reference_meshes[int(i)] for i in pick]
    result = compare_shapes(generated, references, num_points, rng).as_dict()
    result["empty_meshes"] = sum(len(m.faces) == 0 for m in generated) / len(generated)
    return result


def compute_metrics(
    model: GeneratorModel,
    dataset: object,
    names: list[str] | tuple[str, ...],
    num_images: int,
    rng: torch.Generator,
    config: MetricsConfig | None = None,
    cache: MetricsCache | None = None,
    show_progress: bool = False,
) -> dict[str, float]:
    """Computes the named metrics of a generator against a dataset; returns flat ``{name: value}``.

    ``model``: any :class:`GeneratorModel` (``open_model(path)``, or ``pipeline.model()`` during training);
    fakes are its final images from its own camera distribution.
    ``dataset``: items ``(image [3, R, R] in [-1, 1], label)``; images are generated at its resolution R.
    ``num_images`` real and as many generated images feed FID, KID and SWD. Every random choice
    (latents, cameras, real subset, patches) comes from ``rng``. Keep one ``cache`` per run so the
    Inception net and real features are computed once.

    Keys: ``fid``; ``kid``, ``kid_std`` (x 1e3); ``swd`` and ``swd_<res>`` (x 1e3); ``mv_psnr`` (dB);
    ``cov``, ``mmd``, ``1nna``, ``empty_meshes`` (geometry).
    """
    names = check_metric_names(names)
    config = config or MetricsConfig()
    cache = cache if cache is not None else MetricsCache()
    if num_images < 2:
        raise ValueError(f"num_images must be >= 2, got {num_images}")
    # Fail before any rendering when an input is missing.
    if {"fid", "kid"} & set(names) and cache.inception is None:
        cache.inception = InceptionV3Features.from_weights(config.inception_weights, model.device)
    references = None
    if "geometry" in names:
        path = getattr(getattr(dataset, "config", None), "path", None)
        if path is None:
            raise ValueError("geometry needs a dataset with a path (its metadata.json lists the ground-truth meshes)")
        key = str(path)
        if key not in cache.reference_meshes:
            cache.reference_meshes[key] = load_meshes(find_reference_meshes(path))
        references = cache.reference_meshes[key]

    results: dict[str, float] = {}
    resolution = _dataset_resolution(dataset)
    count = min(num_images, len(dataset))
    was_training = model.network.training
    if was_training:
        model.network.eval()
    try:
        if {"fid", "kid", "swd"} & set(names):
            reals = _real_images(dataset, count, rng)
            fakes = _fake_images(model, count, resolution, config.render_batch, rng, show_progress)
            if {"fid", "kid"} & set(names):
                key = (str(getattr(getattr(dataset, "config", None), "path", id(dataset))), resolution, count,
                       id(cache.inception))
                if key not in cache.real_features:
                    cache.real_features[key] = inception_features(cache.inception, reals, config.inception_batch)
                real_features = cache.real_features[key]
                fake_features = inception_features(cache.inception, fakes, config.inception_batch)
                if "fid" in names:
                    results["fid"] = fid_from_features(fake_features, real_features)
                if "kid" in names:
                    kid, kid_std = kernel_inception_distance(fake_features, real_features, rng,
                                                             config.kid_subsets, config.kid_subset_size)
                    results["kid"], results["kid_std"] = 1e3 * kid, 1e3 * kid_std
            if "swd" in names:
                results.update(sliced_wasserstein_distance(fakes, reals, rng, config.swd))
        if "mv_psnr" in names:
            results["mv_psnr"] = model_consistency(
                model, config.consistency_scenes, config.consistency_resolution or resolution, rng,
                config.consistency_yaw_degrees, config.consistency_depth_tolerance, config.render_batch, show_progress,
            )
        if "geometry" in names:
            results.update(model_geometry(model, references, config.geometry_shapes, config.geometry_points,
                                          config.mesh, rng, show_progress=show_progress))
    finally:
        if was_training:
            model.network.train()
    return results

"""Metrics benchmark: wall time of each evaluation metric for 1,000 images at 64^2.

# FID/KID run a randomly initialised Inception-shaped network (no real weights on this machine):
# the time is the real cost, the scores are meaningless. Inception throughput is measured on
# --inception-sample images and scaled to 2 x N images (reals and fakes); the table says which rows
# are scaled. mv_psnr times the warp + PSNR on N image pairs (rendering the pairs is listed apart);
# geometry times COV/MMD/1-NNA of 64 vs 64 shapes and marching cubes of one generated shape.
#
#     python benchmarks/metrics.py                       # CPU, about 10 minutes on 2 cores
#     python benchmarks/metrics.py --device cuda --inception-sample 1000
"""

from __future__ import annotations

import argparse
import os
import time

import torch
import torch.nn.functional as F

from epigraf_field.generator import TriPlaneGenerator, TriPlaneGeneratorConfig
from pipelines.evaluation.consistency import multiview_psnr, rotate_cameras_about_y
from pipelines.evaluation.fid import fid_from_features, kernel_inception_distance
from pipelines.evaluation.inception import InceptionV3Features, inception_features
from pipelines.evaluation.meshes import MeshExtractionConfig, extract_meshes
from pipelines.evaluation.shape_metrics import compare_shapes
from pipelines.evaluation.swd import sliced_wasserstein_distance
from renderers.analytic import SphereField
from renderers.cameras import Cameras
from renderers.volume_renderer import VolumeRenderer, VolumeRendererConfig


def images(count: int, resolution: int, seed: int) -> torch.Tensor:
    """Images with structure at several scales, in [-1, 1]."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.randn(count, 3, resolution // 8, resolution // 8, generator=g)
    return torch.tanh(F.interpolate(coarse, size=resolution, mode="bicubic", align_corners=False))


class Timer:
    def __init__(self, device: torch.device) -> None:
        self.device = device

    def __call__(self, fn):
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        start = time.perf_counter()
        out = fn()
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return out, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-images", type=int, default=1000)
    parser.add_argument("--resolution", type=int, default=64)
    parser.add_argument("--inception-sample", type=int, default=32,
                        help="images actually pushed through Inception; the time is scaled to 2 x num-images")
    parser.add_argument("--shapes", type=int, default=64)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    device = torch.device(args.device)
    timer = Timer(device)
    n, res = args.num_images, args.resolution
    rng = torch.Generator().manual_seed(0)
    rows: list[tuple[str, float, str]] = []
    reals, fakes = images(n, res, 1), images(n, res, 2)

    # FID / KID: Inception features (random weights), then the formulas on 2048-d features.
    net = InceptionV3Features.random(seed=0, device=device)
    sample = min(args.inception_sample, n)
    _, t_sample = timer(lambda: inception_features(net, reals[:sample], batch_size=min(50, sample)))
    t_features = t_sample * (2 * n) / sample
    features_a, features_b = torch.randn(n, 2048, generator=rng), torch.randn(n, 2048, generator=rng)
    _, t_fid = timer(lambda: fid_from_features(features_a, features_b))
    _, t_kid = timer(lambda: kernel_inception_distance(features_a, features_b, rng))
    scaled = "scaled" if sample < n else "measured"
    rows.append(("Inception features, 2 x N images (random weights)", t_features,
                 f"{scaled} from {sample} images: {t_sample / sample * 1e3:.0f} ms/image"))
    rows.append(("fid = features + Frechet distance", t_features + t_fid, f"formula {t_fid:.2f} s (measured)"))
    rows.append(("kid = features + 100 subsets of 1000", t_features + t_kid, f"formula {t_kid:.2f} s (measured)"))

    # SWD: everything measured.
    _, t_swd = timer(lambda: sliced_wasserstein_distance(fakes, reals, rng))
    rows.append(("swd (ProGAN: 128 patches/image/level, 4 x 128 dirs)", t_swd, "measured"))

    # mv_psnr: warp + PSNR on N pairs of renders (pairs rendered once and repeated).
    renderer = VolumeRenderer(VolumeRendererConfig(sampler="importance", num_coarse=48, num_fine=48))
    cams_a = Cameras.from_spherical(torch.tensor([0.3]), torch.tensor([0.2]), 1.3, 40.0).to(device)
    cams_b = rotate_cameras_about_y(cams_a, 5.0)
    field = SphereField(radius=0.3).to(device)
    with torch.no_grad():
        (view_a, view_b), t_pair = timer(lambda: (renderer.render_image(field, cams_a, res),
                                                  renderer.render_image(field, cams_b, res)))
    rep = lambda t: t.expand(n, *t.shape[1:]).contiguous()  # noqa: E731
    big_a, big_b = Cameras.cat([cams_a] * n), Cameras.cat([cams_b] * n)
    _, t_mv = timer(lambda: multiview_psnr(rep(view_a.rgb), rep(view_a.depth), big_a, rep(view_b.rgb),
                                           rep(view_b.depth), big_b, rep(view_a.opacity), rep(view_b.opacity)))
    rows.append(("mv_psnr: warp + masked PSNR of N pairs", t_mv, "measured; rendering the pairs not included"))

    # Rendering N fakes with the small generator (what fid/kid/swd also pay during training).
    model = TriPlaneGenerator(TriPlaneGeneratorConfig.small(), seed=0, device=device).eval()
    count = 4
    z = torch.randn(count, model.config.z_dim, generator=rng).to(device)
    cams = Cameras.from_spherical(torch.zeros(count), torch.zeros(count), 1.3, 40.0).with_bounds(0.85, 1.75).to(device)
    with torch.no_grad():
        _, t_render = timer(lambda: renderer.render_image(model.field(model.generate_planes(z)), cams, res))
    rows.append(("render N fakes at 64^2 (small generator, 48+48 samples)", t_render * n / count,
                 f"scaled from {count} images: {t_render / count * 1e3:.0f} ms/image"))

    # Geometry: marching cubes of one generated shape, and COV/MMD/1-NNA of shapes x shapes.
    with torch.no_grad():
        planes = model.generate_planes(z[:1])
        mesh_config = MeshExtractionConfig(resolution=128, level=0.5)
        meshes, t_mc = timer(lambda: extract_meshes(model.field(planes), 1, mesh_config, device))
    rows.append(("marching cubes 128^3 + vertex colours, one shape", t_mc, "measured (small generator)"))
    spheres = extract_meshes(SphereField(radius=0.3), 1, MeshExtractionConfig(resolution=32, level=100.0))
    shapes = spheres * args.shapes
    _, t_geo = timer(lambda: compare_shapes(shapes, shapes, 2048, rng))
    rows.append((f"geometry: COV/MMD/1-NNA, {args.shapes} vs {args.shapes} shapes x 2048 points", t_geo, "measured"))

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"device {device}, torch threads {torch.get_num_threads()}, load average {load:.1f}, "
          f"N = {n} images at {res}^2")
    print(f"| {'metric':<62} | {'wall time (s)':>13} | note")
    print(f"|{'-' * 64}|{'-' * 15}|------")
    for name, seconds, note in rows:
        print(f"| {name:<62} | {seconds:>13.1f} | {note}")


if __name__ == "__main__":
    main()

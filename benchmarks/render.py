"""Render benchmark: 48 + 48 importance sampling vs occupancy-aware sampling (cost and quality)."""

# For an analytic sphere and a randomly initialised tri-plane generator, at 64^2 and 128^2 with a
# batch of 4 scenes: milliseconds per image, field evaluations per pixel and PSNR against a
# 512-sample stratified reference.
#
#     python benchmarks/render.py                  # CPU, a few minutes on 2 cores
#     python benchmarks/render.py --device cuda

from __future__ import annotations

import argparse

import torch

from renderers.analytic import SphereField
from renderers.cameras import Cameras
from renderers.volume_renderer import RenderedImages, VolumeRenderer, VolumeRendererConfig
from timing import timed


def psnr(image: torch.Tensor, reference: torch.Tensor) -> float:
    mse = ((image - reference) ** 2).mean().clamp_min(1e-20)
    return float(-10.0 * torch.log10(mse))


def orbit_cameras(batch: int, device: torch.device, seed: int) -> Cameras:
    g = torch.Generator().manual_seed(seed)
    yaw = torch.rand(batch, generator=g) * 2 * torch.pi
    pitch = (torch.rand(batch, generator=g) - 0.5) * 0.8
    return Cameras.from_spherical(yaw, pitch, radius=2.0, fov_degrees=30.0).to(device)


def make_fields(batch: int, device: torch.device, seed: int) -> dict[str, object]:
    fields: dict[str, object] = {"sphere r=0.3": SphereField(radius=0.3).to(device)}
    from epigraf_field.generator import TriPlaneGenerator, TriPlaneGeneratorConfig

    config = TriPlaneGeneratorConfig.small()
    generator = TriPlaneGenerator(config, seed=seed, device=device).eval()
    with torch.no_grad():
        z = torch.randn(batch, config.z_dim, generator=torch.Generator().manual_seed(seed)).to(device)
        fields["tri-plane G (random init)"] = generator.field(generator.generate_planes(z))
    return fields


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--batch", type=int, default=4, help="scenes (images) per render")
    parser.add_argument("--resolutions", type=int, nargs="+", default=[64, 128], help="image sides in pixels")
    parser.add_argument("--repeats", type=int, default=1, help="timed runs per setting (best is reported)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    device = torch.device(args.device)
    torch.manual_seed(args.seed)  # nothing below draws from it; kept for libraries that might

    methods = {
        "importance 48+48": VolumeRendererConfig(sampler="importance"),
        "occupancy": VolumeRendererConfig(sampler="occupancy"),
        "occupancy thr=0": VolumeRendererConfig(sampler="occupancy", occupancy_threshold=0.0),
    }
    reference = VolumeRenderer(VolumeRendererConfig(sampler="stratified", num_coarse=512, chunk_size=16384))
    fields = make_fields(args.batch, device, args.seed)
    header = f"{'field':<26} {'res':>4} {'method':<18} {'ms/img':>8} {'grid ms':>8} {'evals/px':>9} {'PSNR dB':>8}"
    print(f"device: {device}, batch {args.batch}, reference: 512 stratified samples per ray")
    print("grid ms: building the occupancy grid from the field (once per latent when viewing, per step when training)")
    print(header)
    print("-" * len(header))
    with torch.no_grad():
        for name, field in fields.items():
            for res in args.resolutions:
                cams = orbit_cameras(args.batch, device, args.seed)
                ref: RenderedImages = reference.render_image(field, cams, res)
                pixels = args.batch * res * res
                for method, config in methods.items():
                    renderer = VolumeRenderer(config)
                    grid, grid_ms = None, 0.0
                    if config.sampler == "occupancy":
                        build = lambda: renderer.build_occupancy(field, args.batch, device=device)  # noqa: E731
                        grid, grid_s = timed(device, build, args.repeats)
                        grid_ms = 1000 * grid_s
                    render = lambda: renderer.render_image(field, cams, res, occupancy=grid)  # noqa: E731
                    out, seconds = timed(device, render, args.repeats)
                    print(
                        f"{name:<26} {res:>4} {method:<18} {1000 * seconds / args.batch:>8.1f} {grid_ms:>8.1f} "
                        f"{out.num_field_evaluations / pixels:>9.1f} {psnr(out.rgb, ref.rgb):>8.1f}"
                        + ("" if grid is None else f"   occupied {100 * float(grid.occupied_fraction().mean()):.0f}%")
                    )
    print(
        "\nevals/px counts points sent to the field while rendering (per-scene padding included); "
        f"a grid build adds {VolumeRendererConfig().occupancy_resolution}^3 density queries per scene."
    )


if __name__ == "__main__":
    main()

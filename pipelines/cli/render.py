"""`epigraf-render CHECKPOINT`: image grids, depth/opacity maps, turntable, zig-zag and latent-interpolation videos."""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Annotated, Literal

import numpy as np
import torch
import tyro

from pipelines.devices import Device, choose_device
from pipelines.errors import DEBUG_HELP, check_writable_folder, run_command
from pipelines.engine.snapshots import images_to_grid, save_grid
from pipelines.cli.open_generator import Branch, open_generator, with_class_index
from pipelines.evaluation.trajectories import OrbitConfig, grid_cameras, orbit_cameras, turntable_cameras, zigzag_cameras
from pipelines.evaluation.video import depth_to_images, opacity_to_images, write_video
from pipelines.model import GeneratorModel, latents_from_seeds, render, render_ws
from pipelines.progress import advance, progress_bar
from renderers.cameras import Cameras
from renderers.volume_renderer import VolumeRenderer

Output = Literal["grid", "turntable", "zigzag", "interpolation"]


@dataclass
class RenderConfig:
    """Render pictures and videos of a trained generator."""

    checkpoint: Annotated[Path, tyro.conf.Positional, tyro.conf.arg(metavar="CHECKPOINT")]
    """A run folder (its newest checkpoint), a checkpoint directory, a generator bundle directory or an official EG3D /
    EpiGRAF / Mimic3D .pkl snapshot (converted without running it)."""
    out: Path = Path("renders")
    """Output folder."""
    seeds: tuple[int, ...] = (0, 1, 2, 3)
    """Latent seeds: one scene each (rows of the grid, tiles of the videos)."""
    outputs: tuple[Output, ...] = ("grid", "turntable")
    """What to make: grid (views per seed, plus depth and opacity maps), turntable, zigzag, interpolation."""
    resolution: int = 128
    """Output image size in pixels, independent of the training resolution."""
    video_formats: tuple[Literal["mp4", "gif"], ...] = ("mp4",)
    """Video files to write (MP4 through imageio-ffmpeg, GIF through Pillow)."""
    grid_yaws_degrees: tuple[float, ...] = (-30.0, 0.0, 30.0)
    """Grid columns: yaw offsets from the centre pose."""
    maps: bool = True
    """Also save grid_depth.png and grid_opacity.png."""
    frames: int = 60
    """Frames of the turntable and zig-zag videos."""
    fps: int = 30
    """Video frame rate."""
    zigzag_yaw_degrees: float = 30.0
    """Zig-zag: yaw amplitude."""
    zigzag_pitch_degrees: float = 10.0
    """Zig-zag: pitch amplitude."""
    interpolation_frames: int = 30
    """Frames from one seed's latent to the next (the video loops back to the first seed)."""
    truncation_psi: float = 1.0
    """Truncation towards the mean w (1: none; 0.7 is common for nicer but less varied samples)."""
    truncation_cutoff: int | None = None
    """Truncate only the first N ws (None: all)."""
    class_index: int | None = None
    """Class to generate with a class-conditional generator, 0..num_classes-1 (None: each seed in its own class, the
    same one in every command)."""
    branch: Branch = "3d"
    """Which branch of a mimic3d generator makes the final images: 3d (the direct volume render, consistent across
    views by construction) or 2d (the EG3D branch: neural render plus super-resolution). Other pipelines have one
    branch and take only 3d."""
    orbit: OrbitConfig = field(default_factory=OrbitConfig)
    """Camera orbit; unset values come from the camera distribution stored with the checkpoint (its mean pose)."""
    num_coarse: int | None = None
    """Override the renderer's stratified samples per ray."""
    num_fine: int | None = None
    """Override the renderer's importance samples per ray."""
    batch_size: int = 4
    """Scenes rendered at once."""
    device: Device = "auto"
    """cpu, cuda, or auto (cuda when available)."""
    progress: bool = True
    """Show progress bars on stderr (also off with $EPIGRAF_NO_PROGRESS=1)."""


def with_sample_counts(model: GeneratorModel, num_coarse: int | None, num_fine: int | None,
                       chunk_size: int | None = None) -> GeneratorModel:
    """The model with its renderer's sample counts overridden (more samples: sharper, slower)."""
    config = model.renderer.config
    changes = {k: v for k, v in (("num_coarse", num_coarse), ("num_fine", num_fine), ("chunk_size", chunk_size))
               if v is not None}
    if not changes:
        return model
    try:
        return model.with_options(renderer=VolumeRenderer(replace(config, **changes)))
    except ValueError as error:
        raise SystemExit(f"error: {error}") from None


def validate(config: RenderConfig) -> None:
    problems = []
    if not config.seeds:
        problems.append("--seeds needs at least one seed")
    if not config.outputs:
        problems.append("--outputs needs at least one of grid, turntable, zigzag, interpolation")
    for name in ("resolution", "frames", "fps", "interpolation_frames", "batch_size"):
        if getattr(config, name) <= 0:
            problems.append(f"--{name.replace('_', '-')} must be positive, got {getattr(config, name)}")
    if "grid" in config.outputs and not config.grid_yaws_degrees:
        problems.append("--grid-yaws-degrees needs at least one angle")
    if {"turntable", "zigzag", "interpolation"} & set(config.outputs) and not config.video_formats:
        problems.append("--video-formats needs mp4 and/or gif to write videos")
    if problems:
        raise SystemExit("error: " + "; ".join(problems))


def _columns(count: int) -> int:
    return max(1, math.ceil(math.sqrt(count)))


def _repeat(cameras: Cameras, count: int) -> Cameras:
    return Cameras.cat([cameras] * count)


def render_grid(model: GeneratorModel, z: torch.Tensor, orbit: OrbitConfig, config: RenderConfig) -> list[Path]:
    """Rows = seeds, columns = yaw offsets; depth and opacity maps in the same layout."""
    views = grid_cameras(orbit, config.grid_yaws_degrees)
    n, k = len(z), views.batch_size
    cameras = Cameras.cat([views] * n)  # seed-major: row i holds seed i's views
    center = _repeat(orbit_cameras(orbit, torch.zeros(1), torch.zeros(1)), n * k)
    latents = z.repeat_interleave(k, dim=0)
    with progress_bar(n * k, "grid", "img", config.progress) as bar:
        out = render(model, latents, cameras, config.resolution, center, config.batch_size, progress=advance(bar))
    paths = [save_grid(out.rgb, k, config.out / "grid.png")]
    if config.maps:
        paths.append(save_grid(depth_to_images(out.depth, out.opacity), k, config.out / "grid_depth.png"))
        paths.append(save_grid(opacity_to_images(out.opacity), k, config.out / "grid_opacity.png"))
    return paths


def render_path_video(model: GeneratorModel, z: torch.Tensor, path_cameras: Cameras, orbit: OrbitConfig,
                      config: RenderConfig, name: str) -> list[np.ndarray]:
    """One frame per camera of the path, all seeds tiled in each frame."""
    n = len(z)
    center = _repeat(orbit_cameras(orbit, torch.zeros(1), torch.zeros(1)), n)
    frames = []
    with progress_bar(path_cameras.batch_size, name, "frame", config.progress) as bar:
        for f in range(path_cameras.batch_size):
            out = render(model, z, _repeat(path_cameras[f], n), config.resolution, center, config.batch_size)
            frames.append(images_to_grid(out.rgb, _columns(n)))
            bar.update(1)
    return frames


def render_interpolation(model: GeneratorModel, z: torch.Tensor, orbit: OrbitConfig,
                         config: RenderConfig) -> list[np.ndarray]:
    """Linear interpolation in w between consecutive seeds (StyleGAN's choice: w space is the better behaved one)."""
    center = orbit_cameras(orbit, torch.zeros(1), torch.zeros(1))
    with torch.no_grad():
        ws = model.mapping(z, _repeat(center, len(z))).cpu()
    t = torch.arange(config.interpolation_frames, dtype=torch.float32) / config.interpolation_frames
    path = [torch.lerp(ws[i], ws[(i + 1) % len(ws)], s) for i in range(len(ws)) for s in t]
    path_ws = torch.stack(path)
    with progress_bar(len(path_ws), "interpolation", "frame", config.progress) as bar:
        out = render_ws(model, lambda sl: path_ws[sl], _repeat(center, len(path_ws)), config.resolution,
                        config.batch_size, progress=advance(bar))
    return [images_to_grid(image[None], 1) for image in out.rgb]


def write_videos(frames: list[np.ndarray], name: str, config: RenderConfig) -> list[Path]:
    return [write_video(frames, config.out / f"{name}.{fmt}", config.fps) for fmt in config.video_formats]


def run(config: RenderConfig) -> list[Path]:
    validate(config)
    check_writable_folder(config.out, "--out")
    device = choose_device(config.device)
    model = open_generator(config.checkpoint, device, config.branch)
    model = with_sample_counts(model, config.num_coarse, config.num_fine).with_options(
        truncation_psi=config.truncation_psi, truncation_cutoff=config.truncation_cutoff)
    model = with_class_index(model, config.class_index, config.checkpoint)
    orbit = config.orbit.resolve(model.cameras)
    z = latents_from_seeds(config.seeds, model.z_dim)
    paths: list[Path] = []
    if "grid" in config.outputs:
        paths += render_grid(model, z, orbit, config)
    if "turntable" in config.outputs:
        frames = render_path_video(model, z, turntable_cameras(orbit, config.frames), orbit, config, "turntable")
        paths += write_videos(frames, "turntable", config)
    if "zigzag" in config.outputs:
        cameras = zigzag_cameras(orbit, config.frames, config.zigzag_yaw_degrees, config.zigzag_pitch_degrees)
        paths += write_videos(render_path_video(model, z, cameras, orbit, config, "zigzag"), "zigzag", config)
    if "interpolation" in config.outputs:
        paths += write_videos(render_interpolation(model, z, orbit, config), "interpolation", config)
    return paths


def render_command(argv: list[str]) -> int:
    config = tyro.cli(RenderConfig, args=argv, prog="epigraf-render",
                      description="Render image grids, depth/opacity maps and videos of a trained generator. "
                      f"{DEBUG_HELP}")
    for path in run(config):
        print(path)
    return 0


def main(argv: list[str] | None = None) -> int:
    """epigraf-render; bad input ends it with one line ``error: ...`` (see :mod:`pipelines.errors`)."""
    return run_command(render_command, argv)


if __name__ == "__main__":
    sys.exit(main())

"""Viewer speed on this machine: frames/s while the camera moves (preview) and once it stops (refined),
before and after the grid preview, and the live viewer's cost to training.

Run: python benchmarks/viewer.py [--run RUN_OR_BUNDLE] [--resolutions 128 256] [--seconds 5]
Without --run the generator is TriPlaneGeneratorConfig.small() (planes 3 x 8 x 32^2), untrained, seen
from the built-in dataset's frontal cameras. Everything renders on CPU, square views.

Rows: 'before' is the viewer's former preview (the refined frame's sampler, 32 stratified samples,
at half the resolution, with torch's threads); 'after' the grid preview (samples only in the
occupied cells of a grid cached per latent, at half the resolution, one thread). The rows alternate in
slices of ``--seconds`` (``--rounds`` each) so load from other programs hits both alike; the load
average is printed.
"""

from __future__ import annotations

import argparse
import math
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from tempfile import TemporaryDirectory

import numpy as np
import torch

from epigraf_field.generator import TriPlaneGenerator, TriPlaneGeneratorConfig
from pipelines.camera_distributions import CameraDistribution, CameraDistributionConfig
from pipelines.model import GeneratorModel, TriPlaneModel, open_model
from pipelines.viewer import GeneratorViewer, LiveViewer, LiveViewerConfig, ViewCamera, ViewerConfig
from pipelines.viewer.frame import render_view, to_display_image
from pipelines.viewer.server import find_free_port
from renderers.volume_renderer import VolumeRenderer, VolumeRendererConfig

CLIENT = 1


def orbit(home: ViewCamera, step: int) -> ViewCamera:
    """The home camera turned about the world's up axis by a few degrees per step."""
    from pipelines.viewer.camera_conversion import cameras_from_view, view_from_cameras
    from renderers.cameras import Cameras

    yaw, pitch, radius = cameras_from_view(home).to_spherical()
    cameras = Cameras.from_spherical(yaw + math.radians(3.0 * step), pitch, float(radius[0]), math.degrees(home.fov))
    return view_from_cameras(cameras, home.aspect)


def frontal_model(generator: TriPlaneGenerator, renderer: VolumeRendererConfig) -> TriPlaneModel:
    """The generator seen from the built-in dataset's frontal camera distribution."""
    return TriPlaneModel(generator, VolumeRenderer(renderer),
                         CameraDistribution(CameraDistributionConfig.synthetic("frontal")))


VIEWERS = {
    "before": dict(preview_sampler="settings", preview_threads=0),
    "after": dict(preview_sampler="grid", preview_threads=1),
}
"""The viewer settings of each row (everything else at ViewerConfig's defaults: 32 stratified samples)."""


@dataclass
class ViewerSpeed:
    first: float
    """Seconds from a new client's camera to its first (preview) frame, latent caches cold."""
    moving: float
    """Preview frames per second while the camera moves continuously."""
    still: float
    """Refined (full-quality) frames per second."""
    preview_size: tuple[int, int]
    psnr: float
    """PSNR of a preview frame against a 128-sample stratified render of the same size."""


def psnr(image: np.ndarray, reference: np.ndarray) -> float:
    mse = float(np.mean((image.astype(np.float64) - reference.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10.0 * math.log10(255.0**2 / mse)


def start_viewer(model: GeneratorModel, resolution: int, row: str, out: Path) -> tuple[GeneratorViewer, float]:
    """A viewer set up as ``VIEWERS[row]`` and the seconds its first frame for a new client took (caches cold)."""
    config = ViewerConfig(port=find_free_port("127.0.0.1", 18900), resolution=resolution, settle_seconds=0.2,
                          verbose=False, output_dir=out, num_frustums=0, **VIEWERS[row])
    viewer = GeneratorViewer(model, config)
    viewer.start()
    start = time.perf_counter()
    viewer.worker.update_camera(CLIENT, viewer.home)
    while viewer.worker.frames_of(CLIENT) < 1:
        time.sleep(0.001)
    return viewer, time.perf_counter() - start


def moving_frames(viewer: GeneratorViewer, seconds: float, step: int) -> tuple[int, float, int]:
    """A simulated browser orbits for ``seconds`` (a new camera every 5 ms): (preview frames, seconds, last step)."""
    viewer.worker.update_camera(CLIENT, orbit(viewer.home, step))
    time.sleep(0.05)  # a frame already under way belongs to no slice
    frames, start = viewer.worker.frames_of(CLIENT), time.perf_counter()
    while time.perf_counter() - start < seconds:
        step += 1
        viewer.worker.update_camera(CLIENT, orbit(viewer.home, step))
        time.sleep(0.005)
    result = viewer.worker.frames_of(CLIENT) - frames, time.perf_counter() - start, step
    while not viewer.worker.is_settled():  # its refined frame must not run during another row's slice
        time.sleep(0.01)
    return result


def still_frames(viewer: GeneratorViewer, seconds: float, step: int) -> tuple[int, float]:
    """Refined frames rendered one after another for at least ``seconds`` (and at least two)."""
    frames, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds or frames < 2:
        viewer.render_still(orbit(viewer.home, step + frames))
        frames += 1
    return frames, time.perf_counter() - start


def measure_viewers(model: GeneratorModel, resolution: int, seconds: float, rounds: int,
                    out: Path) -> dict[str, ViewerSpeed]:
    """Every row of VIEWERS, measured in alternating slices of ``seconds`` (``rounds`` slices each), so that
    bursts of load from other programs fall on all rows alike."""
    viewers = {row: start_viewer(model, resolution, row, out) for row in VIEWERS}
    try:
        moving = {row: [0, 0.0] for row in VIEWERS}
        still = {row: [0, 0.0] for row in VIEWERS}
        step = 0
        for _ in range(rounds):
            for row, (viewer, _) in viewers.items():
                frames, elapsed, step = moving_frames(viewer, seconds, step)
                moving[row][0] += frames
                moving[row][1] += elapsed
        for index in range(rounds):
            for row, (viewer, _) in viewers.items():
                frames, elapsed = still_frames(viewer, seconds, 1000 * index)
                still[row][0] += frames
                still[row][1] += elapsed
        speeds = {}
        for row, (viewer, first) in viewers.items():
            camera = orbit(viewer.home, 5)
            preview = viewer.worker.submit(lambda: viewer._render(camera, "preview")).result()
            reference = viewer.worker.submit(lambda: reference_frame(viewer, camera, preview.shape[0])).result()
            speeds[row] = ViewerSpeed(first, moving[row][0] / moving[row][1], still[row][0] / still[row][1],
                                      preview.shape[:2], psnr(preview, reference))
    finally:
        for viewer, _ in viewers.values():
            viewer.stop()
    return speeds


def reference_frame(viewer: GeneratorViewer, camera: ViewCamera, height: int) -> np.ndarray:
    """The current latent rendered with 128 stratified samples per ray at ``height`` rows."""
    settings = viewer.settings.updated(samples_per_ray=128, sampler="stratified")
    model, scene, _, _ = viewer._scene(settings)
    images = render_view(model.field(scene), camera, height, settings.renderer_config(viewer.renderer_config))
    return to_display_image(images, settings)


def load_model(run: Path | None) -> tuple[GeneratorModel, str]:
    """The generator to time and a line describing it."""
    if run is not None:
        model = open_model(run)
        planes = getattr(getattr(model, "generator", None), "config", None)
        size = "" if planes is None else f" (planes 3x{planes.plane_channels}x{planes.plane_resolution}^2)"
        return model, f"{run}{size}"
    generator = TriPlaneGenerator(TriPlaneGeneratorConfig.small(), seed=0).eval().requires_grad_(False)
    return frontal_model(generator, VolumeRendererConfig(occupancy_resolution=64)), "small, untrained (planes 3x8x32^2)"


def load_line() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f}, {five:.2f}, {fifteen:.2f} ({os.cpu_count()} cores)"


def training_rate(seconds: float) -> float:
    """Steps per second of a stand-in training loop on this thread (an MLP's forward, backward and Adam step).

    Short steps give many samples per phase, so the comparison is not at the mercy of a few slow steps.
    """
    rng = torch.Generator().manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(256, 512), torch.nn.LeakyReLU(0.2), torch.nn.Linear(512, 512),
                                torch.nn.LeakyReLU(0.2), torch.nn.Linear(512, 256))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    batch = torch.randn(256, 256, generator=rng)
    steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        loss = model(batch).square().mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        steps += 1
    return steps / (time.perf_counter() - start)


def measure_live_cost(seconds: float, rounds: int, out: Path, row: str) -> tuple[float, float, int]:
    """Training steps/s with an idle LiveViewer and with its (simulated) browser orbiting the whole time.

    The two phases alternate ``rounds`` times so that load from other processes hits both alike.
    """
    torch.manual_seed(0)
    model = TriPlaneGenerator(TriPlaneGeneratorConfig.small(), seed=0)
    preview = VIEWERS[row] | {"preview_threads": 1}  # the live viewer's render thread has one thread either way
    config = LiveViewerConfig(port=find_free_port("127.0.0.1", 18950), verbose=False, output_dir=out, **preview)
    live = LiveViewer(frontal_model(model, VolumeRendererConfig()), config)
    live.start()
    idle, active = [], []
    try:
        for _ in range(rounds):
            idle.append(training_rate(seconds))
            stop = threading.Event()

            def browser() -> None:  # a user dragging the camera the whole time
                step = 0
                while not stop.is_set():
                    step += 1
                    live.viewer.worker.update_camera(CLIENT, orbit(live.viewer.home, step))
                    time.sleep(0.05)

            def ticks() -> None:  # the trainer's once-per-tick update (ticks are much longer in real runs)
                while not stop.wait(1.0):
                    live.update_model(frontal_model(model, VolumeRendererConfig()))

            threads = [threading.Thread(target=browser), threading.Thread(target=ticks)]
            for thread in threads:
                thread.start()
            try:
                active.append(training_rate(seconds))
            finally:
                stop.set()
                for thread in threads:
                    thread.join()
            live.viewer.worker.remove_client(CLIENT)
    finally:
        frames = live.viewer.frame_count
        live.stop()
    return sum(idle) / rounds, sum(active) / rounds, frames


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, default=None, help="a run folder, checkpoint or generator bundle")
    parser.add_argument("--resolutions", type=int, nargs="+", default=[128])
    parser.add_argument("--seconds", type=float, default=2.0, help="length of one measuring slice")
    parser.add_argument("--rounds", type=int, default=5, help="slices per row and phase (rows alternate)")
    parser.add_argument("--skip-live", action="store_true", help="skip the training-cost measurement")
    parser.add_argument("--skip-frames", action="store_true", help="skip the frame-rate table")
    args = parser.parse_args()
    torch.manual_seed(0)
    model, described = load_model(args.run)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, generator: {described}")
    print(f"start: {load_line()}")
    print("| view (square) | viewer | preview | moving: frames/s | still (refined): frames/s | first frame (s) "
          "| preview PSNR (dB) |")
    print("|---|---|---|---|---|---|---|")
    with TemporaryDirectory() as out:
        for resolution in [] if args.skip_frames else args.resolutions:
            for row, speed in measure_viewers(model, resolution, args.seconds, args.rounds, Path(out)).items():
                h, w = speed.preview_size
                print(f"| {resolution}^2 | {row} | {h}x{w} | {speed.moving:.1f} | {speed.still:.2f} | {speed.first:.2f} "
                      f"| {speed.psnr:.1f} |", flush=True)
        print(f"end: {load_line()}")
        if not args.skip_live:
            print()
            print("| live viewer | training steps/s, viewer idle | browser orbiting + update every 1 s | slowdown "
                  "| viewer frames |")
            print("|---|---|---|---|---|")
            for row in VIEWERS:
                baseline, with_viewer, frames = measure_live_cost(5 * args.seconds, 3, Path(out), row)
                print(f"| {row} | {baseline:.2f} | {with_viewer:.2f} | {100 * (1 - with_viewer / baseline):.1f}% "
                      f"| {frames} |", flush=True)
            print(f"end: {load_line()}")


if __name__ == "__main__":
    main()

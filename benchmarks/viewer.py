"""Viewer speed on this machine: time to first frame and frames per second, and the live viewer's cost to training.

Run: python benchmarks/viewer.py [--resolutions 128 256] [--seconds 5]
The generator is TriPlaneGeneratorConfig.small() (planes 3 x 8 x 32^2), untrained, rendered on CPU.
"""

from __future__ import annotations

import argparse
import math
import threading
import time
from pathlib import Path
from tempfile import TemporaryDirectory

import torch

from epigraf_field.generator import TriPlaneGenerator, TriPlaneGeneratorConfig
from pipelines.camera_distributions import CameraDistribution, CameraDistributionConfig
from pipelines.model import TriPlaneModel
from pipelines.viewer import GeneratorViewer, LiveViewer, LiveViewerConfig, ViewCamera, ViewerConfig
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


def measure_viewer(generator: TriPlaneGenerator, resolution: int, sampler: str, samples: int, seconds: float,
                   out: Path) -> tuple[float, float]:
    """(seconds to the first full frame of a new client on a fresh viewer, full frames per second)."""
    config = ViewerConfig(port=find_free_port("127.0.0.1", 18900), resolution=resolution, sampler=sampler,
                          samples_per_ray=samples, settle_seconds=0.0, verbose=False, output_dir=out)
    renderer = VolumeRendererConfig(occupancy_resolution=64)
    viewer = GeneratorViewer(frontal_model(generator, renderer), config)
    viewer.start()
    try:
        start = time.perf_counter()
        viewer.worker.update_camera(CLIENT, viewer.home)
        while viewer.worker.frames_of(CLIENT) < 1:
            time.sleep(0.001)
        first = time.perf_counter() - start
        frames, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds or frames < 3:
            viewer.render_still(orbit(viewer.home, frames + 1))
            frames += 1
        fps = frames / (time.perf_counter() - start)
    finally:
        viewer.stop()
    return first, fps


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


def measure_live_cost(seconds: float, rounds: int, out: Path) -> tuple[float, float, int]:
    """Training steps/s with an idle LiveViewer and with its (simulated) browser orbiting the whole time.

    The two phases alternate ``rounds`` times so that load from other processes hits both alike.
    """
    torch.manual_seed(0)
    model = TriPlaneGenerator(TriPlaneGeneratorConfig.small(), seed=0)
    config = LiveViewerConfig(port=find_free_port("127.0.0.1", 18950), verbose=False, output_dir=out)
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
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--resolutions", type=int, nargs="+", default=[128, 256])
    parser.add_argument("--seconds", type=float, default=5.0, help="measuring time per row")
    parser.add_argument("--skip-live", action="store_true", help="skip the training-cost measurement")
    parser.add_argument("--skip-frames", action="store_true", help="skip the frame-rate table")
    args = parser.parse_args()
    torch.manual_seed(0)
    generator = TriPlaneGenerator(TriPlaneGeneratorConfig.small(), seed=0).eval().requires_grad_(False)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, generator: small (planes 3x8x32^2)")
    print("| frame (square) | sampler | samples/ray | first frame (s) | frames/s |")
    print("|---|---|---|---|---|")
    with TemporaryDirectory() as out:
        for resolution in [] if args.skip_frames else args.resolutions:
            for sampler, samples in (("stratified", 32), ("occupancy", 64)):
                first, fps = measure_viewer(generator, resolution, sampler, samples, args.seconds, Path(out))
                print(f"| {resolution}^2 | {sampler} | {samples} | {first:.2f} | {fps:.2f} |", flush=True)
        if not args.skip_live:
            baseline, with_viewer, frames = measure_live_cost(2 * args.seconds, 3, Path(out))
            print()
            print("| training steps/s, viewer idle | browser orbiting + update every 1 s | slowdown | viewer frames |")
            print("|---|---|---|---|")
            print(f"| {baseline:.2f} | {with_viewer:.2f} | {100 * (1 - with_viewer / baseline):.1f}% | {frames} |")


if __name__ == "__main__":
    main()

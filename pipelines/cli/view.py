"""`epigraf-view PATH`: open a trained generator in the browser (viser live 3D viewer)."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import tyro

from pipelines.viewer.server import ViewerConfig


@dataclass
class ViewArgs:
    """Serve a generator bundle, checkpoint or run folder to a browser tab that follows your camera."""

    path: tyro.conf.Positional[Path]
    """A generator bundle, a checkpoint directory, or a run folder (its newest checkpoint)."""
    viewer: ViewerConfig = field(default_factory=ViewerConfig)
    """Viewer options (host, port, resolution, ...)."""
    data: Path | None = None
    """Dataset whose camera labels are drawn as frustums (needed when the generator was trained with dataset cameras)."""
    seconds: float | None = None
    """Stop after this many seconds (default: run until Ctrl-C)."""


def main(argv: list[str] | None = None) -> int:
    args = tyro.cli(
        ViewArgs,
        args=sys.argv[1:] if argv is None else argv,
        prog="epigraf-view",
        config=(tyro.conf.OmitArgPrefixes,),
    )
    import torch

    from pipelines.bundle import load_bundle
    from pipelines.viewer.server import GeneratorViewer

    device = args.viewer.device
    if device in (None, "auto"):
        device = "cuda" if torch.cuda.is_available() else "cpu"
    elif device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("error: --device cuda was asked for but no CUDA device is available; use --device cpu")
    try:
        bundle = load_bundle(args.path, device=device)
    except (FileNotFoundError, ValueError) as error:
        raise SystemExit(f"error: {error}") from None
    cameras = _dataset_cameras(args.data, bundle.camera_config, args.viewer.num_frustums)
    viewer = GeneratorViewer(
        bundle.generator, bundle.renderer_config, bundle.camera_config, args.viewer, cameras=cameras,
        title=f"epigraf · {bundle.pipeline} · {bundle.directory}",
    )
    viewer.start()
    try:
        deadline = None if args.seconds is None else time.monotonic() + args.seconds
        while deadline is None or time.monotonic() < deadline:
            time.sleep(0.2)
    except KeyboardInterrupt:
        pass
    finally:
        viewer.stop()
    return 0


def _dataset_cameras(data: Path | None, camera_config, count: int):
    """Cameras drawn from the dataset's labels when --data is given and the bundle trained on them."""
    if data is None or count <= 0:
        return None
    import torch

    from pipelines.camera_distributions import sample_cameras
    from pipelines.data.image_dataset import DatasetConfig, ImageDataset

    try:
        dataset = ImageDataset(DatasetConfig(path=Path(data)))
    except (FileNotFoundError, ValueError) as error:
        raise SystemExit(f"error: --data {data}: {error}") from None
    if not dataset.has_labels:
        raise SystemExit(f"error: --data {data} has no camera labels (dataset.json); leave --data out")
    config = camera_config if camera_config.source == "dataset" else type(camera_config).from_dataset()
    return sample_cameras(config, count, torch.Generator().manual_seed(0), dataset=dataset)


if __name__ == "__main__":
    sys.exit(main())

"""A trained generator as shipped: its weights and config plus how to render and frame it.

A bundle directory holds the generator files (``config.json`` + ``weights.safetensors``,
readable by ``TriPlaneGenerator.load`` alone), ``renderer.json`` (the volume renderer's
config), ``cameras.json`` (+ ``camera_poses.safetensors`` for dataset cameras: the camera
distribution it was trained under) and ``pipeline.json`` (which pipeline wrote it, and the
bundle format). Every checkpoint holds one in ``generator/``. Nothing in it is pickled.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from epigraf_field.config_io import config_from_dict, config_to_dict
from epigraf_field.generator import TriPlaneGenerator
from pipelines.camera_distributions import CameraDistribution
from renderers.volume_renderer import VolumeRenderer, VolumeRendererConfig

RENDERER_FILE = "renderer.json"
PIPELINE_FILE = "pipeline.json"
WEIGHTS_FILE = "weights.safetensors"
BUNDLE_FORMAT_VERSION = 2
"""2: camera poses recorded with dataset cameras; 1 (no version in pipeline.json): before."""


@dataclass(frozen=True)
class BundleHeader:
    """What ``pipeline.json`` says: the pipeline that wrote the bundle and the bundle format."""

    pipeline: str
    format_version: int
    image_resolution: int | None = None
    """Resolution of the images the generator was trained on (None: not recorded)."""


@dataclass
class GeneratorBundle:
    """A loaded tri-plane generator with the renderer settings and cameras it was trained with."""

    generator: TriPlaneGenerator
    renderer_config: VolumeRendererConfig
    cameras: CameraDistribution
    pipeline: str
    directory: Path
    image_resolution: int | None = None

    @property
    def renderer(self) -> VolumeRenderer:
        return VolumeRenderer(self.renderer_config)


def save_bundle(
    directory: Path,
    generator: TriPlaneGenerator,
    renderer_config: VolumeRendererConfig,
    cameras: CameraDistribution,
    pipeline: str,
    extra_tensors: dict[str, torch.Tensor] | None = None,
    image_resolution: int | None = None,
) -> Path:
    directory = Path(directory)
    generator.save(directory, extra_tensors=extra_tensors)
    (directory / RENDERER_FILE).write_text(json.dumps(config_to_dict(renderer_config), indent=2))
    cameras.save(directory)
    header = {"pipeline": pipeline, "format_version": BUNDLE_FORMAT_VERSION, "image_resolution": image_resolution}
    (directory / PIPELINE_FILE).write_text(json.dumps(header, indent=2))
    return directory


def resolve_bundle_dir(path: Path) -> Path:
    """Accepts a bundle directory, a checkpoint directory, or a run folder (its newest checkpoint)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist: pass a run folder, a checkpoint or a generator directory")
    if (path / WEIGHTS_FILE).is_file():
        return path
    if (path / "generator" / WEIGHTS_FILE).is_file():
        return path / "generator"
    if (path / "checkpoints").is_dir():
        from pipelines.engine.checkpoints import find_latest_checkpoint

        return find_latest_checkpoint(path) / "generator"
    raise FileNotFoundError(
        f"{path} holds no generator ({WEIGHTS_FILE}), checkpoint (generator/) or run (checkpoints/)"
    )


def read_bundle_header(directory: Path) -> BundleHeader:
    """``pipeline.json`` of a bundle directory; a bundle without one is a patch-gan bundle of format 1."""
    path = Path(directory) / PIPELINE_FILE
    if not path.is_file():
        return BundleHeader("patch-gan", 1)
    try:
        data = json.loads(path.read_text())
        pipeline, version = data["pipeline"], data.get("format_version", 1)
        resolution = data.get("image_resolution")
        if not isinstance(pipeline, str) or not isinstance(version, int):
            raise ValueError("'pipeline' must be a string and 'format_version' an integer")
        if resolution is not None and (not isinstance(resolution, int) or resolution <= 0):
            raise ValueError(f"'image_resolution' must be a positive integer, got {resolution!r}")
    except (json.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as error:
        raise ValueError(f"{path} is damaged ({error}); copy the bundle again from its run") from error
    if version > BUNDLE_FORMAT_VERSION:
        raise ValueError(
            f"{path}: bundle format {version} is newer than this epigraf reads ({BUNDLE_FORMAT_VERSION}); "
            "upgrade epigraf (pip install -U epigraf)"
        )
    return BundleHeader(pipeline, version, resolution)


def load_bundle(path: Path, device: torch.device | str = "cpu", backend: str | None = None) -> GeneratorBundle:
    """Loads a generator bundle from a bundle, checkpoint or run directory (nothing is unpickled)."""
    directory = resolve_bundle_dir(path)
    header = read_bundle_header(directory)
    generator = TriPlaneGenerator.load(directory, device=device, backend=backend).eval().requires_grad_(False)
    renderer_config = _read_config(directory / RENDERER_FILE, VolumeRendererConfig)
    cameras = CameraDistribution.load(directory)
    return GeneratorBundle(generator, renderer_config, cameras, header.pipeline, directory, header.image_resolution)


def _read_config(path: Path, cls: type):
    if not path.is_file():
        return cls()
    try:
        return config_from_dict(cls, json.loads(path.read_text()))
    except (json.JSONDecodeError, ValueError, TypeError) as error:
        raise ValueError(f"{path} is not a valid {cls.__name__} ({error}); the bundle is damaged") from error

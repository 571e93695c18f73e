"""A trained generator as shipped: its weights and config plus how to render and view it.

A bundle directory holds the generator files (``config.json`` + ``weights.safetensors``,
readable by ``TriPlaneGenerator.load`` alone), ``renderer.json`` (the volume renderer's
config), ``cameras.json`` (the camera distribution it was trained with) and ``pipeline.json``
(which pipeline wrote it). Every checkpoint holds one in ``generator/``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from epigraf_field.config_io import config_from_dict, config_to_dict
from epigraf_field.generator import TriPlaneGenerator
from pipelines.camera_distributions import CameraDistributionConfig
from renderers.volume_renderer import VolumeRenderer, VolumeRendererConfig

RENDERER_FILE = "renderer.json"
CAMERAS_FILE = "cameras.json"
PIPELINE_FILE = "pipeline.json"


@dataclass
class GeneratorBundle:
    """A loaded generator with the renderer settings and cameras it was trained with."""

    generator: TriPlaneGenerator
    renderer_config: VolumeRendererConfig
    camera_config: CameraDistributionConfig
    pipeline: str
    directory: Path

    @property
    def renderer(self) -> VolumeRenderer:
        return VolumeRenderer(self.renderer_config)


def save_bundle(
    directory: Path,
    generator: TriPlaneGenerator,
    renderer_config: VolumeRendererConfig,
    camera_config: CameraDistributionConfig,
    pipeline: str,
    extra_tensors: dict[str, torch.Tensor] | None = None,
) -> Path:
    directory = Path(directory)
    generator.save(directory, extra_tensors=extra_tensors)
    (directory / RENDERER_FILE).write_text(json.dumps(config_to_dict(renderer_config), indent=2))
    (directory / CAMERAS_FILE).write_text(json.dumps(config_to_dict(camera_config), indent=2))
    (directory / PIPELINE_FILE).write_text(json.dumps({"pipeline": pipeline}, indent=2))
    return directory


def resolve_bundle_dir(path: Path) -> Path:
    """Accepts a bundle directory, a checkpoint directory, or a run folder (its newest checkpoint)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist: pass a run folder, a checkpoint or a generator directory")
    if (path / "weights.safetensors").is_file():
        return path
    if (path / "generator" / "weights.safetensors").is_file():
        return path / "generator"
    if (path / "checkpoints").is_dir():
        from pipelines.engine.checkpoints import find_latest_checkpoint

        return find_latest_checkpoint(path) / "generator"
    raise FileNotFoundError(
        f"{path} holds no generator (weights.safetensors), checkpoint (generator/) or run (checkpoints/)"
    )


def load_bundle(path: Path, device: torch.device | str = "cpu", backend: str | None = None) -> GeneratorBundle:
    """Loads a generator bundle from a bundle, checkpoint or run directory (nothing is unpickled)."""
    directory = resolve_bundle_dir(path)
    generator = TriPlaneGenerator.load(directory, device=device, backend=backend).eval().requires_grad_(False)
    renderer_config = _read_config(directory / RENDERER_FILE, VolumeRendererConfig)
    camera_config = _read_config(directory / CAMERAS_FILE, CameraDistributionConfig)
    pipeline_file = directory / PIPELINE_FILE
    pipeline = json.loads(pipeline_file.read_text())["pipeline"] if pipeline_file.is_file() else "patch-gan"
    return GeneratorBundle(generator, renderer_config, camera_config, pipeline, directory)


def _read_config(path: Path, cls: type):
    if not path.is_file():
        return cls()
    try:
        return config_from_dict(cls, json.loads(path.read_text()))
    except (json.JSONDecodeError, ValueError) as error:
        raise ValueError(f"{path} is not a valid {cls.__name__} ({error}); the bundle is damaged") from error

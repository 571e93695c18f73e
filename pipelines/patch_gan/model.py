"""Opening a patch-gan bundle as a :class:`pipelines.model.TriPlaneModel`."""

from __future__ import annotations

from pathlib import Path

import torch

from pipelines.bundle import load_bundle
from pipelines.model import TriPlaneModel


def load_model(directory: Path, device: torch.device | str = "cpu", backend: str | None = None) -> TriPlaneModel:
    """The tri-plane generator of a bundle with the renderer and cameras it was trained with."""
    bundle = load_bundle(directory, device=device, backend=backend)
    return TriPlaneModel(bundle.generator, bundle.renderer, bundle.cameras, pipeline=bundle.pipeline,
                         image_resolution=bundle.image_resolution, num_classes=bundle.num_classes)

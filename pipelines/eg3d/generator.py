"""EG3D's generator: the shared tri-plane generator plus a 2D super-resolution network, and its bundle on disk."""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from epigraf_field.config_io import config_from_dict, config_to_dict
from epigraf_field.generator import TriPlaneGenerator, TriPlaneGeneratorConfig
from pipelines.bundle import (
    GeneratorBundle, load_bundle, load_prefixed_tensors, read_side_config, save_bundle, side_config_error,
    write_bundle_manifest,
)
from pipelines.camera_distributions import CameraDistribution
from pipelines.eg3d.superresolution import SuperResolution, SuperResolutionConfig
from renderers.volume_renderer import RenderedImages, VolumeRendererConfig

SUPERRESOLUTION_FILE = "superresolution.json"
SUPERRESOLUTION_PREFIX = "superresolution."
FORMAT_VERSION = 1


class Eg3dGenerator(nn.Module):
    """A :class:`TriPlaneGenerator` (``triplane``) and a :class:`SuperResolution` (``superresolution``).

    ``mapping``, ``synthesis``, ``field`` and ``generate_planes`` are the tri-plane generator's, so the
    patch-gan training code drives this module unchanged; one optimizer and one EMA cover both parts.
    """

    def __init__(self, triplane: TriPlaneGenerator, superresolution: SuperResolution) -> None:
        super().__init__()
        if triplane.config.num_feature_channels != superresolution.config.in_channels:
            raise ValueError(
                f"the generator's num_feature_channels ({triplane.config.num_feature_channels}) must equal the "
                f"super-resolution network's in_channels ({superresolution.config.in_channels}); EG3D uses 32 for both"
            )
        self.triplane, self.superresolution = triplane, superresolution

    @classmethod
    def build(cls, config: TriPlaneGeneratorConfig, sr_config: SuperResolutionConfig, seed: int | None = None,
              device: torch.device | str | None = None) -> Eg3dGenerator:
        """Both networks, initialised reproducibly from ``seed`` without touching the global RNG."""
        triplane = TriPlaneGenerator(config, seed=seed, device=device)
        rng = torch.random.fork_rng(devices=[]) if seed is not None else contextlib.nullcontext()
        with rng:
            if seed is not None:
                torch.manual_seed(seed + 2)
            superresolution = SuperResolution(sr_config, config.w_dim)
        return cls(triplane, superresolution.to(device) if device is not None else superresolution)

    @property
    def config(self) -> TriPlaneGeneratorConfig:
        return self.triplane.config

    def mapping(self, *args, **kwargs) -> Tensor:
        return self.triplane.mapping(*args, **kwargs)

    def synthesis(self, *args, **kwargs) -> Tensor:
        return self.triplane.synthesis(*args, **kwargs)

    def field(self, *args, **kwargs):
        return self.triplane.field(*args, **kwargs)

    def generate_planes(self, *args, **kwargs) -> Tensor:
        return self.triplane.generate_planes(*args, **kwargs)


def raw_feature_image(raw: RenderedImages) -> tuple[Tensor, Tensor]:
    """The rendered rgb (background included) and feature image, both mapped to [-1, 1].

    The field's first 3 feature channels are its rgb; they are replaced by the composited rgb so the
    upsampler starts from exactly the image a pure 3D render shows (with its background).
    """
    if raw.features is None:
        raise ValueError("the render has no feature channels: the generator needs num_feature_channels > 0 (EG3D: 32)")
    rgb = raw.rgb * 2.0 - 1.0
    features = torch.cat([rgb, raw.features[:, 3:] * 2.0 - 1.0], dim=1)
    return rgb, features


def resize_images(images: Tensor, resolution: int) -> Tensor:
    """Bilinear resize to ``resolution`` (antialiased when shrinking); a no-op at the same size."""
    if images.shape[-1] == resolution and images.shape[-2] == resolution:
        return images
    return F.interpolate(images, size=(resolution, resolution), mode="bilinear", align_corners=False,
                         antialias=images.shape[-1] > resolution)


# ------------------------------------------------------------------------------------------- bundle
def save_eg3d_bundle(directory: Path, generator: Eg3dGenerator, renderer_config: VolumeRendererConfig,
                     cameras: CameraDistribution, neural_resolution: int, image_resolution: int | None = None,
                     num_classes: int = 0) -> Path:
    """A generator bundle (readable by ``load_bundle`` for raw renders) plus the super-resolution network.

    Its weights go into the same ``weights.safetensors`` as extra tensors ``superresolution.*``; its
    config and the neural rendering resolution into ``superresolution.json``.
    """
    directory = Path(directory)
    extra = {SUPERRESOLUTION_PREFIX + k: v for k, v in generator.superresolution.state_dict().items()}
    save_bundle(directory, generator.triplane, renderer_config, cameras, "eg3d", extra_tensors=extra,
                image_resolution=image_resolution, num_classes=num_classes)
    meta = {
        "format_version": FORMAT_VERSION,
        "neural_resolution": int(neural_resolution),
        "config": config_to_dict(generator.superresolution.config),
    }
    (directory / SUPERRESOLUTION_FILE).write_text(json.dumps(meta, indent=2))
    write_bundle_manifest(directory)  # again: the manifest covers the super-resolution config too
    return directory


@dataclass
class Eg3dBundle:
    """A loaded EG3D generator: the tri-plane bundle, the super-resolution network and the neural resolution."""

    bundle: GeneratorBundle
    superresolution: SuperResolution
    neural_resolution: int

    @property
    def generator(self) -> Eg3dGenerator:
        """Both parts as one module (shares their weights)."""
        return Eg3dGenerator(self.bundle.generator, self.superresolution)


def load_eg3d_bundle(path: Path, device: torch.device | str = "cpu", backend: str | None = None) -> Eg3dBundle:
    """Loads what :func:`save_eg3d_bundle` wrote (a bundle, checkpoint or run directory; nothing unpickled)."""
    bundle = load_bundle(path, device=device, backend=backend)
    meta = read_side_config(bundle, SUPERRESOLUTION_FILE, FORMAT_VERSION, "a super-resolution network", "eg3d")
    try:
        config = config_from_dict(SuperResolutionConfig, meta["config"])
        neural_resolution = int(meta["neural_resolution"])
    except (KeyError, ValueError, TypeError) as error:
        raise side_config_error(bundle, SUPERRESOLUTION_FILE, error) from error
    sr = SuperResolution(config, bundle.generator.config.w_dim)
    load_prefixed_tensors(bundle, {SUPERRESOLUTION_PREFIX: sr}, SUPERRESOLUTION_FILE)
    sr = sr.to(device).eval().requires_grad_(False)
    return Eg3dBundle(bundle, sr, neural_resolution)

"""Mimic3D's generator: EG3D's tri-plane generator and upsampler plus the 3D-aware branch and the detail plane."""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from epigraf_field.config_io import config_from_dict, config_to_dict
from epigraf_field.field import TriPlaneField, aggregate_plane_features, project_onto_planes, sample_planes
from epigraf_field.generator import TriPlaneGenerator, TriPlaneGeneratorConfig
from epigraf_field.synthesis import NOISE_MODES, TriPlaneSynthesis
from pipelines.bundle import (
    GeneratorBundle, load_bundle, load_prefixed_tensors, read_side_config, save_bundle, side_config_error,
    write_bundle_manifest,
)
from pipelines.camera_distributions import CameraDistribution
from pipelines.eg3d.superresolution import SuperResolution, SuperResolutionConfig
from pipelines.mimic3d.aware_conv import AwareBranch
from renderers.volume_renderer import VolumeRendererConfig

MIMIC3D_FILE = "mimic3d.json"
SUPERRESOLUTION_PREFIX = "superresolution."
AWARE_PREFIX = "aware."
FORMAT_VERSION = 1


@dataclass
class AwareBranchConfig:
    """The 3D-aware branch (Mimic3D: 32 channels per plane at every backbone resolution 4..256, detail plane 512)."""

    use_noise: bool = True
    """Per-plane noise inputs in the branch's layers (its layers are StyleGAN2 synthesis layers)."""
    conv_clamp: float | None = None
    """Optional clamp of the branch's activations."""


def backbone_skip_planes(synthesis: TriPlaneSynthesis, ws: Tensor, noise_mode: str,
                         rng: torch.Generator | None) -> tuple[list[Tensor], list[Tensor]]:
    """The backbone's running tri-plane skip image after each block ([b, 3, C, r, r], r = 4 .. R) and the last w
    of each block (its toPlanes w, [b, w_dim]); the last skip image is what :class:`TriPlaneSynthesis` returns."""
    if noise_mode not in NOISE_MODES:
        raise ValueError(f"noise_mode must be one of {NOISE_MODES}, got {noise_mode!r}")
    if ws.ndim != 3 or ws.shape[1] != synthesis.num_ws:
        raise ValueError(f"ws must have shape [b, {synthesis.num_ws}, w_dim], got {list(ws.shape)}")
    ws = ws.float()
    b, c = ws.shape[0], synthesis.plane_channels
    x = img = None
    skips, block_ws, index = [], [], 0
    for block in synthesis.blocks:
        x, img = block(x, img, ws[:, index: index + block.num_conv + 1], noise_mode, rng)
        block_ws.append(ws[:, index + block.num_conv])
        index += block.num_conv
        skips.append(img.float().reshape(b, 3, c, img.shape[-2], img.shape[-1]))
    return skips, block_ws


class DetailTriPlaneField(TriPlaneField):
    """The 3D branch's field: features sampled from the coarse and the detail planes are summed, then decoded
    (Mimic3D's renderer sums the samples of its plane list before the plane mean)."""

    def __init__(self, coarse: Tensor, detail: Tensor, *args, **kwargs) -> None:
        super().__init__(coarse, *args, **kwargs)
        if detail.ndim != 5 or detail.shape[:3] != coarse.shape[:3]:
            raise ValueError(f"detail planes must be [b, 3, {coarse.shape[2]}, R', R'] like the coarse "
                             f"{list(coarse.shape)}, got {list(detail.shape)}")
        self.detail = detail

    def _raw(self, points: Tensor) -> tuple[Tensor, Tensor | None]:
        if points.ndim != 3 or points.shape[0] != self.planes.shape[0] or points.shape[2] != 3:
            raise ValueError(
                f"points must have shape [{self.planes.shape[0]}, n, 3] (one row per scene), got {list(points.shape)}"
            )
        cfg = self.config
        coords = project_onto_planes(points, cfg.plane_half_size, cfg.plane_axes)
        samples = (sample_planes(self.planes, coords, cfg.padding_mode, cfg.align_corners)
                   + sample_planes(self.detail, coords, cfg.padding_mode, cfg.align_corners))
        raw = self.decoder(aggregate_plane_features(samples, cfg.aggregation))
        if not cfg.mask_outside_box:
            return raw, None
        return raw, (points.abs() <= cfg.box_half_size).all(dim=-1, keepdim=True)


class Mimic3dGenerator(nn.Module):
    """A :class:`TriPlaneGenerator` (``triplane``: mapping, backbone, decoder), the 3D-aware branch (``aware``)
    and EG3D's upsampler (``superresolution``).

    ``synthesis`` returns the coarse planes the 2D branch renders (the aware branch's output at
    the plane resolution, not the backbone's own skip image), so EG3D's training code drives the 2D
    branch unchanged; :meth:`synthesize_planes` also returns the detail planes of the 3D branch.
    """

    def __init__(self, triplane: TriPlaneGenerator, aware: AwareBranch, superresolution: SuperResolution,
                 aware_config: AwareBranchConfig) -> None:
        super().__init__()
        if triplane.config.num_feature_channels != superresolution.config.in_channels:
            raise ValueError(
                f"the generator's num_feature_channels ({triplane.config.num_feature_channels}) must equal the "
                f"super-resolution network's in_channels ({superresolution.config.in_channels}); Mimic3D uses 32"
            )
        self.triplane, self.aware, self.superresolution = triplane, aware, superresolution
        self.aware_config = aware_config

    @classmethod
    def build(cls, config: TriPlaneGeneratorConfig, sr_config: SuperResolutionConfig,
              aware_config: AwareBranchConfig, seed: int | None = None,
              device: torch.device | str | None = None) -> Mimic3dGenerator:
        """All three parts, initialised reproducibly from ``seed`` without touching the global RNG."""
        triplane = TriPlaneGenerator(config, seed=seed, device=device)
        rng = torch.random.fork_rng(devices=[]) if seed is not None else contextlib.nullcontext()
        with rng:
            if seed is not None:
                torch.manual_seed(seed + 2)  # the same upsampler as an eg3d run of this seed
            superresolution = SuperResolution(sr_config, config.w_dim)
            if seed is not None:
                torch.manual_seed(seed + 4)
            aware = AwareBranch(config.plane_channels, config.w_dim, config.plane_resolution,
                                aware_config.use_noise, aware_config.conv_clamp, config.plane_axes)
        generator = cls(triplane, aware, superresolution, aware_config)
        return generator.to(device) if device is not None else generator

    @property
    def config(self) -> TriPlaneGeneratorConfig:
        return self.triplane.config

    def mapping(self, *args, **kwargs) -> Tensor:
        return self.triplane.mapping(*args, **kwargs)

    def synthesize_planes(self, ws: Tensor, noise_mode: str = "const", rng: torch.Generator | None = None,
                          detail: bool = True) -> tuple[Tensor, Tensor | None]:
        """Coarse planes [b, 3, C, R, R] and (``detail``) detail planes [b, 3, C, 2R, 2R] of ws."""
        skips, block_ws = backbone_skip_planes(self.triplane.synthesis_network, ws, noise_mode, rng)
        coarse = self.aware.coarse(skips, block_ws, noise_mode, rng)
        return coarse, (self.aware.detail(coarse, ws[:, -1].float(), noise_mode, rng) if detail else None)

    def synthesis(self, ws: Tensor, noise_mode: str = "const", rng: torch.Generator | None = None) -> Tensor:
        """The coarse planes, which the 2D branch renders."""
        return self.synthesize_planes(ws, noise_mode, rng, detail=False)[0]

    def field(self, *args, **kwargs) -> TriPlaneField:
        """The 2D branch's field over the coarse planes."""
        return self.triplane.field(*args, **kwargs)

    def detail_field(self, coarse: Tensor, detail: Tensor, density_noise_std: float = 0.0,
                     rng: torch.Generator | None = None) -> DetailTriPlaneField:
        """The 3D branch's field: coarse plus detail plane features, decoded by the same decoder."""
        return DetailTriPlaneField(coarse, detail, self.triplane.decoder, self.config.field_config,
                                   density_noise_std, rng)

    def generate_planes(self, z: Tensor, c: Tensor | None = None, truncation_psi: float = 1.0,
                        truncation_cutoff: int | None = None, noise_mode: str = "const",
                        rng: torch.Generator | None = None) -> Tensor:
        return self.synthesis(self.mapping(z, c, truncation_psi, truncation_cutoff), noise_mode, rng)


# ------------------------------------------------------------------------------------------- scenes
def pack_planes(coarse: Tensor, detail: Tensor) -> Tensor:
    """One scene tensor [b, 3, C * (R^2 + R'^2)] holding both plane sets (consumers keep, slice and copy one tensor).

    Example: coarse [2, 3, 4, 8, 8] and detail [2, 3, 4, 16, 16] pack into [2, 3, 1280].
    """
    return torch.cat([coarse.flatten(2), detail.flatten(2)], dim=2)


def unpack_planes(scene: Tensor, channels: int, resolution: int) -> tuple[Tensor, Tensor]:
    """The coarse [b, 3, C, R, R] and detail [b, 3, C, 2R, 2R] planes of :func:`pack_planes`."""
    b = scene.shape[0]
    split = channels * resolution * resolution
    if scene.ndim != 3 or scene.shape[1] != 3 or scene.shape[2] != 5 * split:
        raise ValueError(f"a mimic3d scene must be [b, 3, {5 * split}] (planes of {channels} channels at "
                         f"{resolution}^2 and {2 * resolution}^2), got {list(scene.shape)}")
    coarse = scene[:, :, :split].reshape(b, 3, channels, resolution, resolution)
    detail = scene[:, :, split:].reshape(b, 3, channels, 2 * resolution, 2 * resolution)
    return coarse, detail


# ------------------------------------------------------------------------------------------- bundle
def save_mimic3d_bundle(directory: Path, generator: Mimic3dGenerator, renderer_config: VolumeRendererConfig,
                        cameras: CameraDistribution, neural_resolution: int, image_resolution: int | None = None,
                        num_classes: int = 0) -> Path:
    """A generator bundle plus the upsampler and the 3D-aware branch (tensors ``superresolution.*`` and
    ``aware.*`` in the same ``weights.safetensors``; their configs in ``mimic3d.json``)."""
    directory = Path(directory)
    extra = {SUPERRESOLUTION_PREFIX + k: v for k, v in generator.superresolution.state_dict().items()}
    extra.update({AWARE_PREFIX + k: v for k, v in generator.aware.state_dict().items()})
    save_bundle(directory, generator.triplane, renderer_config, cameras, "mimic3d", extra_tensors=extra,
                image_resolution=image_resolution, num_classes=num_classes)
    meta = {
        "format_version": FORMAT_VERSION,
        "neural_resolution": int(neural_resolution),
        "superresolution": config_to_dict(generator.superresolution.config),
        "aware": config_to_dict(generator.aware_config),
    }
    (directory / MIMIC3D_FILE).write_text(json.dumps(meta, indent=2))
    write_bundle_manifest(directory)  # again: the manifest covers mimic3d.json too
    return directory


@dataclass
class Mimic3dBundle:
    """A loaded Mimic3D generator: the tri-plane bundle, the assembled generator and the neural resolution."""

    bundle: GeneratorBundle
    generator: Mimic3dGenerator
    neural_resolution: int


def load_mimic3d_bundle(path: Path, device: torch.device | str = "cpu", backend: str | None = None) -> Mimic3dBundle:
    """Loads what :func:`save_mimic3d_bundle` wrote (a bundle, checkpoint or run directory; nothing unpickled)."""
    bundle = load_bundle(path, device=device, backend=backend)
    meta = read_side_config(bundle, MIMIC3D_FILE, FORMAT_VERSION, "Mimic3D's 3D-aware branch", "mimic3d")
    try:
        sr_config = config_from_dict(SuperResolutionConfig, meta["superresolution"])
        aware_config = config_from_dict(AwareBranchConfig, meta["aware"])
        neural_resolution = int(meta["neural_resolution"])
    except (KeyError, ValueError, TypeError) as error:
        raise side_config_error(bundle, MIMIC3D_FILE, error) from error
    triplane = bundle.generator
    config = triplane.config
    sr = SuperResolution(sr_config, config.w_dim)
    aware = AwareBranch(config.plane_channels, config.w_dim, config.plane_resolution, aware_config.use_noise,
                        aware_config.conv_clamp, config.plane_axes)
    load_prefixed_tensors(bundle, {SUPERRESOLUTION_PREFIX: sr, AWARE_PREFIX: aware}, MIMIC3D_FILE)
    generator = Mimic3dGenerator(triplane, aware.to(device), sr.to(device), aware_config)
    return Mimic3dBundle(bundle, generator.eval().requires_grad_(False), neural_resolution)

"""Tiny generators and bundles for the viewer tests."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import pytest
import torch

from epigraf_field.generator import TriPlaneGenerator, TriPlaneGeneratorConfig
from pipelines.bundle import save_bundle
from pipelines.camera_distributions import CameraDistribution, CameraDistributionConfig
from pipelines.model import TriPlaneModel
from renderers.analytic import SphereField
from renderers.volume_renderer import VolumeRenderer
from renderers.volume_renderer import VolumeRendererConfig

MAGENTA = (0.9, 0.1, 0.9)
"""The test object's colour: nothing else on the viewer's canvas (the axes gizmo is red, green and blue) has it."""


@dataclass
class SphereModel(TriPlaneModel):
    """A generator model whose every latent is a magenta ball of ``radius`` about the origin."""

    radius: float = 0.4

    def field(self, scene: torch.Tensor) -> object:
        return SphereField(radius=self.radius, color=MAGENTA)


def tiny_generator_config() -> TriPlaneGeneratorConfig:
    """Planes 3 x 4 x 8 x 8, narrow layers: a frame renders in milliseconds on a CPU."""
    return replace(
        TriPlaneGeneratorConfig.small(), plane_resolution=8, plane_channels=4, channel_base=256, channel_max=32,
        decoder_hidden=16,
    )


def tiny_renderer_config() -> VolumeRendererConfig:
    return VolumeRendererConfig(sampler="stratified", num_coarse=8, num_fine=0, occupancy_resolution=16)


@pytest.fixture
def tiny_generator() -> TriPlaneGenerator:
    return TriPlaneGenerator(tiny_generator_config(), seed=0).eval().requires_grad_(False)


def tiny_model(generator: TriPlaneGenerator, cameras: CameraDistributionConfig | None = None) -> TriPlaneModel:
    """A generator model around ``generator`` with the tiny renderer and the frontal synthetic cameras."""
    distribution = CameraDistribution(cameras or CameraDistributionConfig.synthetic("frontal"))
    return TriPlaneModel(generator, VolumeRenderer(tiny_renderer_config()), distribution)


@pytest.fixture
def tiny_bundle(tmp_path: Path, tiny_generator: TriPlaneGenerator) -> Path:
    return save_bundle(
        tmp_path / "bundle", tiny_generator, tiny_renderer_config(),
        CameraDistribution(CameraDistributionConfig.synthetic("frontal")), "patch-gan",
    )

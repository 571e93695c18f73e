"""Tiny generators and bundles for the viewer tests."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from epigraf_field.generator import TriPlaneGenerator, TriPlaneGeneratorConfig
from pipelines.bundle import save_bundle
from pipelines.camera_distributions import CameraDistribution, CameraDistributionConfig
from pipelines.model import TriPlaneModel
from renderers.volume_renderer import VolumeRenderer
from renderers.volume_renderer import VolumeRendererConfig


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

"""Fixtures of the nerfstudio integration tests: a tiny random generator and its bundle.

The tests that need nerfstudio skip (with the reason) outside the environment that
``.ci/nerfstudio.sh`` builds; the scene-transform and import-message tests run everywhere.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch

from epigraf_field.generator import TriPlaneGenerator, TriPlaneGeneratorConfig
from renderers.volume_renderer import VolumeRendererConfig

NERFSTUDIO_SKIP_REASON = "needs nerfstudio 1.1.5: run bash .ci/nerfstudio.sh"


def tiny_generator_config() -> TriPlaneGeneratorConfig:
    """Planes 3 x 4 x 16^2 and a 2-layer mapping: renders in milliseconds on a CPU."""
    return replace(TriPlaneGeneratorConfig.small(), z_dim=16, w_dim=16, plane_resolution=16, plane_channels=4,
                   channel_max=32, decoder_hidden=16, decoder_backend="torch")


@pytest.fixture(scope="session")
def tiny_generator() -> TriPlaneGenerator:
    return TriPlaneGenerator(tiny_generator_config(), seed=0).eval().requires_grad_(False)


@pytest.fixture(scope="session")
def tiny_bundle(tmp_path_factory: pytest.TempPathFactory, tiny_generator: TriPlaneGenerator) -> Path:
    """The tiny generator saved as a bundle directory (what ``--pipeline.model.generator-path`` takes)."""
    from pipelines.bundle import save_bundle
    from pipelines.camera_distributions import CameraDistributionConfig

    directory = tmp_path_factory.mktemp("bundle")
    renderer = VolumeRendererConfig(sampler="stratified", num_coarse=8, num_fine=0)
    return save_bundle(directory, tiny_generator, renderer, CameraDistributionConfig(), "patch-gan")


def target_ws(generator: TriPlaneGenerator, seed: int = 1) -> torch.Tensor:
    """ws [1, num_ws, w_dim] of a seeded z: the scene the tests capture and invert."""
    z = torch.randn(1, generator.config.z_dim, generator=torch.Generator().manual_seed(seed))
    return generator.mapping(z)

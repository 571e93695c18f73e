"""Fixtures of the nerfstudio integration tests: a tiny random generator, its model and bundle, and an eg3d bundle.

The tests that need nerfstudio skip (with the reason) outside the environment that
``.ci/nerfstudio.sh`` builds; the scene-transform and import-message tests run everywhere.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch

from epigraf_field.generator import TriPlaneGenerator, TriPlaneGeneratorConfig
from pipelines.camera_distributions import CameraDistribution, CameraDistributionConfig
from pipelines.model import TriPlaneModel
from renderers.volume_renderer import VolumeRenderer, VolumeRendererConfig

NERFSTUDIO_SKIP_REASON = "needs nerfstudio 1.1.5: run bash .ci/nerfstudio.sh"
TINY_RENDERER = VolumeRendererConfig(sampler="stratified", num_coarse=8, num_fine=0)


def tiny_generator_config() -> TriPlaneGeneratorConfig:
    """Planes 3 x 4 x 16^2 and a 2-layer mapping: renders in milliseconds on a CPU."""
    return replace(TriPlaneGeneratorConfig.small(), z_dim=16, w_dim=16, plane_resolution=16, plane_channels=4,
                   channel_max=32, decoder_hidden=16, decoder_backend="torch")


@pytest.fixture(scope="session")
def tiny_generator() -> TriPlaneGenerator:
    return TriPlaneGenerator(tiny_generator_config(), seed=0).eval().requires_grad_(False)


@pytest.fixture(scope="session")
def tiny_model(tiny_generator: TriPlaneGenerator) -> TriPlaneModel:
    """The tiny generator behind the generator interface (what ``EpigrafField`` takes)."""
    return TriPlaneModel(tiny_generator, VolumeRenderer(TINY_RENDERER), CameraDistribution(CameraDistributionConfig()))


@pytest.fixture(scope="session")
def tiny_bundle(tmp_path_factory: pytest.TempPathFactory, tiny_generator: TriPlaneGenerator) -> Path:
    """The tiny generator saved as a bundle directory (what ``--pipeline.model.generator-path`` takes)."""
    from pipelines.bundle import save_bundle

    directory = tmp_path_factory.mktemp("bundle")
    return save_bundle(directory, tiny_generator, TINY_RENDERER, CameraDistribution(CameraDistributionConfig()),
                       "patch-gan")


@pytest.fixture(scope="session")
def eg3d_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained tiny eg3d generator (pose-conditioned, 8 feature channels, super-resolution) as a bundle."""
    from pipelines.eg3d.pipeline import Eg3dPipeline
    from tests.pipelines.eg3d.tiny import tiny_eg3d_config
    from tests.pipelines.tiny import TinyDataset

    pipeline = Eg3dPipeline(tiny_eg3d_config(), torch.device("cpu"), TinyDataset())
    return pipeline.model().save(tmp_path_factory.mktemp("eg3d-bundle"))


def target_ws(generator: TriPlaneGenerator, seed: int = 1) -> torch.Tensor:
    """ws [1, num_ws, w_dim] of a seeded z: the scene the tests capture and invert."""
    z = torch.randn(1, generator.config.z_dim, generator=torch.Generator().manual_seed(seed))
    return generator.mapping(z)

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


OPAQUE_CAMERAS = CameraDistributionConfig(angles="uniform", yaw_spread_degrees=180.0, pitch_mean_degrees=20.0,
                                          pitch_spread_degrees=30.0, radius=2.2, fov_degrees=30.0, near=None, far=None)
"""Cameras far enough out that the whole box is in view with background around it."""


@pytest.fixture(scope="session")
def opaque_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny generator whose box is nearly opaque (density_shift 10: sigma >= ~5 everywhere inside), as a bundle.

    An untrained generator is a semi-transparent haze; ns-export pointcloud keeps only rays of
    opacity > 0.5 (and waits until it has enough), so the export tests need solid content. Its
    colours still vary over space, which is what the colour checks compare.
    """
    from pipelines.bundle import save_bundle

    generator = TriPlaneGenerator(replace(tiny_generator_config(), density_shift=10.0), seed=0).eval()
    return save_bundle(tmp_path_factory.mktemp("opaque-bundle"), generator.requires_grad_(False), TINY_RENDERER,
                       CameraDistribution(OPAQUE_CAMERAS), "patch-gan", image_resolution=32)


def write_eg3d_dataset(directory: Path, num_images: int = 4, resolution: int = 24, seed: int = 0) -> Path:
    """An EG3D-layout folder like the built-in dataset's (images/objNNNNN_viewVVV.png, 360 cameras of the synthetic
    distribution in dataset.json), with smooth random images; returns the folder."""
    import json

    import numpy as np
    from PIL import Image

    from pipelines.camera_distributions import sample_cameras

    rng = np.random.default_rng(seed)
    labels = sample_cameras(CameraDistributionConfig.synthetic("360"), num_images,
                            torch.Generator().manual_seed(seed)).to_label().tolist()
    (directory / "images").mkdir(parents=True, exist_ok=True)
    entries = []
    for index, label in enumerate(labels):
        name = f"images/obj{index // 2:05d}_view{index % 2:03d}.png"
        corners = rng.uniform(0, 255, size=(2, 2, 3)).astype(np.uint8)
        Image.fromarray(corners).resize((resolution, resolution), Image.Resampling.BILINEAR).save(directory / name)
        entries.append([name, label])
    (directory / "dataset.json").write_text(json.dumps({"labels": entries}))
    return directory


def zip_folder(folder: Path, archive: Path) -> Path:
    """The folder's files as a zip with paths relative to it (what ``cd folder && zip -r ../x.zip .`` writes)."""
    import zipfile

    with zipfile.ZipFile(archive, "w") as out:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                out.write(path, path.relative_to(folder).as_posix())
    return archive


def nerfstudio_executable(name: str) -> str:
    """A console script of the environment running the tests (ns-train, ns-render, ns-export)."""
    import shutil
    import sys

    path = shutil.which(name, path=str(Path(sys.executable).parent))
    if path is None:
        pytest.fail(f"{name} is not installed next to {sys.executable}; install nerfstudio==1.1.5 (.ci/nerfstudio.sh)")
    return path


def nerfstudio_environment(tmp_path: Path) -> dict[str, str]:
    """The environment nerfstudio's tools run in: its scripts and an ``ffmpeg`` on PATH, and a private epigraf cache.

    ``ns-render`` refuses to start without ``ffmpeg`` on PATH; the one imageio-ffmpeg ships (a
    dependency of this project) is linked in, as the README says.
    """
    import os
    import sys

    import imageio_ffmpeg

    tools = tmp_path / "tools"
    tools.mkdir(exist_ok=True)
    link = tools / "ffmpeg"
    if not link.exists():
        link.symlink_to(imageio_ffmpeg.get_ffmpeg_exe())
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(tools), str(Path(sys.executable).parent), env.get("PATH", "")])
    env["EPIGRAF_CACHE_DIR"] = str(tmp_path / "epigraf-cache")
    return env

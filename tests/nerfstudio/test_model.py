"""EpigrafInvertModel in-process: box clipping, parameter groups, the switch to planes, config errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.nerfstudio.conftest import NERFSTUDIO_SKIP_REASON

pytest.importorskip("nerfstudio", reason=NERFSTUDIO_SKIP_REASON)

from nerfstudio.cameras.rays import RayBundle  # noqa: E402
from nerfstudio.data.scene_box import SceneBox  # noqa: E402
from nerfstudio.engine.callbacks import TrainingCallbackAttributes, TrainingCallbackLocation  # noqa: E402

from pipelines.nerfstudio.model import EpigrafInvertModelConfig  # noqa: E402
from pipelines.nerfstudio.scene_transform import SceneTransformConfig  # noqa: E402


def make_model(bundle: Path, **overrides):
    config = EpigrafInvertModelConfig(
        generator_path=bundle, num_coarse_samples=8, num_importance_samples=8, **overrides
    )
    box = SceneBox(aabb=torch.tensor([[-1.0, -1.0, -1.0], [1.0, 1.0, 1.0]]))
    return config.setup(scene_box=box, num_train_data=4)


def test_rays_are_clipped_to_the_generator_box(tiny_bundle: Path) -> None:
    # Scene units are twice the generator's: its box [-0.5, 0.5]^3 is the scene box [-1, 1]^3.
    model = make_model(tiny_bundle, scene=SceneTransformConfig(scale=0.5), background_color="white").eval()
    origins = torch.tensor([[0.0, 0.0, 3.0], [0.0, 5.0, 3.0]])
    directions = torch.tensor([[0.0, 0.0, -1.0], [0.0, 0.0, -1.0]])  # through the box / far above it
    indices = torch.zeros(2, 1, dtype=torch.long)
    bundle = RayBundle(origins, directions, pixel_area=torch.ones(2, 1), camera_indices=indices)
    with torch.no_grad():
        out = model(bundle)
    assert torch.allclose(bundle.nears[0], torch.tensor([2.0])) and torch.allclose(bundle.fars[0], torch.tensor([4.0]))
    assert bundle.nears[1] == bundle.fars[1]
    assert out["accumulation"][0] > 0.05 and out["accumulation"][1] == 0
    assert torch.allclose(out["rgb"][1], torch.ones(3))  # nothing but the white background
    assert 2.0 <= out["depth"][0] <= 4.0


def test_parameter_groups_and_the_switch_to_planes(tiny_bundle: Path) -> None:
    latent_only = make_model(tiny_bundle)
    assert set(latent_only.get_param_groups()) == {"latent"}
    assert latent_only.get_training_callbacks(TrainingCallbackAttributes(None, None, None, None)) == []

    model = make_model(tiny_bundle, latent="w+", plane_start_step=3)
    groups = model.get_param_groups()
    assert set(groups) == {"latent", "planes"} and groups["latent"][0].shape[1] == model.field.generator.num_ws
    (callback,) = model.get_training_callbacks(TrainingCallbackAttributes(None, None, None, None))
    callback.run_callback_at_location(2, TrainingCallbackLocation.BEFORE_TRAIN_ITERATION)
    assert not bool(model.field.uses_plane_parameters)
    callback.run_callback_at_location(3, TrainingCallbackLocation.BEFORE_TRAIN_ITERATION)
    assert bool(model.field.uses_plane_parameters) and model.field.planes.abs().sum() > 0


def test_seed_initialization_uses_the_truncated_seed(tiny_bundle: Path, tiny_generator) -> None:
    model = make_model(tiny_bundle, init="seed", seed=3, truncation_psi=0.5)
    z = torch.randn(1, tiny_generator.config.z_dim, generator=torch.Generator().manual_seed(3))
    assert torch.allclose(model.field.latent, tiny_generator.mapping(z, truncation_psi=0.5)[:, 0])


def test_missing_generator_names_the_option(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="--pipeline.model.generator-path"):
        make_model(tmp_path / "nowhere")

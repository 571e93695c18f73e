"""EpigrafInvertModel in-process: box clipping, parameter groups, the switch to planes, config errors, eg3d bundles."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.nerfstudio.conftest import NERFSTUDIO_SKIP_REASON

pytest.importorskip("nerfstudio", reason=NERFSTUDIO_SKIP_REASON)

from nerfstudio.cameras.rays import RayBundle  # noqa: E402
from nerfstudio.data.scene_box import SceneBox  # noqa: E402
from nerfstudio.engine.callbacks import TrainingCallbackAttributes, TrainingCallbackLocation  # noqa: E402

from pipelines.model import ModelLoadError  # noqa: E402
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
    assert set(groups) == {"latent", "planes"} and groups["latent"][0].shape[1] == model.field.num_ws
    (callback,) = model.get_training_callbacks(TrainingCallbackAttributes(None, None, None, None))
    callback.run_callback_at_location(2, TrainingCallbackLocation.BEFORE_TRAIN_ITERATION)
    assert not bool(model.field.uses_plane_parameters)
    callback.run_callback_at_location(3, TrainingCallbackLocation.BEFORE_TRAIN_ITERATION)
    assert bool(model.field.uses_plane_parameters) and model.field.planes.abs().sum() > 0


def test_seed_initialization_uses_the_truncated_seed(tiny_bundle: Path, tiny_generator) -> None:
    model = make_model(tiny_bundle, init="seed", seed=3, truncation_psi=0.5)
    z = torch.randn(1, tiny_generator.config.z_dim, generator=torch.Generator().manual_seed(3))
    assert torch.allclose(model.field.latent, tiny_generator.mapping(z, truncation_psi=0.5)[:, 0])


def test_missing_or_damaged_generator_names_the_option(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="--pipeline.model.generator-path .*nowhere does not exist"):
        make_model(tmp_path / "nowhere")
    damaged = tmp_path / "damaged"
    damaged.mkdir()
    (damaged / "weights.safetensors").write_bytes(b"")
    (damaged / "pipeline.json").write_text('{"pipeline": "no-such-pipeline", "format_version": 2}')
    with pytest.raises(ModelLoadError, match="--pipeline.model.generator-path .*'no-such-pipeline'"):
        make_model(damaged)


def test_only_the_latent_and_the_planes_are_trainable(tiny_bundle: Path) -> None:
    model = make_model(tiny_bundle, plane_start_step=0)
    optimized = {id(p) for group in model.get_param_groups().values() for p in group}
    network = list(model.field.generator.parameters())
    assert network and not any(p.requires_grad for p in network)
    assert not optimized & {id(p) for p in network}
    # nerfstudio's own empty device_indicator_param is the one other parameter that asks for gradients.
    trainable = {id(p) for p in model.parameters() if p.requires_grad} - {id(model.device_indicator_param)}
    assert trainable <= optimized


def test_an_eg3d_bundle_is_inverted_through_its_tri_plane_field(eg3d_bundle: Path) -> None:
    model = make_model(eg3d_bundle, latent="w+", init="seed", scene=SceneTransformConfig(scale=0.5))
    assert model.field.model.pipeline == "eg3d"
    origins = torch.tensor([[0.0, 0.0, 3.0], [0.3, -0.2, 3.0], [0.0, 5.0, 3.0]])
    directions = torch.nn.functional.normalize(torch.tensor([[0.0, 0.0, -1.0], [-0.1, 0.05, -1.0], [0.0, 0.0, -1.0]]),
                                               dim=-1)
    bundle = RayBundle(origins, directions, pixel_area=torch.ones(3, 1), camera_indices=torch.zeros(3, 1).long())
    out = model(bundle)
    assert out["rgb"].shape == (3, 3) and torch.isfinite(out["rgb"]).all()
    assert torch.isfinite(out["depth"]).all() and out["accumulation"][0] > 0
    # The loss reaches the latent and nothing of the generator's weights.
    out["rgb"][:2].sum().backward()
    assert model.field.latent.grad is not None and model.field.latent.grad.abs().sum() > 0
    assert all(p.grad is None for p in model.field.generator.parameters())

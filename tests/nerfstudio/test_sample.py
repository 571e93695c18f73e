"""The epigraf-sample method in-process: random cameras of the generator, the seed's or a file's latent, errors."""

from __future__ import annotations

from importlib.metadata import entry_points
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.nerfstudio.conftest import NERFSTUDIO_SKIP_REASON, OPAQUE_CAMERAS

pytest.importorskip("nerfstudio", reason=NERFSTUDIO_SKIP_REASON)

from nerfstudio.data.datamanagers.random_cameras_datamanager import RandomCamerasDataManager  # noqa: E402
from nerfstudio.plugins.types import MethodSpecification  # noqa: E402

from pipelines.model import ModelLoadError, latents_from_seeds  # noqa: E402
from pipelines.nerfstudio.random_cameras import GeneratorCamerasDataManagerConfig  # noqa: E402
from pipelines.nerfstudio.sample_model import EpigrafSampleModelConfig  # noqa: E402
from pipelines.nerfstudio.sample_pipeline import EpigrafSamplePipelineConfig  # noqa: E402


def make_pipeline(bundle: Path, **model_options):
    config = EpigrafSamplePipelineConfig(
        datamanager=GeneratorCamerasDataManagerConfig(num_views=3, train_num_rays_per_batch=64, camera_seed=5),
        model=EpigrafSampleModelConfig(generator=bundle, num_coarse_samples=8, num_importance_samples=8,
                                       **model_options),
    )
    return config.setup(device="cpu", test_mode="val")


def test_entry_point_registers_the_method() -> None:
    (found,) = [ep for ep in entry_points(group="nerfstudio.method_configs") if ep.name == "epigraf-sample"]
    spec = found.load()
    assert isinstance(spec, MethodSpecification) and spec.config.method_name == "epigraf-sample"
    assert spec.config.max_num_iterations == 1 and spec.config.optimizers == {}


def test_rays_come_from_the_generators_cameras(opaque_bundle: Path) -> None:
    pipeline = make_pipeline(opaque_bundle)
    manager = pipeline.datamanager
    # What ns-export pointcloud asserts and resizes.
    assert isinstance(manager, RandomCamerasDataManager) and manager.train_pixel_sampler is not None
    manager.train_pixel_sampler.num_rays_per_batch = 100
    rays, _ = manager.next_train(0)
    assert rays.origins.shape == (100, 3)
    # OPAQUE_CAMERAS orbit at radius 2.2 generator units: 4.4 scene units, pitch within 20 +- 30 degrees, looking at
    # the centre (z is up in the scene).
    distance = rays.origins.norm(dim=-1)
    assert torch.allclose(distance, torch.full_like(distance, 2 * OPAQUE_CAMERAS.radius), atol=1e-4)
    elevation = torch.rad2deg(torch.asin(rays.origins[:, 2] / distance))
    assert elevation.min() >= -10.0 - 1e-3 and elevation.max() <= 50.0 + 1e-3
    to_centre = torch.nn.functional.normalize(-rays.origins, dim=-1)
    half_fov_diagonal = np.degrees(np.arctan(np.tan(np.radians(OPAQUE_CAMERAS.fov_degrees / 2)) * np.sqrt(2)))
    assert torch.rad2deg(torch.acos((to_centre * rays.directions).sum(-1).clamp(-1, 1))).max() <= half_fov_diagonal
    # The fixed views: the viewer's frustums, the eval images, ns-render's and ns-export tsdf's poses.
    views = manager.train_dataset
    assert len(views) == 3 and int(views.cameras.width[0]) == 32  # the bundle's training resolution
    # dataparser_transforms.json (ns-export --save-world-frame) maps the scene back to the generator's world.
    world = manager.train_dataparser_outputs.transform_poses_to_original_space(views.cameras.camera_to_worlds)
    assert torch.allclose(world[:, :3, 3].norm(dim=-1), torch.full((3,), OPAQUE_CAMERAS.radius), atol=1e-5)
    camera, batch = manager.next_eval_image(4)
    assert torch.equal(camera.camera_to_worlds, views.cameras.camera_to_worlds[1:2])
    assert batch["image"].shape == (32, 32, 3)
    outputs = pipeline.model.get_outputs_for_camera(camera)
    assert outputs["rgb"].shape == (32, 32, 3) and outputs["accumulation"].max() > 0.5


def test_the_cameras_are_reproducible_from_their_seed(opaque_bundle: Path) -> None:
    first, second = make_pipeline(opaque_bundle).datamanager, make_pipeline(opaque_bundle).datamanager
    assert torch.equal(first.train_dataset.cameras.camera_to_worlds, second.train_dataset.cameras.camera_to_worlds)
    assert torch.equal(first.next_train(0)[0].directions, second.next_train(0)[0].directions)


def test_the_seed_is_epigraf_renders_seed(tiny_bundle: Path, tiny_generator) -> None:
    field = make_pipeline(tiny_bundle, seed=7, truncation_psi=0.5).model.field
    z = latents_from_seeds([7], tiny_generator.config.z_dim)
    expected = tiny_generator.synthesis(tiny_generator.mapping(z, truncation_psi=0.5), noise_mode="const")
    assert torch.allclose(field.current_planes(), expected, atol=1e-6)
    assert not field.is_trainable and not any(p.requires_grad for p in field.parameters())


def test_latent_files(tiny_bundle: Path, tiny_generator, tmp_path: Path) -> None:
    from safetensors.torch import save_file

    z = latents_from_seeds([3], tiny_generator.config.z_dim)
    ws = tiny_generator.mapping(z)
    np.savez(tmp_path / "projected_w.npz", w=ws.numpy())  # StyleGAN's / EG3D's projector layout
    field = make_pipeline(tiny_bundle, latent_file=tmp_path / "projected_w.npz").model.field
    assert field.latent_kind == "w+" and torch.allclose(field.ws(), ws)
    save_file({"z": z}, str(tmp_path / "z.safetensors"))
    field = make_pipeline(tiny_bundle, latent_file=tmp_path / "z.safetensors").model.field
    assert field.latent_kind == "z" and torch.allclose(field.ws(), ws)

    np.savez(tmp_path / "two.npz", z=z.numpy(), w=ws.numpy())
    with pytest.raises(ValueError, match="exactly one array named z, w or ws"):
        make_pipeline(tiny_bundle, latent_file=tmp_path / "two.npz")
    np.savez(tmp_path / "short.npz", z=z[:, :3].numpy())
    with pytest.raises(ValueError, match=r"z has shape \[1, 3\], but this generator takes \[1, 16\]"):
        make_pipeline(tiny_bundle, latent_file=tmp_path / "short.npz")


def test_a_missing_generator_names_the_option(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="--pipeline.model.generator .*nowhere"):
        make_pipeline(tmp_path / "nowhere")

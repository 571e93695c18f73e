"""open_model and the generator interface: every bundle opens as its pipeline's model, bad bundles are named."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from pipelines.bundle import BUNDLE_FORMAT_VERSION, PIPELINE_FILE
from pipelines.camera_distributions import CAMERAS_FILE, POSES_FILE, CameraDistribution, CameraDistributionConfig
from pipelines.eg3d.model import Eg3dModel
from pipelines.eg3d.pipeline import Eg3dPipeline
from pipelines.engine.trainer import Trainer
from pipelines.ig_gan.model import VoxelModel
from pipelines.mimic3d.model import Mimic3dModel
from pipelines.model import GeneratorModel, ModelLoadError, TriPlaneModel, condition_labels, open_model, render
from pipelines.patch_gan.pipeline import PatchGanPipeline
from tests.pipelines.eg3d.tiny import tiny_eg3d_config
from tests.pipelines.ig_gan.tiny import tiny_ig_gan_config
from tests.pipelines.tiny import TinyDataset, tiny_train_config

CPU = torch.device("cpu")


def _train(name: str, run_dir):
    """A run folder of pipeline ``name`` after 2 ticks, and its pipeline (the EMA generator it saved)."""
    if name == "patch-gan":
        config, pipeline_class = tiny_train_config(out=run_dir, kimg=0.004), PatchGanPipeline
    elif name == "ig-gan":
        from pipelines.ig_gan.pipeline import IgGanPipeline  # needs Mitsuba to build (R), not to open a bundle

        config, pipeline_class = tiny_ig_gan_config(out=run_dir, kimg=0.004, resolution=32), IgGanPipeline
    elif name == "mimic3d":
        from pipelines.mimic3d.pipeline import Mimic3dPipeline
        from tests.pipelines.mimic3d.tiny import tiny_mimic3d_config

        config, pipeline_class = tiny_mimic3d_config(out=run_dir, kimg=0.004, stage_3d_kimg=0.002), Mimic3dPipeline
    else:
        config, pipeline_class = tiny_eg3d_config(out=run_dir, kimg=0.004), Eg3dPipeline
    dataset = TinyDataset()
    pipeline = pipeline_class(config, CPU, dataset)
    Trainer(config, pipeline, dataset, run_dir, CPU).run()
    return name, run_dir, pipeline


@pytest.fixture(scope="module")
def eg3d_run(tmp_path_factory):
    return _train("eg3d", tmp_path_factory.mktemp("eg3d"))


@pytest.fixture(scope="module")
def patch_gan_run(tmp_path_factory):
    return _train("patch-gan", tmp_path_factory.mktemp("patch-gan"))


@pytest.fixture(scope="module")
def ig_gan_run(tmp_path_factory):
    pytest.importorskip("mitsuba", reason="training ig-gan needs Mitsuba 3 (pip install mitsuba)")
    return _train("ig-gan", tmp_path_factory.mktemp("ig-gan"))


@pytest.fixture(scope="module")
def mimic3d_run(tmp_path_factory):
    return _train("mimic3d", tmp_path_factory.mktemp("mimic3d"))


@pytest.fixture(params=["patch-gan", "eg3d", "ig-gan", "mimic3d"])
def trained_run(request):
    return request.getfixturevalue(request.param.replace("-", "_") + "_run")


def test_a_run_a_checkpoint_and_a_bundle_open_as_the_pipelines_model(trained_run):
    name, run_dir, pipeline = trained_run
    checkpoint = sorted((run_dir / "checkpoints").iterdir())[-1]
    expected_type = {"eg3d": Eg3dModel, "ig-gan": VoxelModel, "mimic3d": Mimic3dModel}.get(name, TriPlaneModel)
    z = torch.randn(2, pipeline.model().z_dim, generator=torch.Generator().manual_seed(0))
    cameras = pipeline.sample_cameras(2, torch.Generator().manual_seed(1))
    live = render(pipeline.model(), z, cameras, 32).rgb
    for path in (run_dir, checkpoint, checkpoint / "generator"):
        model = open_model(path)
        assert type(model) is expected_type and isinstance(model, GeneratorModel)
        assert model.pipeline == name and model.image_resolution == 32
        assert model.renders_directly == (name != "eg3d")
        torch.testing.assert_close(render(model, z, cameras, 32).rgb, live, atol=1e-5, rtol=0)


def test_eg3d_models_show_the_super_resolved_image_not_the_raw_render(eg3d_run):
    _, run_dir, _ = eg3d_run
    model = open_model(run_dir)
    raw = TriPlaneModel(model.network.triplane, model.renderer, model.cameras)
    z = torch.randn(1, model.z_dim, generator=torch.Generator().manual_seed(2))
    cameras = model.cameras.sample(1, torch.Generator().manual_seed(3))
    final, direct = render(model, z, cameras, 32), render(raw, z, cameras, 32)
    assert not torch.allclose(final.rgb, direct.rgb, atol=1e-3)  # the upsampler's output, not the field's
    torch.testing.assert_close(final.depth, direct.depth)  # geometry is the field's either way


def test_the_bundle_records_the_dataset_cameras_it_was_trained_under(trained_run, tmp_path):
    _, run_dir, _ = trained_run
    model = open_model(run_dir)
    assert torch.equal(model.cameras.poses, TinyDataset().labels)
    summary = model.cameras.summary
    assert summary.count == 8 and summary.radius == pytest.approx(1.3, abs=1e-4)
    assert summary.fov_degrees == pytest.approx(40.0, abs=1e-3)
    center = model.cameras.center_pose()
    assert float(center.centers.norm()) == pytest.approx(1.3, abs=1e-4)


def test_unknown_pipeline_damaged_and_newer_bundles_are_named(trained_run, tmp_path):
    _, run_dir, _ = trained_run
    import shutil

    bundle = tmp_path / "bundle"
    shutil.copytree(sorted((run_dir / "checkpoints").iterdir())[-1] / "generator", bundle)
    header = json.loads((bundle / PIPELINE_FILE).read_text())
    (bundle / PIPELINE_FILE).write_text(json.dumps({**header, "pipeline": "not-installed"}))
    with pytest.raises(ModelLoadError, match=rf"{PIPELINE_FILE}.*'not-installed'.*not installed.*eg3d, .*patch-gan"):
        open_model(bundle)
    (bundle / PIPELINE_FILE).write_text(json.dumps({**header, "format_version": BUNDLE_FORMAT_VERSION + 1}))
    with pytest.raises(ModelLoadError, match=rf"{PIPELINE_FILE}.*newer than this epigraf reads.*upgrade"):
        open_model(bundle)
    (bundle / PIPELINE_FILE).write_text("{not json")
    with pytest.raises(ModelLoadError, match=rf"{PIPELINE_FILE} is damaged"):
        open_model(bundle)
    (bundle / PIPELINE_FILE).write_text(json.dumps(header))
    (bundle / POSES_FILE).unlink()
    with pytest.raises(ModelLoadError, match=rf"{POSES_FILE} is missing.*dataset's cameras"):
        open_model(bundle)
    (bundle / "weights.safetensors").write_bytes(b"\0" * 100)
    with pytest.raises(ModelLoadError, match="weights.safetensors"):
        open_model(bundle)


def test_a_folder_without_a_generator_is_named(tmp_path):
    with pytest.raises(ModelLoadError, match=rf"{tmp_path} holds no generator"):
        open_model(tmp_path)


def test_camera_condition_rule_uses_the_given_camera_else_the_centre_pose():
    distribution = CameraDistribution(CameraDistributionConfig.synthetic("360"))
    assert condition_labels(0, None, distribution, 3, CPU) is None
    centre = condition_labels(25, None, distribution, 3, CPU)
    assert centre.shape == (3, 25) and torch.equal(centre[0], distribution.center_pose().to_label()[0])
    given = distribution.sample(3, torch.Generator().manual_seed(0))
    assert torch.equal(condition_labels(25, given, distribution, 3, CPU), given.to_label())
    with pytest.raises(ValueError, match="conditioned on 7 numbers"):
        condition_labels(7, given, distribution, 3, CPU)


def test_recorded_poses_round_trip_with_summary(tmp_path):
    labels = TinyDataset(size=5).labels
    distribution = CameraDistribution.for_training(CameraDistributionConfig.from_dataset(0.8, 1.8), labels)
    distribution.save(tmp_path)
    stored = json.loads((tmp_path / CAMERAS_FILE).read_text())
    assert stored["recorded_poses"] == 5 and stored["summary"]["near"] == 0.8
    loaded = CameraDistribution.load(tmp_path)
    assert torch.equal(loaded.poses, labels) and loaded.config == distribution.config
    cameras = loaded.sample(16, torch.Generator().manual_seed(0))
    assert torch.allclose(cameras.near, torch.tensor(0.8)) and torch.allclose(cameras.far, torch.tensor(1.8))
    with pytest.raises(ValueError, match="needs camera labels"):
        CameraDistribution.for_training(CameraDistributionConfig.from_dataset(), None)


def test_summary_of_known_poses():
    from renderers.cameras import Cameras

    yaw = torch.deg2rad(torch.tensor([-20.0, 0.0, 20.0]))
    pitch = torch.deg2rad(torch.tensor([10.0, 10.0, 40.0]))
    poses = Cameras.from_spherical(yaw, pitch, 2.0, 30.0).to_label()
    summary = CameraDistribution(CameraDistributionConfig.from_dataset(), poses).summary
    assert summary.yaw_mean_degrees == pytest.approx(0.0, abs=1e-3)
    assert summary.yaw_range_degrees == pytest.approx((-20.0, 20.0), abs=1e-3)
    assert summary.pitch_mean_degrees == pytest.approx(20.0, abs=1e-3)
    assert summary.pitch_range_degrees == pytest.approx((10.0, 40.0), abs=1e-3)
    assert (summary.radius, summary.fov_degrees) == (pytest.approx(2.0), pytest.approx(30.0))


def test_many_poses_are_thinned_evenly(monkeypatch):
    import pipelines.camera_distributions as module

    monkeypatch.setattr(module, "MAX_RECORDED_POSES", 4)
    labels = TinyDataset(size=10).labels
    kept = CameraDistribution.for_training(CameraDistributionConfig.from_dataset(), labels).poses
    assert torch.equal(kept, labels[[0, 3, 6, 9]])


def test_opening_a_bundle_imports_neither_mitsuba_nor_the_dataset_builder():
    code = ("import sys, pipelines.bundle, pipelines.model, pipelines.patch_gan.model, pipelines.eg3d.model, "
            "pipelines.ig_gan.model; "
            "print([m for m in ('mitsuba', 'pipelines.data.synthetic', 'pipelines.data') if m in sys.modules])")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"

"""compute_metrics: names, keys and values on a tiny bundle, on an analytic field and on a tiny dataset."""

import math

import pytest
from tests.pipelines.evaluation.evaluation_helpers import AnalyticModel, TexturedSphere, make_image_folder

from pipelines.model import GeneratorModel, open_model
from pipelines.camera_distributions import CameraDistributionConfig
from pipelines.data.image_dataset import DatasetConfig, ImageDataset
from pipelines.evaluation.inception import InceptionV3Features
from pipelines.evaluation.meshes import MeshExtractionConfig
from pipelines.evaluation.metrics import MetricsCache, MetricsConfig, compute_metrics, model_consistency
from pipelines.evaluation.swd import SWDConfig
from renderers.volume_renderer import VolumeRenderer, VolumeRendererConfig

FAST = MetricsConfig(
    render_batch=4, kid_subsets=3, swd=SWDConfig(patches_per_image=8, directions=16, repeats=1),
    consistency_scenes=2, geometry_shapes=2, geometry_points=64,
    mesh=MeshExtractionConfig(resolution=16, level=0.8, chunk_size=8192),
)


@pytest.fixture(scope="module")
def tiny_dataset(tmp_path_factory):
    folder = make_image_folder(tmp_path_factory.mktemp("data") / "images", count=4, meshes=3)
    return ImageDataset(DatasetConfig(path=folder, resolution=16))


def test_unknown_names_are_listed(tiny_bundle, tiny_dataset, rng):
    with pytest.raises(ValueError, match="unknown metric.*'fidd'.*swd"):
        compute_metrics(open_model(tiny_bundle), tiny_dataset, ["fidd"], 4, rng)


def test_fid_kid_swd_code_path_with_random_inception_plumbing_only(tiny_bundle, tiny_dataset, rng):
    """PLUMBING TEST, NOT A SCORE: the Inception net here has random weights."""
    cache = MetricsCache(inception=InceptionV3Features.random(seed=0))
    result = compute_metrics(open_model(tiny_bundle), tiny_dataset, ["fid", "kid", "swd"], 2, rng, FAST, cache)
    assert set(result) == {"fid", "kid", "kid_std", "swd", "swd_16"}
    assert all(math.isfinite(v) for v in result.values())
    assert result["fid"] > 0 and result["swd"] > 0
    assert len(cache.real_features) == 1  # real features are kept for the next evaluation


def test_a_3d_field_scores_high_multiview_consistency(rng):
    renderer = VolumeRenderer(VolumeRendererConfig(sampler="importance", num_coarse=24, num_fine=24))
    model = AnalyticModel(TexturedSphere(), renderer, CameraDistributionConfig.synthetic("frontal"))
    assert isinstance(model, GeneratorModel)
    assert model_consistency(model, num_scenes=2, resolution=24, rng=rng) > 35.0


def test_consistency_and_geometry_on_a_tiny_bundle(tiny_bundle, tiny_dataset, rng):
    result = compute_metrics(open_model(tiny_bundle), tiny_dataset, ["mv_psnr", "geometry"], 4, rng, FAST)
    assert set(result) == {"mv_psnr", "cov", "mmd", "1nna", "empty_meshes"}
    assert 0.0 <= result["cov"] <= 1.0 and 0.0 <= result["1nna"] <= 1.0 and result["mmd"] >= 0.0
    assert math.isnan(result["mv_psnr"]) or result["mv_psnr"] > 10.0


def test_training_mode_is_restored(tiny_bundle, tiny_dataset, rng):
    model = open_model(tiny_bundle)
    model.network.train()
    compute_metrics(model, tiny_dataset, ["swd"], 2, rng, FAST)
    assert model.network.training


def test_geometry_needs_ground_truth(tiny_bundle, tmp_path, rng):
    dataset = ImageDataset(DatasetConfig(path=make_image_folder(tmp_path / "plain"), resolution=16))
    with pytest.raises(ValueError, match="metadata.json"):
        compute_metrics(open_model(tiny_bundle), dataset, ["geometry"], 2, rng, FAST)

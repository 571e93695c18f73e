"""FID and KID formulas on hand-made features, and the Inception code path (random weights: plumbing only)."""

import importlib
import math
import os
import sys

import numpy as np
import pytest
import torch

from pipelines.evaluation.fid import FeatureStatistics, fid_from_features, frechet_distance, kernel_inception_distance
from pipelines.evaluation.inception import (
    WEIGHTS_ENV,
    InceptionV3Features,
    InceptionWeightsNotFoundError,
    find_inception_weights,
    inception_features,
    resize_bilinear_tf1,
)


def test_frechet_distance_of_gaussians_with_known_answer():
    # Diagonal covariances: FID = |mu_a - mu_b|^2 + sum (sqrt(a_i) - sqrt(b_i))^2.
    a = FeatureStatistics(np.array([0.0, 1.0, 2.0]), np.diag([1.0, 4.0, 9.0]), 10)
    b = FeatureStatistics(np.array([1.0, 1.0, 0.0]), np.diag([4.0, 4.0, 1.0]), 10)
    expected = (1 + 0 + 4) + ((1 - 2) ** 2 + 0 + (3 - 1) ** 2)
    assert frechet_distance(a, b) == pytest.approx(expected, rel=1e-9)
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-9)


def test_frechet_distance_agrees_with_the_matrix_square_root():
    import scipy.linalg

    rng = np.random.default_rng(0)
    a = FeatureStatistics.of(rng.normal(size=(300, 20)))
    b = FeatureStatistics.of(rng.normal(size=(200, 20)) @ rng.normal(size=(20, 20)) * 0.3 + 1.0)
    diff = a.mean - b.mean
    reference = diff @ diff + np.trace(a.covariance + b.covariance) - 2 * np.trace(
        scipy.linalg.sqrtm(a.covariance @ b.covariance).real)
    assert frechet_distance(a, b) == pytest.approx(reference, rel=1e-8)
    assert frechet_distance(b, a) == pytest.approx(reference, rel=1e-8)


def test_low_rank_path_equals_the_covariance_path(rng):
    a = torch.randn(12, 40, generator=rng, dtype=torch.float64)
    b = torch.randn(9, 40, generator=rng, dtype=torch.float64) * 2 + 0.3
    reference = frechet_distance(FeatureStatistics.of(a), FeatureStatistics.of(b))
    # The d x d path takes square roots of the rounding noise in the zero eigenvalues: agree to 1e-6.
    assert fid_from_features(a, b) == pytest.approx(reference, rel=1e-6)


def test_fid_from_samples_approaches_the_mean_shift(rng):
    features = torch.randn(4000, 4, generator=rng, dtype=torch.float64)
    assert fid_from_features(features, features) == pytest.approx(0.0, abs=1e-8)
    shifted = features + torch.tensor([1.0, 0.0, 0.0, 0.0], dtype=torch.float64)
    assert fid_from_features(features, shifted) == pytest.approx(1.0, abs=1e-6)


def test_kid_is_zero_for_the_same_distribution_and_grows_with_a_shift(rng):
    a = torch.randn(600, 8, generator=rng)
    b = torch.randn(600, 8, generator=rng)
    kid = lambda shift: kernel_inception_distance(a, b + shift, rng, num_subsets=10, subset_size=300)[0]  # noqa: E731
    same, near, far = kid(0.0), kid(0.5), kid(2.0)
    # Unbiased estimator: about 0 (either sign) for one distribution, ~1 and ~100 for these shifts.
    assert abs(same) < 0.05 < 0.5 < near < far


def test_tf1_resize_uses_the_asymmetric_source_rule():
    image = torch.arange(4.0).reshape(1, 1, 1, 4).expand(1, 1, 4, 4)
    out = resize_bilinear_tf1(image, 8)
    # Output column i samples source x = i * 4 / 8 = i / 2, clamped at the last pixel.
    torch.testing.assert_close(out[0, 0, 0], torch.tensor([0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.0]))


def test_missing_weights_message_says_where_to_get_and_put_them(tmp_path, monkeypatch):
    monkeypatch.delenv(WEIGHTS_ENV, raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    with pytest.raises(InceptionWeightsNotFoundError) as info:
        find_inception_weights()
    message = str(info.value)
    for needle in ("--inception-weights", WEIGHTS_ENV, "weights-inception-2015-12-05-6726825d.pth", "https://",
                   str(tmp_path / "torch_home")):
        assert needle in message
    with pytest.raises(InceptionWeightsNotFoundError, match="does not exist"):
        find_inception_weights(tmp_path / "nope.pth")


def test_weights_are_found_in_the_env_and_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    cached = tmp_path / "torch_home" / "hub" / "checkpoints" / "pt_inception-2015-12-05-6726825d.pth"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"x")
    monkeypatch.delenv(WEIGHTS_ENV, raising=False)
    assert find_inception_weights() == cached
    other = tmp_path / "mine.pth"
    other.write_bytes(b"x")
    monkeypatch.setenv(WEIGHTS_ENV, str(other))
    assert find_inception_weights() == other


def test_weight_files_load_without_unpickling_and_wrong_ones_are_named(tmp_path):
    # Plumbing: random weights stand in for the real file, saved the way the published files are.
    source = InceptionV3Features.random(seed=1)
    state = dict(source.state_dict())
    state["fc.weight"], state["fc.bias"] = torch.zeros(1008, 2048), torch.zeros(1008)
    path = tmp_path / "weights.pth"
    torch.save(state, path)
    loaded = InceptionV3Features()
    loaded.load_weights(path)
    torch.testing.assert_close(loaded.Mixed_7c.branch_pool.conv.weight, source.Mixed_7c.branch_pool.conv.weight)
    del state["Mixed_7c.branch_pool.conv.weight"]
    torch.save(state, path)
    with pytest.raises(ValueError, match="Mixed_7c.branch_pool.conv.weight"):
        InceptionV3Features().load_weights(path)


def test_inception_code_path_with_random_weights_plumbing_only(rng):
    """PLUMBING TEST, NOT A SCORE: a randomly initialized Inception-shaped network runs the FID path."""
    net = InceptionV3Features.random(seed=0)
    images = torch.rand(4, 3, 16, 16, generator=rng) * 2 - 1
    features = inception_features(net, images, batch_size=4)
    assert features.shape == (4, 2048) and torch.isfinite(features).all()
    assert features.std(dim=0).mean() > 0  # different images give different features
    assert not math.isclose(fid_from_features(features[:2], features[2:]), 0.0, abs_tol=1e-6)


REQUIRE_TORCH_FIDELITY_ENV = "EPIGRAF_REQUIRE_TORCH_FIDELITY"
"""Set to 1 (as .ci/fidelity.sh does) to fail, not skip, the torch-fidelity comparison when it cannot be imported."""


def _torch_fidelity_extractor():
    """torch-fidelity's Inception module, or a skip (a failure under EPIGRAF_REQUIRE_TORCH_FIDELITY=1)."""
    try:
        return importlib.import_module("torch_fidelity.feature_extractor_inceptionv3")
    except ImportError as error:
        if os.environ.get(REQUIRE_TORCH_FIDELITY_ENV, "") not in ("", "0"):
            pytest.fail(f"{REQUIRE_TORCH_FIDELITY_ENV}=1 but torch-fidelity cannot be imported ({error}); "
                        "run bash .ci/fidelity.sh, which installs it with torchvision next to CPU torch")
        pytest.skip(f"torch-fidelity (with torchvision) is not installed ({error})")


def test_missing_torch_fidelity_skips_unless_it_is_required(monkeypatch):
    # None in sys.modules makes the import raise ImportError, as when the package is not installed.
    monkeypatch.setitem(sys.modules, "torch_fidelity", None)
    monkeypatch.delenv(REQUIRE_TORCH_FIDELITY_ENV, raising=False)
    with pytest.raises(pytest.skip.Exception):
        _torch_fidelity_extractor()
    monkeypatch.setenv(REQUIRE_TORCH_FIDELITY_ENV, "1")
    with pytest.raises(pytest.fail.Exception, match="cannot be imported"):
        _torch_fidelity_extractor()


def test_matches_torch_fidelity_when_it_is_importable():
    """Graph equivalence with torch-fidelity's extractor on shared random weights (needs torch-fidelity + torchvision)."""
    extractor = _torch_fidelity_extractor()
    ours = InceptionV3Features.random(seed=2)
    state = dict(ours.state_dict())
    state["fc.weight"], state["fc.bias"] = torch.zeros(1008, 2048), torch.zeros(1008)
    import tempfile

    with tempfile.NamedTemporaryFile(suffix=".pth") as file:
        torch.save(state, file.name)
        theirs = extractor.FeatureExtractorInceptionV3("inception-v3-compat", ["2048"],
                                                       feature_extractor_weights_path=file.name)
    images = torch.randint(0, 256, (2, 3, 40, 40), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(ours(images), theirs(images)[0], rtol=1e-4, atol=1e-4)


def test_kid_with_precomputed_kernels_equals_the_per_subset_computation(monkeypatch):
    import pipelines.evaluation.fid as fid

    a = torch.randn(40, 6, generator=torch.Generator().manual_seed(1))
    b = torch.randn(30, 6, generator=torch.Generator().manual_seed(2)) + 0.3
    fast = kernel_inception_distance(a, b, torch.Generator().manual_seed(3), num_subsets=5, subset_size=20)
    monkeypatch.setattr(fid, "PRECOMPUTE_LIMIT", 0)
    slow = kernel_inception_distance(a, b, torch.Generator().manual_seed(3), num_subsets=5, subset_size=20)
    assert fast == pytest.approx(slow, rel=1e-9)

"""LPIPS-VGG: finding the two local weight files, loading the published state-dict layouts, and the lpips package."""

import os

import pytest
import torch

from pipelines.evaluation.lpips import (
    LINEAR_WEIGHTS_ENV,
    VGG_WEIGHTS_ENV,
    Lpips,
    LpipsWeightsNotFoundError,
    find_lpips_weights,
    load_lpips,
)


@pytest.fixture(autouse=True)
def single_thread():
    """One intra-op thread: VGG16 on 16^2 images is too small to gain from two on a shared 2-core machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def empty_cache(tmp_path, monkeypatch):
    """No weights anywhere: an empty torch hub cache and no environment variables."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.delenv(VGG_WEIGHTS_ENV, raising=False)
    monkeypatch.delenv(LINEAR_WEIGHTS_ENV, raising=False)
    return tmp_path / "torch" / "hub" / "checkpoints"


def _random_lpips(seed: int) -> Lpips:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return Lpips()


def _published_files(model: Lpips, directory, vgg_name="vgg16-397923af.pth", linear_name="lpips-vgg-v0.1.pth"):
    """``model``'s weights written in torchvision's and the lpips package's layouts."""
    directory.mkdir(parents=True, exist_ok=True)
    vgg = {f"features.{k}": v for k, v in model.features.state_dict().items()}
    vgg["classifier.0.weight"] = torch.zeros(4, 4)  # torchvision's file also holds the classifier
    linear = {f"lin{i}.model.1.weight": head.weight.detach().clone() for i, head in enumerate(model.heads)}
    torch.save(vgg, directory / vgg_name)
    torch.save(linear, directory / linear_name)
    return directory / vgg_name, directory / linear_name


def _images(seed: int, size: int = 16) -> torch.Tensor:
    return torch.rand(2, 3, size, size, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def test_missing_weights_name_both_files_where_to_get_them_and_where_to_put_them(empty_cache):
    with pytest.raises(LpipsWeightsNotFoundError) as error:
        find_lpips_weights()
    message = str(error.value)
    for part in ("vgg16-397923af.pth", "download.pytorch.org", "lpips/weights/v0.1/vgg.pth", VGG_WEIGHTS_ENV,
                 LINEAR_WEIGHTS_ENV, "--model.vgg-weights", str(empty_cache)):
        assert part in message
    with pytest.raises(LpipsWeightsNotFoundError, match="--model.vgg-weights /nowhere/vgg.pth does not exist"):
        find_lpips_weights(vgg_path="/nowhere/vgg.pth")


def test_weights_load_from_paths_environment_or_the_torch_hub_cache(empty_cache, tmp_path, monkeypatch):
    reference = _random_lpips(0)
    x, y = _images(1), _images(2)
    expected = reference(x, y)
    vgg, linear = _published_files(reference, tmp_path / "given")
    torch.testing.assert_close(load_lpips(vgg, linear)(x, y), expected)
    monkeypatch.setenv(VGG_WEIGHTS_ENV, str(vgg))
    monkeypatch.setenv(LINEAR_WEIGHTS_ENV, str(linear))
    assert find_lpips_weights() == (vgg, linear)
    monkeypatch.delenv(VGG_WEIGHTS_ENV)
    monkeypatch.delenv(LINEAR_WEIGHTS_ENV)
    empty_cache.mkdir(parents=True)
    cached = (empty_cache / vgg.name, empty_cache / linear.name)
    for link, target in zip(cached, (vgg, linear)):
        link.symlink_to(target)
    assert find_lpips_weights() == cached
    loaded = load_lpips()
    assert not any(p.requires_grad for p in loaded.parameters())
    torch.testing.assert_close(loaded(x, y), expected)
    with torch.no_grad():
        loaded.heads[2].weight.mul_(3.0)
    assert not torch.allclose(loaded(x, y), expected)  # other weights, other distances


def test_distance_is_zero_for_equal_images_symmetric_and_differentiable():
    model = _random_lpips(0)
    x, y = _images(3), _images(4)
    assert torch.equal(model(x, x), torch.zeros(2))
    torch.testing.assert_close(model(x, y), model(y, x))
    x = x.requires_grad_(True)
    (grad,) = torch.autograd.grad(model(x, y).sum(), x)
    assert grad.abs().sum() > 0


def test_matches_the_lpips_package_when_it_is_importable():
    """The reference ``lpips`` package (VGG trunk, v0.1 heads) on random weights shared with ours.

    lpips needs torchvision, which has no CPU build next to our torch: .ci/fidelity.sh runs this in an
    environment of its own with EPIGRAF_REQUIRE_LPIPS=1, where a failed import fails the test.
    """
    try:
        import lpips
    except ImportError:
        if os.environ.get("EPIGRAF_REQUIRE_LPIPS") == "1":
            raise
        pytest.skip("needs the lpips package (and torchvision); .ci/fidelity.sh runs it in its own environment")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        reference = lpips.LPIPS(net="vgg", pretrained=False, pnet_rand=True, verbose=False).eval()
        for head in reference.lins:  # random heads of either sign: nothing cancels by luck
            head.model[-1].weight.data.normal_()
    state = reference.state_dict()
    vgg = {}
    for key, value in state.items():
        if key.startswith("net.slice"):
            _, _, index, name = key.split(".")
            vgg[f"features.{index}.{name}"] = value
    ours = Lpips()
    ours.load_published(vgg, state)
    for size in (32, 64):
        x, y = _images(5, size), _images(6, size)
        with torch.no_grad():
            expected = reference(x, y).flatten()
            torch.testing.assert_close(ours(x, y), expected, rtol=1e-4, atol=1e-6)

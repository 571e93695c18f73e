"""Shared test fixtures and markers.

Runtime shape checking of `epigraf_field` and `renderers` is switched on for the whole test run
by `--jaxtyping-packages` in pyproject.toml (beartype checks every jaxtyping annotation).
"""

import pytest
import torch


def pytest_collection_modifyitems(config, items):
    skip_cuda = pytest.mark.skip(reason="needs CUDA (no CUDA device on this machine)")
    has_cuda = torch.cuda.is_available()
    for item in items:
        if "cuda" in item.keywords and not has_cuda:
            item.add_marker(skip_cuda)


@pytest.fixture
def rng() -> torch.Generator:
    """A seeded CPU torch.Generator: tests never touch global RNG state."""
    return torch.Generator().manual_seed(0)

"""Fixtures for the renderer tests."""

from __future__ import annotations

import pytest
import torch

from tests.renderers.helpers import RandomTriPlaneField


@pytest.fixture
def random_field() -> RandomTriPlaneField:
    return RandomTriPlaneField(batch_size=2, rng=torch.Generator().manual_seed(3))

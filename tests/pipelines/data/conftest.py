"""Tiny datasets shared by the data tests (built once per test session)."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.pipelines.data.data_test_utils import TINY

from pipelines.data.synthetic import SynthConfig, build_synthetic_dataset


@pytest.fixture(scope="session")
def synth_dir(tmp_path_factory) -> Path:
    """3 objects x 2 views at 32^2 (mushroom, vase, chair)."""
    out = tmp_path_factory.mktemp("synth")
    build_synthetic_dataset(SynthConfig(out=out, seed=7, **TINY))
    return out

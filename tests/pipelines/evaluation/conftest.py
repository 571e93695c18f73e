"""Fixtures of the evaluation tests."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.pipelines.evaluation.evaluation_helpers import TexturedSphere, make_tiny_bundle


@pytest.fixture
def textured_sphere() -> TexturedSphere:
    return TexturedSphere()


@pytest.fixture(scope="session")
def tiny_bundle(tmp_path_factory) -> Path:
    return make_tiny_bundle(tmp_path_factory.mktemp("bundle") / "generator")

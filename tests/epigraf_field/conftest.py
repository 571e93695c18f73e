"""Tiny generator configs shared by the epigraf_field tests."""

import pytest

from epigraf_field.generator import TriPlaneGeneratorConfig


def tiny_config(**overrides) -> TriPlaneGeneratorConfig:
    """Planes 3 x 4 x 8 x 8, widths <= 16: fast on 2 CPU cores."""
    values = dict(
        z_dim=16, w_dim=16, mapping_layers=2, plane_resolution=8, plane_channels=4,
        channel_base=64, channel_max=16, decoder_hidden=16, decoder_backend="torch",
    )
    values.update(overrides)
    return TriPlaneGeneratorConfig(**values)


@pytest.fixture
def tiny() -> TriPlaneGeneratorConfig:
    return tiny_config()


@pytest.fixture
def make_tiny_config():
    """``make_tiny_config(**overrides)``: a tiny config with some fields changed."""
    return tiny_config

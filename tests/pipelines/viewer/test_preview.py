"""The moving-camera preview: the grid preview shows the picture of a plain render, cheaper, on its own thread count."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from epigraf_field.config_io import config_from_dict, config_to_dict
from pipelines.viewer import GeneratorViewer, ViewerConfig
from pipelines.viewer.server import intra_op_threads
from renderers.analytic import SphereField
from .conftest import SphereModel, tiny_model


def preview_of(model, tmp_path, **options) -> tuple[np.ndarray, GeneratorViewer]:
    config = ViewerConfig(resolution=48, samples_per_ray=32, verbose=False, output_dir=tmp_path, **options)
    viewer = GeneratorViewer(model, config)
    return viewer._render(replace(viewer.home, aspect=1.5), "preview"), viewer


def test_grid_preview_matches_the_plain_preview_of_an_object_with_fewer_field_queries(tiny_generator, tmp_path):
    base = tiny_model(tiny_generator)
    model = SphereModel(base.generator, base.renderer, base.cameras, radius=0.35)
    calls = []

    class CountingSphere(SphereField):
        def forward(self, points, directions=None):
            calls.append(points.shape[1])
            return super().forward(points, directions)

    model.field = lambda scene: CountingSphere(radius=0.35, color=(0.8, 0.3, 0.1))  # type: ignore[method-assign]
    plain, _ = preview_of(model, tmp_path, preview_sampler="settings")
    plain_queries = sum(calls)
    calls.clear()
    grid, viewer = preview_of(model, tmp_path, preview_sampler="grid", preview_samples=32)
    grid_build = viewer.config.preview_grid_resolution**3
    assert plain.shape == grid.shape == (24, 36, 3)
    assert np.abs(plain.astype(int) - grid.astype(int)).mean() < 2.0
    assert (plain < 200).any()  # the ball is in the picture
    assert sum(calls) - grid_build < 0.5 * plain_queries
    calls.clear()
    viewer._render(viewer.home, "preview")
    assert sum(calls) < plain_queries  # the grid is cached per latent: built once


def test_grid_preview_of_a_generator_is_close_to_the_plain_one(tiny_generator, tmp_path):
    model = tiny_model(tiny_generator)
    plain, _ = preview_of(model, tmp_path, preview_sampler="settings")
    grid, _ = preview_of(model, tmp_path, preview_sampler="grid", preview_samples=32)
    assert np.abs(plain.astype(int) - grid.astype(int)).mean() < 1.0


def test_preview_threads_apply_to_the_block_only():
    before = torch.get_num_threads()
    with intra_op_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    with intra_op_threads(0):
        assert torch.get_num_threads() == before


def test_preview_options_are_validated():
    with pytest.raises(ValueError, match="preview_sampler"):
        ViewerConfig(preview_sampler="fast")
    with pytest.raises(ValueError, match="preview_samples"):
        ViewerConfig(preview_samples=1)


def test_preview_options_survive_a_json_round_trip():
    config = ViewerConfig(preview_sampler="settings", preview_samples=20, preview_grid_resolution=48, preview_threads=0)
    data = json.loads(json.dumps(config_to_dict(config)))
    assert data["preview_sampler"] == "settings"
    assert config_from_dict(ViewerConfig, data) == config

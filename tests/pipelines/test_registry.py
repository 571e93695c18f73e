"""Pipelines are plug-ins: the epigraf.pipelines entry points list them, and a new package adds one."""

from __future__ import annotations

import textwrap

import pytest
import torch

from pipelines.cli.train import parse_config
from pipelines.registry import PipelineSpec, get_pipeline_spec, load_reference, registered_pipelines

PLUGIN_MODULE = '''
"""A pipeline from another package: the patch-gan pieces under a new name."""
from pipelines.registry import PipelineSpec

PIPELINE = PipelineSpec(
    name="toy",
    description="a toy plug-in pipeline",
    pipeline_class="pipelines.patch_gan.pipeline:PatchGanPipeline",
    gpu_preset="pipelines.patch_gan.pipeline:gpu_preset",
    cpu_preset="pipelines.patch_gan.pipeline:cpu_preset",
    model_loader="pipelines.patch_gan.model:load_model",
)
WRONG_NAME = PipelineSpec(name="other", description="", pipeline_class="", gpu_preset="", cpu_preset="",
                          model_loader="")
'''


def _install_plugin(root, entry: str = "toy = toy_plugin:PIPELINE") -> None:
    """What `pip install` of a package with one entry point leaves on sys.path."""
    (root / "toy_plugin.py").write_text(textwrap.dedent(PLUGIN_MODULE))
    info = root / "toy_plugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: toy-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[epigraf.pipelines]\n{entry}\n")


def test_the_built_in_pipelines_are_registered_through_entry_points():
    specs = registered_pipelines()
    assert {"patch-gan", "eg3d"} <= set(specs)
    assert all(isinstance(spec, PipelineSpec) and spec.name == name for name, spec in specs.items())
    assert load_reference(specs["eg3d"].pipeline_class).__name__ == "Eg3dPipeline"


def test_an_unknown_pipeline_lists_the_registered_ones():
    with pytest.raises(ValueError, match="'nope' is not registered; choose one of: eg3d, ig-gan, mimic3d, patch-gan"):
        get_pipeline_spec("nope")
    with pytest.raises(SystemExit, match="eg3d, ig-gan, mimic3d, patch-gan"):
        parse_config(["--pipeline", "nope"])


def test_a_package_with_one_entry_point_adds_a_pipeline(tmp_path, monkeypatch, capsys):
    from tests.pipelines.tiny import TinyDataset, tiny_train_config

    _install_plugin(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    assert "toy" in registered_pipelines()
    with pytest.raises(SystemExit):
        parse_config(["--pipeline", "toy", "--help"])
    assert "toy: a toy plug-in pipeline" in capsys.readouterr().out
    config = tiny_train_config()
    config.pipeline = "toy"
    pipeline = get_pipeline_spec("toy").build_pipeline(config, torch.device("cpu"), TinyDataset())
    assert type(pipeline).__name__ == "PatchGanPipeline"


def test_a_broken_entry_point_is_named(tmp_path, monkeypatch):
    _install_plugin(tmp_path, entry="toy = toy_plugin:WRONG_NAME")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(RuntimeError, match="'toy'.*must name a PipelineSpec whose name is 'toy'"):
        registered_pipelines()

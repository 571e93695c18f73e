"""`--branch {3d,2d}` of epigraf-render, -export, -metrics and -view: a mimic3d generator shows the branch asked for;
a generator without branches refuses 2d with an error naming the run and the pipelines that have branches."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import trimesh
from PIL import Image

import pipelines.viewer.server as viewer_server
from pipelines.cli import export as export_cli
from pipelines.cli import metrics as metrics_cli
from pipelines.cli import render as render_cli
from pipelines.cli import view as view_cli
from pipelines.mimic3d.pipeline import Mimic3dPipeline
from tests.pipelines.evaluation.evaluation_helpers import make_image_folder, make_tiny_bundle
from tests.pipelines.mimic3d.tiny import tiny_mimic3d_config
from tests.pipelines.tiny import TinyDataset

TINY_RENDER = ["--seeds", "0", "1", "--resolution", "16", "--outputs", "grid", "--no-maps", "--device", "cpu",
               "--no-progress"]


@pytest.fixture(scope="module")
def mimic3d_bundle(tmp_path_factory):
    """An untrained tiny mimic3d generator saved as a bundle (its two branches already render differently)."""
    pipeline = Mimic3dPipeline(tiny_mimic3d_config(), torch.device("cpu"), TinyDataset())
    return pipeline.model().save(tmp_path_factory.mktemp("mimic3d") / "generator")


@pytest.fixture(scope="module")
def patch_gan_bundle(tmp_path_factory):
    return make_tiny_bundle(tmp_path_factory.mktemp("patch-gan") / "generator")


def _grid(bundle, out, *extra) -> np.ndarray:
    render_cli.main([str(bundle), "--out", str(out), *TINY_RENDER, *extra])
    with Image.open(out / "grid.png") as image:
        return np.asarray(image.convert("RGB"), dtype=np.int16)


def test_render_branch_2d_shows_the_super_resolved_images(mimic3d_bundle, tmp_path):
    default = _grid(mimic3d_bundle, tmp_path / "default")
    direct = _grid(mimic3d_bundle, tmp_path / "3d", "--branch", "3d")
    two_d = _grid(mimic3d_bundle, tmp_path / "2d", "--branch", "2d")
    assert default.shape == two_d.shape == (2 * 16, 3 * 16, 3)
    assert np.array_equal(default, direct)  # the direct 3D render is the default
    assert np.abs(two_d - direct).mean() > 1.0


def test_export_branch_2d_meshes_the_coarse_field_and_colours_it_without_the_detail_plane(mimic3d_bundle, tmp_path):
    meshes = {}
    for branch in ("3d", "2d"):
        out = tmp_path / branch
        export_cli.main([str(mimic3d_bundle), "--out", str(out), "--mesh", "--seeds", "3", "--resolution", "12",
                         "--level", "0.1", "--branch", branch, "--device", "cpu", "--no-progress"])
        meshes[branch] = trimesh.load(out / "seed0003.ply", force="mesh")
    assert len(meshes["3d"].faces) > 0 and len(meshes["2d"].faces) > 0
    colours = {branch: np.asarray(mesh.visual.vertex_colors, dtype=np.int16) for branch, mesh in meshes.items()}
    assert colours["3d"].shape != colours["2d"].shape or np.abs(colours["3d"] - colours["2d"]).max() > 0


def test_metrics_record_the_branch_scored(mimic3d_bundle, tmp_path, capsys):
    data = make_image_folder(tmp_path / "images", count=3)
    metrics_cli.main([str(mimic3d_bundle), "--data", str(data), "--metrics", "swd", "--num-images", "3",
                      "--resolution", "16", "--swd.patches-per-image", "8", "--swd.directions", "8",
                      "--branch", "2d", "--device", "cpu", "--no-progress"])
    record = json.loads(capsys.readouterr().out)
    assert record["pipeline"] == "mimic3d" and record["branch"] == "2d" and record["metrics"]["swd"] > 0


def test_view_serves_the_branch_asked_for(mimic3d_bundle, monkeypatch):
    served = []

    class FakeViewer:
        def __init__(self, model, config, title):
            served.append(model)

        def start(self):
            pass

        def stop(self):
            pass

    monkeypatch.setattr(viewer_server, "GeneratorViewer", FakeViewer)
    assert view_cli.main([str(mimic3d_bundle), "--branch", "2d", "--seconds", "0", "--device", "cpu"]) == 0
    assert view_cli.main([str(mimic3d_bundle), "--seconds", "0", "--device", "cpu"]) == 0
    assert [model.branch for model in served] == ["2d", "3d"]
    assert not served[0].renders_directly and served[1].renders_directly


@pytest.mark.parametrize("command", ["render", "export", "metrics", "view"])
def test_branch_2d_on_a_generator_without_branches_names_the_run_and_the_pipelines_with_branches(
        command, patch_gan_bundle, tmp_path):
    argv = {
        "render": (render_cli, ["--out", str(tmp_path), *TINY_RENDER]),
        "export": (export_cli, ["--out", str(tmp_path), "--planes", "--device", "cpu"]),
        "metrics": (metrics_cli, ["--data", str(make_image_folder(tmp_path / "images", count=2)), "--metrics", "swd",
                                  "--device", "cpu"]),
        "view": (view_cli, ["--seconds", "0", "--device", "cpu"]),
    }
    cli, extra = argv[command]
    with pytest.raises(SystemExit) as error:
        cli.main([str(patch_gan_bundle), *extra, "--branch", "2d"])
    message = str(error.value)
    assert message.startswith(f"error: --branch 2d: {patch_gan_bundle} holds a patch-gan generator, which has one "
                              "branch") and "\n" not in message
    assert "only mimic3d generators have a 2D branch" in message and message.endswith("leave --branch out")


def test_branch_3d_on_a_generator_without_branches_is_its_usual_output(patch_gan_bundle, tmp_path):
    assert np.array_equal(_grid(patch_gan_bundle, tmp_path / "default"),
                          _grid(patch_gan_bundle, tmp_path / "3d", "--branch", "3d"))

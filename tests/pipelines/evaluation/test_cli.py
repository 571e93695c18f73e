"""Smoke tests of epigraf-render, epigraf-export and epigraf-metrics on a tiny bundle, and their errors."""

import json

import imageio.v2 as imageio
import pytest
import trimesh
from tests.pipelines.evaluation.evaluation_helpers import make_image_folder
from PIL import Image
from safetensors.torch import load_file

from pipelines.cli import export as export_cli
from pipelines.cli import metrics as metrics_cli
from pipelines.cli import render as render_cli
from pipelines.evaluation.inception import WEIGHTS_ENV


def test_render_grid_maps_and_videos(tiny_bundle, tmp_path):
    out = tmp_path / "renders"
    render_cli.main([str(tiny_bundle), "--out", str(out), "--seeds", "0", "1", "--resolution", "16",
                     "--outputs", "grid", "turntable", "zigzag", "interpolation", "--video-formats", "gif", "mp4",
                     "--frames", "3", "--interpolation-frames", "2", "--grid-yaws-degrees", "-20", "20",
                     "--num-coarse", "6", "--num-fine", "0", "--device", "cpu"])
    for name in ("grid.png", "grid_depth.png", "grid_opacity.png"):
        with Image.open(out / name) as image:
            assert image.size == (2 * 16, 2 * 16)  # columns = views, rows = seeds
    with Image.open(out / "turntable.gif") as gif:
        assert gif.n_frames == 3 and gif.size == (2 * 16, 16)  # two seeds side by side
    reader = imageio.get_reader(out / "zigzag.mp4")
    assert reader.count_frames() == 3
    reader.close()
    reader = imageio.get_reader(out / "interpolation.mp4")
    assert reader.count_frames() == 4  # 2 seeds x 2 frames, looping back to the first
    reader.close()


def test_long_commands_show_what_they_do_and_how_far_they_are(tiny_bundle, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("EPIGRAF_NO_PROGRESS", raising=False)
    render_cli.main([str(tiny_bundle), "--out", str(tmp_path), "--seeds", "0", "1", "--resolution", "8",
                     "--outputs", "grid", "turntable", "--frames", "2", "--video-formats", "gif", "--num-coarse", "4",
                     "--device", "cpu"])
    export_cli.main([str(tiny_bundle), "--out", str(tmp_path), "--planes", "--seeds", "1", "2", "--device", "cpu"])
    data = make_image_folder(tmp_path / "images", count=3)
    metrics_cli.main([str(tiny_bundle), "--data", str(data), "--metrics", "swd", "mv_psnr", "--num-images", "3",
                      "--resolution", "16", "--swd.patches-per-image", "8", "--swd.directions", "8",
                      "--consistency-scenes", "2", "--device", "cpu"])
    err = capsys.readouterr().err
    for stage in ("grid: 100%", "turntable: 100%", "exporting: 100%", "rendering generated images: 100%",
                  "mv_psnr: rendering view pairs: 100%"):
        assert stage in err, stage
    render_cli.main([str(tiny_bundle), "--out", str(tmp_path), "--seeds", "0", "--resolution", "8",
                     "--outputs", "grid", "--num-coarse", "4", "--device", "cpu", "--no-progress"])
    assert "grid:" not in capsys.readouterr().err


def test_render_resolution_is_free(tiny_bundle, tmp_path):
    render_cli.main([str(tiny_bundle), "--out", str(tmp_path), "--seeds", "3", "--resolution", "20",
                     "--outputs", "grid", "--grid-yaws-degrees", "0", "--no-maps", "--num-coarse", "4",
                     "--device", "cpu"])
    with Image.open(tmp_path / "grid.png") as image:
        assert image.size == (20, 20)
    assert not (tmp_path / "grid_depth.png").exists()


def test_export_mesh_and_planes(tiny_bundle, tmp_path):
    export_cli.main([str(tiny_bundle), "--out", str(tmp_path), "--mesh", "--planes", "--seeds", "5",
                     "--resolution", "24", "--level", "0.8", "--format", "obj", "--device", "cpu"])
    mesh = trimesh.load(tmp_path / "seed0005.obj", force="mesh")
    assert len(mesh.faces) > 0
    assert (abs(mesh.vertices) <= 0.5 + 1e-6).all()
    planes = load_file(str(tmp_path / "seed0005_planes.safetensors"))["planes"]
    assert planes.shape == (3, 4, 8, 8)


def test_missing_checkpoint_is_named(tmp_path):
    missing = tmp_path / "no_such_run"
    for cli, extra in ((render_cli, []), (export_cli, ["--mesh"]),
                       (metrics_cli, ["--data", str(tmp_path), "--metrics", "swd"])):
        with pytest.raises(SystemExit, match=f"error: {missing} does not exist"):
            cli.main([str(missing), *extra])


def test_export_needs_something_to_export(tiny_bundle):
    with pytest.raises(SystemExit, match="--mesh and/or --planes"):
        export_cli.main([str(tiny_bundle)])


def test_unknown_metric_is_named(tiny_bundle, tmp_path):
    with pytest.raises(SystemExit, match="unknown metric.*'lpips'.*fid"):
        metrics_cli.main([str(tiny_bundle), "--data", str(tmp_path), "--metrics", "lpips"])


def test_missing_inception_weights_say_how_to_fix(tiny_bundle, tmp_path, monkeypatch):
    monkeypatch.delenv(WEIGHTS_ENV, raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty_torch_home"))
    with pytest.raises(SystemExit) as info:
        metrics_cli.main([str(tiny_bundle), "--data", str(tmp_path), "--metrics", "fid"])
    message = str(info.value)
    assert "--inception-weights" in message and WEIGHTS_ENV in message and "pt_inception-2015-12-05" in message


def test_metrics_command_writes_a_json_line(tiny_bundle, tmp_path, capsys):
    data = make_image_folder(tmp_path / "images", count=3)
    log = tmp_path / "metrics.jsonl"
    metrics_cli.main([str(tiny_bundle), "--data", str(data), "--metrics", "swd", "--num-images", "3",
                      "--resolution", "16", "--out", str(log), "--swd.patches-per-image", "8",
                      "--swd.directions", "8", "--device", "cpu"])
    record = json.loads(log.read_text().splitlines()[0])
    assert record["num_images"] == 3 and record["metrics"]["swd"] > 0
    assert json.loads(capsys.readouterr().out)["metrics"] == record["metrics"]

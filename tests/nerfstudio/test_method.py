"""The ``epigraf-invert`` method: registered with ns-train, and a short CPU run fits a synthetic capture."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tests.nerfstudio.conftest import NERFSTUDIO_SKIP_REASON, target_ws

pytest.importorskip("nerfstudio", reason=NERFSTUDIO_SKIP_REASON)

from pipelines.nerfstudio.capture import orbit_cameras, write_capture  # noqa: E402
from pipelines.nerfstudio.field import EpigrafField, mean_ws  # noqa: E402
from pipelines.nerfstudio.scene_transform import Z_UP_TO_Y_UP, SceneTransformConfig  # noqa: E402
from renderers.volume_renderer import VolumeRenderer, VolumeRendererConfig  # noqa: E402

METHOD = "epigraf-invert"
# The capture is written in a scene frame that differs from the generator's world (z up, scaled,
# shifted), so the run only fits when the scene transform is applied.
TRANSFORM = SceneTransformConfig(scale=0.5, translation=(0.05, 0.0, -0.05), rotation=Z_UP_TO_Y_UP)
RESOLUTION = 16
STEPS = 14
PLANE_START = 9


def ns_train() -> str:
    path = shutil.which("ns-train", path=str(Path(sys.executable).parent))
    if path is None:
        pytest.fail(f"ns-train is not installed next to {sys.executable}; install nerfstudio==1.1.5")
    return path


def test_entry_point_registers_the_method() -> None:
    from nerfstudio.plugins.types import MethodSpecification

    found = [ep for ep in entry_points(group="nerfstudio.method_configs") if ep.name == METHOD]
    assert found, (
        f"no '{METHOD}' entry point in group nerfstudio.method_configs: pyproject.toml needs "
        f"[project.entry-points.\"nerfstudio.method_configs\"] "
        f"{METHOD} = \"pipelines.nerfstudio.method:epigraf_invert\""
    )
    spec = found[0].load()
    assert isinstance(spec, MethodSpecification)
    assert spec.config.method_name == METHOD
    assert set(spec.config.optimizers) >= {"latent", "planes"}


def test_ns_train_help_lists_the_methods() -> None:
    result = subprocess.run([ns_train(), "--help"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert METHOD in result.stdout and "epigraf-sample" in result.stdout


def capture_error(field, capture: Path, renderer: VolumeRenderer) -> float:
    """Mean squared error of the field's renders against the capture's images (our renderer, our cameras)."""
    cams = orbit_cameras(6, radius=1.5, fov_degrees=40.0)
    frames = json.loads((capture / "transforms.json").read_text())["frames"]
    errors = []
    for index, frame in enumerate(frames):
        target = torch.from_numpy(np.asarray(Image.open(capture / frame["file_path"]), dtype=np.float32) / 255.0)
        with torch.no_grad():
            rgb = renderer.render_image(field, cams[index], RESOLUTION).rgb[0].permute(1, 2, 0)
        errors.append(torch.mean((rgb - target) ** 2))
    return float(torch.stack(errors).mean())


def test_ns_train_inverts_a_synthetic_capture_on_cpu(
    tmp_path: Path, tiny_generator, tiny_model, tiny_bundle: Path
) -> None:
    renderer = VolumeRenderer(VolumeRendererConfig(sampler="importance", num_coarse=16, num_fine=16))
    scene = tiny_generator.field(tiny_generator.synthesis(target_ws(tiny_generator)))
    capture = tmp_path / "capture"
    write_capture(capture, scene, renderer, orbit_cameras(6, radius=1.5, fov_degrees=40.0), RESOLUTION, TRANSFORM)

    command = [
        ns_train(), METHOD,
        "--machine.device-type", "cpu",
        "--vis", "tensorboard",
        "--output-dir", str(tmp_path / "outputs"),
        "--experiment-name", "capture",
        "--timestamp", "run",
        "--max-num-iterations", str(STEPS),
        "--steps-per-save", "1000",
        "--optimizers.latent.optimizer.lr", "0.05",
        "--optimizers.planes.optimizer.lr", "0.01",
        "--pipeline.datamanager.train-num-rays-per-batch", "512",
        "--pipeline.model.generator-path", str(tiny_bundle),
        "--pipeline.model.num-coarse-samples", "12",
        "--pipeline.model.num-importance-samples", "12",
        "--pipeline.model.plane-start-step", str(PLANE_START),
        "--pipeline.model.scene.scale", str(TRANSFORM.scale),
        "--pipeline.model.scene.translation", *[str(v) for v in TRANSFORM.translation],
        "--pipeline.model.scene.rotation", *[str(v) for v in TRANSFORM.rotation],
        "nerfstudio-data", "--data", str(capture),
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=500)
    assert result.returncode == 0, (result.stdout[-3000:], result.stderr[-3000:])

    checkpoints = sorted((tmp_path / "outputs" / "capture" / METHOD / "run" / "nerfstudio_models").glob("step-*.ckpt"))
    assert checkpoints, result.stdout[-3000:]
    # nerfstudio reloads its checkpoints (--load-dir, ns-viewer, ns-eval) with torch.load's default,
    # weights_only=True since torch 2.6: the method's checkpoints must load that way.
    state = torch.load(checkpoints[-1], map_location="cpu", weights_only=True)
    assert state["step"] == STEPS - 1
    prefix = "_model.field."
    field_state = {k[len(prefix):]: v for k, v in state["pipeline"].items() if k.startswith(prefix)}

    initial_w = mean_ws(tiny_model)[:, 0]
    initial = EpigrafField(tiny_model, initial_w, latent_kind="w")
    fitted = EpigrafField(tiny_model, torch.zeros_like(initial_w), latent_kind="w")
    fitted.load_state_dict(field_state)
    assert bool(fitted.uses_plane_parameters), "the run should have switched to optimizing the planes"
    assert not torch.allclose(fitted.latent, initial_w), "the latent was not optimized"

    error_initial = capture_error(initial.planes_field(), capture, renderer)
    error_fitted = capture_error(fitted.planes_field(), capture, renderer)
    assert error_fitted < 0.7 * error_initial, (error_initial, error_fitted)

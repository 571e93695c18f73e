"""README's nerfstudio commands, run as written (nerfstudio's tools as subprocesses) on a tiny generator and dataset.

The first command opens nerfstudio's viewer and serves until stopped: it is started, its page
fetched and then stopped. The training commands of nerfstudio-sized methods get the quick-run
flags the README names. What the tools wrote is then checked: the videos, a point cloud inside
the generator's box with the generator's colours, meshes, an inversion of a dataset object.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.nerfstudio.conftest import (
    NERFSTUDIO_SKIP_REASON,
    nerfstudio_environment,
    nerfstudio_executable,
    write_eg3d_dataset,
    zip_folder,
)

pytest.importorskip("nerfstudio", reason=NERFSTUDIO_SKIP_REASON)

README = Path(__file__).resolve().parents[2] / "README.md"
RUN_PLACEHOLDER = "runs/patch-gan-..."
DATA_PLACEHOLDER = "path/to/dataset.zip"
SAMPLE_RUN = Path("outputs/seed3/epigraf-sample/run")
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def section() -> str:
    text = README.read_text()
    start = text.index("## nerfstudio\n")
    return text[start: text.index("\n## ", start + 1)]


def readme_commands() -> list[str]:
    """The commands of the section's bash block."""
    block = re.search(r"```bash\n(.*?)```", section(), re.S).group(1)
    return [line.strip() for line in block.splitlines() if line.strip() and not line.startswith("#")]


def quick_flags() -> list[str]:
    """The quick-run flags the section names for nerfstudio-sized training commands."""
    match = re.search(r"put nerfstudio's\s+size flags after the method name: `([^`]+)`", section())
    assert match, "README's nerfstudio section should name the quick-run flags"
    return shlex.split(match.group(1))


@dataclass
class Ran:
    argv: list[str]
    returncode: int
    output: str


def run(argv: list[str], cwd: Path, env: dict[str, str]) -> Ran:
    result = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    return Ran(argv, result.returncode, ANSI.sub("", result.stdout + result.stderr))


def run_viewer(argv: list[str], cwd: Path, env: dict[str, str]) -> Ran:
    """Starts the training command with its viewer, waits for the run to finish, fetches the viewer page, stops it."""
    process = subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines, url, status = [], None, None
    try:
        deadline = time.monotonic() + 400
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line and process.poll() is not None:
                break
            lines.append(ANSI.sub("", line))
            found = re.search(r"Viewer running locally at: (http://[^\s]+)", lines[-1])
            url = found.group(1) if found else url
            if "Use ctrl+c to quit" in lines[-1]:
                with urllib.request.urlopen(url, timeout=30) as response:
                    status = response.status
                break
    finally:
        process.terminate()
        process.wait(timeout=60)
    return Ran(argv, 0 if status == 200 else 1, "".join(lines) + f"\nviewer {url}: HTTP {status}")


@pytest.fixture(scope="module")
def readme_run(tmp_path_factory: pytest.TempPathFactory, opaque_bundle: Path) -> tuple[Path, dict[str, Ran]]:
    """Every command of the section, run in one folder in order; results by a short name."""
    work = tmp_path_factory.mktemp("readme")
    dataset = zip_folder(write_eg3d_dataset(work / "dataset-folder", num_images=4, resolution=24),
                         work / "dataset.zip")
    env = nerfstudio_environment(work)
    results: dict[str, Ran] = {}
    for command in readme_commands():
        argv = shlex.split(command.replace(RUN_PLACEHOLDER, str(opaque_bundle)).replace(DATA_PLACEHOLDER,
                                                                                        str(dataset)))
        name = " ".join(argv[:2])
        argv[0] = nerfstudio_executable(argv[0])
        if name == "ns-train epigraf-sample":
            results[name] = run_viewer(argv, work, env)
            continue
        if argv[1] in ("epigraf-invert", "nerfacto"):
            argv[2:2] = quick_flags()
        results[name] = run(argv, work, env)
    return work, results


def check(ran: Ran) -> None:
    assert ran.returncode == 0, f"{shlex.join(ran.argv)}\n{ran.output[-4000:]}"


def test_the_section_has_the_commands_this_test_checks() -> None:
    names = [" ".join(shlex.split(c)[:2]) for c in readme_commands()]
    assert names == ["ns-train epigraf-sample", "ns-render interpolate", "ns-render spiral", "ns-export pointcloud",
                     "ns-export tsdf", "ns-export poisson", "ns-train epigraf-invert", "ns-train nerfacto"]
    assert all(RUN_PLACEHOLDER in c for c in readme_commands()[:1] + readme_commands()[-2:-1])
    assert quick_flags()[:2] == ["--machine.device-type", "cpu"]


def test_sample_trains_one_step_with_the_viewer_up(readme_run) -> None:
    work, results = readme_run
    check(results["ns-train epigraf-sample"])
    assert (work / SAMPLE_RUN / "config.yml").is_file()
    assert [p.name for p in (work / SAMPLE_RUN / "nerfstudio_models").iterdir()] == ["step-000000000.ckpt"]
    # The step checkpoint loads as nerfstudio loads it (torch.load's weights_only default).
    torch.load(work / SAMPLE_RUN / "nerfstudio_models/step-000000000.ckpt", map_location="cpu", weights_only=True)


def test_ns_render_writes_videos_of_the_object(readme_run) -> None:
    import imageio.v3 as iio

    work, results = readme_run
    check(results["ns-render interpolate"])
    check(results["ns-render spiral"])
    frames = iio.imread(work / "renders/seed3.mp4")
    # 8 views, 3 steps from each to the next: rgb, depth and normals side by side (3 x 32 wide, 32 high).
    assert frames.shape[0] == 7 * 3 and frames.shape[1:3] == (32, 96)
    rgb, normals = frames[..., :32, :].astype(float), frames[..., 64:, :].astype(float)
    assert rgb.std() > 5 and normals.std() > 5  # pictures, not blanks
    assert iio.imread(work / "renders/seed3-spiral.mp4").shape[0] == 12


def test_point_cloud_lies_in_the_box_with_the_generators_colours(readme_run, opaque_bundle: Path) -> None:
    import open3d as o3d

    from pipelines.model import latents_from_seeds, open_model
    from pipelines.nerfstudio.field import EpigrafField
    from pipelines.nerfstudio.scene_transform import nerfstudio_scene

    work, results = readme_run
    check(results["ns-export pointcloud"])
    cloud = o3d.io.read_point_cloud(str(work / "exports/seed3/point_cloud.ply"))
    points = torch.tensor(np.asarray(cloud.points), dtype=torch.float32)
    colours = torch.tensor(np.asarray(cloud.colors), dtype=torch.float32)
    normals = torch.tensor(np.asarray(cloud.normals), dtype=torch.float32)
    assert len(points) >= 5000  # 10000 asked, less the statistical outliers
    # The generator's box [-0.5, 0.5]^3 is the scene's [-1, 1]^3: no point of an empty ray, none outside.
    assert points.abs().max() <= 1.0 + 1e-3
    assert torch.allclose(normals.norm(dim=-1), torch.ones(len(normals)), atol=1e-3)
    # Each point carries the colour the generator's field has there (the surface is where T = 1/2), not the
    # background's: far closer than the colour of some other point of the cloud.
    generator = open_model(opaque_bundle)
    field = EpigrafField(generator, latents_from_seeds([3], generator.z_dim), latent_kind="z",
                         transform=nerfstudio_scene(generator.box_half_size))
    with torch.no_grad():
        _, field_colours = field.query(points)
    error = (field_colours - colours).abs().mean()
    shuffled = (field_colours[torch.randperm(len(points), generator=torch.Generator().manual_seed(0))] - colours)
    assert error < 0.04 and error < 0.4 * shuffled.abs().mean(), (error, shuffled.abs().mean())
    assert not torch.all(colours > 0.98, dim=-1).any()  # no white background points


def test_tsdf_and_poisson_meshes(readme_run) -> None:
    import trimesh

    work, results = readme_run
    for name, file in (("ns-export tsdf", "tsdf_mesh.ply"), ("ns-export poisson", "poisson_mesh.ply")):
        check(results[name])
        mesh = trimesh.load(work / "exports/seed3" / file, process=False)
        assert len(mesh.faces) > 100, name
        # Around the box (poisson extrapolates a little past its points).
        assert np.abs(mesh.vertices).max() < 1.3, name


def test_invert_fits_a_dataset_object_through_eg3d_data(readme_run) -> None:
    work, results = readme_run
    check(results["ns-train epigraf-invert"])
    (run_dir,) = work.glob("outputs/*/epigraf-invert/*")  # nerfstudio names the experiment after the data's folder
    assert (run_dir / "config.yml").is_file() and list((run_dir / "nerfstudio_models").glob("step-*.ckpt"))
    # The dataset's box is the scene's [-1, 1]^3: generator world -> scene is a rotation and a scale of 2.
    transform = json.loads((run_dir / "dataparser_transforms.json").read_text())
    assert transform["scale"] == 2.0
    assert np.allclose(transform["transform"], [[1, 0, 0, 0], [0, 0, -1, 0], [0, 1, 0, 0]])


def test_nerfacto_reads_the_dataset_through_eg3d_data(readme_run) -> None:
    _, results = readme_run
    ran = results["ns-train nerfacto"]
    if ran.returncode != 0:
        # nerfacto builds LPIPS, which downloads AlexNet weights: without network it stops there, after the data
        # has loaded (README, "Offline"). Any other failure is ours.
        assert "alexnet" in ran.output and "URLError" in ran.output, ran.output[-4000:]
    assert "Caching all 2 images" in ran.output, ran.output[-4000:]

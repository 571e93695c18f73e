"""The viewer without a browser: GUI callbacks, frames for (simulated) clients, actions, live updates, ports."""

from __future__ import annotations

import math
import socket
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from pipelines.camera_distributions import CameraDistribution, CameraDistributionConfig
from epigraf_field.generator import TriPlaneGenerator
from pipelines.model import latent_classes, open_model
from pipelines.viewer import GeneratorViewer, LiveViewer, LiveViewerConfig, ViewerConfig, ViewSettings
from pipelines.viewer.camera_conversion import cameras_from_view
from pipelines.viewer.generator_copy import GeneratorCopy, seed_latent
from pipelines.viewer.server import find_free_port, reset_view
from pipelines.viewer.settings import SEED_CLASS
from renderers.volume_renderer import VolumeRendererConfig

from .conftest import tiny_generator_config, tiny_model

CPU = torch.device("cpu")


def wait_for(condition, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.01)


@pytest.fixture
def viewer(tiny_bundle: Path, tmp_path: Path):
    config = ViewerConfig(port=find_free_port("127.0.0.1", 18300), resolution=16, samples_per_ray=8, settle_seconds=0.0,
                          num_frustums=4, output_dir=tmp_path / "out", verbose=False, mesh_resolution=16)
    viewer = GeneratorViewer(open_model(tiny_bundle), config)
    viewer.start()
    yield viewer
    viewer.stop()


def test_gui_controls_write_the_settings(viewer: GeneratorViewer):
    gui = viewer.gui
    changes = [
        (gui.seed, 7, "seed", 7), (gui.seed_b, 9, "seed_b", 9), (gui.mix, 0.5, "mix", 0.5),
        (gui.psi, 0.7, "truncation_psi", 0.7), (gui.resolution, 32, "resolution", 32),
        (gui.samples, 12, "samples_per_ray", 12), (gui.sampler, "occupancy", "sampler", "occupancy"),
        (gui.output, "depth", "output", "depth"), (gui.background, (0, 0, 255), "background", (0, 0, 255)),
    ]
    for handle, value, name, expected in changes:
        handle.value = value  # viser runs the on_update callbacks on its thread pool
        wait_for(lambda: getattr(viewer.settings, name) == expected)
    gui.frustums.value = True
    wait_for(lambda: all(f.visible for f in viewer.frustums))
    assert len(viewer.frustums) == 4


def test_class_control_of_a_class_conditional_generator(tmp_path: Path):
    num_classes = 3
    generator = TriPlaneGenerator(replace(tiny_generator_config(), c_dim=num_classes), seed=0).eval()
    model = replace(tiny_model(generator.requires_grad_(False)), num_classes=num_classes)
    config = ViewerConfig(port=find_free_port("127.0.0.1", 18400), resolution=16, samples_per_ray=8,
                          settle_seconds=0.0, num_frustums=0, output_dir=tmp_path, verbose=False)
    viewer = GeneratorViewer(model, config)
    viewer.start()
    try:
        gui = viewer.gui
        assert list(gui.class_index.options) == [SEED_CLASS, "0", "1", "2"] and not gui.class_index.disabled
        gui.class_index.value = "2"
        wait_for(lambda: viewer.settings.class_index == 2)
        frames = []
        for k in range(num_classes):
            viewer.set_settings(class_index=k)
            frames.append(viewer.render_still(viewer.home))
        assert not np.array_equal(frames[0], frames[1]) and not np.array_equal(frames[1], frames[2])
        gui.class_index.value = SEED_CLASS
        wait_for(lambda: viewer.settings.class_index == -1)
        own = int(latent_classes(seed_latent(viewer.settings.seed, model.z_dim, CPU), num_classes)[0])
        assert np.array_equal(viewer.render_still(viewer.home), frames[own]), "the seed is shown in its own class"
    finally:
        viewer.stop()


def test_class_control_is_disabled_for_an_unconditional_generator(viewer: GeneratorViewer):
    assert viewer.gui.class_index.disabled and list(viewer.gui.class_index.options) == [SEED_CLASS]
    first = viewer.render_still(viewer.home)
    viewer.set_settings(class_index=1)  # a class means nothing to it: the same frame
    assert np.array_equal(viewer.render_still(viewer.home), first)


def test_frames_follow_camera_and_settings(viewer: GeneratorViewer):
    viewer.worker.update_camera(101, viewer.home)  # a simulated client
    wait_for(lambda: viewer.worker.frames_of(101) >= 1)  # settle 0: straight to full quality
    first = viewer.render_still(viewer.home)
    assert first.dtype == np.uint8 and first.shape == (16, 16, 3)
    viewer.set_settings(seed=5)
    wait_for(lambda: viewer.worker.frames_of(101) >= 2)
    assert not np.array_equal(viewer.render_still(viewer.home), first), "a new seed must change the image"
    viewer.set_settings(seed=0, output="opacity")
    opacity = viewer.render_still(viewer.home)
    assert np.array_equal(opacity[..., 0], opacity[..., 1])
    viewer.set_settings(output="depth")
    assert viewer.render_still(viewer.home).shape == (16, 16, 3)
    viewer.set_settings(output="rgb", background=(255, 0, 0), sampler="occupancy")
    red = viewer.render_still(viewer.home).astype(int)
    assert (red[0, 0, 0] - red[0, 0, 2]) > 100, "the corner shows the red background"
    wide = viewer.home.__class__(viewer.home.wxyz, viewer.home.position, viewer.home.fov, 2.0)
    assert viewer.render_still(wide).shape == (16, 32, 3)
    assert viewer.worker.errors == []


def test_interpolation_moves_between_the_two_seeds(viewer: GeneratorViewer):
    viewer.set_settings(seed=3, seed_b=4, mix=0.0)
    a = viewer.render_still(viewer.home).astype(float)
    viewer.set_settings(seed=4, mix=0.0)
    b = viewer.render_still(viewer.home).astype(float)
    viewer.set_settings(seed=3, mix=1.0)
    np.testing.assert_allclose(viewer.render_still(viewer.home).astype(float), b, atol=1)
    viewer.set_settings(mix=0.5)
    half = viewer.render_still(viewer.home).astype(float)
    assert np.abs(half - a).mean() > 0 and np.abs(half - b).mean() > 0


def test_save_view_and_extract_mesh(viewer: GeneratorViewer, tmp_path: Path):
    import imageio.v3 as iio
    import trimesh

    path = viewer.save_view(viewer.home)
    assert path.suffix == ".png" and iio.imread(path).shape == (16, 16, 3)
    with pytest.raises(ValueError, match="density range"):
        viewer.extract_mesh(resolution=16, threshold=1e6)
    from pipelines.evaluation.meshes import MeshExtractionConfig, density_grid

    def median_density():
        model, scene, _, _ = viewer._scene(viewer.settings)
        field = model.field(scene)
        return float(np.median(density_grid(field, 1, MeshExtractionConfig(resolution=16, box_half_size=0.5))))

    threshold = viewer.worker.submit(median_density).result()
    mesh = viewer.extract_mesh(resolution=16, threshold=threshold)
    assert len(mesh.faces) > 0 and np.abs(mesh.vertices).max() <= 0.5
    loaded = trimesh.load(viewer.mesh_path)
    assert len(loaded.vertices) == len(mesh.vertices)


def test_update_model_swaps_weights_without_tearing(viewer: GeneratorViewer, tiny_generator):
    viewer.worker.update_camera(7, viewer.home)
    wait_for(lambda: viewer.worker.frames_of(7) >= 1)
    before = viewer.render_still(viewer.home)
    changed = type(tiny_generator)(tiny_generator.config, seed=99)
    viewer.update_model(tiny_model(changed))
    assert viewer.generator_version == 1
    wait_for(lambda: viewer.worker.frames_of(7) >= 2)
    assert not np.array_equal(viewer.render_still(viewer.home), before)


def test_generator_copy_is_double_buffered(tiny_generator):
    copy = GeneratorCopy(tiny_model(tiny_generator))
    front, version = copy.acquire()
    assert version == 0 and front.network is not tiny_generator
    other = type(tiny_generator)(tiny_generator.config, seed=5)
    copy.update(tiny_model(other))
    # The render side keeps its copy until it asks again; then it gets every new weight at once.
    name = "decoder." + next(iter(tiny_generator.decoder.state_dict()))
    assert torch.equal(front.network.state_dict()[name], tiny_generator.state_dict()[name])
    assert not torch.equal(front.network.state_dict()[name], other.state_dict()[name])
    new_front, version = copy.acquire()
    assert version == 1 and new_front is not front
    for name, value in other.state_dict().items():
        assert torch.equal(new_front.network.state_dict()[name], value), name
    copy.update(tiny_model(tiny_generator))  # reuses the old buffer in place
    third, version = copy.acquire()
    assert third is front and version == 2
    with pytest.raises(ValueError, match="same"):
        from epigraf_field.generator import TriPlaneGenerator, TriPlaneGeneratorConfig

        copy.update(tiny_model(TriPlaneGenerator(TriPlaneGeneratorConfig.small())))


def test_live_viewer_start_update_stop(tiny_generator, tmp_path: Path):
    config = LiveViewerConfig(port=find_free_port("127.0.0.1", 18400), resolution=16, samples_per_ray=8,
                              settle_seconds=0.0, verbose=False, output_dir=tmp_path)
    live = LiveViewer(tiny_model(tiny_generator, CameraDistributionConfig.faces()), config)
    url = live.start()
    try:
        assert url.startswith("http://localhost:") and live.viewer.config.max_busy_fraction == 0.05
        assert live.viewer.frame_count == 0, "nothing renders without a browser"
        live.update_model(tiny_model(tiny_generator))
        live.update_model(tiny_model(tiny_generator))
        time.sleep(0.1)
        assert live.ticks == 2 and live.viewer.generator_version == 2 and live.viewer.frame_count == 0
    finally:
        live.stop()


def test_busy_port_moves_to_the_next_free_one(tiny_generator):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        viewer = GeneratorViewer(tiny_model(tiny_generator), ViewerConfig(port=port, verbose=False))
        try:
            url = viewer.start()
            assert viewer.port != port and viewer.port > port and url.endswith(f":{viewer.port}")
            assert viewer.server.get_host() == "127.0.0.1"
        finally:
            viewer.stop()


def test_reset_pose_is_dataset_like():
    config = CameraDistributionConfig.synthetic("360")
    view = reset_view(CameraDistribution(config))
    cameras = cameras_from_view(view)
    yaw, pitch, radius = cameras.to_spherical()
    assert float(radius[0]) == pytest.approx(config.radius, abs=1e-5)
    assert float(pitch[0]) == pytest.approx(math.radians(config.pitch_mean_degrees), abs=1e-5)
    assert float(cameras.fov_degrees[0]) == pytest.approx(config.fov_degrees, abs=1e-4)


def test_settings_are_validated():
    with pytest.raises(ValueError, match="sampler"):
        ViewSettings().updated(sampler="magic")
    with pytest.raises(ValueError, match="mix"):
        ViewSettings().updated(mix=2.0)
    with pytest.raises(ValueError, match="class"):
        ViewSettings().updated(class_index=-2)
    assert ViewSettings(class_index=2).updated(class_index=SEED_CLASS).class_index == -1
    assert ViewSettings().updated(class_index="1").class_index == 1
    config = ViewSettings(sampler="importance", samples_per_ray=10).renderer_config(VolumeRendererConfig())
    assert (config.num_coarse, config.num_fine, config.background) == (5, 5, "color")

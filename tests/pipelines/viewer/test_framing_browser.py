"""In Chromium: the first view and "Reset camera" show the whole object, about half the window high, at any aspect."""

from __future__ import annotations

import io
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from pipelines.bundle import save_bundle
from pipelines.camera_distributions import CameraDistribution, CameraDistributionConfig, sample_cameras
from pipelines.model import open_model
from pipelines.viewer import GeneratorViewer, ViewerConfig
from pipelines.viewer.server import find_free_port
from tests.pipelines.viewer.conftest import SphereModel, tiny_renderer_config
from tests.pipelines.viewer.test_browser import CHROMIUM, CHROMIUM_ARGS, _requirements, wait_for

pytestmark = pytest.mark.skipif(_requirements() is not None, reason=str(_requirements()))

HIDE_PANELS = "* { visibility: hidden !important; } canvas { visibility: visible !important; }"
"""Leaves only the 3D canvas on screen (the GUI panel and notifications would cover part of the object)."""
WINDOWS = ((1280, 720), (540, 900))
"""A wide and a tall browser window."""


def builtin_like_model(tmp_path: Path, generator) -> SphereModel:
    """A bundle trained on the built-in dataset's cameras (poses recorded: radius 1.3, fov 40, all around),
    whose object is a ball as large as the dataset's objects (they fit in a sphere of radius 0.42)."""
    poses = sample_cameras(CameraDistributionConfig.synthetic("360"), 64, torch.Generator().manual_seed(0)).to_label()
    bundle = save_bundle(tmp_path / "builtin", generator, tiny_renderer_config(),
                         CameraDistribution(CameraDistributionConfig.from_dataset(), poses), "patch-gan")
    model = open_model(bundle)
    assert model.cameras.poses is not None
    return SphereModel(model.generator, model.renderer, model.cameras, radius=0.4)


def faces_like_model(tmp_path: Path, generator) -> SphereModel:
    """FFHQ-like cameras (radius 1, fov 12) over a box of half-size 0.2, with a head-sized ball (the
    dataset's frames are 2 * tan(6 deg) = 0.21 high)."""
    renderer = tiny_renderer_config()
    renderer.box_half_size = 0.2
    bundle = save_bundle(tmp_path / "faces", generator, renderer,
                         CameraDistribution(CameraDistributionConfig.faces()), "patch-gan")
    model = open_model(bundle)
    assert model.renderer.config.box_half_size == 0.2
    return SphereModel(model.generator, model.renderer, model.cameras, radius=0.095)


def object_box(page) -> tuple[np.ndarray, tuple[int, int]]:
    """(top, bottom, left, right) of the magenta pixels of a screenshot with only the canvas shown, and (h, w)."""
    from PIL import Image

    style = page.add_style_tag(content=HIDE_PANELS)
    time.sleep(0.3)
    shot = np.asarray(Image.open(io.BytesIO(page.screenshot())).convert("RGB")).astype(int)
    style.evaluate("element => element.remove()")
    red, green, blue = shot[..., 0], shot[..., 1], shot[..., 2]
    magenta = (red > 150) & (blue > 150) & (green < 110)
    rows, cols = np.nonzero(magenta)
    assert rows.size > 0, "no part of the object is on screen"
    return np.array([rows.min(), rows.max(), cols.min(), cols.max()]), shot.shape[:2]


def assert_framed(page, what: str) -> None:
    (top, bottom, left, right), (height, width) = object_box(page)
    margin_y, margin_x = 0.03 * height, 0.03 * width
    assert top > margin_y and bottom < height - 1 - margin_y, f"{what}: object rows {top}..{bottom} of {height}"
    assert left > margin_x and right < width - 1 - margin_x, f"{what}: object columns {left}..{right} of {width}"
    share = (bottom - top + 1) / height
    assert 0.3 < share < 0.7, f"{what}: the object fills {share:.0%} of the window's height"
    assert (right - left + 1) / width < 0.85, f"{what}: the object fills {(right - left + 1) / width:.0%} of the width"


def wait_until_drawn(viewer: GeneratorViewer) -> None:
    wait_for(viewer.worker.is_settled, 30, "the refined frame")
    time.sleep(1.0)  # the frame travels to the page and is drawn


@pytest.mark.parametrize(
    "make_model", [builtin_like_model, pytest.param(faces_like_model, marks=pytest.mark.slow)], ids=["builtin", "faces"]
)
def test_first_view_and_reset_frame_the_object_in_wide_and_tall_windows(make_model, tiny_generator, tmp_path):
    from playwright.sync_api import sync_playwright

    model = make_model(tmp_path, tiny_generator)
    config = ViewerConfig(port=find_free_port("127.0.0.1", 18700), resolution=96, samples_per_ray=16,
                          settle_seconds=0.1, num_frustums=0, output_dir=tmp_path, verbose=False)
    viewer = GeneratorViewer(model, config)
    viewer.start()
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                for width, height in WINDOWS:
                    page = browser.new_page(viewport={"width": width, "height": height})
                    page.goto(viewer.url)
                    wait_for(lambda: viewer.client_count == 1, 30, "the browser to connect")
                    wait_until_drawn(viewer)
                    assert_framed(page, f"first view, {width}x{height}")
                    if width > height:
                        # Zoom far in (the object overflows the window), then "Reset camera" frames it again.
                        page.mouse.move(width // 3, height // 2)
                        for _ in range(12):
                            page.mouse.wheel(0, -400)
                            time.sleep(0.05)
                        wait_until_drawn(viewer)
                        with pytest.raises(AssertionError):
                            assert_framed(page, "zoomed in")
                        page.get_by_role("button", name="Reset camera").click()
                        time.sleep(0.5)
                        wait_until_drawn(viewer)
                        assert_framed(page, f"after Reset camera, {width}x{height}")
                    page.close()
                    wait_for(lambda: viewer.worker.client_ids == [], 10, "the closed page to disconnect")
            finally:
                browser.close()
    finally:
        viewer.stop()
    assert viewer.worker.errors == []

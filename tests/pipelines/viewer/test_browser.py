"""End to end in a real browser: Debian's chromium (headless, software WebGL) driven by playwright."""

from __future__ import annotations

import io
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest

from pipelines.model import open_model
from pipelines.viewer import GeneratorViewer, ViewerConfig
from pipelines.viewer.server import find_free_port

CHROMIUM = os.environ.get("EPIGRAF_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


def _requirements() -> str | None:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright Python package is not installed (pip install playwright; no browser download needed)"
    if not Path(CHROMIUM).is_file():
        return f"no chromium at {CHROMIUM} (apt-get install -y chromium, or set EPIGRAF_CHROMIUM)"
    return None


pytestmark = pytest.mark.skipif(_requirements() is not None, reason=str(_requirements()))


def wait_for(condition, timeout: float, what: str) -> float:
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.05)
    return time.monotonic() - start


def scene_pixels(page) -> np.ndarray:
    """The 3D view left of the GUI panel, below viser's notification corner, as an RGB array."""
    from PIL import Image

    shot = np.asarray(Image.open(io.BytesIO(page.screenshot())).convert("RGB")).astype(float)
    return shot[200:440, 60:290]


def test_browser_shows_frames_follows_the_seed_slider_and_disconnects(tiny_bundle: Path, tmp_path: Path):
    from playwright.sync_api import sync_playwright

    config = ViewerConfig(port=find_free_port("127.0.0.1", 18600), resolution=32, samples_per_ray=8,
                          settle_seconds=0.1, output_dir=tmp_path, verbose=False)
    viewer = GeneratorViewer(open_model(tiny_bundle), config)
    viewer.start()
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                page = browser.new_page(viewport={"width": 640, "height": 480})
                page.goto(viewer.url)
                wait_for(lambda: viewer.client_count == 1, 30, "the browser to connect")
                wait_for(lambda: viewer.frame_count >= 1, 20, "the first frame")
                # Let the frame reach the page and be drawn.
                time.sleep(1.0)
                before = scene_pixels(page)
                assert before.std() > 2.0, "the 3D view is blank"
                frames = viewer.frame_count

                slider = page.get_by_role("slider").first  # the panel's first slider is the seed
                assert slider.get_attribute("aria-valuenow") == "0"
                slider.focus()
                slider.press("ArrowRight")
                wait_for(lambda: viewer.settings.seed == 1, 10, "the seed slider to reach the server")
                wait_for(lambda: viewer.frame_count > frames, 10, "a frame of the new seed")
                time.sleep(1.0)
                after = scene_pixels(page)
                assert np.abs(after - before).mean() > 1.0, "moving the seed slider did not change the image"

                page.close()
                wait_for(lambda: viewer.client_count == 0, 10, "the closed page to disconnect")
                wait_for(lambda: viewer.worker.client_ids == [], 10, "the render thread to forget the page")
            finally:
                browser.close()
    finally:
        viewer.stop()
    assert viewer.worker.errors == []

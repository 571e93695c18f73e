"""A posed multi-view capture in nerfstudio's format (transforms.json + PNGs), rendered with our renderer."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from pipelines.nerfstudio.scene_transform import OPENCV_TO_OPENGL, SceneTransformConfig
from renderers.cameras import Cameras
from renderers.volume_renderer import VolumeRenderer


def orbit_cameras(num_views: int, radius: float, fov_degrees: float, pitch_degrees: float = 15.0) -> Cameras:
    """``num_views`` cameras evenly spaced in yaw on a ring at ``pitch_degrees`` elevation, looking at the origin."""
    if num_views < 1:
        raise ValueError(f"num_views must be >= 1, got {num_views}")
    yaw = torch.arange(num_views, dtype=torch.float32) * (2 * math.pi / num_views)
    pitch = torch.full((num_views,), math.radians(pitch_degrees))
    return Cameras.from_spherical(yaw, pitch, radius, fov_degrees)


def write_capture(
    directory: str | Path,
    field: object,
    renderer: VolumeRenderer,
    cameras: Cameras,
    resolution: int,
    transform: SceneTransformConfig | None = None,
) -> Path:
    """Renders ``field`` (one scene) from ``cameras`` and writes a nerfstudio capture; returns ``transforms.json``.

    Poses are written in the scene coordinates that ``transform`` maps to our world
    (``p_ours = scale * R p_scene + translation``), OpenGL camera axes, as nerfstudio's
    ``nerfstudio-data`` parser reads them. Parse the capture with ``--orientation-method none
    --center-method none --auto-scale-poses False`` to keep those coordinates, and give the same
    ``transform`` to the field that is fitted to it.
    """
    directory = Path(directory)
    images = directory / "images"
    images.mkdir(parents=True, exist_ok=True)
    transform = SceneTransformConfig() if transform is None else transform
    frames = []
    for index in range(cameras.batch_size):
        camera = cameras[index]
        with torch.no_grad():
            rgb = renderer.render_image(field, camera, resolution).rgb[0]
        pixels = (rgb.clamp(0, 1).permute(1, 2, 0).cpu().numpy() * 255.0 + 0.5).astype(np.uint8)
        name = f"images/frame_{index:05d}.png"
        Image.fromarray(pixels).save(directory / name)
        cam2world = transform.cam2world_from_box(camera.cam2world[0].cpu()) @ OPENCV_TO_OPENGL
        k = camera.intrinsics[0].cpu()
        frames.append(
            {
                "file_path": name,
                "transform_matrix": cam2world.tolist(),
                "fl_x": float(k[0, 0]) * resolution,
                "fl_y": float(k[1, 1]) * resolution,
                "cx": float(k[0, 2]) * resolution,
                "cy": float(k[1, 2]) * resolution,
            }
        )
    meta = {"camera_model": "OPENCV", "w": resolution, "h": resolution, "frames": frames}
    path = directory / "transforms.json"
    path.write_text(json.dumps(meta, indent=2))
    return path

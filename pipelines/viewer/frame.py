"""One viewer frame: the generator's field rendered from a browser camera as an 8-bit image."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from pipelines.model import GeneratorModel
from pipelines.viewer.camera_conversion import ViewCamera, cameras_from_view, view_image_size, view_rays
from pipelines.viewer.settings import ViewSettings
from renderers.cameras import Cameras
from renderers.occupancy import OccupancyGrid
from renderers.preview import render_rays_in_grid
from renderers.volume_renderer import RenderedImages, VolumeRenderer, VolumeRendererConfig

MAX_ASPECT = 2.5
"""Renders are at most this many times wider than tall (wider canvases are stretched)."""


@torch.inference_mode()
def render_view(
    field: object,
    camera: ViewCamera,
    height: int,
    renderer_config: VolumeRendererConfig,
    occupancy: OccupancyGrid | None = None,
) -> RenderedImages:
    """Renders one scene of ``field`` from a browser camera: images [1, c, height, width]."""
    height, width = view_image_size(height, camera.aspect, max_width=int(MAX_ASPECT * height))
    device = _field_device(field)
    cameras = cameras_from_view(camera, device)
    rays = view_rays(cameras, height, width, renderer_config.box_half_size)
    renderer = VolumeRenderer(renderer_config)
    return renderer.render_rays(field, rays, occupancy=occupancy).to_images(height, width)


@torch.inference_mode()
def render_grid_view(
    field: object,
    camera: ViewCamera,
    height: int,
    renderer_config: VolumeRendererConfig,
    grid: OccupancyGrid,
    num_samples: int,
) -> RenderedImages:
    """The fast preview of :func:`render_view`: ``num_samples`` per ray over its chord through the
    occupied part of ``grid``'s box, the field queried only in occupied cells (see renderers.preview)."""
    height, width = view_image_size(height, camera.aspect, max_width=int(MAX_ASPECT * height))
    cameras = cameras_from_view(camera, _field_device(field))
    rays = view_rays(cameras, height, width, renderer_config.box_half_size)
    background = VolumeRenderer(renderer_config).background
    out = render_rays_in_grid(field, rays, grid, num_samples, background, renderer_config.chunk_size)
    return out.to_images(height, width)


@torch.inference_mode()
def render_final_view(
    model: GeneratorModel,
    scene: Tensor,
    ws: Tensor,
    camera: ViewCamera,
    height: int,
    renderer: VolumeRenderer,
) -> RenderedImages:
    """The model's final images (e.g. EG3D's super-resolved ones, which are square) for a browser camera.

    A square image wide enough for the canvas is rendered with the view's pixel size, and the
    canvas is cut from its centre: the same picture a direct render of the canvas would frame.
    """
    height, width = view_image_size(height, camera.aspect, max_width=int(MAX_ASPECT * height))
    cameras, side = square_view_cameras(camera, height, width, model.device)
    images = model.render_scene(scene, ws, cameras, side, renderer)
    top, left = (side - height) // 2, (side - width) // 2
    crop = lambda t: t[..., top : top + height, left : left + width]  # noqa: E731
    return RenderedImages(rgb=crop(images.rgb), depth=crop(images.depth), opacity=crop(images.opacity),
                          num_field_evaluations=images.num_field_evaluations)


def square_view_cameras(camera: ViewCamera, height: int, width: int, device: torch.device) -> tuple[Cameras, int]:
    """A square camera of side max(height, width) pixels with the view's centre, orientation and pixel size."""
    view = cameras_from_view(camera, device)
    side = max(height, width)
    focal = float(view.intrinsics[0, 1, 1]) * height / side  # normalized by the side instead of the height
    intrinsics = torch.tensor([[focal, 0.0, 0.5], [0.0, focal, 0.5], [0.0, 0.0, 1.0]], device=device)
    return Cameras(view.cam2world, intrinsics[None]), side


def to_display_image(images: RenderedImages, settings: ViewSettings) -> np.ndarray:
    """The chosen output as uint8 [h, w, 3]: colour, depth (near bright, background colour where empty) or opacity."""
    if settings.output == "rgb":
        image = images.rgb[0]
    elif settings.output == "opacity":
        image = images.opacity[0].expand(3, -1, -1)
    else:
        image = _depth_image(images.depth[0, 0], images.opacity[0, 0], settings.background)
    array = (image.clamp(0, 1) * 255.0 + 0.5).to(torch.uint8).permute(1, 2, 0).cpu().numpy()
    return np.ascontiguousarray(array)


def _depth_image(depth: Tensor, opacity: Tensor, background: tuple[int, int, int]) -> Tensor:
    """Depth normalized over the pixels that hit something, near = bright, blended over the background."""
    hit = opacity > 0.5
    if hit.any():
        near, far = depth[hit].min(), depth[hit].max()
        shade = 1.0 - (depth - near) / (far - near).clamp(min=1e-6)
    else:
        shade = torch.zeros_like(depth)
    shade = 0.15 + 0.85 * shade.clamp(0, 1)
    bg = torch.tensor(background, dtype=depth.dtype, device=depth.device)[:, None, None] / 255.0
    alpha = opacity.clamp(0, 1)[None]
    return alpha * shade[None].expand(3, -1, -1) + (1 - alpha) * bg


def _field_device(field: object) -> torch.device:
    planes = getattr(field, "planes", None)
    if isinstance(planes, Tensor):
        return planes.device
    return torch.device("cpu")

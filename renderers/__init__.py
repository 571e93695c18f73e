"""Renderers: turn any radiance field into pixels (cameras, rays, samplers, compositing)."""

from renderers.cameras import Cameras, intrinsics_from_fov
from renderers.compositing import Composite, composite
from renderers.field import FieldValues, RadianceField, RadianceFieldOutputs
from renderers.occupancy import OccupancyGrid, occupancy_samples, traverse_occupancy_grid
from renderers.patches import Patch, crop_patches, pixel_centers
from renderers.rays import RayBundle, generate_rays, intersect_box
from renderers.samplers import RaySamples, importance_samples, sample_points, stratified_samples
from renderers.volume_renderer import (
    RenderedImages,
    RenderOutput,
    VolumeRenderer,
    VolumeRendererConfig,
    backdrop_distances,
)

__all__ = [
    "Cameras",
    "Composite",
    "FieldValues",
    "OccupancyGrid",
    "Patch",
    "RadianceField",
    "RadianceFieldOutputs",
    "RayBundle",
    "RaySamples",
    "RenderOutput",
    "RenderedImages",
    "VolumeRenderer",
    "VolumeRendererConfig",
    "backdrop_distances",
    "composite",
    "crop_patches",
    "generate_rays",
    "importance_samples",
    "intersect_box",
    "intrinsics_from_fov",
    "occupancy_samples",
    "pixel_centers",
    "sample_points",
    "stratified_samples",
    "traverse_occupancy_grid",
]

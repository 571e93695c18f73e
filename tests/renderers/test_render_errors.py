"""Bad input gives a clear ValueError that names the argument and what was expected."""

from __future__ import annotations

import jaxtyping
import pytest
import torch

from renderers.analytic import SphereField
from renderers.cameras import Cameras
from renderers.compositing import composite
from renderers.field import FieldValues
from renderers.occupancy import OccupancyGrid, traverse_occupancy_grid
from renderers.patches import Patch, crop_patches, pixel_centers
from renderers.rays import RayBundle, generate_rays
from renderers.samplers import stratified_samples
from renderers.volume_renderer import VolumeRenderer, VolumeRendererConfig


@pytest.fixture(autouse=True)
def without_shape_checks():
    """Runs these tests as users run the library: without the test-only jaxtyping/beartype checks
    (which would report a wrong shape first, as a TypeError), so the library's own ValueErrors are
    what is seen."""
    jaxtyping.config.update("jaxtyping_disable", True)
    yield
    jaxtyping.config.update("jaxtyping_disable", False)


def cams(b: int = 1) -> Cameras:
    return Cameras.from_spherical(torch.zeros(b), torch.zeros(b), radius=2.0, fov_degrees=30.0)


def rays(b: int = 1, r: int = 2) -> RayBundle:
    directions = torch.tensor([0.0, 0.0, 1.0]).expand(b, r, 3).clone()
    return RayBundle(torch.zeros(b, r, 3), directions, torch.ones(b, r, 1), 2 * torch.ones(b, r, 1))


@pytest.mark.parametrize(
    ("scales", "offsets", "message"),
    [
        (torch.tensor([0.0]), torch.zeros(1, 2), "scales must lie in"),
        (torch.tensor([1.5]), torch.zeros(1, 2), "scales must lie in"),
        (torch.tensor([0.5]), torch.tensor([[0.6, 0.0]]), "offsets must lie in"),
        (torch.tensor([0.5]), torch.tensor([[-0.1, 0.0]]), "offsets must lie in"),
        (torch.tensor([float("nan")]), torch.zeros(1, 2), "non-finite"),
        (torch.tensor([0.5, 0.5]), torch.zeros(1, 2), "one \\(scale, offset\\) per batch item"),
    ],
)
def test_bad_patches(scales, offsets, message):
    with pytest.raises(ValueError, match=f"Patch.*{message}"):
        Patch(scales, offsets)


def test_patch_offset_tolerance_accepts_rounding():
    scale = torch.tensor([0.3])
    # 1e-7 past the far edge is float rounding: accepted as given (not clamped, not rejected) ...
    offsets = (1.0 - scale).expand(1, 2) + 1e-7
    patch = Patch(scale, offsets)
    assert torch.equal(patch.offsets, offsets)
    assert torch.equal(patch.scales, scale)
    # ... while 1e-3 past it is a patch outside the image.
    with pytest.raises(ValueError, match="Patch.offsets must lie in"):
        Patch(scale, (1.0 - scale).expand(1, 2) + 1e-3)


def test_bad_patch_shapes():
    with pytest.raises(ValueError, match=r"Patch.offsets must be a tensor of shape \[b, 2\]"):
        Patch(torch.ones(2), torch.zeros(2, 3))


def test_shape_errors_are_caught_by_the_test_hook_too():
    jaxtyping.config.update("jaxtyping_disable", False)
    with pytest.raises(TypeError):
        Patch(torch.ones(2), torch.zeros(2, 3))


def test_bad_images_for_crop():
    with pytest.raises(ValueError, match=r"images must have shape \[b, c, h, w\]"):
        crop_patches(torch.zeros(3, 4, 4), Patch.full(3), 2)
    with pytest.raises(ValueError, match="one patch per image"):
        crop_patches(torch.zeros(2, 3, 4, 4), Patch.full(3), 2)


def test_bad_resolution():
    for resolution in (0, -3, 2.5, True):
        with pytest.raises(ValueError, match="resolution must be a positive int"):
            pixel_centers(resolution, 1)


def test_non_finite_or_malformed_cameras():
    pose = torch.eye(4)[None].clone()
    pose[0, 0, 3] = float("nan")
    with pytest.raises(ValueError, match="cam2world holds non-finite"):
        Cameras(pose, cams().intrinsics)
    with pytest.raises(ValueError, match="near < far"):
        cams().with_bounds(2.0, 1.0)
    with pytest.raises(ValueError, match="cameras must be a renderers.cameras.Cameras"):
        generate_rays(torch.eye(4)[None], 4)


def test_bad_ray_bundles():
    with pytest.raises(ValueError, match="near <= far"):
        RayBundle(torch.zeros(1, 2, 3), torch.ones(1, 2, 3), torch.full((1, 2, 1), 3.0), torch.ones(1, 2, 1))
    with pytest.raises(ValueError, match=r"RayBundle.directions must have shape \[b, r, 3\]"):
        RayBundle(torch.zeros(1, 2, 3), torch.ones(1, 2, 2), torch.ones(1, 2, 1), torch.ones(1, 2, 1))
    with pytest.raises(ValueError, match="RayBundle.far has shape"):
        RayBundle(torch.zeros(1, 2, 3), torch.ones(1, 2, 3), torch.ones(1, 2, 1), torch.ones(1, 3, 1))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"sampler": "uniform"}, "sampler must be one of"),
        ({"background": "grey"}, "background must be one of"),
        ({"traversal_backend": "cuda"}, "traversal_backend must be one of"),
        ({"num_coarse": 0}, "num_coarse must be positive"),
        ({"occupancy_threshold": 1.5}, "occupancy_threshold must lie in"),
        ({"box_half_size": -1.0}, "box_half_size must be positive"),
    ],
)
def test_bad_config(kwargs, message):
    with pytest.raises(ValueError, match=f"VolumeRendererConfig.{message}"):
        VolumeRendererConfig(**kwargs)


def test_bad_fields():
    renderer = VolumeRenderer(VolumeRendererConfig(sampler="stratified", num_coarse=4))
    with pytest.raises(ValueError, match="field must satisfy renderers.field.RadianceField"):
        renderer.render_rays(lambda points, directions=None: None, rays())

    class WrongShape:
        def __call__(self, points, directions=None):
            return FieldValues(points[..., :1], points[..., :2])

        def density(self, points):
            return points[..., :1]

    with pytest.raises(ValueError, match=r"field output rgb must have shape \[1, 8, 3\]"):
        renderer.render_rays(WrongShape(), rays())


def test_bad_sampler_arguments():
    with pytest.raises(ValueError, match="num_samples must be a positive int"):
        stratified_samples(rays(), 0)
    with pytest.raises(ValueError, match="rays must be a renderers.rays.RayBundle"):
        VolumeRenderer().render_rays(SphereField(), torch.zeros(1, 2, 3))


def test_bad_occupancy_arguments():
    grid = OccupancyGrid(torch.ones(2, 4, 4, 4, dtype=torch.bool))
    renderer = VolumeRenderer(VolumeRendererConfig(sampler="occupancy"))
    with pytest.raises(ValueError, match="occupancy grid holds 2 scenes but rays belong to 1"):
        renderer.render_rays(SphereField(), rays(), occupancy=grid)
    with pytest.raises(ValueError, match="bool tensor"):
        OccupancyGrid(torch.ones(1, 4, 4, 4))
    with pytest.raises(ValueError, match="backend must be one of"):
        traverse_occupancy_grid(torch.zeros(1, 3), torch.ones(1, 3), grid.binaries, torch.zeros(1, dtype=torch.long),
                                0.5, torch.zeros(1), torch.ones(1), 0.1, backend="cuda")
    with pytest.raises(ValueError, match="needs CUDA tensors"):
        traverse_occupancy_grid(torch.zeros(1, 3), torch.ones(1, 3), grid.binaries, torch.zeros(1, dtype=torch.long),
                                0.5, torch.zeros(1), torch.ones(1), 0.1, backend="nerfacc")
    with pytest.raises(ValueError, match="dilation must be >= 0"):
        OccupancyGrid.from_field(SphereField(), 1, dilation=-1)


def test_bad_background_in_composite():
    t = torch.zeros(1, 1, 2)
    with pytest.raises(ValueError, match="background colour must be 3 finite numbers"):
        composite(t, t + 1, t, torch.zeros(1, 1, 2, 3), background=(1.0, 0.0))


def test_analytic_field_scene_mismatch():
    field = SphereField(radius=torch.tensor([0.1, 0.2, 0.3]))
    with pytest.raises(ValueError, match="field has 3 scenes of sigma|3 scenes of radius"):
        field.density(torch.zeros(2, 5, 3))

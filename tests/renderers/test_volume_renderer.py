"""The volume renderer: silhouettes, depth, occupancy vs dense, gradients, seeds, chunks, patches, devices."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch
from tests.renderers.helpers import RandomTriPlaneField, psnr

from epigraf_field.generator import TriPlaneGenerator, TriPlaneGeneratorConfig
from renderers.analytic import SphereField
from renderers.cameras import Cameras
from renderers.patches import Patch, crop_patches
from renderers.rays import generate_rays
from renderers.volume_renderer import VolumeRenderer, VolumeRendererConfig

REFERENCE = VolumeRendererConfig(sampler="stratified", num_coarse=512)


def orbit(b: int = 2, radius: float = 2.0, fov: float = 30.0) -> Cameras:
    return Cameras.from_spherical(torch.tensor([0.3, 2.1, -1.2])[:b], torch.tensor([0.25, -0.3, 0.6])[:b],
                                  radius=radius, fov_degrees=fov)


@pytest.mark.parametrize("sampler", ["importance", "occupancy"])
def test_sphere_silhouette_is_exact(sampler):
    radii = torch.tensor([0.3, 0.2])
    field = SphereField(radius=radii, center=(0.05, -0.02, 0.0))
    cams = orbit()
    rays = generate_rays(cams, 16)
    out = VolumeRenderer(VolumeRendererConfig(sampler=sampler)).render_rays(field, rays)
    center = torch.tensor([0.05, -0.02, 0.0])
    # Distance from the sphere centre to each ray's line.
    rel = center - rays.origins
    along = (rel * rays.directions).sum(-1, keepdim=True)
    miss_distance = (rel - along * rays.directions).norm(dim=-1)
    opacity = out.opacity[..., 0]
    inside = miss_distance < radii[:, None] - 2e-3
    outside = miss_distance > radii[:, None] + 1e-4
    assert inside.sum() > 20 and outside.sum() > 20
    assert (opacity[inside] > 0.99).all()
    assert (opacity[outside] < 1e-6).all()


@pytest.mark.parametrize("sampler", ["importance", "occupancy", "stratified"])
def test_sphere_depth_along_the_centre_ray(sampler):
    radius, distance = 0.3, 2.0
    cams = Cameras.look_at(torch.tensor([[0.0, 0.0, distance]]), fov_degrees=20.0)
    config = VolumeRendererConfig(sampler=sampler, num_coarse=96 if sampler == "stratified" else 48)
    out = VolumeRenderer(config).render_image(SphereField(radius=radius), cams, resolution=1)
    # Surface at |c| - r; a density of 200 puts the expected depth about 1 / 200 behind it.
    assert abs(out.depth.item() - (distance - radius)) < 0.015
    assert out.opacity.item() > 0.999


def test_occupancy_matches_dense_rendering_on_the_sphere():
    field = SphereField(radius=torch.tensor([0.3, 0.22]), color=torch.tensor([[0.9, 0.4, 0.1], [0.1, 0.5, 0.9]]))
    cams = orbit()
    reference = VolumeRenderer(REFERENCE).render_image(field, cams, 24)
    occupancy = VolumeRenderer(VolumeRendererConfig(sampler="occupancy")).render_image(field, cams, 24)
    dense = VolumeRenderer(VolumeRendererConfig()).render_image(field, cams, 24)
    assert psnr(occupancy.rgb, reference.rgb) >= 35.0
    assert psnr(dense.rgb, reference.rgb) >= 35.0
    assert occupancy.num_field_evaluations * 3 <= dense.num_field_evaluations


def test_occupancy_matches_dense_rendering_on_a_random_triplane_field(random_field):
    cams = orbit()
    reference = VolumeRenderer(REFERENCE).render_image(random_field, cams, 20)
    occupancy = VolumeRenderer(VolumeRendererConfig(sampler="occupancy")).render_image(random_field, cams, 20)
    assert 0.2 < reference.opacity.mean() < 0.9  # the field has structure: both empty and dense regions
    assert psnr(occupancy.rgb, reference.rgb) >= 35.0
    assert occupancy.num_field_evaluations < 96 * 2 * 20 * 20


def test_occupancy_with_a_tri_plane_generator():
    config = dataclasses.replace(TriPlaneGeneratorConfig.small(), plane_resolution=16, decoder_backend="torch")
    generator = TriPlaneGenerator(config, seed=0)
    with torch.no_grad():
        planes = generator.generate_planes(torch.randn(2, config.z_dim, generator=torch.Generator().manual_seed(0)))
        field = generator.field(planes)
        cams = orbit()
        reference = VolumeRenderer(REFERENCE).render_image(field, cams, 8)
        # A randomly initialised generator has low density everywhere: a zero threshold keeps every cell.
        occupancy = VolumeRenderer(VolumeRendererConfig(sampler="occupancy", occupancy_threshold=0.0))
        out = occupancy.render_image(field, cams, 8)
    assert psnr(out.rgb, reference.rgb) >= 35.0


@pytest.mark.parametrize("sampler", ["stratified", "importance", "occupancy"])
def test_gradients_reach_the_field(sampler):
    field = RandomTriPlaneField(batch_size=2, rng=torch.Generator().manual_seed(3))
    renderer = VolumeRenderer(VolumeRendererConfig(sampler=sampler, num_coarse=8, num_fine=8, occupancy_resolution=16))
    out = renderer.render_image(field, orbit(), 8, rng=torch.Generator().manual_seed(0))
    (out.rgb.mean() + out.depth.mean()).backward()
    for name, parameter in field.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name


def test_gradients_reach_analytic_parameters():
    field = SphereField(radius=0.3)
    out = VolumeRenderer(VolumeRendererConfig(num_coarse=8, num_fine=8)).render_image(field, orbit(), 8)
    out.rgb.sum().backward()
    assert field.color.grad.abs().sum() > 0 and field.sigma.grad.abs().sum() > 0


@pytest.mark.parametrize("sampler", ["stratified", "importance", "occupancy"])
def test_renders_are_deterministic_under_a_seed(random_field, sampler):
    renderer = VolumeRenderer(VolumeRendererConfig(sampler=sampler, num_coarse=8, num_fine=8, occupancy_resolution=16))
    render = lambda seed: renderer.render_image(  # noqa: E731
        random_field, orbit(), 8, rng=torch.Generator().manual_seed(seed)
    ).rgb.detach()
    assert torch.equal(render(4), render(4))
    assert not torch.equal(render(4), render(5))
    evaluation = lambda: renderer.render_image(random_field, orbit(), 8).rgb.detach()  # noqa: E731
    assert torch.equal(evaluation(), evaluation())


@pytest.mark.parametrize("sampler", ["importance", "occupancy"])
def test_chunking_does_not_change_the_render(random_field, sampler):
    small = VolumeRenderer(VolumeRendererConfig(sampler=sampler, num_coarse=8, num_fine=8, chunk_size=30))
    large = VolumeRenderer(VolumeRendererConfig(sampler=sampler, num_coarse=8, num_fine=8))
    cams = orbit()
    grid = large.build_occupancy(random_field, 2) if sampler == "occupancy" else None
    a = small.render_image(random_field, cams, 8, occupancy=grid)
    b = large.render_image(random_field, cams, 8, occupancy=grid)
    assert torch.allclose(a.rgb, b.rgb, atol=1e-6) and torch.allclose(a.depth, b.depth, atol=1e-5)
    assert a.num_field_evaluations >= b.num_field_evaluations


def test_a_kept_occupancy_grid_is_reused():
    class CountingField:
        """Counts density-only queries (what building a grid costs); renders go through __call__."""

        def __init__(self, inner):
            self.inner, self.density_queries = inner, 0

        def __call__(self, points, directions=None):
            return self.inner(points, directions)

        def density(self, points):
            self.density_queries += 1
            return self.inner.density(points)

    field = CountingField(SphereField(radius=0.25))
    renderer = VolumeRenderer(VolumeRendererConfig(sampler="occupancy", occupancy_resolution=16))
    grid = renderer.build_occupancy(field, 2)
    built = field.density_queries
    renderer.render_image(field, orbit(), 8, occupancy=grid)
    assert built > 0 and field.density_queries == built
    renderer.render_image(field, orbit(), 8)  # no grid given: it is built from the field
    assert field.density_queries > built


def test_rendered_patch_equals_crop_of_the_full_render(random_field):
    renderer = VolumeRenderer(VolumeRendererConfig(num_coarse=8, num_fine=8))
    cams = orbit()
    full = renderer.render_image(random_field, cams, 16)
    patch = Patch(torch.tensor([0.5, 0.5]), torch.tensor([[0.5, 0.0], [0.0, 0.5]]))
    part = renderer.render_image(random_field, cams, 8, patch)
    assert torch.allclose(part.rgb, crop_patches(full.rgb, patch, 8), atol=1e-6)


def test_render_output_shapes(random_field):
    out = VolumeRenderer(VolumeRendererConfig(num_coarse=8, num_fine=4)).render_rays(random_field, generate_rays(orbit(), 4))
    assert out.rgb.shape == (2, 16, 3) and out.depth.shape == (2, 16, 1) and out.opacity.shape == (2, 16, 1)
    assert out.weights.shape == (2, 16, 12) and out.num_field_evaluations == 2 * 16 * 12
    images = out.to_images(4, 4)
    assert images.rgb.shape == (2, 3, 4, 4) and torch.equal(images.rgb[:, :, 1, 2], out.rgb[:, 6])


def test_config_round_trips_through_json():
    config = VolumeRendererConfig(sampler="occupancy", background="color", background_color=(0.1, 0.2, 0.3))
    data = json.loads(json.dumps(dataclasses.asdict(config)))
    data["background_color"] = tuple(data["background_color"])  # JSON has no tuples
    assert VolumeRendererConfig(**data) == config


@pytest.mark.cuda
@pytest.mark.parametrize("sampler", ["stratified", "importance", "occupancy"])
def test_cpu_and_cuda_renders_agree(sampler):
    field = RandomTriPlaneField(batch_size=2, rng=torch.Generator().manual_seed(3))
    renderer = VolumeRenderer(VolumeRendererConfig(sampler=sampler))
    cams = orbit()
    cpu = renderer.render_image(field, cams, 16)
    gpu = renderer.render_image(field.cuda(), cams.to("cuda"), 16)
    assert psnr(gpu.rgb.cpu(), cpu.rgb) >= 50.0
    assert torch.allclose(gpu.opacity.cpu(), cpu.opacity, atol=1e-3)

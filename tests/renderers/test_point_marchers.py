"""EG3D's and EpiGRAF's point-sample ray marchers, their sampling and importance passes, and corner pixel rays."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from epigraf_field.config_io import config_from_json, config_to_json
from renderers.analytic import ConstantField, SphereField
from renderers.cameras import Cameras
from renderers.field import FieldValues
from renderers.point_marchers import composite_midpoints, midpoint_depths, midpoint_importance_depths
from renderers.rays import RayBundle
from renderers.volume_renderer import VolumeRenderer, VolumeRendererConfig


def test_two_dense_points_make_one_opaque_interval():
    out = composite_midpoints(torch.tensor([[[0.0, 1.0]]]), torch.full((1, 1, 2), 1e3),
                              torch.tensor([[[[0.2, 0.4, 0.6], [0.4, 0.6, 0.8]]]]), "white")
    assert torch.allclose(out.weights, torch.ones(1, 1, 1))
    assert torch.allclose(out.rgb, torch.tensor([[[0.3, 0.5, 0.7]]]))
    assert torch.allclose(out.depth, torch.tensor([[[0.5]]]))


def test_density_logits_are_averaged_before_the_softplus(rng):
    t = torch.sort(torch.rand(1, 3, 6, generator=rng) * 2, dim=-1).values
    logits = torch.randn(1, 3, 6, generator=rng)
    rgb = torch.rand(1, 3, 6, 3, generator=rng)
    out = composite_midpoints(t, F.softplus(logits), rgb, "black", density_logits=logits)
    sigma = F.softplus((logits[..., 1:] + logits[..., :-1]) / 2)  # EG3D's MipRayMarcher2
    alpha = 1 - torch.exp(-sigma * (t[..., 1:] - t[..., :-1]))
    transmittance = torch.cumprod(torch.cat([torch.ones_like(alpha[..., :1]), 1 - alpha + 1e-10], -1), -1)[..., :-1]
    assert torch.allclose(out.weights, alpha * transmittance, atol=1e-6)
    averaged = composite_midpoints(t, F.softplus(logits), rgb, "black")
    assert not torch.allclose(averaged.weights, out.weights)


def test_depths_include_near_and_far_and_jitter_forward(rng):
    rays = RayBundle(torch.zeros(1, 2, 3), torch.tensor([[[0.0, 0.0, 1.0]] * 2]), torch.ones(1, 2, 1),
                     torch.full((1, 2, 1), 3.0))
    assert torch.allclose(midpoint_depths(rays, 3), torch.tensor([[[1.0, 2.0, 3.0]] * 2]))
    jittered = midpoint_depths(rays, 3, rng)
    assert ((jittered >= torch.tensor([1.0, 2.0, 3.0])) & (jittered <= torch.tensor([2.0, 3.0, 4.0]))).all()


def test_importance_depths_follow_the_weights():
    t = torch.linspace(0, 1, 11).expand(1, 1, 11)
    weights = torch.zeros(1, 1, 10)
    weights[..., 6] = 1.0  # all mass in the interval [0.6, 0.7]
    fine = midpoint_importance_depths(t, weights, 16)
    assert fine.shape == (1, 1, 16)
    middle = fine[..., 3:13]  # linspace(0, 1) uniforms: the first and last land at the ends of the range
    assert ((middle > 0.5) & (middle < 0.8)).all() and (fine[..., 0] < 0.1) and (fine[..., -1] > 0.8)


def test_renderer_with_the_midpoint_marcher_renders_a_sphere():
    renderer = VolumeRenderer(VolumeRendererConfig(sampler="importance", num_coarse=16, num_fine=16,
                                                   marcher="midpoint", background="black"))
    cams = Cameras.from_spherical(torch.zeros(1), torch.zeros(1), radius=2.0, fov_degrees=30.0)
    out = renderer.render_image(SphereField(), cams, resolution=8)
    assert out.opacity[0, 0, 4, 4] > 0.9 and out.opacity[0, 0, 0, 0] < 0.1  # the sphere fills the centre only


@pytest.mark.parametrize("changes", [{"sampler": "occupancy"}, {"background": "last_sample"}, {"num_coarse": 2}])
def test_point_marchers_give_way_to_quadrature_where_they_do_not_apply(changes):
    config = VolumeRendererConfig(marcher="midpoint", num_fine=0, **changes)
    assert not config.uses_point_marcher
    assert VolumeRendererConfig(marcher="midpoint").uses_point_marcher
    cams = Cameras.from_spherical(torch.zeros(1), torch.zeros(1), radius=2.0, fov_degrees=30.0)
    quadrature = VolumeRenderer(VolumeRendererConfig(num_fine=0, **changes)).render_image(SphereField(), cams, 4)
    fallback = VolumeRenderer(config).render_image(SphereField(), cams, 4)
    assert torch.equal(fallback.rgb, quadrature.rgb)


def test_unknown_marcher_or_pixel_grid_in_a_saved_config_is_refused():
    from epigraf_field.config_io import config_from_dict

    for key, value in (("marcher", "trapezoid"), ("pixel_grid", "jittered")):
        with pytest.raises(ValueError, match=key):
            config_from_dict(VolumeRendererConfig, {key: value})


def test_marcher_round_trips_through_json():
    config = VolumeRendererConfig(marcher="midpoint", background="black")
    assert config_from_json(VolumeRendererConfig, config_to_json(config)) == config
    assert VolumeRendererConfig().marcher == "quadrature"


def test_left_point_marcher_makes_the_last_point_opaque():
    from renderers.point_marchers import composite_left_points

    t = torch.tensor([[[0.0, 1.0]]])
    out = composite_left_points(t, torch.tensor([[[1.0, 0.5]]]), torch.tensor([[[[1.0, 0, 0], [0, 1.0, 0]]]]), "white")
    e = torch.exp(torch.tensor(-1.0))
    assert torch.allclose(out.weights, torch.stack([1 - e, e]).reshape(1, 1, 2), atol=1e-6)
    assert torch.allclose(out.rgb, torch.stack([1 - e, e, torch.tensor(0.0)]).reshape(1, 1, 3), atol=1e-6)


def test_left_point_importance_uses_interior_point_weights():
    from renderers.point_marchers import left_point_importance_depths

    t = torch.linspace(0, 1, 11).expand(1, 1, 11)
    weights = torch.zeros(1, 1, 11)
    weights[..., 4] = 1.0  # the point at 0.4 stands for the bin between the midpoints 0.35 and 0.45
    fine = left_point_importance_depths(t, weights, 12)[0, 0]
    assert ((fine[2:-2] > 0.3) & (fine[2:-2] < 0.5)).all()


def test_corner_pixel_grid_spans_the_image_plane_edge_to_edge():
    from renderers.patches import pixel_centers
    from renderers.rays import generate_rays

    uv = pixel_centers(3, 1, grid="corners")[0]
    assert torch.allclose(uv[:3, 0], torch.tensor([0.0, 0.5, 1.0])) and torch.allclose(uv[::3, 1], torch.tensor([0.0, 0.5, 1.0]))
    cams = Cameras.from_spherical(torch.zeros(1), torch.zeros(1), radius=2.0, fov_degrees=60.0)
    rays = generate_rays(cams, 3, pixel_grid="corners")
    corner = rays.directions[0, 0]  # top-left ray: half the field of view off the axis in x and y
    tan = torch.tan(torch.deg2rad(torch.tensor(30.0)))
    assert torch.allclose(corner.abs(), torch.stack([tan, tan, torch.tensor(1.0)]) / (2 * tan**2 + 1) ** 0.5, atol=1e-6)


def test_left_point_renderer_renders_a_sphere_with_corner_rays():
    renderer = VolumeRenderer(VolumeRendererConfig(sampler="importance", num_coarse=16, num_fine=16,
                                                   marcher="left_point", pixel_grid="corners", background="white"))
    cams = Cameras.from_spherical(torch.zeros(1), torch.zeros(1), radius=2.0, fov_degrees=30.0)
    sphere = renderer.render_image(SphereField(), cams, resolution=9)
    assert sphere.opacity[0, 0, 4, 4] > 0.99 and sphere.opacity[0, 0, 0, 0] < 0.01  # a corner ray misses the sphere
    thin = renderer.render_image(ConstantField(sigma=0.01), cams, resolution=9)
    assert thin.opacity.min() > 0.99  # any density at all makes the far point an opaque backdrop

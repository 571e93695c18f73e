"""EpigrafField inside nerfstudio: same density and colour as our own field and renderer, for any GeneratorModel."""

from __future__ import annotations

import copy

import pytest
import torch

from tests.nerfstudio.conftest import NERFSTUDIO_SKIP_REASON, target_ws

pytest.importorskip("nerfstudio", reason=NERFSTUDIO_SKIP_REASON)

from nerfstudio.cameras.rays import Frustums, RaySamples  # noqa: E402
from nerfstudio.field_components.field_heads import FieldHeadNames  # noqa: E402
from nerfstudio.model_components.renderers import AccumulationRenderer, RGBRenderer  # noqa: E402

from pipelines.model import open_model  # noqa: E402
from pipelines.nerfstudio.field import EpigrafField, mean_ws  # noqa: E402
from pipelines.nerfstudio.scene_transform import Z_UP_TO_Y_UP, SceneTransformConfig  # noqa: E402
from renderers.cameras import Cameras  # noqa: E402
from renderers.rays import RayBundle, generate_rays  # noqa: E402
from renderers.samplers import RaySamples as OurRaySamples  # noqa: E402
from renderers.volume_renderer import VolumeRenderer, VolumeRendererConfig  # noqa: E402

TRANSFORM = SceneTransformConfig(scale=0.5, translation=(0.05, -0.1, 0.0), rotation=Z_UP_TO_Y_UP)


def point_samples(points_scene: torch.Tensor) -> RaySamples:
    """Zero-length nerfstudio samples at scene points [n, 3]."""
    zeros = points_scene.new_zeros(points_scene.shape[0], 1)
    direction = torch.nn.functional.normalize(torch.ones_like(points_scene), dim=-1)
    return RaySamples(Frustums(points_scene, direction, zeros, zeros, torch.ones_like(zeros)))


def ray_samples_from_ours(rays: RayBundle, samples: OurRaySamples, transform: SceneTransformConfig) -> RaySamples:
    """nerfstudio samples over exactly our intervals, expressed in scene coordinates and units."""
    r, s = samples.t_starts.shape[1:]
    origins = transform.points_from_box(rays.origins[0])[:, None, :].expand(r, s, 3)
    directions = transform.directions_from_box(rays.directions[0])[:, None, :].expand(r, s, 3)
    starts = samples.t_starts[0, :, :, None] / transform.scale
    ends = samples.t_ends[0, :, :, None] / transform.scale
    frustums = Frustums(origins, directions, starts, ends, torch.ones_like(starts))
    return RaySamples(frustums, deltas=ends - starts)


def test_density_and_colour_equal_our_field_at_the_same_points(tiny_generator, tiny_model, rng) -> None:
    ws = target_ws(tiny_generator)
    field = EpigrafField(tiny_model, ws, latent_kind="w+", transform=TRANSFORM)
    # Points inside and outside the box (where density must be exactly zero).
    points = (torch.rand(1, 200, 3, generator=rng) - 0.5) * 1.4
    reference = tiny_generator.field(tiny_generator.synthesis(ws))(points)
    assert (reference.density == 0).any() and (reference.density > 0).any()

    with torch.no_grad():
        out = field(point_samples(TRANSFORM.points_from_box(points[0])))
    assert torch.allclose(out[FieldHeadNames.DENSITY], TRANSFORM.scale * reference.density[0], atol=1e-6)
    assert torch.allclose(out[FieldHeadNames.RGB], reference.rgb[0], atol=1e-6)
    # density_fn (nerfstudio's occupancy-grid hook) goes through the same path.
    density = field.density_fn(TRANSFORM.points_from_box(points[0]))
    assert torch.allclose(density, out[FieldHeadNames.DENSITY], atol=1e-6)


def test_z_latent_is_mapped_with_truncation(tiny_generator, tiny_model, rng) -> None:
    z = torch.randn(1, tiny_generator.config.z_dim, generator=rng)
    field = EpigrafField(tiny_model, z, latent_kind="z", truncation_psi=0.5)
    expected = tiny_generator.mapping(z, truncation_psi=0.5)
    assert torch.allclose(field.ws(), expected)
    w_field = EpigrafField(tiny_model, expected[:, 0], latent_kind="w")
    assert torch.allclose(w_field.current_planes(), field.current_planes(), atol=1e-6)


def test_nerfstudio_render_of_our_field_equals_our_renderer(tiny_generator, tiny_model) -> None:
    ws = target_ws(tiny_generator)
    planes_field = tiny_generator.field(tiny_generator.synthesis(ws))
    cams = Cameras.from_spherical(torch.tensor([0.4]), torch.tensor([0.3]), radius=1.2, fov_degrees=40.0)
    rays = generate_rays(cams, 6)
    ours = VolumeRenderer(VolumeRendererConfig(sampler="stratified", num_coarse=8, background="white")).render_rays(
        planes_field, rays
    )
    assert ours.opacity.max() > 0.05  # something is there to compare

    field = EpigrafField(tiny_model, ws, latent_kind="w+", transform=TRANSFORM)
    samples = ray_samples_from_ours(rays, ours.samples, TRANSFORM)
    with torch.no_grad():
        values = field(samples)
    weights = samples.get_weights(values[FieldHeadNames.DENSITY])
    rgb = RGBRenderer(background_color="white")(rgb=values[FieldHeadNames.RGB], weights=weights)
    opacity = AccumulationRenderer()(weights=weights)
    assert torch.allclose(rgb, ours.rgb[0], atol=1e-5)
    assert torch.allclose(opacity, ours.opacity[0], atol=1e-5)


def test_planes_are_cached_until_the_latent_changes(
    tiny_generator, tiny_model, monkeypatch: pytest.MonkeyPatch
) -> None:
    field = EpigrafField(tiny_model, target_ws(tiny_generator)[:, 0], latent_kind="w", trainable=True)
    calls = []
    synthesis = tiny_generator.synthesis
    monkeypatch.setattr(tiny_generator, "synthesis", lambda *a, **k: calls.append(1) or synthesis(*a, **k))
    with torch.no_grad():
        first = field.current_planes()
        assert field.current_planes() is first and len(calls) == 1
        field.latent.add_(0.5)  # what an optimizer step does
        second = field.current_planes()
    assert len(calls) == 2 and not torch.allclose(first, second)
    field.invalidate_planes()
    with torch.no_grad():
        field.current_planes()
    assert len(calls) == 3


def test_gradients_reach_the_latent_then_the_planes(tiny_generator, tiny_model, rng) -> None:
    field = EpigrafField(tiny_model, target_ws(tiny_generator)[:, 0], latent_kind="w", trainable=True)
    samples = point_samples((torch.rand(64, 3, generator=rng) - 0.5) * 0.8)
    field(samples)[FieldHeadNames.RGB].sum().backward()
    assert field.latent.grad is not None and field.latent.grad.abs().sum() > 0
    assert not any(p.requires_grad for p in tiny_generator.parameters())

    with torch.no_grad():
        before = field(samples)[FieldHeadNames.RGB]
    field.use_plane_parameters()
    assert field.planes.requires_grad and not field.latent.requires_grad
    out = field(samples)
    assert torch.allclose(out[FieldHeadNames.RGB], before, atol=1e-6)  # the switch keeps the scene
    out[FieldHeadNames.DENSITY].sum().backward()
    assert field.planes.grad is not None and field.planes.grad.abs().sum() > 0

    # A state dict taken after the switch restores it.
    restored = EpigrafField(tiny_model, torch.zeros_like(field.latent), latent_kind="w", trainable=True)
    restored.load_state_dict(field.state_dict())
    assert bool(restored.uses_plane_parameters) and restored.planes.requires_grad
    with torch.no_grad():
        assert torch.allclose(restored(samples)[FieldHeadNames.RGB], before, atol=1e-6)


def test_latent_shape_errors_name_the_expected_shape(tiny_generator, tiny_model) -> None:
    with pytest.raises(ValueError, match=r"latent of kind 'w\+' must have shape \[1, "):
        EpigrafField(tiny_model, torch.zeros(1, tiny_generator.config.w_dim), latent_kind="w+")
    with pytest.raises(ValueError, match="latent_kind must be one of"):
        EpigrafField(tiny_model, torch.zeros(1, tiny_generator.config.w_dim), latent_kind="s")


def test_sizes_and_the_mean_latent_come_from_the_model(tiny_generator, tiny_model, rng) -> None:
    generator = copy.deepcopy(tiny_generator)
    generator.mapping_network.w_avg.copy_(torch.randn(generator.config.w_dim, generator=rng))
    model = tiny_model.with_options(generator=generator, truncation_psi=0.8, truncation_cutoff=1)
    centre = mean_ws(model)  # the truncation centre in every row, whatever the model's own truncation
    assert torch.equal(centre, generator.mapping_network.w_avg.expand(1, generator.num_ws, -1))
    field = EpigrafField(model, centre[:, 0], latent_kind="w")
    cfg = generator.config
    assert (field.num_ws, field.w_dim) == (generator.num_ws, cfg.w_dim)
    assert field.planes.shape == (1, 3, cfg.plane_channels, cfg.plane_resolution, cfg.plane_resolution)
    assert torch.equal(field.mean_ws, centre) and "mean_ws" not in field.state_dict()


def test_a_pose_conditioned_z_sees_its_label_or_the_centre_pose(eg3d_bundle, rng) -> None:
    model = open_model(eg3d_bundle)
    z = torch.randn(1, model.z_dim, generator=rng)
    label = model.cameras.sample(1, rng).to_label()
    truncated = model.with_options(truncation_psi=0.5)
    field = EpigrafField(model, z, latent_kind="z", truncation_psi=0.5, conditioning=label)
    centred = EpigrafField(model, z, latent_kind="z", truncation_psi=0.5)
    with torch.no_grad():
        assert torch.allclose(field.ws(), truncated.mapping(z, Cameras.from_label(label)))
        assert torch.allclose(centred.ws(), truncated.mapping(z, model.cameras.center_pose()))
        assert not torch.allclose(field.ws(), centred.ws())  # the label is used
    with pytest.raises(ValueError, match=r"conditioning must be one 25-float camera label of shape \[1, 25\]"):
        EpigrafField(model, z, latent_kind="z", conditioning=label[:, :16])


def test_an_eg3d_generator_is_evaluated_through_its_tri_plane_field(eg3d_bundle, rng) -> None:
    """No super-resolution in 3D: the field is the eg3d model's own tri-plane field, its rgb the first features."""
    model = open_model(eg3d_bundle)
    ws = model.mapping(torch.randn(1, model.z_dim, generator=rng))
    field = EpigrafField(model, ws, latent_kind="w+", transform=TRANSFORM)
    points = (torch.rand(1, 100, 3, generator=rng) - 0.5) * 0.9
    with torch.no_grad():
        reference = model.field(model.synthesize(ws))(points)
        out = field(point_samples(TRANSFORM.points_from_box(points[0])))
    assert reference.features is not None and reference.features.shape[-1] > 3
    assert torch.allclose(out[FieldHeadNames.DENSITY], TRANSFORM.scale * reference.density[0], atol=1e-6)
    assert torch.allclose(out[FieldHeadNames.RGB], reference.rgb[0], atol=1e-6)
    assert torch.isfinite(out[FieldHeadNames.RGB]).all()

"""nerfstudio fields rendered by our VolumeRenderer through NerfstudioFieldAdapter."""

from __future__ import annotations

import pytest
import torch

from tests.nerfstudio.conftest import NERFSTUDIO_SKIP_REASON, target_ws

pytest.importorskip("nerfstudio", reason=NERFSTUDIO_SKIP_REASON)

from nerfstudio.cameras.rays import Frustums, RaySamples  # noqa: E402
from nerfstudio.field_components.field_heads import FieldHeadNames  # noqa: E402
from nerfstudio.fields.nerfacto_field import NerfactoField  # noqa: E402
from nerfstudio.model_components.renderers import AccumulationRenderer, RGBRenderer  # noqa: E402

from pipelines.nerfstudio.adapter import NerfstudioFieldAdapter, NerfstudioFieldAdapterConfig  # noqa: E402
from pipelines.nerfstudio.field import EpigrafField  # noqa: E402
from pipelines.nerfstudio.scene_transform import Z_UP_TO_Y_UP, SceneTransformConfig  # noqa: E402
from renderers.cameras import Cameras  # noqa: E402
from renderers.rays import generate_rays  # noqa: E402
from renderers.volume_renderer import VolumeRenderer, VolumeRendererConfig  # noqa: E402

# nerfacto's box [-1, 1]^3 becomes our renderer's box [-0.5, 0.5]^3.
TRANSFORM = SceneTransformConfig(scale=0.5)


def small_nerfacto(seed: int = 0) -> NerfactoField:
    """A tiny nerfacto field (torch hash grid), initialized reproducibly without touching global RNG state."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        field = NerfactoField(
            aabb=torch.tensor([[-1.0, -1.0, -1.0], [1.0, 1.0, 1.0]]),
            num_images=3,
            num_levels=4,
            base_res=4,
            max_res=32,
            log2_hashmap_size=10,
            features_per_level=2,
            hidden_dim=16,
            hidden_dim_color=16,
            appearance_embedding_dim=4,
            implementation="torch",
        )
        # Half-transparent at initialization, so colours and opacities both take part in the comparison.
        field.average_init_density = 0.3
    return field.eval()


def cameras() -> Cameras:
    return Cameras.from_spherical(torch.tensor([0.3, 2.0]), torch.tensor([0.2, -0.4]), radius=1.3, fov_degrees=45.0)


def test_nerfacto_rendered_by_us_equals_nerfstudio_renderer(rng) -> None:
    field = small_nerfacto()
    adapter = NerfstudioFieldAdapter(field, NerfstudioFieldAdapterConfig(transform=TRANSFORM, camera_index=1))
    rays = generate_rays(cameras()[:1], 6)
    renderer = VolumeRenderer(VolumeRendererConfig(sampler="stratified", num_coarse=12, background="white"))
    with torch.no_grad():
        ours = renderer.render_rays(adapter, rays, rng=rng)  # jittered intervals
    assert 0.05 < ours.opacity.mean() < 0.99

    # nerfstudio renders the very same intervals, in its own units.
    t_starts, t_ends = ours.samples.t_starts[0, :, :, None], ours.samples.t_ends[0, :, :, None]
    r, s = t_starts.shape[:2]
    origins = TRANSFORM.points_from_box(rays.origins[0])[:, None].expand(r, s, 3)
    directions = TRANSFORM.directions_from_box(rays.directions[0])[:, None].expand(r, s, 3)
    starts, ends = t_starts / TRANSFORM.scale, t_ends / TRANSFORM.scale
    samples = RaySamples(
        Frustums(origins, directions, starts, ends, torch.ones_like(starts)),
        camera_indices=torch.ones(r, s, 1, dtype=torch.long),
        deltas=ends - starts,
    )
    with torch.no_grad():
        values = field(samples)
    weights = samples.get_weights(values[FieldHeadNames.DENSITY])
    rgb = RGBRenderer(background_color="white")(rgb=values[FieldHeadNames.RGB], weights=weights)
    opacity = AccumulationRenderer()(weights=weights)
    assert torch.allclose(ours.opacity[0], opacity, atol=1e-5)
    assert torch.allclose(ours.rgb[0], rgb, atol=1e-5)


def test_adapter_density_is_per_unit_of_our_world(rng) -> None:
    field = small_nerfacto()
    adapter = NerfstudioFieldAdapter(field, NerfstudioFieldAdapterConfig(transform=TRANSFORM))
    points = (torch.rand(2, 30, 3, generator=rng) - 0.5) * 0.9
    with torch.no_grad():
        density = adapter.density(points)
        values = adapter(points)
        scene_density = field.density_fn(TRANSFORM.points_from_box(points))
    assert torch.allclose(density, scene_density / TRANSFORM.scale, atol=1e-6)
    assert torch.allclose(values.density, density, atol=1e-6)
    assert values.rgb.shape == (2, 30, 3) and values.features is None


def test_our_field_round_trips_through_nerfstudio(tiny_generator, tiny_model) -> None:
    """EpigrafField behind the adapter renders exactly what the plain tri-plane field renders."""
    transform = SceneTransformConfig(scale=2.0, translation=(0.1, 0.0, -0.1), rotation=Z_UP_TO_Y_UP)
    ws = target_ws(tiny_generator)
    wrapped = NerfstudioFieldAdapter(
        EpigrafField(tiny_model, ws, latent_kind="w+", transform=transform),
        NerfstudioFieldAdapterConfig(transform=transform),
    )
    # Our field holds one scene per camera: the same planes twice.
    plain = tiny_generator.field(tiny_generator.synthesis(ws).expand(2, -1, -1, -1, -1))
    renderer = VolumeRenderer(VolumeRendererConfig(sampler="importance", num_coarse=8, num_fine=8))
    with torch.no_grad():
        expected = renderer.render_image(plain, cameras(), 5)
        got = renderer.render_image(wrapped, cameras(), 5)
    assert expected.opacity.max() > 0.05
    assert torch.allclose(got.rgb, expected.rgb, atol=1e-5)
    assert torch.allclose(got.depth, expected.depth, atol=1e-4)


def test_adapter_rejects_what_is_not_a_nerfstudio_field(tiny_generator) -> None:
    with pytest.raises(ValueError, match="nerfstudio.fields.base_field.Field"):
        NerfstudioFieldAdapter(tiny_generator.field(tiny_generator.synthesis(target_ws(tiny_generator))))

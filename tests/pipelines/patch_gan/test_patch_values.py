"""Patch values through the pipeline: a fake patch is the matching pixels of a full render, a real patch a crop."""

from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F

from pipelines.patch_gan.pipeline import PatchGanPipeline
from renderers.cameras import Cameras
from renderers.patches import Patch, crop_patches
from renderers.volume_renderer import VolumeRenderer, VolumeRendererConfig
from tests.pipelines.tiny import TinyDataset, tiny_train_config

PATCH_RESOLUTION = 16  # r; the full renders below are at r and at 2r
KIMG = 0.0
TOLERANCE = dict(rtol=0.0, atol=1e-5)
# Half-scale patches whose corners sit on pixel edges of a 2r x 2r image: offset * 2r is an integer.
HALF_PATCH = Patch(scales=torch.tensor([0.5, 0.5]), offsets=torch.tensor([[0.25, 0.5], [0.5, 0.0]]))


class _EvaluationSampling(VolumeRenderer):
    """The pipeline's renderer with evenly spaced samples whatever ``rng`` it is given.

    ``render_patches`` hands its training ``rng`` to the renderer, which jitters the stratified
    samples of every ray with draws taken in ray order; a patch's ray k and the same ray of a full
    image (another index there) would get different jitter, so only unjittered samples can match.
    """

    def render_image(self, field, cameras, resolution, patch=None, rng=None, occupancy=None):
        return super().render_image(field, cameras, resolution, patch, None, occupancy)


@pytest.fixture(scope="module")
def pipeline() -> PatchGanPipeline:
    config = tiny_train_config()
    config.patch_resolution = PATCH_RESOLUTION
    config.model.losses = replace(config.model.losses, density_noise=0.0)
    config.model.renderer = VolumeRendererConfig(sampler="stratified", num_coarse=16)
    # render_patches draws per-pixel synthesis noise where the full renders below use the constant
    # noise image; without noise inputs both build the same tri-planes from the same z.
    config.model.generator = replace(config.model.generator, use_noise=False)
    return PatchGanPipeline(config, torch.device("cpu"), TinyDataset())


@pytest.fixture(scope="module")
def scene(pipeline) -> tuple[torch.Tensor, Cameras]:
    z = torch.randn(2, pipeline.z_dim, generator=torch.Generator().manual_seed(1))
    cameras = Cameras.from_spherical(torch.tensor([0.3, -0.5]), torch.tensor([0.2, 0.1]), radius=2.0, fov_degrees=30.0)
    return z, cameras


def _fake_patches(pipeline: PatchGanPipeline, z: torch.Tensor, cameras: Cameras, patch: Patch) -> torch.Tensor:
    """render_patches of the EMA generator (eval mode) with a fresh fixed ``rng``, in [0, 1]."""
    pipeline.rng = torch.Generator().manual_seed(0)
    with torch.no_grad():
        return pipeline.render_patches(pipeline.G_ema, z, cameras, patch, KIMG) * 0.5 + 0.5


def _full_render(pipeline: PatchGanPipeline, z: torch.Tensor, cameras: Cameras, resolution: int,
                 rng: torch.Generator | None = None) -> torch.Tensor:
    """Whole images [b, 3, resolution, resolution] in [0, 1] of the EMA generator: no patch, the renderer's image path."""
    with torch.no_grad():
        field = pipeline.G_ema.field(pipeline.G_ema.generate_planes(z, None, noise_mode="const"))
        return pipeline.renderer.render_image(field, cameras, resolution, None, rng).rgb


def _crop(images: torch.Tensor, patch: Patch, size: int) -> torch.Tensor:
    """The size/2 x size/2 pixel block of each image [b, c, size, size] that ``patch`` (scale 0.5) covers."""
    side = size // 2
    blocks = []
    for image, (u0, v0) in zip(images, patch.offsets.tolist()):
        col, row = round(u0 * size), round(v0 * size)
        assert (col, row) == (u0 * size, v0 * size), "the patch must start on a pixel edge"
        blocks.append(image[:, row : row + side, col : col + side])
    return torch.stack(blocks)


def test_the_tiny_render_has_structure_a_shifted_crop_would_break(pipeline, scene):
    # Guards the equalities below against passing on a flat image.
    full = _full_render(pipeline, *scene, 2 * PATCH_RESOLUTION)
    assert (full[..., :, 1:] - full[..., :, :-1]).abs().amax(dim=(1, 2, 3)).min() > 1e-2
    shifted = Patch(HALF_PATCH.scales, HALF_PATCH.offsets - torch.tensor([1 / (2 * PATCH_RESOLUTION), 0.0]))
    assert not torch.allclose(_crop(full, shifted, 2 * PATCH_RESOLUTION), _crop(full, HALF_PATCH, 2 * PATCH_RESOLUTION),
                              **TOLERANCE)


def test_a_whole_image_patch_equals_the_full_render_at_patch_resolution(pipeline, scene):
    with pytest.MonkeyPatch.context() as patcher:
        patcher.setattr(pipeline, "renderer", _EvaluationSampling(pipeline.renderer.config))
        fake = _fake_patches(pipeline, *scene, Patch.full(2))
    torch.testing.assert_close(fake, _full_render(pipeline, *scene, PATCH_RESOLUTION), **TOLERANCE)


def test_a_whole_image_patch_equals_the_full_render_with_the_same_training_jitter(pipeline, scene):
    # With its training rng on, render_patches of the whole image draws the same jitter, ray
    # for ray, as a full render given an equally seeded rng.
    fake = _fake_patches(pipeline, *scene, Patch.full(2))
    jittered = _full_render(pipeline, *scene, PATCH_RESOLUTION, torch.Generator().manual_seed(0))
    torch.testing.assert_close(fake, jittered, **TOLERANCE)
    assert not torch.allclose(fake, _full_render(pipeline, *scene, PATCH_RESOLUTION), **TOLERANCE)


def test_a_half_scale_patch_equals_the_crop_of_a_render_at_twice_its_resolution(pipeline, scene):
    with pytest.MonkeyPatch.context() as patcher:
        patcher.setattr(pipeline, "renderer", _EvaluationSampling(pipeline.renderer.config))
        fake = _fake_patches(pipeline, *scene, HALF_PATCH)
    full = _full_render(pipeline, *scene, 2 * PATCH_RESOLUTION)
    torch.testing.assert_close(fake, _crop(full, HALF_PATCH, 2 * PATCH_RESOLUTION), **TOLERANCE)


def test_real_patches_are_the_image_its_downsampling_or_its_pixel_crop():
    images = torch.rand(2, 3, 2 * PATCH_RESOLUTION, 2 * PATCH_RESOLUTION, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(crop_patches(images, Patch.full(2), 2 * PATCH_RESOLUTION), images, **TOLERANCE)
    # At half the resolution every output pixel centre lies midway between four input centres.
    torch.testing.assert_close(crop_patches(images, Patch.full(2), PATCH_RESOLUTION), F.avg_pool2d(images, 2),
                               **TOLERANCE)
    torch.testing.assert_close(crop_patches(images, HALF_PATCH, PATCH_RESOLUTION),
                               _crop(images, HALF_PATCH, 2 * PATCH_RESOLUTION), **TOLERANCE)

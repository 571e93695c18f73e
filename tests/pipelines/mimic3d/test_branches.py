"""The two branches of one Mimic3D generator: what the detail plane reaches, where imitation's gradient goes."""

import torch

from pipelines.mimic3d.generator import backbone_skip_planes, pack_planes, unpack_planes
from pipelines.mimic3d.pipeline import Mimic3dPipeline
from tests.pipelines.mimic3d.tiny import tiny_mimic3d_config
from tests.pipelines.tiny import TinyDataset

CPU = torch.device("cpu")


def _pipeline(**overrides):
    config = tiny_mimic3d_config(**overrides)
    return Mimic3dPipeline(config, CPU, TinyDataset()), config


def _inputs(pipeline, seed=0):
    rng = torch.Generator().manual_seed(seed)
    z = torch.randn(2, pipeline.z_dim, generator=rng)
    cameras = pipeline.sample_cameras(2, rng)
    return z, cameras, pipeline.sample_windows(2)


def _branches(pipeline, ws, cameras, windows):
    """The 2D branch's super-resolved image and the 3D branch's patches of ws (fixed randomness)."""
    pipeline.rng = torch.Generator().manual_seed(7)
    coarse, detail = pipeline.G.synthesize_planes(ws, noise_mode="const")
    image, _ = pipeline.render_2d(pipeline.G, coarse, ws, cameras, 0.0)
    return image, pipeline.render_3d(pipeline.G, coarse, detail, cameras, windows, 0.0)


def test_the_detail_plane_changes_the_3d_render_and_not_the_2d_branch():
    pipeline, _ = _pipeline()
    z, cameras, windows = _inputs(pipeline)
    with torch.no_grad():
        ws = pipeline.G.mapping(z, cameras.to_label())
        image, patches = _branches(pipeline, ws, cameras, windows)
        for parameter in pipeline.G.aware.detail_blocks.parameters():
            parameter.add_(torch.randn(parameter.shape, generator=torch.Generator().manual_seed(1)) * 0.5)
        image_after, patches_after = _branches(pipeline, ws, cameras, windows)
    assert torch.equal(image, image_after)
    assert (patches - patches_after).abs().max() > 1e-3


def test_the_3d_patch_is_rendered_from_coarse_plus_detail_features():
    pipeline, config = _pipeline()
    z, cameras, windows = _inputs(pipeline)
    with torch.no_grad():
        ws = pipeline.G.mapping(z, pipeline._generator_label(cameras))
        coarse, detail = pipeline.G.synthesize_planes(ws)
        pipeline.rng = None  # evaluation sample positions
        with_zero_detail = pipeline.render_3d(pipeline.G, coarse, torch.zeros_like(detail), cameras, windows, 0.0)
        field = pipeline.G.field(coarse)
        coarse_only = pipeline.renderer.render_image(field, cameras, config.patch_resolution, windows).rgb * 2 - 1
    torch.testing.assert_close(with_zero_detail, coarse_only)


def test_imitation_reaches_the_generator_and_never_the_superresolution_network():
    pipeline, _ = _pipeline()
    z, cameras, windows = _inputs(pipeline)
    _, patches, targets, _ = pipeline._branch_fakes(pipeline.G, z, cameras, windows, 0.0)
    assert not targets.requires_grad
    pipeline.G.zero_grad(set_to_none=True)
    pipeline.imitation(patches, targets, pipeline.D_patch).mean().backward()
    def grads(module):
        return [p.grad for p in module.parameters() if p.grad is not None and p.grad.abs().sum() > 0]

    assert grads(pipeline.G.aware.detail_blocks) and grads(pipeline.G.aware.blocks)
    assert grads(pipeline.G.triplane.synthesis_network) and grads(pipeline.G.triplane.decoder)
    assert not grads(pipeline.G.superresolution)


def test_the_targets_are_the_windows_of_the_super_resolved_image():
    pipeline, config = _pipeline()
    z, cameras, windows = _inputs(pipeline, seed=3)
    pipeline.rng = torch.Generator().manual_seed(5)
    dual, _, targets, _ = pipeline._branch_fakes(pipeline.G, z, cameras, windows, 0.0)
    r = config.patch_resolution
    for i in range(2):
        left, top = (windows.offsets[i] * config.resolution).round().long().tolist()
        torch.testing.assert_close(targets[i], dual[i, :3, top:top + r, left:left + r].detach())
    assert torch.allclose(windows.scales, torch.tensor(r / config.resolution))


def test_backbone_skip_images_end_in_the_backbone_planes_and_scenes_pack_losslessly():
    pipeline, _ = _pipeline()
    ws = torch.randn(2, pipeline.G.triplane.num_ws, pipeline.config.generator.w_dim,
                     generator=torch.Generator().manual_seed(0))
    skips, block_ws = backbone_skip_planes(pipeline.G.triplane.synthesis_network, ws, "const", None)
    torch.testing.assert_close(skips[-1], pipeline.G.triplane.synthesis(ws, noise_mode="const"))
    assert [s.shape[-1] for s in skips] == [4, 8] and len(block_ws) == 2
    coarse, detail = pipeline.G.synthesize_planes(ws)
    assert not torch.allclose(coarse, skips[-1])  # the 2D branch renders the aware branch's planes
    c, r = coarse.shape[2], coarse.shape[-1]
    unpacked = unpack_planes(pack_planes(coarse, detail), c, r)
    assert torch.equal(unpacked[0], coarse) and torch.equal(unpacked[1], detail)

"""3D-aware pooling in Mimic3D's plane layout (xy, yz, zx, inputs in plane order), which its released weights need."""

import torch

from pipelines.mimic3d.aware_conv import AwareBranch, plane_pooling, pool_other_planes, pool_other_planes_mimic3d

from tests.pipelines.mimic3d.test_aware_conv import R, _expected_pooled, _plane_of

MIMIC3D_PLANES = {"xy": ("x", "y"), "yz": ("y", "z"), "zx": ("z", "x")}  # (width axis, height axis)


def test_each_plane_gets_the_three_planes_in_plane_order_pooled_along_the_axis_it_lacks():
    names = tuple(MIMIC3D_PLANES)
    planes = torch.stack([_plane_of(name, MIMIC3D_PLANES) for name in names])[None, :, None]  # [1, 3, 1, R, R]
    pooled = pool_other_planes_mimic3d(planes)
    assert pooled.shape == (1, 3, 3, R, R)
    for index, target in enumerate(names):
        for slot, source in enumerate(names):
            expected = planes[0, index, 0] if source == target else _expected_pooled(target, source, MIMIC3D_PLANES)
            torch.testing.assert_close(pooled[0, index, slot], expected, atol=1e-5, rtol=0,
                                       msg=f"{target} <- {source}")


def test_the_generator_layout_picks_the_pooling():
    assert plane_pooling("xy_yz_zx") is pool_other_planes_mimic3d
    assert plane_pooling("xy_xz_yz") is pool_other_planes
    branch = AwareBranch(2, 4, 8, plane_axes="xy_yz_zx")
    layers = (branch.blocks[0].conv0, branch.blocks[1].to_planes)
    assert all(layer.pool is pool_other_planes_mimic3d for layer in layers)
    assert AwareBranch(2, 4, 8).blocks[0].conv1.pool is pool_other_planes

"""Mimic3D's ``DualTriPlaneGenerator`` snapshot (SeanChenxy/Mimic3D) -> our mimic3d model.

Mimic3D is EG3D's generator (converted as in :mod:`pipelines.checkpoint_import.eg3d`) plus, inside
the backbone's synthesis network, one 3D-aware block ``b3d{r}`` beside every backbone block ``b{r}``
(a StyleGAN2 block of ``conv0``, ``conv1``, ``torgb`` run on the three planes as a batch, with the
other planes pooled onto each); the block at the plane resolution also holds ``block2`` and
``block3``, per-plane blocks that lift the coarse planes to the detail planes. Its snapshots return
the planes of ``b3d{R}.block`` (coarse) and ``b3d{R}.block3`` (detail), its configs' ``retidx [-3, -1]``.

What needs options of ours, recorded in the bundle: Mimic3D's planes are xy, yz, zx
(``plane_axes="xy_yz_zx"``, which also selects its pooling order), plus EG3D's options. One weight
changes: the 3D-aware toRGB layers scale their styles by ``1 / sqrt(C)`` for an input of ``3 C``
channels, ours by ``1 / sqrt(3 C)``, so their kernels are multiplied by ``sqrt(3)``.
"""

from __future__ import annotations

import math
import re
from dataclasses import replace
from pathlib import Path

from torch import Tensor

from epigraf_field.generator import TriPlaneGenerator
from pipelines.checkpoint_import import eg3d
from pipelines.checkpoint_import.converted import ImportedModel, parameter_count
from pipelines.checkpoint_import.records import ModuleRecord, attribute, init_kwargs, module_tensors, submodule
from pipelines.checkpoint_import.stylegan2 import ConversionError, load_exactly, upsampling_kernel
from pipelines.mimic3d.aware_conv import AwareBranch
from pipelines.mimic3d.generator import AwareBranchConfig, Mimic3dGenerator
from pipelines.mimic3d.model import Mimic3dModel
from renderers.volume_renderer import VolumeRenderer

FAMILY = "mimic3d"
GENERATOR_CLASS = "DualTriPlaneGenerator"
PLANE_AXES = "xy_yz_zx"
AWARE_PREFIX = "backbone.synthesis.b3d"
_LAYER_PARTS = {"affine.weight", "affine.bias", "weight", "bias", "noise_strength", "noise_const"}


def matches(generator: ModuleRecord) -> bool:
    """A Mimic3D generator: class DualTriPlaneGenerator with ``rendering_kwargs`` and a ``backbone``."""
    state = generator.state
    return (getattr(generator, "class_name", None) == GENERATOR_CLASS and "rendering_kwargs" in state
            and "backbone" in (state.get("_modules") or {}))


def _check_supported(generator: ModuleRecord) -> None:
    """Mimic3D options our model does not have, named."""
    kwargs = init_kwargs(generator)
    synthesis = init_kwargs(submodule(generator, "backbone.synthesis"))
    settings = {**kwargs, **synthesis}
    if settings.get("aware3d_att"):
        raise ConversionError("aware3d_att: only Mimic3D's pooled 3D-aware convolutions are supported, not attention")
    if int(settings.get("add_block", 0) or 0) or settings.get("add_sr_module"):
        raise ConversionError("add_block / add_sr_module: only Mimic3D's released architecture is supported")
    retidx = settings.get("retidx")
    if retidx is not None and list(retidx) != [-3, -1]:
        raise ConversionError(f"retidx {retidx}: only [-3, -1] (coarse and detail planes) is supported")
    # A plane activation (Tanh or Sigmoid) is a child module; without one the attribute is a plain None.
    if (generator.state.get("_modules") or {}).get("plane_act") is not None or attribute(generator, "plane_act"):
        raise ConversionError(f"triplane_act {settings.get('triplane_act')!r}: only planes without an activation "
                              "(Mimic3D's configs: None) are supported")
    if int(attribute(generator, "depth_guided_sample", 0) or 0) > 0:
        raise ConversionError("depth_guided_sample > 0: only the plain two-pass sampling is supported")


def _aware_resolutions(tensors: dict[str, Tensor]) -> list[int]:
    return sorted({int(m.group(1)) for k in tensors if (m := re.match(r"backbone\.synthesis\.b3d(\d+)\.", k))})


def _layer_tensors(official: dict[str, Tensor], ours: str, up: int, gain: float) -> dict[str, Tensor]:
    """One official aware layer (``conv0``/``conv1``, or ``torgb`` with ``gain`` on its kernel) -> ``ours.*``."""
    out = {}
    for key, value in official.items():
        if key == "resample_filter":
            continue
        if key not in _LAYER_PARTS:
            raise ConversionError(f"unexpected 3D-aware layer tensor {key!r} (for {ours})")
        if key == "weight":
            value = upsampling_kernel(value) if up == 2 else value * gain
        out[f"{ours}.{key}"] = value
    return out


def _block_tensors(official: dict[str, Tensor], ours: str, up: int, aware: bool) -> dict[str, Tensor]:
    """One official 3D-aware SynthesisBlock -> our :class:`PlaneBlock` at ``ours``."""
    out = {}
    parts = {"conv0": ("conv0", up, 1.0), "conv1": ("conv1", 1, 1.0),
             "torgb": ("to_planes", 1, math.sqrt(3.0) if aware else 1.0)}
    for key, value in official.items():
        part, _, rest = key.partition(".")
        if part == "resample_filter" and not rest:
            continue
        if part not in parts:
            raise ConversionError(f"unexpected 3D-aware block tensor {key!r} (for {ours})")
        name, layer_up, gain = parts[part]
        out.update(_layer_tensors({rest: value}, f"{ours}.{name}", layer_up, gain))
    return out


def _aware_tensors(tensors: dict[str, Tensor], resolutions: list[int]) -> dict[str, Tensor]:
    """``b3d{r}.block`` -> ``blocks.{i}``; ``b3d{R}.block2`` / ``block3`` -> ``detail_blocks.0`` / ``1``."""
    last = resolutions[-1]
    out = {}
    for index, res in enumerate(resolutions):
        prefix = f"{AWARE_PREFIX}{res}."
        own = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
        children = {k.partition(".")[0] for k in own}
        expected = {"block", "block2", "block3"} if res == last else {"block"}
        if children != expected:
            raise ConversionError(f"b3d{res} holds {sorted(children)}, expected {sorted(expected)}")
        for child, ours, up, aware in (("block", f"blocks.{index}", 2 if res < last else 1, True),
                                       ("block2", "detail_blocks.0", 2, False),
                                       ("block3", "detail_blocks.1", 1, False)):
            if child in children:
                start = child + "."
                out.update(_block_tensors({k[len(start):]: v for k, v in own.items() if k.startswith(start)},
                                          ours, up, aware))
    return out


def convert(generator: ModuleRecord, source: Path) -> ImportedModel:
    """A Mimic3D generator record -> :class:`Mimic3dModel` (weights checked name by name and shape by shape)."""
    _check_supported(generator)
    # Mimic3D's mapping multiplies the pose label by rendering_kwargs.get("c_scale", 0).
    rendering = {"c_scale": 0.0, **(attribute(generator, "rendering_kwargs", {}) or {})}
    tensors = module_tensors(generator)
    backbone = {k: v for k, v in tensors.items() if not k.startswith(AWARE_PREFIX)}
    config = replace(eg3d.triplane_config(generator, backbone, rendering), plane_axes=PLANE_AXES)
    resolutions = _aware_resolutions(tensors)
    expected = [2**i for i in range(2, int(math.log2(config.plane_resolution)) + 1)]
    if resolutions != expected:
        raise ConversionError(f"3D-aware blocks at {resolutions}: only a block at every resolution {expected} "
                              "(aware3d_res of Mimic3D's configs) is supported")
    triplane = TriPlaneGenerator(config, seed=0)
    load_exactly(triplane, eg3d.triplane_tensors(backbone, config, rendering), f"{source}: tri-plane generator")
    aware_tensors = _aware_tensors(tensors, resolutions)
    conv_clamp = init_kwargs(submodule(generator, "backbone.synthesis")).get("conv_clamp")
    aware_config = AwareBranchConfig(use_noise=any(k.endswith(".noise_const") for k in aware_tensors),
                                     conv_clamp=conv_clamp)
    aware = AwareBranch(config.plane_channels, config.w_dim, config.plane_resolution, aware_config.use_noise,
                        aware_config.conv_clamp, config.plane_axes)
    load_exactly(aware, aware_tensors, f"{source}: 3D-aware branch")
    sr = eg3d.superresolution(generator, tensors, config, rendering)
    renderer, neural, image_resolution = eg3d.rendering_setup(generator, rendering, config.box_half_size,
                                                              sr.config.output_resolution)
    network = Mimic3dGenerator(triplane, aware, sr, aware_config).eval().requires_grad_(False)
    model = Mimic3dModel(generator=network, renderer=VolumeRenderer(renderer),
                         cameras=eg3d.camera_distribution(rendering), image_resolution=image_resolution,
                         neural_resolution=neural)
    notes = []
    if sr.config.use_noise:
        notes.append("the super-resolution noise is Mimic3D's 'random'; ours uses the recorded constant noise images")
    summary = {
        "architecture": (f"Mimic3D DualTriPlaneGenerator + {submodule(generator, 'superresolution').class_name}, "
                         f"3D-aware blocks at {resolutions[0]}..{resolutions[-1]}"),
        "latent": (f"z {config.z_dim}, c {config.c_dim} (pose label), w {config.w_dim}, "
                   f"{config.mapping_layers} mapping layers"),
        "tri-plane": (f"3 x {config.plane_channels} x {config.plane_resolution}^2 (coarse) + "
                      f"{2 * config.plane_resolution}^2 (detail), planes xy, yz, zx, "
                      f"box side {2 * config.box_half_size:g}"),
        "resolution": (f"3D branch rendered directly at any resolution ({image_resolution}^2 trained); 2D branch "
                       f"{neural}^2 super-resolved to {image_resolution}^2"),
        "rendering": (f"{renderer.num_coarse} + {renderer.num_fine} samples, near {rendering.get('ray_start')}, far "
                      f"{rendering.get('ray_end')}, {renderer.background} background, mid-point marcher"),
        "parameters": (f"mapping + synthesis + decoder {parameter_count(triplane):,}, 3D-aware branch "
                       f"{parameter_count(aware):,}, super-resolution {parameter_count(sr):,}"),
    }
    return ImportedModel(FAMILY, model, summary, notes)

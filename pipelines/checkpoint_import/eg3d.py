"""EG3D's ``TriPlaneGenerator`` snapshot (NVlabs/eg3d) -> our eg3d model, with its exact computation options.

What carries over unchanged: the StyleGAN2 mapping and synthesis (256^2 tri-plane, 3 x 32 channels), the
super-resolution blocks and the decoder. What needs options of ours, recorded in the bundle: the plane axes
(xy, xz, zx), no density mask outside the box, the softplus decoder with its learning-rate multiplier folded
into the weights, density shift -1 and EG3D's mid-point ray marcher. The pose label scale (``c_scale``,
``c_gen_conditioning_zero``) is folded into the label embedding.
"""

from __future__ import annotations

import math
import re
from pathlib import Path


from epigraf_field.generator import TriPlaneGenerator, TriPlaneGeneratorConfig
from pipelines.camera_distributions import CameraDistribution, CameraDistributionConfig
from pipelines.checkpoint_import.converted import ImportedModel, parameter_count
from pipelines.checkpoint_import.records import (
    ModuleRecord,
    attribute,
    init_kwargs,
    module_tensors,
    submodule,
)
from pipelines.checkpoint_import.stylegan2 import (
    ConversionError,
    load_exactly,
    mapping_tensors,
    superresolution_block_tensors,
    synthesis_tensors,
)
from pipelines.eg3d.generator import Eg3dGenerator
from pipelines.eg3d.model import Eg3dModel
from pipelines.eg3d.superresolution import SuperResolution, SuperResolutionConfig
from renderers.volume_renderer import VolumeRenderer, VolumeRendererConfig

FAMILY = "eg3d"
GENERATOR_CLASS = "TriPlaneGenerator"
SUPERRESOLUTION_CLASSES = ("SuperresolutionHybrid2X", "SuperresolutionHybrid4X", "SuperresolutionHybrid8X",
                           "SuperresolutionHybrid8XDC")
# FFHQ and AFHQ labels: normalized focal length 4.2647 (EG3D's dataset tool), i.e. about 13.4 degrees.
FACES_FOCAL = 4.2647


def matches(generator: ModuleRecord) -> bool:
    """An EG3D generator: class TriPlaneGenerator with ``rendering_kwargs`` and a ``backbone``."""
    state = generator.state
    return (getattr(generator, "class_name", None) == GENERATOR_CLASS and "rendering_kwargs" in state
            and "backbone" in (state.get("_modules") or {}))


def _block_resolutions(keys: list[str]) -> list[int]:
    return sorted({int(m.group(1)) for k in keys if (m := re.match(r"b(\d+)\.", k))})


def triplane_config(generator: ModuleRecord, tensors: dict, rendering: dict) -> TriPlaneGeneratorConfig:
    kwargs = init_kwargs(generator)
    synthesis = submodule(generator, "backbone.synthesis")
    mapping = submodule(generator, "backbone.mapping")
    syn_kwargs, map_kwargs = init_kwargs(synthesis), init_kwargs(mapping)
    resolutions = _block_resolutions([k[len("backbone.synthesis."):] for k in tensors if k.startswith("backbone.synthesis.")])
    last = resolutions[-1]
    planes_out = tensors[f"backbone.synthesis.b{last}.torgb.weight"].shape[0]
    decoder_first = tensors["decoder.net.0.weight"]
    decoder_last = tensors["decoder.net.2.weight"]
    if planes_out % 3 or planes_out // 3 != decoder_first.shape[1]:
        raise ConversionError(f"the synthesis makes {planes_out} plane channels, the decoder takes {decoder_first.shape[1]}")
    num_layers = len([k for k in tensors if re.fullmatch(r"backbone\.mapping\.fc\d+\.weight", k)])
    if rendering.get("clamp_mode", "softplus") != "softplus":
        raise ConversionError(f"clamp_mode {rendering.get('clamp_mode')!r}: only EG3D's softplus density is supported")
    return TriPlaneGeneratorConfig(
        z_dim=int(kwargs.get("z_dim", 512)), c_dim=int(kwargs.get("c_dim", 0)), w_dim=int(kwargs.get("w_dim", 512)),
        mapping_layers=num_layers, mapping_lr_multiplier=float(map_kwargs.get("lr_multiplier", 0.01)),
        w_avg_beta=float(map_kwargs.get("w_avg_beta", 0.998) or 0.998),
        plane_resolution=last, plane_channels=planes_out // 3,
        channel_base=int(syn_kwargs.get("channel_base", 32768)), channel_max=int(syn_kwargs.get("channel_max", 512)),
        use_noise=f"backbone.synthesis.b{last}.conv1.noise_const" in tensors,
        conv_clamp=syn_kwargs.get("conv_clamp"),
        decoder_hidden=decoder_first.shape[0], decoder_layers=2, decoder_activation="softplus",
        decoder_backend="torch", density_shift=-1.0, num_feature_channels=decoder_last.shape[0] - 1,
        box_half_size=float(rendering.get("box_warp", 1.0)) / 2.0, aggregation="mean", padding_mode="zeros",
        plane_axes="xy_xz_zx", mask_outside_box=False,
    )


def triplane_tensors(tensors: dict, config: TriPlaneGeneratorConfig, rendering: dict) -> dict:
    sub = lambda prefix: {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}  # noqa: E731
    out = mapping_tensors(sub("backbone.mapping."))
    synthesis = sub("backbone.synthesis.")
    out.update(synthesis_tensors(synthesis, _block_resolutions(list(synthesis))))
    # Our decoder has no learning-rate multiplier: its stored weights are the effective ones, w * lr_mul.
    lr_mul = float(rendering.get("decoder_lr_mul", 1.0))
    for ours, theirs in (("decoder.layers.0", "decoder.net.0"), ("decoder.layers.1", "decoder.net.2")):
        out[f"{ours}.weight"] = tensors[f"{theirs}.weight"] * lr_mul
        out[f"{ours}.bias"] = tensors[f"{theirs}.bias"] * lr_mul
    if config.c_dim > 0:
        # EG3D maps c * c_scale (or zeros); the embedding is linear, so the scale goes into its weight.
        scale = 0.0 if rendering.get("c_gen_conditioning_zero", False) else float(rendering.get("c_scale", 1.0) or 0.0)
        out["mapping_network.embed.weight"] = out["mapping_network.embed.weight"] * scale
    return out


def superresolution(generator: ModuleRecord, tensors: dict, config: TriPlaneGeneratorConfig,
                     rendering: dict) -> SuperResolution:
    record = submodule(generator, "superresolution")
    name = record.class_name
    if name not in SUPERRESOLUTION_CLASSES:
        raise ConversionError(f"super-resolution module {name}: supported are {', '.join(SUPERRESOLUTION_CLASSES)}")
    kwargs = init_kwargs(generator)
    use_noise = rendering.get("superresolution_noise_mode", "none") != "none"
    sr_fp16 = int(kwargs.get("sr_num_fp16_res", 0) or 0)
    sub = {k[len("superresolution."):]: v for k, v in tensors.items() if k.startswith("superresolution.")}
    sr_config = SuperResolutionConfig(
        output_resolution=int(kwargs.get("img_resolution", 512)), in_channels=config.num_feature_channels,
        input_resolution=int(attribute(record, "input_resolution", 128)),
        channels=sub["block0.conv0.weight"].shape[0], use_noise=use_noise,
        # EG3D gives its super-resolution blocks conv_clamp 256 whenever they may run in fp16.
        conv_clamp=256.0 if sr_fp16 > 0 else None,
    )
    sr = SuperResolution(sr_config, config.w_dim)
    converted = {}
    for block, (_, _, up) in enumerate(sr_config.block_plan()):
        prefix = f"block{block}."
        converted.update(superresolution_block_tensors(
            {k[len(prefix):]: v for k, v in sub.items() if k.startswith(prefix)}, block, use_noise, up > 1))
    load_exactly(sr, converted, f"super-resolution ({name})")
    return sr


def camera_distribution(rendering: dict) -> CameraDistribution:
    radius = float(rendering.get("avg_camera_radius", 2.7))
    near, far = rendering.get("ray_start"), rendering.get("ray_end")
    if not isinstance(near, (int, float)) or not isinstance(far, (int, float)):
        raise ConversionError(f"ray_start/ray_end {near!r}/{far!r}: only fixed near and far distances are supported")
    fov = math.degrees(2.0 * math.atan(0.5 / FACES_FOCAL))
    # EG3D's FFHQ/AFHQ pose spread (their yaw and pitch std, about 17 and 9 degrees); 360-degree sets orbit.
    white = bool(rendering.get("white_back", False))
    config = CameraDistributionConfig(
        source="parametric", angles="sphere" if white else "normal", radius=radius,
        fov_degrees=30.0 if white else fov, near=float(near), far=float(far),
    )
    return CameraDistribution(config)


def rendering_setup(generator: ModuleRecord, rendering: dict, box_half_size: float,
                    super_resolved: int) -> tuple[VolumeRendererConfig, int, int]:
    """EG3D's (and Mimic3D's) ray marching from its ``rendering_kwargs``, its neural rendering resolution and its
    image resolution (``super_resolved``, the upsampler's output, when the record does not say)."""
    renderer = VolumeRendererConfig(
        sampler="importance", num_coarse=int(rendering.get("depth_resolution", 48)),
        num_fine=int(rendering.get("depth_resolution_importance", 48)), marcher="midpoint",
        background="white" if rendering.get("white_back", False) else "black", box_half_size=box_half_size,
    )
    if rendering.get("disparity_space_sampling", False):
        raise ConversionError("disparity_space_sampling: only EG3D's depth-space sampling is supported")
    neural = int(attribute(generator, "neural_rendering_resolution", 64) or 64)
    image_resolution = int(init_kwargs(generator).get("img_resolution", super_resolved))
    return renderer, neural, image_resolution


def convert(generator: ModuleRecord, source: Path) -> ImportedModel:
    """An EG3D generator record -> :class:`Eg3dModel` (weights checked name by name and shape by shape)."""
    rendering = attribute(generator, "rendering_kwargs", {}) or {}
    tensors = module_tensors(generator)
    config = triplane_config(generator, tensors, rendering)
    triplane = TriPlaneGenerator(config, seed=0)
    load_exactly(triplane, triplane_tensors(tensors, config, rendering), f"{source}: tri-plane generator")
    sr = superresolution(generator, tensors, config, rendering)
    renderer, neural, image_resolution = rendering_setup(generator, rendering, config.box_half_size,
                                                         sr.config.output_resolution)
    model = Eg3dModel(generator=Eg3dGenerator(triplane, sr).eval().requires_grad_(False),
                      renderer=VolumeRenderer(renderer), cameras=camera_distribution(rendering),
                      image_resolution=image_resolution, neural_resolution=neural)
    notes = []
    if sr.config.use_noise:
        notes.append("the super-resolution noise is EG3D's 'random'; ours uses the recorded constant noise images")
    summary = {
        "architecture": f"EG3D TriPlaneGenerator + {submodule(generator, 'superresolution').class_name}",
        "latent": f"z {config.z_dim}, c {config.c_dim} (pose label), w {config.w_dim}, {config.mapping_layers} mapping layers",
        "tri-plane": f"3 x {config.plane_channels} x {config.plane_resolution}^2, box side {2 * config.box_half_size:g}",
        "resolution": f"neural render {neural}^2, super-resolved to {image_resolution}^2",
        "rendering": (f"{renderer.num_coarse} + {renderer.num_fine} samples, near {rendering.get('ray_start')}, far "
                      f"{rendering.get('ray_end')}, {renderer.background} background, mid-point marcher"),
        "parameters": (f"mapping + synthesis + decoder {parameter_count(triplane):,}, super-resolution "
                       f"{parameter_count(sr):,}"),
    }
    return ImportedModel(FAMILY, model, summary, notes)

"""EpiGRAF's ``Generator`` snapshot (universome/epigraf) -> our patch-gan tri-plane model.

Carried over exactly: the StyleGAN2 mapping (optionally class-conditional) and tri-plane synthesis, the
leaky-ReLU decoder (its colour-then-density outputs reordered to our density-first layout), the scene scale
(points divided by ``cube_scale``: our box half size), ``align_corners=True`` plane lookups, its linear colour
output, its density shift, its edge-to-edge pixel rays and its ray marcher (points, the last one an opaque
backdrop; its importance pass). Supported: the stylegan2 backbone without a background model, view
conditioning, positional encoding or camera-conditioned mapping (EpiGRAF's released configurations).
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import torch

from epigraf_field.generator import TriPlaneGenerator, TriPlaneGeneratorConfig
from pipelines.camera_distributions import CameraDistribution, CameraDistributionConfig
from pipelines.checkpoint_import.converted import ImportedModel, parameter_count
from pipelines.checkpoint_import.records import ModuleRecord, init_kwargs, module_tensors, plain_config, submodule
from pipelines.checkpoint_import.stylegan2 import ConversionError, load_exactly, mapping_tensors, synthesis_tensors
from pipelines.model import TriPlaneModel
from renderers.volume_renderer import VolumeRenderer, VolumeRendererConfig

FAMILY = "epigraf"
GENERATOR_CLASS = "Generator"
_SYNTHESIS = "synthesis.tri_plane_decoder."
_DECODER = "synthesis.tri_plane_mlp.model."


def matches(generator: ModuleRecord) -> bool:
    """An EpiGRAF generator: class Generator whose synthesis holds a tri-plane decoder and MLP."""
    if getattr(generator, "class_name", None) != GENERATOR_CLASS:
        return False
    try:
        synthesis = submodule(generator, "synthesis")
    except KeyError:
        return False
    return {"tri_plane_decoder", "tri_plane_mlp"} <= set(synthesis.state.get("_modules") or {})


def _check_supported(cfg: dict) -> None:
    tri_plane = cfg.get("tri_plane", {})
    problems = []
    if cfg.get("backbone", "stylegan2") != "stylegan2":
        problems.append(f"backbone {cfg.get('backbone')!r} (only stylegan2)")
    if (cfg.get("bg_model") or {}).get("type") is not None:
        problems.append(f"background model {cfg['bg_model']['type']!r} (only none)")
    if tri_plane.get("has_view_cond", False):
        problems.append("view-direction conditioning")
    if tri_plane.get("posenc_period_len", 0):
        problems.append("positional encoding of the decoder input")
    if cfg.get("clamp_mode", "softplus") != "softplus":
        problems.append(f"clamp_mode {cfg.get('clamp_mode')!r} (only softplus)")
    if (tri_plane.get("mlp") or {}).get("n_layers", 2) != 2:
        problems.append(f"a decoder of {tri_plane['mlp']['n_layers']} layers (only 2)")
    if problems:
        raise ConversionError("unsupported settings: " + "; ".join(problems))


def convert(generator: ModuleRecord, source: Path) -> ImportedModel:
    """An EpiGRAF generator record -> :class:`TriPlaneModel` (weights checked name by name and shape by shape)."""
    cfg = plain_config(generator.state.get("cfg")) or {}
    if not isinstance(cfg, dict):
        raise ConversionError("the generator's cfg is not a readable config")
    _check_supported(cfg)
    kwargs = init_kwargs(generator)
    tensors = module_tensors(generator)
    mapping_record = submodule(generator, "mapping")
    if mapping_record.state.get("_modules", {}).get("camera_scalar_enc") is not None:
        raise ConversionError("unsupported settings: camera-conditioned mapping (camera_cond)")
    map_kwargs = init_kwargs(mapping_record)
    syn_kwargs = kwargs.get("synthesis_kwargs", kwargs)
    synthesis = {k[len(_SYNTHESIS):]: v for k, v in tensors.items() if k.startswith(_SYNTHESIS)}
    resolutions = sorted({int(m.group(1)) for k in synthesis if (m := re.match(r"b(\d+)\.", k))})
    last = resolutions[-1]
    planes_out = synthesis[f"b{last}.torgb.weight"].shape[0]
    first, second = tensors[_DECODER + "0.weight"], tensors[_DECODER + "1.weight"]
    dataset = cfg.get("dataset", {})
    scale = float(dataset.get("cube_scale", 1.0))
    config = TriPlaneGeneratorConfig(
        z_dim=int(kwargs.get("z_dim", 512)), c_dim=int(kwargs.get("c_dim", 0)), w_dim=int(kwargs.get("w_dim", 512)),
        mapping_layers=len([k for k in tensors if re.fullmatch(r"mapping\.fc\d+\.weight", k)]),
        mapping_lr_multiplier=float(map_kwargs.get("lr_multiplier", 0.01)),
        w_avg_beta=float(map_kwargs.get("w_avg_beta", 0.998) or 0.998),
        plane_resolution=last, plane_channels=planes_out // 3,
        channel_base=int(syn_kwargs.get("channel_base", 32768)), channel_max=int(syn_kwargs.get("channel_max", 512)),
        use_noise=f"b{last}.conv1.noise_const" in synthesis, conv_clamp=syn_kwargs.get("conv_clamp"),
        decoder_hidden=first.shape[0], decoder_layers=2, decoder_activation="leaky_relu", decoder_negative_slope=0.2,
        decoder_backend="auto", density_shift=float(cfg.get("density_shift", 0.0)), num_feature_channels=0,
        box_half_size=scale, aggregation="mean", padding_mode="zeros", align_corners=True,
        color_activation="linear", mask_outside_box=False,
    )
    if second.shape[0] != 4:
        raise ConversionError(f"the decoder outputs {second.shape[0]} channels, expected 4 (rgb + density)")
    # mean_camera_pose only feeds camera conditioning (refused above when on); the dataset's mean pose otherwise.
    converted = mapping_tensors({k[len("mapping."):]: v for k, v in tensors.items()
                                 if k.startswith("mapping.") and k != "mapping.mean_camera_pose"})
    converted.update(synthesis_tensors(synthesis, resolutions))
    # EpiGRAF's decoder outputs (r, g, b, density); ours (density, r, g, b). Same equalized-lr layout otherwise.
    order = torch.tensor([3, 0, 1, 2])
    converted["decoder.layers.0.weight"] = first
    converted["decoder.layers.0.bias"] = tensors[_DECODER + "0.bias"]
    converted["decoder.layers.1.weight"] = second[order]
    converted["decoder.layers.1.bias"] = tensors[_DECODER + "1.bias"][order]
    model_generator = TriPlaneGenerator(config, seed=0)
    load_exactly(model_generator, converted, f"{source}: tri-plane generator")
    camera = dataset.get("camera", {})
    white = bool(dataset.get("white_back", False))
    near, far = float(camera.get("ray_start", 0.88)), float(camera.get("ray_end", 1.12))
    steps = int(cfg.get("num_ray_steps", 48))
    if dataset.get("last_back", False):
        raise ConversionError("unsupported settings: last_back (the residual weight moved to the last sample)")
    # EpiGRAF's ray marcher: its far point is an opaque backdrop; white_back adds white behind what is left.
    renderer = VolumeRendererConfig(sampler="importance", num_coarse=steps, num_fine=steps, marcher="left_point",
                                    pixel_grid="corners", background="white" if white else "black",
                                    box_half_size=scale)
    cameras = CameraDistributionConfig(
        source="parametric", angles="sphere" if white else "normal", radius=float(camera.get("radius", 1.0)),
        fov_degrees=float(camera.get("fov", 12.0)), near=near, far=far,
    )
    if not white:
        cameras.yaw_spread_degrees = math.degrees(float(camera.get("yaw_std", 0.3) or 0.3))
        cameras.pitch_spread_degrees = math.degrees(float(camera.get("pitch_std", 0.155) or 0.155))
    resolution = int(kwargs.get("img_resolution", dataset.get("resolution", 256)))
    model = TriPlaneModel(generator=model_generator.eval().requires_grad_(False), renderer=VolumeRenderer(renderer),
                          cameras=CameraDistribution(cameras), pipeline="patch-gan", image_resolution=resolution,
                          num_classes=int(kwargs.get("c_dim", 0)))
    summary = {
        "architecture": "EpiGRAF Generator (StyleGAN2 tri-plane, no upsampler)",
        "latent": f"z {config.z_dim}, c {config.c_dim} (classes), w {config.w_dim}, {config.mapping_layers} mapping layers",
        "tri-plane": f"3 x {config.plane_channels} x {config.plane_resolution}^2, scene scale {scale:g}",
        "resolution": f"{resolution}^2 direct volume render",
        "rendering": (f"{steps} + {steps} samples, near {near:g}, far {far:g}, {renderer.background} background, "
                      "EpiGRAF's ray marcher (last sample opaque)"),
        "parameters": f"mapping + synthesis + decoder {parameter_count(model_generator):,}",
    }
    return ImportedModel(FAMILY, model, summary, [])

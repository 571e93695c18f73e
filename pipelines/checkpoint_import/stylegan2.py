"""Renaming the StyleGAN2 mapping and synthesis weights of the official code bases to our modules' names."""

from __future__ import annotations

import re

import torch
from torch import Tensor

# Weights our modules rebuild from a constant (the [1, 3, 3, 1] FIR filter) rather than store.
_FILTER_KEYS = ("resample_filter",)
_LAYER_RENAMES = {
    "affine.weight": "conv.affine.weight",
    "affine.bias": "conv.affine.bias",
    "weight": "conv.weight",
    "bias": "bias",
    "noise_strength": "noise_strength",
    "noise_const": "noise_const",
}


class ConversionError(ValueError):
    """The official weights do not have the layout a converter expects."""


def upsampling_kernel(weight: Tensor) -> Tensor:
    """An official up=2 modulated-conv kernel in our layout: spatially flipped.

    The official code runs its upsampling convolutions as transposed convolutions with the kernel as
    stored (``flip_weight=False``); ours computes a correlation of the zero-inserted input, so the same
    layer needs the kernel mirrored in both axes (demodulation, a sum of squares, is unchanged).
    """
    return weight.flip(2, 3)


def mapping_tensors(official: dict[str, Tensor], prefix: str = "mapping_network.") -> dict[str, Tensor]:
    """``fc{i}.*``, ``embed.*``, ``w_avg`` of an official MappingNetwork -> our ``layers.{i}.*``, ``embed.*``, ``w_avg``."""
    out: dict[str, Tensor] = {}
    for key, value in official.items():
        match = re.fullmatch(r"fc(\d+)\.(weight|bias)", key)
        if match:
            out[f"{prefix}layers.{match.group(1)}.{match.group(2)}"] = value
        elif key in ("embed.weight", "embed.bias", "w_avg"):
            out[prefix + key] = value
        else:
            raise ConversionError(f"unexpected mapping-network tensor {key!r}")
    return out


def _layer_key(rest: str, where: str) -> str:
    if rest in _LAYER_RENAMES:
        return _LAYER_RENAMES[rest]
    raise ConversionError(f"unexpected synthesis-layer tensor {where!r}")


def _torgb_key(rest: str, where: str) -> str:
    renames = {"affine.weight": "conv.affine.weight", "affine.bias": "conv.affine.bias",
               "weight": "conv.weight", "bias": "bias"}
    if rest in renames:
        return renames[rest]
    raise ConversionError(f"unexpected toRGB tensor {where!r}")


def synthesis_tensors(official: dict[str, Tensor], resolutions: list[int],
                      prefix: str = "synthesis_network.") -> dict[str, Tensor]:
    """``b{res}.{const,conv0,conv1,torgb}.*`` of an official skip synthesis network -> our ``blocks.{i}.*``.

    ``resolutions`` are the block resolutions in order (4, 8, ...); FIR filter buffers are dropped.
    """
    index = {res: i for i, res in enumerate(resolutions)}
    out: dict[str, Tensor] = {}
    for key, value in official.items():
        if key.rsplit(".", 1)[-1] in _FILTER_KEYS:
            continue
        match = re.fullmatch(r"b(\d+)\.(const|conv0|conv1|torgb)(?:\.(.+))?", key)
        if not match or int(match.group(1)) not in index:
            raise ConversionError(f"unexpected synthesis tensor {key!r} (blocks at resolutions {resolutions})")
        block = f"{prefix}blocks.{index[int(match.group(1))]}."
        part, rest = match.group(2), match.group(3)
        if part == "const":
            out[block + "const"] = value
        elif part == "torgb":
            out[block + "to_planes." + _torgb_key(rest, key)] = value
        else:
            ours = _layer_key(rest, key)
            if part == "conv0" and ours == "conv.weight":  # every conv0 of a skip synthesis upsamples
                value = upsampling_kernel(value)
            out[f"{block}{part}." + ours] = value
    return out


def superresolution_block_tensors(official: dict[str, Tensor], block: int, use_noise: bool,
                                  upsamples: bool) -> dict[str, Tensor]:
    """One official super-resolution block (``conv0``, ``conv1``, ``torgb``) -> our ``blocks.{block}.*``;
    ``upsamples``: its conv0 doubles the resolution (EG3D's SynthesisBlock, not SynthesisBlockNoUp)."""
    out: dict[str, Tensor] = {}
    for key, value in official.items():
        last = key.rsplit(".", 1)[-1]
        if last in _FILTER_KEYS or (not use_noise and last in ("noise_strength", "noise_const")):
            continue
        part, _, rest = key.partition(".")
        if part in ("conv0", "conv1"):
            ours = _layer_key(rest, key)
            if part == "conv0" and upsamples and ours == "conv.weight":
                value = upsampling_kernel(value)
            out[f"blocks.{block}.{part}." + ours] = value
        elif part == "torgb":
            out[f"blocks.{block}.to_rgb." + _torgb_key(rest, key)] = value
        else:
            raise ConversionError(f"unexpected super-resolution tensor {key!r}")
    return out


def load_exactly(module: torch.nn.Module, tensors: dict[str, Tensor], what: str) -> None:
    """Loads ``tensors`` into ``module``; every key on both sides must match in name and shape."""
    expected = module.state_dict()
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    if missing or unexpected:
        raise ConversionError(
            f"{what}: the converted weights do not match the model built from its recorded settings: "
            f"missing {missing[:6]}, unexpected {unexpected[:6]}"
        )
    for key, value in tensors.items():
        if tuple(value.shape) != tuple(expected[key].shape):
            raise ConversionError(
                f"{what}: tensor {key!r} has shape {list(value.shape)}, expected {list(expected[key].shape)}"
            )
    module.load_state_dict({k: v.to(expected[k].dtype) for k, v in tensors.items()})

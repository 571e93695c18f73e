"""Exponential moving average of a module's weights (the EMA generator used for evaluation)."""

from __future__ import annotations

import torch
from torch import nn


def _named_tensors(module: nn.Module) -> dict[str, torch.Tensor]:
    tensors = dict(module.named_parameters())
    tensors.update(dict(module.named_buffers()))
    return tensors


@torch.no_grad()
def copy_params_and_buffers(src: nn.Module, dst: nn.Module, require_all: bool = True) -> None:
    """Copy every parameter and buffer of ``src`` into the same-named tensor of ``dst``.

    With ``require_all`` a name missing in ``src`` raises a ``ValueError`` naming it.
    """
    src_tensors = _named_tensors(src)
    for name, tensor in _named_tensors(dst).items():
        if name not in src_tensors:
            if require_all:
                raise ValueError(f"copy_params_and_buffers: source module has no tensor named {name!r}")
            continue
        tensor.copy_(src_tensors[name].detach())


@torch.no_grad()
def ema_update(ema_module: nn.Module, module: nn.Module, beta: float) -> None:
    """``ema <- beta * ema + (1 - beta) * param`` for parameters; buffers are copied (StyleGAN2-ADA).

    Example: with beta 0.999 the EMA averages over roughly the last 1000 updates.
    """
    if not 0.0 <= beta <= 1.0:
        raise ValueError(f"beta must be in [0, 1], got {beta}")
    params = dict(module.named_parameters())
    for name, ema_param in ema_module.named_parameters():
        if name not in params:
            raise ValueError(f"ema_update: module has no parameter named {name!r}")
        ema_param.lerp_(params[name].detach(), 1.0 - beta)
    buffers = dict(module.named_buffers())
    for name, ema_buffer in ema_module.named_buffers():
        if name not in buffers:
            raise ValueError(f"ema_update: module has no buffer named {name!r}")
        ema_buffer.copy_(buffers[name])

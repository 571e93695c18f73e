"""IG-GAN's proxy losses: L2 to R's renders plus discriminator output matching (DOM)."""

from __future__ import annotations

import torch
from jaxtyping import Float
from torch import Tensor


def dom_loss(real_render_logits: Float[Tensor, "b 1"], proxy_logits: Float[Tensor, "b 1"]) -> Float[Tensor, " b"]:
    """Discriminator output matching per image: (log D(R(x)) - log D(f(x)))^2 with D = sigmoid(logit).

    The target side D(R(x)) is detached: the loss moves f towards what D says of R's render, never
    R's side (R is not differentiable anyway) nor D (whose parameters the caller leaves frozen).

    Example: equal logits give 0; logits 0 and log(3) give (log 0.5 - log 0.75)^2 = 0.164.
    """
    target = torch.nn.functional.logsigmoid(real_render_logits.detach())
    return (target - torch.nn.functional.logsigmoid(proxy_logits)).square().flatten(1).sum(1)


def l2_loss(proxy_images: Float[Tensor, "b 3 h w"], render_images: Float[Tensor, "b 3 h w"]) -> Float[Tensor, " b"]:
    """Mean squared error per image between f(x) and R(x) (R's side detached)."""
    return (proxy_images - render_images.detach()).square().flatten(1).mean(1)

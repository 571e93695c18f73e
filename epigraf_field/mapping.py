"""StyleGAN2 mapping network: latent z (and an optional label c) to intermediate latents w."""

from __future__ import annotations

import torch
from jaxtyping import Float
from torch import Tensor, nn

from epigraf_field.layers import EqualizedLinear


def normalize_2nd_moment(x: Float[Tensor, "b c"], eps: float = 1e-8) -> Float[Tensor, "b c"]:
    """Scale each row to unit root-mean-square (StyleGAN's pixel norm on latents)."""
    return x * (x.square().mean(dim=1, keepdim=True) + eps).rsqrt()


class MappingNetwork(nn.Module):
    """z [b, z_dim] (+ c [b, c_dim]) -> ws [b, num_ws, w_dim] (Karras et al. 2019, Sec. 2).

    The label is embedded by a linear layer to ``w_dim`` features and both inputs are normalized
    to unit second moment before the MLP (StyleGAN2-ADA's conditioning). ``w_avg`` is a buffer,
    the running mean of w used for truncation; it only changes when the caller asks
    (``update_w_avg=True`` or :meth:`update_w_avg`), never as a side effect of a plain forward.
    """

    def __init__(
        self,
        z_dim: int,
        c_dim: int,
        w_dim: int,
        num_ws: int,
        num_layers: int = 8,
        lr_multiplier: float = 0.01,
        w_avg_beta: float = 0.995,
    ) -> None:
        super().__init__()
        if z_dim <= 0 and c_dim <= 0:
            raise ValueError("MappingNetwork needs z_dim > 0 or c_dim > 0")
        if num_layers < 1:
            raise ValueError(f"num_layers must be >= 1, got {num_layers}")
        self.z_dim, self.c_dim, self.w_dim, self.num_ws = z_dim, c_dim, w_dim, num_ws
        self.num_layers, self.w_avg_beta = num_layers, w_avg_beta
        self.embed = EqualizedLinear(c_dim, w_dim) if c_dim > 0 else None
        in_features = (z_dim if z_dim > 0 else 0) + (w_dim if c_dim > 0 else 0)
        features = [in_features] + [w_dim] * num_layers
        self.layers = nn.ModuleList(
            EqualizedLinear(features[i], features[i + 1], activation="lrelu", lr_multiplier=lr_multiplier)
            for i in range(num_layers)
        )
        self.register_buffer("w_avg", torch.zeros(w_dim))

    def forward(
        self,
        z: Float[Tensor, "b zdim"],
        c: Float[Tensor, "b cdim"] | None = None,
        truncation_psi: float = 1.0,
        truncation_cutoff: int | None = None,
        update_w_avg: bool = False,
    ) -> Float[Tensor, "b num_ws wdim"]:
        """Map latents; ``truncation_psi < 1`` pulls the first ``truncation_cutoff`` ws towards w_avg.

        ``update_w_avg=True`` (training only) moves ``w_avg`` towards the batch mean of w with
        beta ``w_avg_beta`` before truncation.
        """
        parts = []
        if self.z_dim > 0:
            if z.shape[1] != self.z_dim:
                raise ValueError(f"z must have shape [b, {self.z_dim}], got {list(z.shape)}")
            parts.append(normalize_2nd_moment(z.float()))
        if self.c_dim > 0:
            if c is None or c.shape != (z.shape[0], self.c_dim):
                got = None if c is None else list(c.shape)
                raise ValueError(f"c must have shape [{z.shape[0]}, {self.c_dim}] (c_dim > 0), got {got}")
            parts.append(normalize_2nd_moment(self.embed(c.float())))
        x = torch.cat(parts, dim=1) if len(parts) > 1 else parts[0]
        for layer in self.layers:
            x = layer(x)
        if update_w_avg:
            self.update_w_avg(x)
        ws = x.unsqueeze(1).expand(-1, self.num_ws, -1)
        if truncation_psi != 1.0:
            ws = truncate(ws, self.w_avg, truncation_psi, truncation_cutoff)
        return ws

    @torch.no_grad()
    def update_w_avg(self, w: Float[Tensor, "b wdim"]) -> None:
        """EMA step of the tracked mean latent: ``w_avg <- lerp(mean(w), w_avg, beta)``.

        In a data-parallel run the mean is over every process's batch, so replicas keep one w_avg,
        the one a single process would track with the whole batch.
        """
        mean = w.detach().mean(dim=0)
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.all_reduce(mean)
            mean /= torch.distributed.get_world_size()
        self.w_avg.copy_(mean.lerp(self.w_avg, self.w_avg_beta))


def truncate(
    ws: Float[Tensor, "b num_ws wdim"],
    w_avg: Float[Tensor, " wdim"],
    psi: float,
    cutoff: int | None = None,
) -> Float[Tensor, "b num_ws wdim"]:
    """Truncation trick (Karras et al. 2019, Sec. 3.3): ``w_avg + psi * (w - w_avg)`` on ws[:, :cutoff]."""
    if cutoff is None:
        return w_avg.lerp(ws, psi)
    head = w_avg.lerp(ws[:, :cutoff], psi)
    return torch.cat([head, ws[:, cutoff:]], dim=1)

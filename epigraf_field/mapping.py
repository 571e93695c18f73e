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
    the running mean of w used for truncation. The forward never changes it; a training loop calls
    :meth:`track_w_avg` once per step with its batch mean of w (averaged over processes in a
    data-parallel run), so the module needs no process group and inference never moves it.
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
    ) -> Float[Tensor, "b num_ws wdim"]:
        """Map latents; ``truncation_psi < 1`` pulls the first ``truncation_cutoff`` ws towards w_avg."""
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
        ws = x.unsqueeze(1).expand(-1, self.num_ws, -1)
        if truncation_psi != 1.0:
            ws = truncate(ws, self.w_avg, truncation_psi, truncation_cutoff)
        return ws

    @torch.no_grad()
    def track_w_avg(self, mean_w: Float[Tensor, " wdim"], beta: float) -> None:
        """One EMA step of the tracked mean latent: ``w_avg <- lerp(mean_w, w_avg, beta)`` (StyleGAN2).

        ``mean_w`` is the mean un-truncated w of a training batch; ``beta`` is usually
        ``w_avg_beta``. Example: w_avg 0, mean_w 1, beta 0.995 gives w_avg 0.005.
        """
        if mean_w.shape != self.w_avg.shape:
            raise ValueError(f"track_w_avg needs a mean w of shape [{self.w_dim}], got {list(mean_w.shape)}")
        mean_w = mean_w.detach().to(self.w_avg)
        self.w_avg.copy_(mean_w.lerp(self.w_avg, beta))


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

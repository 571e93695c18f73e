"""Analytic radiance fields with closed-form renders (sphere, slab, constant) for tests and benchmarks."""

from __future__ import annotations

import torch
from jaxtyping import Float
from torch import Tensor, nn

from renderers.field import FieldValues


def _per_scene(value: float | tuple[float, ...] | Tensor, width: int, name: str) -> Tensor:
    """A [1, width] or [b, width] float tensor from a scalar/tuple (shared) or a per-scene tensor."""
    tensor = torch.as_tensor(value, dtype=torch.float32)
    if tensor.ndim <= 1 and (tensor.numel() == width or (width == 1 and tensor.ndim == 1)):
        tensor = tensor.reshape(-1, width)
    if tensor.ndim != 2 or tensor.shape[1] != width:
        raise ValueError(
            f"{name} must be shared ({width} numbers) or per scene with shape [b, {width}], got {list(tensor.shape)}"
        )
    if not torch.isfinite(tensor).all():
        raise ValueError(f"{name} holds non-finite values")
    return tensor


def _expand_scenes(value: Tensor, batch: int, name: str) -> Tensor:
    """Broadcasts a [1, k] or [b, k] parameter to the points' batch of scenes."""
    if value.shape[0] not in (1, batch):
        raise ValueError(f"field has {value.shape[0]} scenes of {name} but points hold {batch} scenes")
    return value.expand(batch, -1)


class AnalyticField(nn.Module):
    """Base of the analytic fields: a density shape times ``sigma`` with a constant colour per scene.

    ``sigma`` and ``color`` (and ``features`` when given) are parameters, so gradients of a render
    reach them; that is how tests check that rendering is differentiable with respect to a field.
    """

    def __init__(
        self,
        sigma: float | Tensor,
        color: tuple[float, float, float] | Tensor,
        features: Tensor | None = None,
    ) -> None:
        super().__init__()
        self.sigma = nn.Parameter(_per_scene(sigma, 1, "sigma"))
        if (self.sigma < 0).any():
            raise ValueError("sigma (density) must be >= 0")
        self.color = nn.Parameter(_per_scene(color, 3, "color"))
        if features is not None:
            features = torch.as_tensor(features, dtype=torch.float32)
            features = nn.Parameter(features.reshape(-1, features.shape[-1]))
        self.features = features

    def inside(self, points: Float[Tensor, "b n 3"]) -> Float[Tensor, "b n 1"]:
        """Indicator (or any non-negative profile) of where the shape has density."""
        raise NotImplementedError

    def density(self, points: Float[Tensor, "b n 3"]) -> Float[Tensor, "b n 1"]:
        sigma = _expand_scenes(self.sigma, points.shape[0], "sigma").to(points.device)
        return self.inside(points) * sigma[:, None, :]

    def forward(self, points: Float[Tensor, "b n 3"], directions: Float[Tensor, "b n 3"] | None = None) -> FieldValues:
        b, n = points.shape[:2]
        rgb = _expand_scenes(self.color, b, "color").to(points.device)[:, None, :].expand(b, n, 3)
        features = None
        if self.features is not None:
            features = _expand_scenes(self.features, b, "features").to(points.device)[:, None, :]
            features = features.expand(b, n, self.features.shape[-1])
        return FieldValues(density=self.density(points), rgb=rgb, features=features)


class SphereField(AnalyticField):
    """A ball of radius ``radius`` around ``center`` with constant density and colour.

    With the default ``sigma = 200`` a chord of 0.03 already has opacity 1 - exp(-6) > 0.997, so
    the ball renders as an opaque disc whose silhouette is known exactly.

    Example:
        >>> field = SphereField(radius=0.25)
        >>> field.density(torch.tensor([[[0.0, 0.0, 0.2], [0.0, 0.0, 0.3]]]))[..., 0].tolist()
        [[200.0, 0.0]]
    """

    def __init__(
        self,
        radius: float | Tensor = 0.3,
        center: tuple[float, float, float] | Tensor = (0.0, 0.0, 0.0),
        sigma: float | Tensor = 200.0,
        color: tuple[float, float, float] | Tensor = (0.9, 0.4, 0.1),
        features: Tensor | None = None,
    ) -> None:
        super().__init__(sigma, color, features)
        radius = _per_scene(radius, 1, "radius")
        if (radius <= 0).any():
            raise ValueError(f"radius must be positive, got {radius.flatten().tolist()}")
        self.register_buffer("radius", radius)
        self.register_buffer("center", _per_scene(center, 3, "center"))

    def inside(self, points: Float[Tensor, "b n 3"]) -> Float[Tensor, "b n 1"]:
        b = points.shape[0]
        center = _expand_scenes(self.center, b, "center").to(points.device)[:, None, :]
        radius = _expand_scenes(self.radius, b, "radius").to(points.device)[:, None, :]
        return ((points - center).norm(dim=-1, keepdim=True) <= radius).to(points.dtype)


class SlabField(AnalyticField):
    """Constant density between two planes ``low <= x[axis] <= high`` (unbounded across them).

    A ray crossing it along ``axis`` sees transmittance ``exp(-sigma * (high - low))``.
    """

    def __init__(
        self,
        low: float = -0.1,
        high: float = 0.1,
        axis: int = 2,
        sigma: float | Tensor = 5.0,
        color: tuple[float, float, float] | Tensor = (0.2, 0.6, 0.9),
        features: Tensor | None = None,
    ) -> None:
        super().__init__(sigma, color, features)
        if axis not in (0, 1, 2):
            raise ValueError(f"axis must be 0, 1 or 2, got {axis}")
        if not low < high:
            raise ValueError(f"SlabField needs low < high, got low={low}, high={high}")
        self.low, self.high, self.axis = float(low), float(high), axis

    def inside(self, points: Float[Tensor, "b n 3"]) -> Float[Tensor, "b n 1"]:
        coord = points[..., self.axis : self.axis + 1]
        return ((coord >= self.low) & (coord <= self.high)).to(points.dtype)


class ConstantField(AnalyticField):
    """The same density and colour everywhere: a ray of length L has opacity 1 - exp(-sigma * L)."""

    def __init__(
        self,
        sigma: float | Tensor = 1.0,
        color: tuple[float, float, float] | Tensor = (0.5, 0.5, 0.5),
        features: Tensor | None = None,
    ) -> None:
        super().__init__(sigma, color, features)

    def inside(self, points: Float[Tensor, "b n 3"]) -> Float[Tensor, "b n 1"]:
        return torch.ones_like(points[..., :1])

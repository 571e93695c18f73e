"""The radiance-field protocol every renderer accepts: b scenes queried at points [b, n, 3]."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from jaxtyping import Float
from torch import Tensor


@runtime_checkable
class RadianceFieldOutputs(Protocol):
    """What a :class:`RadianceField` returns for a batch of points (any object with these attributes)."""

    density: Float[Tensor, "b n 1"]
    """Activated volume density, >= 0."""
    rgb: Float[Tensor, "b n 3"]
    """Colour in [0, 1]."""
    features: Float[Tensor, "b n f"] | None
    """Extra per-point channels to composite (e.g. EG3D's 32-channel feature), or None."""
    # Optional: ``density_logits`` [b, n, 1] with density == softplus(density_logits); the 'midpoint' marcher
    # averages them before the activation, as EG3D does (read with getattr, absent on most fields).


@runtime_checkable
class RadianceField(Protocol):
    """Structural type of a batch of radiance fields, one scene per batch item.

    Our tri-plane field, an analytic test field or an adapter around another library's field all
    satisfy it without inheriting from anything.
    """

    def __call__(
        self, points: Float[Tensor, "b n 3"], directions: Float[Tensor, "b n 3"] | None = None
    ) -> RadianceFieldOutputs: ...

    def density(self, points: Float[Tensor, "b n 3"]) -> Float[Tensor, "b n 1"]:
        """Density only: cheaper, used for occupancy grids and geometry extraction."""
        ...


@dataclass
class FieldValues:
    """A plain container that satisfies :class:`RadianceFieldOutputs`."""

    density: Float[Tensor, "b n 1"]
    rgb: Float[Tensor, "b n 3"]
    features: Float[Tensor, "b n f"] | None = None


def check_field(field: object) -> None:
    """Raises a ValueError when ``field`` does not look like a :class:`RadianceField`."""
    if not callable(field) or not callable(getattr(field, "density", None)):
        raise ValueError(
            f"field must satisfy renderers.field.RadianceField: callable as field(points[b, n, 3]) and with a "
            f"field.density(points) method; got {type(field).__name__}"
        )

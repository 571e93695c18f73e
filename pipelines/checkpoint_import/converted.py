"""What a converter returns: the model in our classes and a summary of what the snapshot held."""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import nn


@dataclass
class ImportedModel:
    """A converted official generator (a :class:`pipelines.model.GeneratorModel`) and what was found."""

    family: str
    """Which code base wrote the snapshot ('eg3d', 'epigraf')."""
    model: object
    """The generator model (saved as a bundle with ``model.save(directory)``)."""
    summary: dict[str, str] = field(default_factory=dict)
    """Architecture, resolutions and rendering settings, as printed by ``epigraf-import``."""
    notes: list[str] = field(default_factory=list)
    """Where the converted model knowingly differs from the official one (settings we could not carry over)."""


def parameter_count(module: nn.Module) -> int:
    """Number of weights (parameters) in a module."""
    return sum(p.numel() for p in module.parameters())

"""The pipeline interface every training method implements, and the values that flow into it."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from pipelines.model import GeneratorModel


@dataclass
class TrainBatch:
    """One minibatch of real data for this process."""

    images: Tensor
    """Real images [b, 3, R, R] in [-1, 1]."""
    labels: Tensor
    """EG3D camera labels [b, 25] of the real images."""
    classes: Tensor | None = None
    """Class indices [b] (int64) of the real images for a class-conditional dataset, else None."""


@dataclass(frozen=True)
class Progress:
    """How far training has come before the current minibatch."""

    step: int
    """Minibatches done so far (the same on every process)."""
    nimg: int
    """Real images shown so far, summed over processes."""

    @property
    def kimg(self) -> float:
        return self.nimg / 1000.0


class Pipeline(ABC):
    """Owns the generator, discriminator(s), their optimizers and the losses of one method.

    The trainer calls :meth:`train_step` once per minibatch and never looks inside; snapshots,
    metrics, the live viewer and saved bundles all go through :meth:`model`.
    """

    name: str = "pipeline"

    @abstractmethod
    def train_step(self, batch: TrainBatch, progress: Progress) -> dict[str, float]:
        """Runs every phase of one minibatch (G, D, regularizers, EMA) and returns scalar metrics."""

    @abstractmethod
    def state_dict(self) -> dict[str, Any]:
        """Everything needed for an exact resume: weights, optimizer and RNG states (plain containers)."""

    @abstractmethod
    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restores :meth:`state_dict`."""

    @abstractmethod
    def model(self) -> GeneratorModel:
        """The EMA generator as every consumer takes it (shares the weights; ``.save`` writes its bundle)."""

    def modules(self) -> list[torch.nn.Module]:
        """Modules whose parameters are synchronised across processes at start and resume."""
        return []

    @property
    def real_class_group(self) -> int:
        """Runs of this many consecutive real images share a class on a class-conditional dataset (1: any mix)."""
        return 1

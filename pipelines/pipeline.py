"""The pipeline interface every training method implements, and the values that flow into it."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from renderers.cameras import Cameras


@dataclass
class TrainBatch:
    """One minibatch of real data for this process."""

    images: Tensor
    """Real images [b, 3, R, R] in [-1, 1]."""
    labels: Tensor
    """EG3D camera labels [b, 25] of the real images."""


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

    The trainer calls :meth:`train_step` once per minibatch and never looks inside, except for
    ``G_ema``, the EMA generator it hands to the live viewer once per tick.
    """

    name: str = "pipeline"
    G_ema: torch.nn.Module

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
    def save_generator(self, directory: Path) -> None:
        """Writes the EMA generator (safetensors + JSON) so it loads without this package."""

    @abstractmethod
    def sample_cameras(self, batch_size: int, generator: torch.Generator) -> Cameras:
        """Cameras from the generator's camera distribution (used for snapshots too)."""

    @abstractmethod
    @torch.no_grad()
    def render_images(self, z: Tensor, cameras: Cameras, resolution: int, truncation_psi: float = 1.0) -> Tensor:
        """Renders the EMA generator for latents ``z`` [b, z_dim] from ``cameras``: images [b, 3, h, w] in [0, 1]."""

    @property
    @abstractmethod
    def z_dim(self) -> int:
        """Size of the latent code."""

    def evaluation_model(self) -> Any:
        """The EMA generator packaged for the metrics (an ``pipelines.evaluation.EvaluationModel``)."""
        raise NotImplementedError(f"pipeline {self.name!r} does not support metrics during training")

    def modules(self) -> list[torch.nn.Module]:
        """Modules whose parameters are synchronised across processes at start and resume."""
        return []

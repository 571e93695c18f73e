"""A learning-rate decay for nerfstudio whose checkpoints load with ``torch.load(weights_only=True)``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Type

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR, LRScheduler

from pipelines.nerfstudio.imports import require_nerfstudio

require_nerfstudio()

from nerfstudio.engine.schedulers import Scheduler, SchedulerConfig  # noqa: E402


@dataclass
class LogLinearDecaySchedulerConfig(SchedulerConfig):
    """Learning rate decaying log-linearly from the optimizer's rate to ``lr_final`` over ``max_steps``.

    nerfstudio 1.1.5's ``ExponentialDecayScheduler`` computes its rates with numpy, so its state
    (and the optimizer's) holds numpy scalars, which torch >= 2.6 refuses to load by default
    (``weights_only=True``): nerfstudio's own ``--load-dir``, ``ns-viewer`` and ``ns-eval`` then fail
    on the checkpoint. This schedule is the same curve in plain Python floats.
    """

    _target: Type = field(default_factory=lambda: LogLinearDecayScheduler)
    lr_final: float = 1e-3
    """Learning rate reached at ``max_steps`` (kept afterwards)."""
    max_steps: int = 3000
    """Steps over which the rate decays."""


class LogLinearDecayScheduler(Scheduler):
    """``lr(step) = lr_init * (lr_final / lr_init) ** min(step / max_steps, 1)``."""

    config: LogLinearDecaySchedulerConfig

    def get_scheduler(self, optimizer: Optimizer, lr_init: float) -> LRScheduler:
        if not (lr_init > 0 and self.config.lr_final > 0 and self.config.max_steps > 0):
            raise ValueError(
                f"LogLinearDecayScheduler needs positive rates and max_steps, got lr_init={lr_init}, "
                f"lr_final={self.config.lr_final}, max_steps={self.config.max_steps}"
            )
        ratio = float(self.config.lr_final) / float(lr_init)
        max_steps = int(self.config.max_steps)
        return LambdaLR(optimizer, lambda step: ratio ** min(step / max_steps, 1.0))

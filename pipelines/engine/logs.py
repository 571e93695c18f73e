"""Run logs: JSON lines (one record per tick), TensorBoard scalars, and a kimg progress bar."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TextIO

from tqdm import tqdm


class RunLogger:
    """Appends metric records to ``log.jsonl`` and mirrors the scalars to TensorBoard."""

    def __init__(self, run_dir: Path, use_tensorboard: bool = True) -> None:
        self.path = Path(run_dir) / "log.jsonl"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._writer = None
        if use_tensorboard:
            from torch.utils.tensorboard import SummaryWriter  # imported lazily: tensorboard is heavy

            self._writer = SummaryWriter(log_dir=str(Path(run_dir) / "tensorboard"))

    def log(self, record: dict[str, float | int | str], step_kimg: float) -> None:
        with open(self.path, "a") as handle:
            handle.write(json.dumps(record) + "\n")
        if self._writer is not None:
            for key, value in record.items():
                if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
                    self._writer.add_scalar(key, value, global_step=int(step_kimg * 1000))
            self._writer.flush()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()


class KimgProgress:
    """A progress bar counted in kimg, showing kimg/s and the ETA.

    The training loop stops at the first batch that reaches the total, so the last update may pass
    it by part of a batch; the bar shows at most the total.
    """

    def __init__(self, total_kimg: float, start_kimg: float, enabled: bool, file: TextIO | None = None) -> None:
        total = round(total_kimg, 3)
        self._bar = tqdm(
            total=total,
            initial=min(round(start_kimg, 3), total),
            unit="kimg",
            dynamic_ncols=True,
            disable=not enabled,
            file=file,
            bar_format="{l_bar}{bar}| {n:.2f}/{total:.2f} kimg [{elapsed}<{remaining}, {rate_fmt}{postfix}]",
        )

    def update(self, kimg: float, **postfix: float) -> None:
        # The position is set, not summed from increments, so at the total it is exactly the total.
        self._bar.n = min(round(kimg, 6), self._bar.total)
        self._bar.update(0)
        if postfix:
            self._bar.set_postfix({k: f"{v:.3g}" for k, v in postfix.items()}, refresh=False)

    def close(self) -> None:
        self._bar.close()

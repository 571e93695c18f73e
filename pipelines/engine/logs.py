"""Run logs: JSON lines (one record per tick), TensorBoard scalars, and a kimg progress bar."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import TextIO

from tqdm import tqdm


LOG_FILE = "log.jsonl"
TENSORBOARD_DIR = "tensorboard"


class RunLogger:
    """Appends metric records to ``log.jsonl`` and mirrors the scalars to TensorBoard (step: images seen).

    With ``resume_nimg`` (a run resumed from the checkpoint at that many images) the records logged
    after that checkpoint, which the resumed run logs again, are dropped first: from ``log.jsonl``
    (rewritten atomically) and from TensorBoard (the writer purges steps after ``resume_nimg``).
    """

    def __init__(self, run_dir: Path, use_tensorboard: bool = True, resume_nimg: int | None = None) -> None:
        self.path = Path(run_dir) / LOG_FILE
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if resume_nimg is not None:
            truncate_log(self.path, resume_nimg)
        self._writer = None
        if use_tensorboard:
            from torch.utils.tensorboard import SummaryWriter  # imported lazily: tensorboard is heavy

            # TensorBoard hides the events of earlier files at steps >= purge_step.
            purge_step = None if resume_nimg is None else resume_nimg + 1
            self._writer = SummaryWriter(log_dir=str(Path(run_dir) / TENSORBOARD_DIR), purge_step=purge_step)

    def log(self, record: dict[str, float | int | str], step_kimg: float) -> None:
        with open(self.path, "a") as handle:
            handle.write(json.dumps(record) + "\n")
        if self._writer is not None:
            for key, value in record.items():
                if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
                    self._writer.add_scalar(key, value, global_step=_step(step_kimg))
            self._writer.flush()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()


def rewind_run_logs(run_dir: Path, resume_nimg: int, use_tensorboard: bool = True) -> None:
    """Drops what was logged after the checkpoint at ``resume_nimg`` images (see :class:`RunLogger`)."""
    RunLogger(run_dir, use_tensorboard, resume_nimg=resume_nimg).close()


def truncate_log(path: Path, resume_nimg: int) -> None:
    """Keeps the records of ``log.jsonl`` at ``kimg <= resume_nimg / 1000`` (and any without a kimg).

    A torn last line (a run killed while writing it) is dropped too. The file is replaced
    atomically: a crash here leaves the old log or the new one.
    """
    path = Path(path)
    if not path.is_file():
        return
    lines = path.read_text().splitlines()
    kept = [line for line in lines if _logged_by(line, resume_nimg)]
    if len(kept) == len(lines):
        return
    temporary = path.with_name(f".{path.name}.tmp")
    with open(temporary, "w") as handle:
        handle.write("".join(line + "\n" for line in kept))
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)


def _logged_by(line: str, nimg: int) -> bool:
    """Whether a log line is a record of the run up to ``nimg`` images."""
    try:
        record = json.loads(line)
    except json.JSONDecodeError:
        return False
    kimg = record.get("kimg") if isinstance(record, dict) else None
    return not isinstance(kimg, (int, float)) or _step(kimg) <= nimg


def _step(kimg: float) -> int:
    """Images seen: the TensorBoard step (rounded: 1.001 kimg is 1001 images, not int(1000.9999...))."""
    return round(kimg * 1000)


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

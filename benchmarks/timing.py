"""Wall-clock timing shared by the benchmark scripts (CUDA work is waited for)."""

from __future__ import annotations

import time
from collections.abc import Callable

import torch


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(device: torch.device, fn: Callable[[], object], repeats: int) -> tuple[object, float]:
    """Result of ``fn`` and its best wall time in seconds over ``repeats`` runs (after one warm-up)."""
    result = fn()
    best = float("inf")
    for _ in range(repeats):
        synchronize(device)
        start = time.perf_counter()
        result = fn()
        synchronize(device)
        best = min(best, time.perf_counter() - start)
    return result, best


def machine_description() -> dict[str, object]:
    """What a recorded benchmark ran on: processor, cores, OS, Python and torch versions, threads, load."""
    import os
    import platform

    model = platform.processor() or platform.machine()
    try:
        for line in open("/proc/cpuinfo", encoding="utf-8"):
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "processor": model, "cores": os.cpu_count(), "system": platform.platform(),
        "python": platform.python_version(), "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
        "load_average_1min": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
    }


def record_result(path: str, command: list[str], result: dict[str, object]) -> None:
    """Appends one JSON line (date, command, machine, result) to ``path``: measured figures live in the repo."""
    import json
    import shlex
    from datetime import datetime, timezone
    from pathlib import Path

    entry = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
             "command": shlex.join(["python", *command]), "machine": machine_description(), **result}
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    with target.open("a", encoding="utf-8") as file:
        file.write(json.dumps(entry) + "\n")

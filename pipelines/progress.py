"""Progress bars of long commands: what is being done, how far it is, and the time left (on stderr)."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

from tqdm import tqdm

QUIET_VARIABLE = "EPIGRAF_NO_PROGRESS"
"""Set (to anything but 0) to turn every progress bar off, e.g. in scripts that parse stderr."""


def progress_bar(total: int, description: str, unit: str = "it", enabled: bool = True) -> tqdm:
    """A tqdm bar on stderr; ``enabled=False`` (or $EPIGRAF_NO_PROGRESS) gives a bar that prints nothing."""
    quiet = os.environ.get(QUIET_VARIABLE, "0") not in ("", "0")
    return tqdm(total=total, desc=description, unit=unit, file=sys.stderr, disable=quiet or not enabled,
                dynamic_ncols=True, mininterval=0.5, leave=True)


def advance(bar: tqdm | None) -> Callable[[int], None] | None:
    """A callback that moves ``bar`` on by the count it is given (None without a bar)."""
    return None if bar is None else bar.update

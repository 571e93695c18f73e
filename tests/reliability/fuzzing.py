"""The fuzz harness: seeds, byte damage, in-process command runs and a tally of the cases tried by kind."""

from __future__ import annotations

import contextlib
import io
import os
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

CASES_ENV = "EPIGRAF_FUZZ_CASES"
"""Seeds per case kind; raise it for longer runs (``EPIGRAF_FUZZ_CASES=200 pytest tests/reliability``)."""
FIRST_SEED_ENV = "EPIGRAF_FUZZ_FIRST_SEED"
"""First seed of the list (default 0): another value explores other cases, still reproducibly."""
DEFAULT_CASES = 24

TALLY: Counter[str] = Counter()
"""Cases tried in this session by ``area/kind``; printed at the end of the run (see conftest.py)."""


def seeds(scale: float = 1.0) -> range:
    """The fixed seed list of a case kind: ``EPIGRAF_FUZZ_CASES x scale`` seeds from ``EPIGRAF_FUZZ_FIRST_SEED``."""
    count = int(os.environ.get(CASES_ENV, DEFAULT_CASES))
    first = int(os.environ.get(FIRST_SEED_ENV, 0))
    return range(first, first + max(1, round(count * scale)))


def case_rng(kind: str, seed: int) -> random.Random:
    """The generator of one case: the same (kind, seed) gives the same case on every machine."""
    return random.Random(f"{kind}:{seed}")


# ---------------------------------------------------------------------------------------------- damage
def flip_bytes(data: bytes, rng: random.Random, count: int | None = None) -> tuple[bytes, list[int]]:
    """``data`` with 1-3 (or ``count``) bytes XORed with a random non-zero value; returns the offsets too."""
    damaged = bytearray(data)
    offsets = sorted(rng.sample(range(len(data)), min(len(data), count or rng.randint(1, 3))))
    for offset in offsets:
        damaged[offset] ^= rng.randint(1, 255)
    return bytes(damaged), offsets


def truncate(data: bytes, rng: random.Random) -> bytes:
    """``data`` cut at a random length in [0, len - 1] (short cuts and cuts near the end equally likely)."""
    if rng.random() < 0.5:
        return data[: rng.randrange(len(data))]
    return data[: len(data) - rng.randint(1, min(len(data), 64))]


# ------------------------------------------------------------------------------------------ commands
@dataclass
class Outcome:
    """How a command run in-process ended."""

    code: int | str | None
    """main's return value, or SystemExit's code (a string is the `error: ...` line)."""
    out: str
    err: str
    crash: BaseException | None = None
    """An exception that escaped the command: it would print a traceback."""

    @property
    def message(self) -> str:
        return self.code if isinstance(self.code, str) else ""


def run_main(main: Callable[[list[str]], int], argv: list[str]) -> Outcome:
    """Runs a command's ``main(argv)`` as its console script does, capturing stdout and stderr."""
    out, err = io.StringIO(), io.StringIO()
    crash, code = None, None
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as exit_:
            code = exit_.code
        except Exception as error:  # noqa: BLE001 - recorded as the failure it is
            crash = error
    return Outcome(code, out.getvalue(), err.getvalue(), crash)


def command_problems(outcome: Outcome) -> list[str]:
    """What is wrong with how a command ended, whatever its result: a traceback, or a malformed error line."""
    problems = []
    if outcome.crash is not None:
        problems.append(f"raised {type(outcome.crash).__name__}: {str(outcome.crash)[:300]} (a traceback for the user)")
    if "Traceback" in outcome.out + outcome.err:
        problems.append(f"printed a traceback: {(outcome.out + outcome.err)[-300:]}")
    if isinstance(outcome.code, str):
        if not outcome.code.startswith("error: "):
            problems.append(f"exit message does not start with 'error: ': {outcome.code[:200]!r}")
        if "\n" in outcome.code.strip():
            problems.append(f"exit message spans several lines: {outcome.code[:400]!r}")
    return problems


# ------------------------------------------------------------------------------------------ failures
@dataclass
class Failures:
    """Failures of the cases of one test, each named by its case, so one run shows all of them."""

    area: str
    messages: list[str] = field(default_factory=list)
    tried: Counter[str] = field(default_factory=Counter)
    endings: Counter[str] = field(default_factory=Counter)
    """How the cases ended (loaded, reported, fell back, ...): shows that both outcomes are exercised."""

    def record(self, kind: str) -> None:
        self.tried[kind] += 1
        TALLY[f"{self.area}/{kind}"] += 1

    def ended(self, ending: str) -> None:
        self.endings[ending] += 1

    def add(self, case: str, problems: list[str]) -> None:
        self.messages += [f"{case}: {problem}" for problem in problems]

    def check(self, minimum_per_kind: int = 1, kinds: tuple[str, ...] = ()) -> None:
        """Prints the counts by kind, then fails listing every failed case (and any kind never tried)."""
        print(f"\n{self.area}: {sum(self.tried.values())} cases: "
              + ", ".join(f"{kind} {count}" for kind, count in sorted(self.tried.items())))
        print(f"{self.area}: endings: " + ", ".join(f"{e} {n}" for e, n in sorted(self.endings.items())))
        missing = [kind for kind in kinds if self.tried[kind] < minimum_per_kind]
        assert not missing, f"{self.area}: case kinds tried fewer than {minimum_per_kind} times: {missing}"
        shown = self.messages[:40]
        more = f"\n... and {len(self.messages) - len(shown)} more" if len(self.messages) > len(shown) else ""
        assert not self.messages, f"{len(self.messages)} failure(s) in {self.area}:\n" + "\n".join(shown) + more

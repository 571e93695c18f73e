"""Problems found while checking a dataset, the report that lists them, and the error that carries it."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class DatasetProblem:
    """One thing wrong with one dataset entry (or with the dataset as a whole)."""

    entry: str
    """The file or label entry concerned (a path inside the dataset), or the dataset path itself."""
    kind: str
    """Short machine-readable name: missing_file, corrupt_image, non_square_image, bad_label_length, ..."""
    problem: str
    """What is wrong, in words."""
    fix: str
    """What to do about it."""

    def __str__(self) -> str:
        return f"{self.entry}: {self.problem}. Fix: {self.fix}"


@dataclass
class ValidationReport:
    """Every problem of a dataset, found in one pass so that all of them can be fixed at once."""

    dataset: str
    """The dataset path the report is about."""
    num_entries: int = 0
    """How many images (or labels without images) were looked at."""
    problems: list[DatasetProblem] = field(default_factory=list)
    """Every problem found, in dataset order."""
    fatal: bool = False
    """True when the dataset cannot be read at all (e.g. a truncated zip): skipping entries cannot help."""

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def bad_entries(self) -> set[str]:
        return {p.entry for p in self.problems}

    def add(self, entry: str, kind: str, problem: str, fix: str) -> None:
        self.problems.append(DatasetProblem(entry, kind, problem, fix))

    def __str__(self) -> str:
        if self.ok:
            return f"dataset {self.dataset}: {self.num_entries} entries, no problems"
        lines = [f"dataset {self.dataset}: {len(self.problems)} problem(s) in {self.num_entries} entries:"]
        lines += [f"  - {p}" for p in self.problems]
        return "\n".join(lines)

    def to_json(self) -> str:
        return json.dumps(
            {"dataset": self.dataset, "num_entries": self.num_entries, "fatal": self.fatal,
             "problems": [asdict(p) for p in self.problems]},
            indent=2,
        )

    def write(self, run_dir: str | Path) -> list[Path]:
        """Writes ``bad_entries.txt`` (one line per problem) and ``bad_entries.json`` into ``run_dir``."""
        run_dir = Path(run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        text_path, json_path = run_dir / "bad_entries.txt", run_dir / "bad_entries.json"
        text_path.write_text("".join(f"{p}\n" for p in self.problems))
        json_path.write_text(self.to_json())
        return [text_path, json_path]


class DatasetValidationError(ValueError):
    """Raised when a dataset has problems and skipping bad entries was not asked for."""

    def __init__(self, report: ValidationReport, hint: str = ""):
        self.report = report
        message = str(report)
        if hint:
            message += "\n" + hint
        super().__init__(message)

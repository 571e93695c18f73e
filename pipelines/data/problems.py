"""Problems found while checking a dataset, the report that lists them, and the error that carries it."""

from __future__ import annotations

import json
from collections import Counter
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


REPORT_FILES = ("bad_entries.txt", "bad_entries.json")
"""The files :meth:`ValidationReport.write` puts into a run folder."""


@dataclass
class ValidationReport:
    """Every problem of a dataset, found in one pass so that all of them can be fixed at once."""

    dataset: str
    """The dataset path the report is about."""
    num_entries: int = 0
    """How many images (or labels without images) were looked at."""
    problems: list[DatasetProblem] = field(default_factory=list)
    """Every problem found, in dataset order: entries that cannot be trained on."""
    fatal: bool = False
    """True when the dataset cannot be read at all (e.g. a truncated zip): skipping entries cannot help."""
    warnings: list[DatasetProblem] = field(default_factory=list)
    """Entries that are used but look wrong (e.g. images far smaller than the resolution); they do not fail."""

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def bad_entries(self) -> set[str]:
        return {p.entry for p in self.problems}

    def add(self, entry: str, kind: str, problem: str, fix: str) -> None:
        self.problems.append(DatasetProblem(entry, kind, problem, fix))

    def warn(self, entry: str, kind: str, problem: str, fix: str) -> None:
        """Records a non-fatal finding: the entry is still used."""
        self.warnings.append(DatasetProblem(entry, kind, problem, fix))

    def __str__(self) -> str:
        if self.ok:
            lines = [f"dataset {self.dataset}: {self.num_entries} entries, no problems"]
        else:
            lines = [f"dataset {self.dataset}: {len(self.problems)} problem(s) in {self.num_entries} entries:"]
            lines += [f"  - {p}" for p in self.problems]
        if self.warnings:
            lines.append(f"{len(self.warnings)} warning(s) (entries still used):")
            lines += [f"  - {w}" for w in self.warnings]
        return "\n".join(lines)

    def summary(self, run_dir: str | Path | None = None) -> str:
        """One paragraph for a launcher to print after skipping bad entries.

        Example: ``skipped 2 of 40 entries (corrupt_image: 1, missing_file: 1), list in run/bad_entries.txt``.
        ``run_dir`` is the folder :meth:`write` wrote into (None: the sentence names no file).
        """
        where = f", list in {_report_dir(Path(run_dir)) / REPORT_FILES[0]}" if run_dir is not None else ""
        text = (f"dataset {self.dataset}: skipped {len(self.bad_entries)} of {self.num_entries} entries "
                f"({_count_kinds(self.problems)}){where}" if self.problems
                else f"dataset {self.dataset}: no entries skipped ({self.num_entries} entries)")
        if self.warnings:
            text += f"; {len(self.warnings)} warning(s) on entries still used ({_count_kinds(self.warnings)})"
        return text + "."

    def to_json(self) -> str:
        return json.dumps(
            {"dataset": self.dataset, "num_entries": self.num_entries, "fatal": self.fatal,
             "problems": [asdict(p) for p in self.problems], "warnings": [asdict(w) for w in self.warnings]},
            indent=2,
        )

    def write(self, run_dir: str | Path) -> list[Path]:
        """Writes the files ``bad_entries.txt`` (one line per problem) and ``bad_entries.json`` into ``run_dir``.

        A path that names one of those files (``run_dir / "bad_entries.txt"``) means its folder: the
        files are written beside each other, never into a folder of that name.
        """
        run_dir = _report_dir(Path(run_dir))
        run_dir.mkdir(parents=True, exist_ok=True)
        text_path, json_path = (run_dir / name for name in REPORT_FILES)
        text_path.write_text("".join(f"{p}\n" for p in self.problems))
        json_path.write_text(self.to_json())
        return [text_path, json_path]


def _report_dir(path: Path) -> Path:
    return path.parent if path.name in REPORT_FILES else path


def _count_kinds(problems: list[DatasetProblem]) -> str:
    counts = Counter(p.kind for p in problems)
    return ", ".join(f"{kind}: {count}" for kind, count in counts.most_common())


class DatasetValidationError(ValueError):
    """Raised when a dataset has problems and skipping bad entries was not asked for."""

    def __init__(self, report: ValidationReport, hint: str = ""):
        self.report = report
        message = str(report)
        if hint:
            message += "\n" + hint
        super().__init__(message)

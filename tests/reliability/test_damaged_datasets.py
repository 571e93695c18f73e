"""Damaged datasets load with the right values or are reported naming the entry, never with a traceback."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import numpy as np
import pytest

from pipelines.cli import data as data_cli
from pipelines.data.image_dataset import DatasetConfig, ImageDataset, validate_dataset
from pipelines.data.problems import DatasetValidationError, ValidationReport
from tests.reliability.datasets import (
    CASE_BUILDERS,
    DATASET,
    REGRESSION_SEEDS,
    RESOLUTION,
    SEED_SCALE,
    DatasetCase,
)
from tests.reliability.fuzzing import Failures, command_problems, run_main, seeds


def _fingerprint(path: Path) -> dict[str, str]:
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def _may_name(case: DatasetCase, path: Path) -> set[str]:
    return {str(path) if name == DATASET else name for name in case.damaged}


def _names_damage(entry: str, allowed: set[str]) -> bool:
    """``entry`` is a damaged entry, or a part of one (``dataset.json labels[3]``)."""
    return any(entry == name or entry.startswith(f"{name} ") for name in allowed)


def _report_problems(case: DatasetCase, report: ValidationReport, path: Path) -> list[str]:
    """A report must name a damaged entry and nothing else; an ok report must be allowed."""
    allowed = _may_name(case, path)
    problems = [f"report line spans lines: {str(p)!r}" for p in report.problems + report.warnings if "\n" in str(p)]
    if report.ok:
        if case.expect == "problem":
            problems.append(f"damage not reported (should name one of {sorted(allowed)}); report: {report}")
        return problems
    if case.expect == "ok":
        problems.append(f"reported, but must load: {[str(p) for p in report.problems]}")
    if not any(_names_damage(p.entry, allowed) for p in report.problems):
        problems.append(f"no problem names a damaged entry {sorted(allowed)}: {[str(p) for p in report.problems]}")
    intact = [p.entry for p in report.problems if not _names_damage(p.entry, allowed)]
    if intact and not case.any_entry:
        problems.append(f"undamaged entries reported: {intact} ({[str(p) for p in report.problems]})")
    return problems


def _loaded_problems(case: DatasetCase, dataset: ImageDataset, excluded: set[str]) -> list[str]:
    """The loaded images and labels must be the expected ones, every entry not excluded among them."""
    expected_names = sorted(name for name in case.images if name not in excluded)
    if dataset.names != expected_names:
        return [f"loaded {dataset.names}, expected {expected_names}"]
    problems = []
    for index, name in enumerate(dataset.names):
        image = dataset.raw_image(index).transpose(1, 2, 0).astype(int)
        difference = np.abs(image - case.images[name].astype(int)).max()
        if difference > case.atol:
            problems.append(f"{name} loaded with pixels off by up to {difference} (silently changed)")
    if dataset.class_labels is not None:
        problems.append(f"read {dataset.num_classes} classes from a dataset without any")
    if case.labels is None:
        if dataset.has_labels or dataset.labels.abs().max() > 0:
            problems.append("an unlabeled dataset loaded with labels")
        return problems
    if not dataset.has_labels:
        if case.labels_optional and dataset.labels.abs().max() == 0:
            return problems
        return problems + ["labels silently dropped: the dataset loaded as unlabeled"]
    for index, name in enumerate(dataset.names):
        if not np.array_equal(dataset.labels[index].numpy(), case.labels[name]):
            problems.append(f"label of {name} is {dataset.labels[index].tolist()}, expected {case.labels[name].tolist()}")
    return problems


def _dataset_problems(case: DatasetCase, path: Path, report: ValidationReport) -> list[str]:
    """ImageDataset: raises naming the damage unless the report is ok; with skip_bad, loads the rest."""
    config = DatasetConfig(path=path, resolution=RESOLUTION)
    problems = []
    try:
        if report.ok:
            return _loaded_problems(case, ImageDataset(config), set())
        with pytest.raises(DatasetValidationError) as info:
            ImageDataset(config)
        if not any(_names_damage(p.entry, _may_name(case, path)) for p in info.value.report.problems):
            problems.append(f"DatasetValidationError names no damaged entry: {str(info.value)[:300]}")
        if report.fatal or report.num_entries == len(report.bad_entries):
            with pytest.raises(DatasetValidationError):
                ImageDataset(DatasetConfig(path=path, resolution=RESOLUTION, skip_bad=True))
            return problems
        skipping = ImageDataset(DatasetConfig(path=path, resolution=RESOLUTION, skip_bad=True))
        return problems + _loaded_problems(case, skipping, report.bad_entries)
    except pytest.fail.Exception as failure:
        return problems + [f"ImageDataset: {str(failure)[:300]}"]
    except Exception as error:  # noqa: BLE001 - anything but DatasetValidationError is a failure of the case
        return problems + [f"ImageDataset raised {type(error).__name__}: {str(error)[:300]}"]


def _command_problems(path: Path, report: ValidationReport) -> list[str]:
    """`epigraf-data validate`: exit 0 when ok, else 1 with one line per problem (or one `error:` line)."""
    outcome = run_main(data_cli.main, ["validate", str(path), "--resolution", str(RESOLUTION)])
    problems = command_problems(outcome)
    if outcome.crash is not None or isinstance(outcome.code, str):
        return problems
    if outcome.code != (0 if report.ok else 1):
        problems.append(f"exit code {outcome.code} for a report with {len(report.problems)} problem(s)")
    listed = [line for line in outcome.out.splitlines() if line.startswith("  - ")]
    if len(listed) != len(report.problems) + len(report.warnings):
        problems.append(f"printed {len(listed)} problem lines for {len(report.problems)} problem(s) and "
                        f"{len(report.warnings)} warning(s): {outcome.out[-500:]}")
    return problems


def _ending(report: ValidationReport) -> str:
    if report.ok:
        return "loaded with warnings" if report.warnings else "loaded"
    return "reported (fatal)" if report.fatal else "reported (rest usable)"


def check_dataset_case(case: DatasetCase, folder: Path) -> tuple[str, list[str]]:
    """How ``case`` ended, and every way in which the commands mishandle it (empty: handled)."""
    folder.mkdir()
    path = case.write(folder)
    before = _fingerprint(path)
    try:
        report = validate_dataset(DatasetConfig(path=path, resolution=RESOLUTION))
    except Exception as error:  # noqa: BLE001
        problems = [f"validate_dataset raised {type(error).__name__}: {str(error)[:300]}"]
        return "crashed", problems + _command_problems(path, ValidationReport(str(path)))
    problems = _report_problems(case, report, path)
    problems += _dataset_problems(case, path, report)
    problems += _command_problems(path, report)
    if _fingerprint(path) != before:
        problems.append("the dataset files were changed")
    shutil.rmtree(folder)
    return _ending(report), problems


def test_damaged_datasets_load_correctly_or_are_reported_by_entry(tmp_path):
    failures = Failures("datasets")
    for kind, build in CASE_BUILDERS.items():
        for seed in sorted(set(seeds(SEED_SCALE.get(kind, 1.0))) | set(REGRESSION_SEEDS.get(kind, ()))):
            case = build(seed)
            failures.record(kind)
            ending, problems = check_dataset_case(case, tmp_path / f"{kind}-{seed}")
            failures.ended(ending)
            failures.add(case.name, problems)
    failures.check(kinds=tuple(CASE_BUILDERS))

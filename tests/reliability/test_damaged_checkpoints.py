"""Damaged checkpoints and bundles render like an intact checkpoint or fail in one line naming the file."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import numpy as np
import torch

from pipelines.cli import train as train_cli
from pipelines.engine.checkpoints import verify_checkpoint
from pipelines.model import ModelLoadError, open_model
from tests.reliability.checkpoints import (
    CHECKPOINT_FILES,
    DAMAGE,
    NEWEST,
    OLDEST,
    CheckpointCase,
    apply_damage,
    build_case,
    copy_run,
)
from tests.reliability.conftest import TinyRun
from tests.reliability.fuzzing import Failures, Outcome, case_rng, command_problems, run_main, seeds
from tests.reliability.rendering import render


def _fingerprint(folder: Path) -> dict[str, str]:
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


def _allowed(case: CheckpointCase) -> tuple[list[str], bool]:
    """The intact checkpoints a success may equal, and whether an error is an acceptable end.

    A run folder has an intact checkpoint left whichever one is damaged, so it must render: the
    newest, or the older one after naming the damaged newest on stderr. A damaged checkpoint or
    bundle opened directly renders as it was (harmless damage) or fails naming the damage.
    """
    if case.target == "run":
        return ([NEWEST, OLDEST] if case.checkpoint == NEWEST else [NEWEST]), False
    return [case.checkpoint], True


def _error_problems(case: CheckpointCase, message: str, allowed_error: bool, run_dir: Path, bundle_dir: Path) -> list[str]:
    if not allowed_error:
        return [f"failed although an intact checkpoint is left: {message[:300]}"]
    if not case.names_damage(message, run_dir, bundle_dir):
        return [f"error names neither the damaged file nor its checkpoint/bundle: {message[:300]}"]
    return []


def _render_problems(case: CheckpointCase, tiny_run: TinyRun, run_dir: Path, bundle_dir: Path,
                     out: Path) -> tuple[str, list[str]]:
    """How epigraf-render ended (its ending for the tally) and what is wrong with it."""
    outcome, images = render(case.target_path(run_dir, bundle_dir), out)
    problems = command_problems(outcome)
    allowed, allowed_error = _allowed(case)
    if outcome.crash is not None:
        return "crashed", problems
    if outcome.code != 0:
        if not isinstance(outcome.code, str):
            return "failed", problems + [f"exit code {outcome.code!r} without an error line"]
        return "error line", problems + _error_problems(case, outcome.code, allowed_error, run_dir, bundle_dir)
    same = [name for name in allowed if _same_images(images, tiny_run.renders[name])]
    if not same:
        return "changed", problems + [f"rendered images that differ from intact {' and '.join(allowed)} (a silent change)"]
    if same == [OLDEST] and case.target == "run":
        if NEWEST not in outcome.err:
            problems.append(f"fell back to {OLDEST} without naming the damaged {NEWEST} on stderr: {outcome.err[-300:]!r}")
        return "rendered the older checkpoint", problems
    return "rendered as intact", problems


def _same_images(images: dict[str, np.ndarray], expected: dict[str, np.ndarray]) -> bool:
    return images.keys() == expected.keys() and all(np.array_equal(images[k], expected[k]) for k in images)


def _open_model_problems(case: CheckpointCase, tiny_run: TinyRun, run_dir: Path, bundle_dir: Path) -> list[str]:
    allowed, allowed_error = _allowed(case)
    try:
        model = open_model(case.target_path(run_dir, bundle_dir))
    except ModelLoadError as error:
        return [f"open_model: {p}" for p in _error_problems(case, str(error), allowed_error, run_dir, bundle_dir)]
    except Exception as error:  # noqa: BLE001 - anything but ModelLoadError is a failure of the case
        return [f"open_model raised {type(error).__name__}: {str(error)[:300]}"]
    state = model.network.state_dict()
    if not any(_same_state(state, tiny_run.weights[name]) for name in allowed):
        return [f"open_model gave weights that differ from intact {' and '.join(allowed)} (a silent change)"]
    return []


def _same_state(state: dict[str, torch.Tensor], expected: dict[str, torch.Tensor]) -> bool:
    return state.keys() == expected.keys() and all(torch.equal(state[k], expected[k]) for k in state)


def check_checkpoint_case(case: CheckpointCase, tiny_run: TinyRun,
                          folder: Path) -> tuple[CheckpointCase, str, list[str]]:
    """The case with its damage described, how rendering ended, and what went wrong."""
    run_dir = copy_run(tiny_run.run_dir, folder / "run")
    bundle_dir = folder / "bundle"
    if case.target == "bundle":
        shutil.copytree(run_dir / "checkpoints" / case.checkpoint / "generator", bundle_dir)
    case = apply_damage(case, case.damaged_path(run_dir, bundle_dir))
    before = _fingerprint(folder)
    ending, problems = _render_problems(case, tiny_run, run_dir, bundle_dir, folder / "render")
    problems += _open_model_problems(case, tiny_run, run_dir, bundle_dir)
    shutil.rmtree(folder / "render", ignore_errors=True)
    if _fingerprint(folder) != before:
        problems.append("rendering or opening changed the run or bundle")
    shutil.rmtree(folder)
    return case, ending, problems


def test_damaged_checkpoints_render_like_an_intact_one_or_fail_naming_it(tiny_run, tmp_path):
    failures = Failures("checkpoints")
    for kind in DAMAGE:
        for seed in seeds(1.0):
            case = build_case(kind, seed)
            failures.record(f"{kind} via {case.target}")
            case, ending, problems = check_checkpoint_case(case, tiny_run, tmp_path / f"{kind}-{seed}")
            failures.ended(f"{case.target}: {ending}")
            failures.add(case.name, problems)
    failures.check(kinds=tuple(f"{kind} via {target}" for kind in DAMAGE
                               for target in ("run", "checkpoint", "generator", "bundle")))


# ------------------------------------------------------------------------------------------------ resume
RESUME_KINDS = ("latest_with_newest_damaged", "latest_with_oldest_damaged", "named_damaged_checkpoint",
                "latest_with_all_damaged")


def _damage_files(run_dir: Path, checkpoints: list[str], kind: str, seed: int) -> str:
    """Damages one random file of each of ``checkpoints``; returns what was done."""
    rng = case_rng(f"resume_{kind}", seed)
    done = []
    for checkpoint in checkpoints:
        case = CheckpointCase(rng.choice(DAMAGE), seed, checkpoint, rng.choice(CHECKPOINT_FILES), "checkpoint")
        case = apply_damage(case, case.damaged_path(run_dir, run_dir))
        done.append(f"{case.kind} {checkpoint}/{case.file} {case.detail}")
    return "; ".join(done)


def _resume(run_dir: Path, argv: list[str]) -> Outcome:
    return run_main(train_cli.main, ["--device", "cpu", "--trainer.no-progress-bar", "--trainer.turntable-samples", "0",
                                     *argv])


def _resume_problems(kind: str, run_dir: Path, tiny_run: TinyRun) -> tuple[Outcome, list[str]]:
    """How epigraf-train --resume ended on the damaged copy, and what is wrong with that."""
    checkpoints = run_dir / "checkpoints"
    if kind == "latest_with_newest_damaged":
        outcome = _resume(run_dir, ["--resume", "latest", "--out", str(run_dir), "--kimg", "0.008"])
        problems = command_problems(outcome)
        if outcome.code != 0:
            return outcome, problems + [f"resume failed although {OLDEST} is intact: {outcome.code!r}"]
        if f"resuming from {checkpoints / NEWEST}" in outcome.out:
            return outcome, problems  # the damage did not touch what the checkpoint's manifest guards
        if not (checkpoints / f"rejected-{NEWEST}").is_dir():
            problems.append(f"the damaged {NEWEST} was not kept as rejected-{NEWEST}")
        verify_checkpoint(checkpoints / NEWEST)
        model = open_model(checkpoints / NEWEST)
        if not _same_state(model.network.state_dict(), tiny_run.weights[NEWEST]):
            problems.append(f"resuming from {OLDEST} rewrote {NEWEST} with other weights than the intact run's")
        return outcome, problems
    if kind == "latest_with_oldest_damaged":
        outcome = _resume(run_dir, ["--resume", "latest", "--out", str(run_dir), "--kimg", "0.010"])
        problems = command_problems(outcome)
        if outcome.code != 0 or f"resuming from {checkpoints / NEWEST}" not in outcome.out:
            problems.append(f"did not resume from the intact {NEWEST}: {outcome.code!r} {outcome.out[-300:]!r}")
        return outcome, problems
    target = ["--resume", str(checkpoints / NEWEST)] if kind == "named_damaged_checkpoint" else [
        "--resume", "latest", "--out", str(run_dir)]
    outcome = _resume(run_dir, [*target, "--kimg", "0.008"])
    problems = command_problems(outcome)
    if outcome.code == 0:
        return outcome, problems  # harmless damage (say, a checkpoint.json that still verifies)
    if not (isinstance(outcome.code, str) and NEWEST in outcome.code):
        problems.append(f"expected one `error:` line naming {NEWEST}, got {outcome.code!r}")
    return outcome, problems


def _resume_ending(outcome: Outcome) -> str:
    if isinstance(outcome.code, str):
        return "error line"
    resumed = [line.rsplit("/", 1)[-1] for line in outcome.out.splitlines() if line.startswith("resuming from ")]
    return f"resumed from {resumed[0] if resumed else '?'}" if outcome.code == 0 else f"exit {outcome.code!r}"


def test_resume_skips_damaged_checkpoints_or_fails_naming_them(tiny_run, tmp_path):
    failures = Failures("resume")
    for seed in seeds(1 / 6):  # resuming trains: 1-2 s a case
        kind = RESUME_KINDS[seed % len(RESUME_KINDS)]
        run_dir = copy_run(tiny_run.run_dir, tmp_path / f"{kind}-{seed}")
        damaged = {"latest_with_newest_damaged": [NEWEST], "latest_with_oldest_damaged": [OLDEST],
                   "named_damaged_checkpoint": [NEWEST], "latest_with_all_damaged": [NEWEST, OLDEST]}[kind]
        detail = _damage_files(run_dir, damaged, kind, seed)
        failures.record(kind)
        try:
            outcome, problems = _resume_problems(kind, run_dir, tiny_run)
            failures.ended(_resume_ending(outcome))
        except Exception as error:  # noqa: BLE001 - a check that cannot run is a failure of the case
            problems = [f"{type(error).__name__}: {str(error)[:300]}"]
        failures.add(f"{kind}[seed={seed}] {detail}", problems)
    failures.check(kinds=RESUME_KINDS)

"""Training checkpoints: atomic directory writes, the last few kept, verified loading, `latest` lookup.

A checkpoint is a directory ``checkpoints/step-<nimg>/`` holding
``training_state.pt`` (plain tensors and numbers only, read with ``weights_only=True``),
``generator/`` (the EMA generator as safetensors + JSON, loadable without this package) and
``checkpoint.json`` (format version, progress, each file's size and SHA-256). It is written under a
temporary name and renamed into place, so a run killed at any moment leaves either the whole
checkpoint or none; a failed write (a full disk) removes its partial folder. Every read checks the
files against the manifest, so a bit flip is reported, not trained on. A resume that finds newer
checkpoints damaged renames them ``rejected-step-<nimg>[-k]``: kept as evidence, never pruned, and
not overwritten when the run reaches that step again.
"""

from __future__ import annotations

import errno
import io
import json
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch

from pipelines.bundle import file_records, find_damaged_file

FORMAT_VERSION = 2
"""2: each file's size and SHA-256; 1: sizes only (still read, checked by size)."""
READABLE_VERSIONS = (1, 2)
STATE_FILE = "training_state.pt"
MANIFEST_FILE = "checkpoint.json"
GENERATOR_DIR = "generator"
REJECTED_PREFIX = "rejected-"
_PREFIX = "step-"
_DISK_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)
# How a full disk reads when a library reports it without an OSError (safetensors' Rust IO errors).
_DISK_FULL_TEXT = ("no space left on device", "storagefull", "os error 28")


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be used (missing, truncated, from another format) or written."""


class CheckpointDamaged(CheckpointError):
    """A checkpoint whose files do not match its manifest, or whose training state cannot be read."""


@dataclass(frozen=True)
class CheckpointInfo:
    path: Path
    nimg: int


def checkpoint_dir(run_dir: Path) -> Path:
    return Path(run_dir) / "checkpoints"


# ---------------------------------------------------------------------------------------------- writing
def save_checkpoint(
    run_dir: Path,
    nimg: int,
    training_state: dict[str, Any],
    save_generator: Callable[[Path], None],
    keep_last: int = 3,
) -> Path:
    """Writes a checkpoint atomically and prunes all but the newest ``keep_last`` (never the one written).

    A write that fails removes its partial folder and leaves the earlier checkpoints as they were;
    an OSError (a full disk above all) becomes a :class:`CheckpointError` saying what to do.
    """
    root = checkpoint_dir(run_dir)
    final = root / f"{_PREFIX}{nimg:012d}"
    staging = root / f".partial-{final.name}"
    try:
        root.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(staging, ignore_errors=True)
        _write_checkpoint_files(staging, nimg, training_state, save_generator)
    except BaseException as error:
        shutil.rmtree(staging, ignore_errors=True)
        if isinstance(error, Exception) and (isinstance(error, OSError) or _is_disk_full(error)):
            raise _write_failure(error, run_dir, final, training_state) from error
        raise
    if final.exists():
        shutil.rmtree(final)
    os.replace(staging, final)
    _prune(run_dir, keep_last, keep=final)
    return final


def _write_checkpoint_files(staging: Path, nimg: int, training_state: dict[str, Any],
                            save_generator: Callable[[Path], None]) -> None:
    staging.mkdir()
    # Serialized in memory and written here: torch.save reports a full disk as a bare RuntimeError.
    buffer = io.BytesIO()
    torch.save(training_state, buffer)
    _write_bytes(staging / STATE_FILE, buffer.getbuffer())
    save_generator(staging / GENERATOR_DIR)
    manifest = {"format_version": FORMAT_VERSION, "nimg": nimg, "files": file_records(staging)}
    _write_bytes(staging / MANIFEST_FILE, json.dumps(manifest, indent=2).encode())
    _fsync_tree(staging)


def _write_bytes(path: Path, data: bytes | memoryview) -> None:
    with open(path, "wb") as handle:
        handle.write(data)


def _fsync_tree(directory: Path) -> None:
    for path in directory.rglob("*"):
        if path.is_file():
            with open(path, "rb") as handle:
                os.fsync(handle.fileno())


def _prune(run_dir: Path, keep_last: int, keep: Path) -> None:
    """Removes all but the newest ``keep_last`` checkpoints, never ``keep`` (rejected-* are not listed)."""
    for old in list_checkpoints(run_dir)[:-keep_last] if keep_last > 0 else []:
        if old.path != keep:
            shutil.rmtree(old.path, ignore_errors=True)


def _is_disk_full(error: BaseException | None) -> bool:
    """Whether ``error`` or an exception it was raised from reports a full disk or an exceeded quota."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, OSError) and error.errno in _DISK_FULL_ERRNOS:
            return True
        if any(text in str(error).lower() for text in _DISK_FULL_TEXT):
            return True
        error = error.__cause__ or error.__context__
    return False


def _write_failure(error: Exception, run_dir: Path, final: Path, training_state: dict[str, Any]) -> CheckpointError:
    """The one-paragraph error of a checkpoint that could not be written (called after the partial folder is gone)."""
    previous = list_checkpoints(run_dir)
    last = f"the last complete checkpoint is {previous[-1].path}" if previous else "no checkpoint was completed yet"
    if not _is_disk_full(error):
        return CheckpointError(f"cannot write checkpoint {final} ({error}); {last}")
    needed = _checkpoint_bytes(previous[-1].path) if previous else 0
    needed = max(needed, _tensor_bytes(training_state))
    free = _free_bytes(checkpoint_dir(run_dir))
    return CheckpointError(
        f"no space left on device writing checkpoint {final} (needs about {_megabytes(needed)} MB; "
        f"{_megabytes(free)} MB free); free space or pass --out elsewhere; {last}"
    )


def _checkpoint_bytes(path: Path) -> int:
    return sum(file.stat().st_size for file in Path(path).rglob("*") if file.is_file())


def _tensor_bytes(value: object) -> int:
    """Bytes of the tensors in nested dicts, lists and tuples (the bulk of a training state)."""
    if isinstance(value, torch.Tensor):
        return value.numel() * value.element_size()
    if isinstance(value, dict):
        return sum(_tensor_bytes(item) for item in value.values())
    if isinstance(value, (list, tuple)):
        return sum(_tensor_bytes(item) for item in value)
    return 0


def _free_bytes(directory: Path) -> int:
    try:
        return shutil.disk_usage(directory).free
    except OSError:
        return 0


def _megabytes(count: int) -> str:
    return f"{count / 2**20:.1f}"


# ---------------------------------------------------------------------------------------------- reading
def list_checkpoints(run_dir: Path) -> list[CheckpointInfo]:
    """Complete-looking checkpoints of a run, oldest first (``.partial-*`` and ``rejected-*`` are not listed)."""
    root = checkpoint_dir(run_dir)
    if not root.is_dir():
        return []
    found = []
    for path in root.iterdir():
        if path.is_dir() and path.name.startswith(_PREFIX) and path.name[len(_PREFIX) :].isdigit():
            found.append(CheckpointInfo(path, int(path.name[len(_PREFIX) :])))
    return sorted(found, key=lambda info: info.nimg)


def read_manifest(path: Path) -> dict[str, Any]:
    """``checkpoint.json`` of a checkpoint directory, checked for a readable format (not yet against the files)."""
    path = Path(path)
    manifest_path = path / MANIFEST_FILE
    if not manifest_path.is_file():
        raise CheckpointDamaged(
            f"{manifest_path} is missing: {path} is not a complete checkpoint "
            "(pass a checkpoint directory such as runs/<run>/checkpoints/step-000000004000, or --resume latest)"
        )
    try:
        manifest = json.loads(manifest_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise CheckpointDamaged(f"{manifest_path} is not valid JSON ({error}); the checkpoint is damaged") from error
    if not isinstance(manifest, dict):
        raise CheckpointDamaged(f"{manifest_path} holds {type(manifest).__name__}, not an object; the checkpoint is damaged")
    if manifest.get("format_version") not in READABLE_VERSIONS:
        raise CheckpointError(
            f"{manifest_path}: format_version {manifest.get('format_version')!r} is not supported "
            f"(this version reads {', '.join(map(str, READABLE_VERSIONS))}); upgrade epigraf (pip install -U epigraf)"
        )
    return manifest


def verify_checkpoint(path: Path, only: str | None = None) -> dict[str, Any]:
    """Checks a checkpoint's files against its manifest (sizes, and SHA-256 from format 2 on).

    ``only`` limits the check to one folder of it (``"generator"``: what a command that renders reads).
    Returns the manifest; raises :class:`CheckpointDamaged` naming the first file that does not match.
    """
    path = Path(path)
    manifest = read_manifest(path)
    records = manifest.get("files", {})
    if only is not None and isinstance(records, dict):
        records = {name: record for name, record in records.items() if name.startswith(f"{only}/")}
    problem = find_damaged_file(path, records, require_hash=manifest["format_version"] >= 2)
    if problem:
        raise CheckpointDamaged(
            f"{problem}: the checkpoint {path} is damaged; resume from an earlier checkpoint "
            "(--resume latest skips damaged ones)"
        )
    return manifest


def load_training_state(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Reads a verified checkpoint's training state without unpickling arbitrary objects."""
    verify_checkpoint(path)
    return _read_state(Path(path), map_location)


def _read_state(checkpoint: Path, map_location: str | torch.device) -> dict[str, Any]:
    try:
        return torch.load(checkpoint / STATE_FILE, map_location=map_location, weights_only=True)
    except Exception as error:  # noqa: BLE001 - torch raises several types for damaged or foreign archives
        reason = _load_failure_reason(error)
    # Raised outside the handler, without torch's error as context: its text advises weights_only=False.
    raise CheckpointDamaged(
        f"{STATE_FILE} in {checkpoint} cannot be read as plain tensors ({reason}); the checkpoint is damaged "
        "or was not written by epigraf; resume from an earlier checkpoint (--resume latest skips damaged ones)"
    )


def _load_failure_reason(error: Exception) -> str:
    """torch.load's reason in one clause, without its advice to load with weights_only=False."""
    text = str(error)
    if "WeightsUnpickler error:" in text:
        text = text.split("WeightsUnpickler error:", 1)[1].split(" Please use", 1)[0]
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    reason = lines[0].split(". ", 1)[0].rstrip(".") if lines else type(error).__name__
    if "weights_only" in reason or "trust" in reason:
        return "it holds objects other than tensors, numbers and strings"
    return reason


def _check_usable(path: Path) -> None:
    """Raises CheckpointError unless the checkpoint verifies and its training state loads."""
    verify_checkpoint(path)
    _read_state(path, "cpu")


def find_latest_checkpoint(run_dir: Path) -> Path:
    """The newest checkpoint of ``run_dir`` that verifies; damaged newer ones are named on stderr and skipped."""
    problems = []
    for info in reversed(list_checkpoints(run_dir)):
        try:
            _check_usable(info.path)
        except (CheckpointError, OSError) as error:
            problems.append(f"  skipped {info.path}: {error}")
            continue
        if problems:
            print(f"warning: newer checkpoints are damaged, using {info.path}:\n" + "\n".join(problems),
                  file=sys.stderr, flush=True)
        return info.path
    detail = ("\n" + "\n".join(problems)) if problems else ""
    raise CheckpointError(f"no usable checkpoint in {checkpoint_dir(run_dir)}{detail}")


def set_aside_newer_checkpoints(run_dir: Path, after_nimg: int) -> list[Path]:
    """Renames the checkpoints newer than ``after_nimg`` out of the way; returns the new paths.

    Called when a run resumes from an older checkpoint. A damaged one becomes ``rejected-<name>``
    (writing that step again would otherwise delete the evidence of what went wrong); a sound one
    belongs to the abandoned continuation and becomes ``superseded-<name>``, so neither
    ``--resume latest`` nor pruning can mix it with the resumed run. Neither kind is ever deleted or
    overwritten (a ``-k`` suffix keeps earlier copies).
    """
    moved = []
    for info in list_checkpoints(run_dir):
        if info.nimg <= after_nimg:
            continue
        try:
            _check_usable(info.path)
        except CheckpointDamaged as error:
            target = _rejected_path(info.path)
            os.rename(info.path, target)
            print(f"warning: {error}\n  kept as {target} (not deleted; the run will write {info.path.name} again)",
                  file=sys.stderr, flush=True)
        else:
            target = _rejected_path(info.path, prefix="superseded-")
            os.rename(info.path, target)
            print(f"resume: {info.path.name} is newer than the checkpoint resumed from; kept as {target}",
                  file=sys.stderr, flush=True)
        moved.append(target)
    return moved


def _rejected_path(path: Path, prefix: str = REJECTED_PREFIX) -> Path:
    """``<prefix><name>``, or with the first free ``-k`` suffix: an earlier set-aside copy is never replaced."""
    target = path.with_name(f"{prefix}{path.name}")
    suffix = 1
    while target.exists():
        target = path.with_name(f"{prefix}{path.name}-{suffix}")
        suffix += 1
    return target

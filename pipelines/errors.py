"""How every command ends on bad input: one line `error: ...` on stderr, exit code 1; tracebacks only with --debug."""

from __future__ import annotations

import errno
import os
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

DEBUG_FLAG = "--debug"
DEBUG_ENV = "EPIGRAF_DEBUG"
DEBUG_HELP = f"On an error: {DEBUG_FLAG} (or {DEBUG_ENV}=1) shows the Python traceback."

# torch's UnpicklingError text advises `weights_only=False` (arbitrary code execution); never pass that on.
_TORCH_ADVICE = re.compile(r"Weights only load failed\..*?(torch\.load\.html\.?|$)", re.DOTALL)
_NOT_A_TORCH_FILE = "not a readable torch file: damaged, or not written by epigraf"


def debug_requested(argv: Sequence[str]) -> bool:
    """Whether the user asked for tracebacks (``--debug`` or ``EPIGRAF_DEBUG=1``)."""
    return DEBUG_FLAG in argv or os.environ.get(DEBUG_ENV, "").strip().lower() not in ("", "0", "false", "no")


def known_errors() -> tuple[type[BaseException], ...]:
    """Errors that mean bad input or a bad environment (not a bug): reported in one line."""
    from pipelines.engine.checkpoints import CheckpointError
    from pipelines.engine.trainer import TrainingDiverged

    # ValueError covers DatasetValidationError and ModelLoadError; OSError covers FileNotFoundError,
    # PermissionError and read-only or full disks.
    return (ValueError, OSError, CheckpointError, TrainingDiverged)


def run_command(main: Callable[[list[str]], int], argv: Sequence[str] | None = None) -> int:
    """Runs a command's ``main(argv)``; a known error ends it with ``error: <message>`` and exit code 1.

    Raising ``SystemExit("error: ...")`` is what prints the line on stderr (and what tests catch).
    Argument errors keep tyro's exit code 2. ``--debug`` is taken out of ``argv`` here.

    Example: ``run_command(lambda argv: int(argv[0]), ["x"])`` raises
    ``SystemExit("error: invalid literal for int() with base 10: 'x'")``.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = debug_requested(argv)
    argv = [arg for arg in argv if arg != DEBUG_FLAG]
    if debug:
        return main(argv)
    errors = known_errors()
    try:
        return main(argv)
    except SystemExit as exit_:
        if isinstance(exit_.code, str):  # a command's own "error: ..." line: clean it the same way
            raise SystemExit(_clean(exit_.code)) from None
        raise
    except BrokenPipeError:  # output piped into a reader that stopped (`| head`): nothing to report
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        raise SystemExit(1) from None
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        raise SystemExit(130) from None
    except errors as error:
        raise SystemExit(f"error: {describe(error)}") from None
    except Exception as error:  # noqa: BLE001 - only CUDA's out-of-memory is known here; the rest are bugs
        if type(error).__name__ == "OutOfMemoryError":
            raise SystemExit(
                "error: out of GPU memory; lower --batch (or the resolution or the renderer's sample counts), "
                "or free the GPU from other processes"
            ) from None
        raise


def describe(error: BaseException) -> str:
    """The message of a known error as the user should read it."""
    if isinstance(error, OSError) and error.strerror and error.filename and str(error).startswith("["):
        message = f"{error.filename}: {error.strerror}{_os_fix(error)}"
    else:
        message = str(error) or type(error).__name__
    return _clean(message)


def _os_fix(error: OSError) -> str:
    if error.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return "; choose a folder you may write to (or fix its permissions)"
    if error.errno == errno.ENOSPC:
        return "; free disk space or write somewhere else"
    if error.errno in (errno.ENOENT, errno.ENOTDIR):
        return "; check the path"
    return ""


def _clean(message: str) -> str:
    """Without torch's unsafe advice; stripped of trailing blank lines."""
    message = _TORCH_ADVICE.sub(_NOT_A_TORCH_FILE, message)
    if "weights_only" in message:  # another torch wording: drop the lines that carry it
        message = "\n".join(line for line in message.splitlines() if "weights_only" not in line)
    return message.strip()


def check_writable_folder(path: Path, option: str) -> None:
    """Raises a PermissionError naming ``option`` when ``path`` (made if missing) cannot be written.

    Checks the nearest existing folder, so nothing is created; run before slow work.
    """
    path = Path(path)
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if existing.exists() and not existing.is_dir():
        what = "is a file" if existing == path else f"lies under a file, {existing}"
        raise NotADirectoryError(f"{option} {path} {what}: pass a folder")
    if existing.exists() and not os.access(existing, os.W_OK | os.X_OK):
        raise PermissionError(
            f"{option} {path}: {existing} is not writable; choose a folder you may write to (or fix its permissions)"
        )

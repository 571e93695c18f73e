"""Every command ends bad input with one line `error: ...` (no traceback unless --debug), leaving nothing half-made."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pipelines.cli import data as data_cli
from pipelines.cli import export as export_cli
from pipelines.cli import metrics as metrics_cli
from pipelines.cli import render as render_cli
from pipelines.cli import train as train_cli
from pipelines.cli import view as view_cli
from pipelines.engine.checkpoints import list_checkpoints
from pipelines.engine.launch import run_training
from pipelines.patch_gan.pipeline import PatchGanPipeline
from tests.integration.test_train_command import _write_eg3d_folder
from tests.pipelines.tiny import tiny_train_config

REPO = Path(__file__).resolve().parents[2]
CHECKPOINT = "step-000000000004"


# ------------------------------------------------------------------------------------------ helpers
@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, Path]:
    """A dataset and a tiny finished run of 4 images (one checkpoint), made once for the module."""
    root = tmp_path_factory.mktemp("trained")
    data = _write_eg3d_folder(root / "data")
    run_dir = root / "run"
    config = tiny_train_config(out=run_dir, kimg=0.004)
    config.data = data
    run_training(config)
    return data, run_dir


@pytest.fixture
def workdir(tmp_path, monkeypatch, trained) -> Path:
    """A fresh working directory with a copy of the dataset and of the run (commands may change runs)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("EPIGRAF_DEBUG", raising=False)
    shutil.copytree(trained[0], tmp_path / "data")
    shutil.copytree(trained[1], tmp_path / "run")
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    config["data"] = str(tmp_path / "data")  # the copy, so a resume reads this test's dataset
    (tmp_path / "run" / "config.json").write_text(json.dumps(config))
    return tmp_path


def error_of(main, argv: list[str]) -> str:
    """The one-line message a command ends with (SystemExit's text is what Python prints on stderr, exit code 1)."""
    with pytest.raises(SystemExit) as info:
        main(argv)
    message = info.value.code
    assert isinstance(message, str), f"expected an error message, got exit code {message!r}"
    assert message.startswith("error: "), message
    assert "Traceback" not in message and "weights_only" not in message, message
    return message


def one_line_error_of(main, argv: list[str]) -> str:
    message = error_of(main, argv)
    assert "\n" not in message, message
    return message


def damage(checkpoint: Path) -> None:
    """Overwrites the training state with bytes torch cannot read (the manifest still lists the old file)."""
    (checkpoint / "training_state.pt").write_bytes(b"xx\n")


def checkpoints_of(run_dir: Path) -> list[str]:
    return [info.path.name for info in list_checkpoints(run_dir)]


# ------------------------------------------------------------------------------ train: --out and --resume
def test_resume_latest_with_a_missing_out_is_refused_instead_of_resuming_another_run(workdir):
    other = workdir / "runs" / "patch-gan-20200101-000000"
    other.parent.mkdir()
    shutil.move(workdir / "run", other)  # somebody else's run, the newest of the pipeline
    message = one_line_error_of(train_cli.main, ["--resume", "latest", "--out", "typo", "--device", "cpu",
                                                 "--kimg", "0.008"])
    assert message == ("error: --out typo does not exist: nothing to resume; leave out --resume to start a new run "
                       "there")
    assert checkpoints_of(other) == [CHECKPOINT]
    assert not (workdir / "typo").exists()


@pytest.mark.parametrize(
    ("resume", "expected"),
    [
        ("nowhere", "--resume nowhere does not exist"),
        ("notes.txt", "--resume notes.txt is a file; a checkpoint is a directory RUN/checkpoints/step-*"),
        (f"run/checkpoints/{CHECKPOINT}/checkpoint.json", f"(run/checkpoints/{CHECKPOINT} is one: pass that)"),
        ("data", "--resume data is neither a run folder (with checkpoints/) nor a checkpoint directory"),
        ("latest", "--resume latest found no run of pipeline 'patch-gan'"),
    ],
)
def test_resume_of_something_that_is_not_a_checkpoint_names_it(workdir, resume, expected):
    (workdir / "notes.txt").write_text("not a checkpoint")
    message = one_line_error_of(train_cli.main, ["--resume", resume, "--device", "cpu"])
    assert expected in message
    assert checkpoints_of(workdir / "run") == [CHECKPOINT]


def test_resume_of_a_run_without_checkpoints_says_there_is_nothing_to_resume(workdir):
    shutil.rmtree(workdir / "run" / "checkpoints" / CHECKPOINT)
    message = one_line_error_of(train_cli.main, ["--resume", "run", "--device", "cpu"])
    assert "--resume run: no checkpoint in run/checkpoints" in message
    assert "leave out --resume to start a new run" in message


@pytest.mark.parametrize("resume", [f"run/checkpoints/{CHECKPOINT}", "run", "latest"])
def test_a_damaged_checkpoint_is_one_line_without_torchs_advice(workdir, resume):
    damage(workdir / "run" / "checkpoints" / CHECKPOINT)
    extra = ["--out", "run"] if resume == "latest" else []
    message = one_line_error_of(train_cli.main, ["--resume", resume, *extra, "--device", "cpu"])
    assert "training_state.pt" in message and "damaged" in message


def test_out_and_resume_naming_different_runs_is_refused(workdir):
    message = one_line_error_of(train_cli.main, ["--resume", "run", "--out", "elsewhere", "--device", "cpu"])
    assert "--out elsewhere and --resume run name different runs" in message
    assert not (workdir / "elsewhere").exists()


# ------------------------------------------------------------------------------------ train: resume options
def test_resume_refuses_options_that_contradict_the_run(workdir):
    other_data = _write_eg3d_folder(workdir / "other-data")
    # --batch 8 is the CPU preset's default: given on the command line, it still contradicts the run's 2.
    message = one_line_error_of(train_cli.main, [
        "--resume", "run", "--device", "cpu", "--batch", "8", "--resolution", "64", "--data", str(other_data),
        "--model.losses.r1-gamma", "3",
    ])
    assert "--batch: the run has 2, the command line 8" in message
    assert "--resolution: the run has 32, the command line 64" in message
    assert f"--data: the run has {workdir / 'data'}, the command line {other_data}" in message
    assert "--model.losses.r1-gamma: the run has" in message
    assert "run/config.json" in message
    assert checkpoints_of(workdir / "run") == [CHECKPOINT]
    assert json.loads((workdir / "run" / "config.json").read_text())["batch"] == 2


def test_resume_applies_the_changeable_options_and_says_so(workdir, capsys):
    assert train_cli.main(["--resume", "run", "--device", "cpu", "--kimg", "0.006", "--data-workers", "0",
                           "--trainer.checkpoint-ticks", "1", "--batch", "2", "--data", "data"]) == 0
    output = capsys.readouterr().out
    assert "resume: applying --kimg 0.006 (was 0.004)" in output
    assert "resume: applying --data-workers 0 (was None)" in output
    assert "resume: applying --trainer.checkpoint-ticks 1 (was 2)" in output
    assert "--batch" not in output  # the same value as the run's: nothing to say
    assert checkpoints_of(workdir / "run") == [CHECKPOINT, "step-000000000006"]
    saved = json.loads((workdir / "run" / "config.json").read_text())
    assert (saved["kimg"], saved["trainer"]["checkpoint_ticks"]) == (0.006, 1)


# ------------------------------------------------------------------------------------ train: bad options
@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--kimg", "inf"], "error: --kimg must be positive and finite (thousands of images shown), got inf"),
        (["--kimg", "nan"], "error: --kimg must be positive and finite (thousands of images shown), got nan"),
        (["--trainer.snapshot-grid", "0", "0"], "error: --trainer.snapshot-grid must be two numbers >= 1"),
        (["--out", "notes.txt"], "error: --out notes.txt is a file, not a folder"),
    ],
)
def test_impossible_training_options_are_one_line(workdir, args, expected):
    (workdir / "notes.txt").write_text("a file")
    message = one_line_error_of(train_cli.main, ["--device", "cpu", "--data", "data", *args])
    assert message.startswith(expected)
    assert not (workdir / "runs").exists()


# ---------------------------------------------------------------------------------- train: bad datasets
def test_an_invalid_dataset_is_reported_before_a_run_folder_is_made(workdir):
    (workdir / "data" / "img003.png").write_bytes(b"not a png")
    message = error_of(train_cli.main, ["--device", "cpu", "--data", "data", "--out", "new-run", "--kimg", "0.004"])
    assert message.startswith("error: dataset data: 1 problem(s)")
    assert "img003.png" in message and "--skip-bad" in message
    assert not (workdir / "new-run").exists()


def test_an_unlabeled_dataset_with_dataset_cameras_names_the_data_and_the_option(workdir):
    unlabeled = workdir / "unlabeled"
    unlabeled.mkdir()
    for image in (workdir / "data").glob("*.png"):
        shutil.copy(image, unlabeled)
    message = one_line_error_of(train_cli.main, ["--device", "cpu", "--data", "unlabeled", "--out", "new-run"])
    assert "--data unlabeled has no camera labels" in message
    assert "--model.cameras.source parametric" in message
    assert not (workdir / "new-run").exists()


@pytest.fixture
def read_only_folder(workdir, monkeypatch) -> Path:
    folder = workdir / "read-only"
    folder.mkdir()
    folder.chmod(0o555)
    if os.access(folder, os.W_OK):  # root ignores the mode bits: let the check see what a user would
        real_access = os.access
        monkeypatch.setattr(os, "access", lambda path, mode, *args, **kwargs: False
                            if Path(path) == folder and mode & os.W_OK else real_access(path, mode, *args, **kwargs))
    yield folder
    folder.chmod(0o755)


def test_a_read_only_output_folder_is_named(read_only_folder):
    message = one_line_error_of(train_cli.main, ["--device", "cpu", "--data", "data", "--out",
                                                 str(read_only_folder / "run")])
    assert f"--out {read_only_folder / 'run'}: {read_only_folder} is not writable" in message
    message = one_line_error_of(render_cli.main, ["run", "--out", str(read_only_folder / "renders"),
                                                  "--device", "cpu"])
    assert f"--out {read_only_folder / 'renders'}" in message


def test_a_run_folder_that_cannot_be_created_is_named(workdir, monkeypatch):
    from pipelines.engine import launch

    def refuse(config, run_dir):
        raise PermissionError(13, "Permission denied", str(run_dir))

    monkeypatch.setattr(launch, "write_config", refuse)
    message = one_line_error_of(train_cli.main, ["--resume", "run", "--device", "cpu", "--kimg", "0.006"])
    assert message.startswith("error: cannot write the run folder run (Permission denied)")


def test_divergence_ends_in_one_line_naming_the_last_good_checkpoint(workdir, monkeypatch):
    def diverged(self, batch, progress):
        return {"G/loss": float("nan")}

    monkeypatch.setattr(PatchGanPipeline, "train_step", diverged)
    message = one_line_error_of(train_cli.main, ["--resume", "run", "--device", "cpu", "--kimg", "0.006"])
    assert message.startswith("error: training diverged at kimg 0.004")
    assert "G/loss=nan" in message
    assert f"--resume {Path('run') / 'checkpoints' / CHECKPOINT}" in message
    assert checkpoints_of(workdir / "run") == [CHECKPOINT]


# -------------------------------------------------------------------------------------- other commands
@pytest.mark.parametrize(
    ("main", "extra"),
    [
        (render_cli.main, ["--out", "renders"]),
        (export_cli.main, ["--mesh", "--out", "export"]),
        (metrics_cli.main, ["--data", "data", "--metrics", "swd"]),
        (view_cli.main, ["--seconds", "0.1"]),
    ],
)
def test_commands_name_a_run_without_a_usable_checkpoint(workdir, main, extra):
    damage(workdir / "run" / "checkpoints" / CHECKPOINT)
    message = one_line_error_of(main, ["run", "--device", "cpu", *extra])
    assert "no usable checkpoint in run/checkpoints" in message and "training_state.pt" in message
    shutil.rmtree(workdir / "run" / "checkpoints" / CHECKPOINT)
    message = one_line_error_of(main, ["run", "--device", "cpu", *extra])
    assert message.startswith("error: run has no checkpoint yet")


def test_data_validate_names_a_bad_resolution(workdir):
    assert one_line_error_of(data_cli.main, ["validate", "data", "--resolution", "0"]) == (
        "error: --resolution must be a positive number of pixels (the training resolution), got 0")
    assert one_line_error_of(data_cli.main, ["builtin", "--resolution", "0"]) == (
        "error: --resolution must be positive, got 0")


def test_debug_flag_and_environment_show_the_original_error(workdir, monkeypatch):
    with pytest.raises(ValueError, match="--resolution must be a positive number"):
        data_cli.main(["validate", "data", "--resolution", "0", "--debug"])
    monkeypatch.setenv("EPIGRAF_DEBUG", "1")
    with pytest.raises(FileNotFoundError, match="--resume nowhere does not exist"):
        train_cli.main(["--resume", "nowhere", "--device", "cpu"])


@pytest.mark.parametrize("module", ["train", "data", "view", "render", "export", "metrics"])
def test_help_of_every_command_reads_well_and_mentions_debug(module, capsys):
    main = {"train": train_cli, "data": data_cli, "view": view_cli, "render": render_cli, "export": export_cli,
            "metrics": metrics_cli}[module].main
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    text = capsys.readouterr().out
    assert f"usage: epigraf-{module}" in text and "--debug" in text and "Traceback" not in text


# ------------------------------------------------------------------------------ as a user sees it: stderr
def _command(module: str, args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess:
    environment = {key: value for key, value in os.environ.items() if key != "EPIGRAF_DEBUG"}
    environment.update(PYTHONPATH=str(REPO), EPIGRAF_NO_PROGRESS="1", **env)
    return subprocess.run([sys.executable, "-m", f"pipelines.cli.{module}", *args], capture_output=True, text=True,
                          cwd=cwd, env=environment, timeout=300)


def test_on_stderr_an_error_is_one_line_with_exit_code_1_and_debug_shows_the_traceback(workdir):
    damage(workdir / "run" / "checkpoints" / CHECKPOINT)
    result = _command("train", ["--resume", f"run/checkpoints/{CHECKPOINT}", "--device", "cpu"], workdir)
    assert result.returncode == 1
    assert result.stderr.startswith("error: --resume run/checkpoints/") and result.stderr.count("\n") == 1
    assert "Traceback" not in result.stderr and "weights_only" not in result.stderr
    result = _command("train", ["--resume", "nowhere", "--device", "cpu"], workdir, EPIGRAF_DEBUG="1")
    assert result.returncode == 1 and "Traceback" in result.stderr and "--resume nowhere" in result.stderr


def test_on_stderr_a_bad_dataset_is_a_short_report_and_no_run_folder(workdir):
    (workdir / "data" / "img003.png").write_bytes(b"not a png")
    result = _command("train", ["--device", "cpu", "--data", "data", "--kimg", "0.004"], workdir)
    assert result.returncode == 1
    assert result.stderr.startswith("error: dataset data: 1 problem(s)")
    assert "Traceback" not in result.stderr and len(result.stderr.splitlines()) <= 4
    assert not (workdir / "runs").exists()
    result = _command("data", ["validate", "data", "--resolution", "0"], workdir)
    assert (result.returncode, result.stderr.strip()) == (
        1, "error: --resolution must be a positive number of pixels (the training resolution), got 0")

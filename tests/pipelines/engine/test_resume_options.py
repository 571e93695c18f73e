"""Which options a resumed run takes from the command line, and which it refuses."""

from pathlib import Path

import pytest

from pipelines.cli.train import parse_command
from pipelines.engine.options import (
    explicit_options,
    merge_resumed_config,
    options_in_argv,
    same_value,
)
from tests.pipelines.tiny import tiny_train_config


def test_options_spelled_in_argv_are_found_under_their_field_names():
    names = {"batch", "patch_resolution", "viewer", "trainer.progress_bar", "model.losses.r1_gamma"}
    argv = ["--batch=4", "--patch_resolution", "16", "--no-viewer", "--trainer.no-progress-bar",
            "--model.losses.r1-gamma", "1", "--unknown", "3"]
    assert options_in_argv(argv, names) == names


def test_an_option_given_with_the_presets_value_still_counts_as_given():
    parsed = parse_command(["--device", "cpu", "--batch", "8", "--seed", "3"])  # 8 is the CPU preset's batch
    assert parsed.explicit == {"device", "batch", "seed"}
    defaults = parse_command(["--device", "cpu"]).config
    assert explicit_options(parsed.config, defaults, []) == {"seed"}


def test_changeable_options_are_applied_and_printed_and_the_run_config_is_left_alone():
    run = tiny_train_config(kimg=0.004)
    given = tiny_train_config(kimg=0.5)
    given.trainer.checkpoint_ticks = 7
    given.batch = 2  # the run's own value: nothing to say
    merged, lines = merge_resumed_config(run, given, {"kimg", "trainer.checkpoint_ticks", "batch", "out"},
                                         Path("run/config.json"))
    assert (merged.kimg, merged.trainer.checkpoint_ticks) == (0.5, 7)
    assert (run.kimg, run.trainer.checkpoint_ticks) == (0.004, 2)
    assert lines == ["resume: applying --kimg 0.5 (was 0.004)",
                     "resume: applying --trainer.checkpoint-ticks 7 (was 2)"]


def test_contradicting_options_are_refused_naming_each_value():
    run = tiny_train_config()
    given = tiny_train_config(batch=4, resolution=64, seed=5, data=Path("/elsewhere"))
    with pytest.raises(ValueError) as info:
        merge_resumed_config(run, given, {"batch", "resolution", "seed", "data", "kimg"}, Path("run/config.json"))
    message = str(info.value)
    for part in ("--batch: the run has 2, the command line 4", "--resolution: the run has 32, the command line 64",
                 "--seed: the run has 0, the command line 5", "--data: the run has None, the command line /elsewhere",
                 "run/config.json", "--kimg, --device"):
        assert part in message
    assert "\n" not in message


def test_paths_and_sequences_compare_by_meaning(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert same_value(Path("data"), tmp_path / "data")
    assert same_value((8, 4), [8, 4]) and same_value(16, 16.0)
    assert not same_value(Path("data"), None) and not same_value((8, 4), (4, 8))


def test_a_run_from_before_mirroring_resumes_without_it(tmp_path):
    import json

    from pipelines.engine.launch import CONFIG_FILE, read_config
    from tests.pipelines.tiny import tiny_train_config
    from epigraf_field.config_io import config_to_dict

    data = config_to_dict(tiny_train_config())
    del data["mirror"]
    (tmp_path / CONFIG_FILE).write_text(json.dumps(data))
    assert read_config(tmp_path).mirror is False
    data["mirror"] = True
    (tmp_path / CONFIG_FILE).write_text(json.dumps(data))
    assert read_config(tmp_path).mirror is True

"""A resumed run's logs: what was logged after the checkpoint is dropped once, from log.jsonl and TensorBoard."""

import json

import pytest

from pipelines.engine.logs import RunLogger, rewind_run_logs, truncate_log


def _records(run_dir):
    return [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]


def _log_ticks(logger, ticks, loss):
    for tick in ticks:
        logger.log({"tick": tick, "kimg": tick * 0.002, "loss": loss + tick}, tick * 0.002)


def _scalars(run_dir, tag):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(str(run_dir / "tensorboard"))
    accumulator.Reload()
    return [(event.step, event.value) for event in accumulator.Scalars(tag)]


def test_ticks_logged_after_the_checkpoint_appear_once_after_a_resume(tmp_path):
    logger = RunLogger(tmp_path, use_tensorboard=False)
    _log_ticks(logger, [1, 2, 3, 4], loss=0.0)
    logger.close()
    logger = RunLogger(tmp_path, use_tensorboard=False, resume_nimg=4)  # the checkpoint at tick 2
    _log_ticks(logger, [3, 4], loss=10.0)
    logger.close()
    records = _records(tmp_path)
    assert [r["tick"] for r in records] == [1, 2, 3, 4]
    assert [r["loss"] for r in records] == [1.0, 2.0, 13.0, 14.0]


def test_tensorboard_purges_the_steps_after_the_checkpoint(tmp_path):
    logger = RunLogger(tmp_path)
    _log_ticks(logger, [1, 2, 3, 4], loss=0.0)
    logger.close()
    rewind_run_logs(tmp_path, 4)
    logger = RunLogger(tmp_path)
    _log_ticks(logger, [3, 4], loss=10.0)
    logger.close()
    assert _scalars(tmp_path, "loss") == [(2, 1.0), (4, 2.0), (6, 13.0), (8, 14.0)]


def test_the_tensorboard_step_is_the_image_count_rounded(tmp_path):
    logger = RunLogger(tmp_path)
    logger.log({"loss": 1.0}, 1.001)  # 1.001 * 1000 is 1000.9999999999999
    logger.close()
    assert _scalars(tmp_path, "loss") == [(1001, 1.0)]


def test_truncation_drops_a_torn_last_line_and_keeps_records_without_kimg(tmp_path):
    path = tmp_path / "log.jsonl"
    lines = [json.dumps({"note": "start"}), json.dumps({"kimg": 0.002}), json.dumps({"kimg": 0.006}), '{"kimg": 0.0']
    path.write_text("\n".join(lines))
    truncate_log(path, 4)
    assert path.read_text() == lines[0] + "\n" + lines[1] + "\n"
    assert not list(tmp_path.glob(".*tmp"))


def test_truncation_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "log.jsonl"
    original = json.dumps({"kimg": 0.002}) + "\n" + json.dumps({"kimg": 0.006}) + "\n"
    path.write_text(original)

    def crash(*args, **kwargs):
        raise OSError("killed before the rename")

    monkeypatch.setattr("os.replace", crash)
    with pytest.raises(OSError):
        truncate_log(path, 4)
    assert path.read_text() == original  # the old log, whole

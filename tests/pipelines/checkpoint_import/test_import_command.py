"""`epigraf-import` and `.pkl` paths wherever a generator is opened."""

from __future__ import annotations

import os
import pickle

import pytest

from pipelines.cli.import_checkpoint import main
from pipelines.model import ModelLoadError, open_model
from tests.pipelines.checkpoint_import import lookalike


class _System:
    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self):  # noqa: ANN204
        return (os.system, (self.command,))


def test_import_writes_a_bundle_and_says_what_it_found(tmp_path, capsys):
    marker = tmp_path / "executed"
    path = lookalike.write_snapshot(tmp_path / "ffhq.pkl", lookalike.eg3d_snapshot(lookalike.module_source(marker)))
    assert main([str(path), "--out", str(tmp_path / "bundle")]) == 0
    printed = capsys.readouterr().out
    for expected in ("eg3d snapshot", "SuperresolutionHybrid2X", "3 x 4 x 8^2", "super-resolved to 16^2", "parameters"):
        assert expected in printed
    assert open_model(tmp_path / "bundle").pipeline == "eg3d"
    assert not marker.exists()


def test_open_model_takes_a_pkl_and_caches_the_conversion(tmp_path, monkeypatch):
    monkeypatch.setenv("EPIGRAF_IMPORT_CACHE", str(tmp_path / "cache"))
    path = lookalike.write_snapshot(tmp_path / "plants.pkl", lookalike.epigraf_snapshot(""))
    model = open_model(path)
    assert model.pipeline == "patch-gan" and model.generator.config.align_corners
    cached = list((tmp_path / "cache").iterdir())
    assert len(cached) == 1 and cached[0].name.startswith("plants-")
    assert open_model(path).generator.config == model.generator.config  # read back from the cache
    assert list((tmp_path / "cache").iterdir()) == cached


def test_a_pickle_that_would_run_code_is_refused_by_the_command(tmp_path):
    marker = tmp_path / "executed"
    snapshot = lookalike.eg3d_snapshot("")
    snapshot["G_ema"].payload = _System(f"touch {marker}")
    path = lookalike.write_snapshot(tmp_path / "evil.pkl", snapshot)
    with pytest.raises(SystemExit) as exit_:
        main([str(path), "--out", str(tmp_path / "bundle")])
    message = str(exit_.value.code)
    assert message.startswith("error:") and str(path) in message
    assert ".system, which is not on the allow-list" in message  # os.system pickles as posix.system
    assert not marker.exists() and not (tmp_path / "bundle").exists()


def test_unrelated_pickles_get_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("EPIGRAF_IMPORT_CACHE", str(tmp_path / "cache"))
    path = tmp_path / "numbers.pkl"
    path.write_bytes(pickle.dumps([1, 2, 3]))
    with pytest.raises(SystemExit, match="not a network snapshot dict"):
        main([str(path), "--out", str(tmp_path / "bundle")])
    with pytest.raises(ModelLoadError, match="numbers.pkl"):
        open_model(path)

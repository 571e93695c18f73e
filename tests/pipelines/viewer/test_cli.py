"""`epigraf-view`: help, serving a bundle for a fixed time, and a clear error for a wrong path."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipelines.cli.view import main
from pipelines.viewer.server import find_free_port


def test_help_lists_the_options(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for option in ("--host", "--port", "--resolution", "--sampler", "--seconds"):
        assert option in text


def test_serves_a_bundle_and_prints_the_url(tiny_bundle: Path, tmp_path: Path, capsys):
    port = find_free_port("127.0.0.1", 18700)
    code = main([str(tiny_bundle), "--port", str(port), "--seconds", "0.3", "--device", "cpu",
                 "--output-dir", str(tmp_path)])
    assert code == 0
    assert f"epigraf viewer: http://localhost:{port}" in capsys.readouterr().out


def test_missing_path_is_a_clear_error(tmp_path: Path):
    with pytest.raises(SystemExit, match="does not exist"):
        main([str(tmp_path / "nothing")])

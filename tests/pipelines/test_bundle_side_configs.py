"""The JSON files eg3d and mimic3d write beside the generator (superresolution.json, mimic3d.json): a bundle
whose side file is missing, unreadable, of another format version, incomplete or out of step with the tensors
is refused with an error naming the file and what to do, never loaded half-way."""

from __future__ import annotations

import json

import pytest
import torch

from pipelines.eg3d.generator import load_eg3d_bundle
from pipelines.eg3d.pipeline import Eg3dPipeline
from pipelines.mimic3d.generator import load_mimic3d_bundle
from pipelines.mimic3d.pipeline import Mimic3dPipeline
from tests.pipelines.eg3d.tiny import tiny_eg3d_config
from tests.pipelines.mimic3d.tiny import tiny_mimic3d_config
from tests.pipelines.tiny import TinyDataset

CPU = torch.device("cpu")
KINDS = {
    "eg3d": (lambda: Eg3dPipeline(tiny_eg3d_config(), CPU, TinyDataset()), load_eg3d_bundle, "superresolution.json",
             "config", "super-resolution network"),
    "mimic3d": (lambda: Mimic3dPipeline(tiny_mimic3d_config(), CPU, TinyDataset()), load_mimic3d_bundle,
                "mimic3d.json", "superresolution", "3D-aware branch"),
}


@pytest.fixture(params=sorted(KINDS))
def saved(request, tmp_path):
    """(loader, side file path, its config key, what it holds) of a tiny bundle without a manifest, so that
    edits reach the side-file checks rather than the manifest's."""
    build, loader, side_file, config_key, holds = KINDS[request.param]
    directory = build().model().save(tmp_path / request.param)
    (directory / "manifest.json").unlink()
    loader(directory)  # intact: loads
    return loader, directory / side_file, config_key, holds


def _edit(path, change):
    meta = json.loads(path.read_text())
    change(meta)
    path.write_text(json.dumps(meta))


def test_missing_side_file_names_what_the_bundle_lacks(saved):
    loader, side, _, holds = saved
    side.unlink()
    with pytest.raises(FileNotFoundError, match=f"{side.name} is missing: .*without .*{holds}"):
        loader(side.parent)


def test_unreadable_side_file_is_called_damaged(saved):
    loader, side, _, _ = saved
    side.write_text("{not json")
    with pytest.raises(ValueError, match=f"{side.name} is not valid JSON .*damaged"):
        loader(side.parent)


def test_other_format_version_is_refused(saved):
    loader, side, _, _ = saved
    _edit(side, lambda meta: meta.update(format_version=99))
    with pytest.raises(ValueError, match="format_version 99, expected 1"):
        loader(side.parent)


@pytest.mark.parametrize("key", ["neural_resolution", "config_key"])
def test_missing_entry_is_named(saved, key):
    loader, side, config_key, _ = saved
    key = config_key if key == "config_key" else key
    _edit(side, lambda meta: meta.pop(key))
    with pytest.raises(ValueError, match=f"{side.name} is not a valid config \\(KeyError: '{key}'\\)"):
        loader(side.parent)


def test_config_out_of_step_with_the_tensors_is_refused(saved):
    loader, side, config_key, _ = saved

    def widen(meta):
        sr = meta[config_key]
        sr["channels"] = 2 * (sr["channels"] or 128)  # the saved tensors have the old width

    _edit(side, widen)
    with pytest.raises(ValueError, match=f"superresolution\\.\\* tensors do not match {side.name}"):
        loader(side.parent)

"""The snapshot reader executes nothing: allowed globals become inert data, any other is refused by name."""

from __future__ import annotations

import os
import pickle
import subprocess
from collections import OrderedDict

import numpy as np
import pytest
import torch

from pipelines.checkpoint_import.records import ObjectRecord, PersistentRecord, init_kwargs, module_tensors
from pipelines.checkpoint_import.unpickler import UnsafePickleError, read_snapshot
from tests.pipelines.checkpoint_import import lookalike


class _Calls:
    """Pickles as ``func(*args)``: what a malicious snapshot would hide inside its state."""

    def __init__(self, func, *args) -> None:  # noqa: ANN001
        self.func, self.args = func, args

    def __reduce__(self):  # noqa: ANN204
        return (self.func, self.args)


def _attacks(marker):  # noqa: ANN001, ANN202
    return {
        "os.system": _Calls(os.system, f"touch {marker}"),
        "builtins.eval": _Calls(eval, f"open({str(marker)!r}, 'w')"),
        "subprocess.Popen": _Calls(subprocess.Popen, ["touch", str(marker)]),
        "builtins.exec": _Calls(exec, f"open({str(marker)!r}, 'w')"),
    }


def test_reads_a_snapshot_as_records_without_running_its_source(tmp_path):
    marker = tmp_path / "executed"
    path = lookalike.write_snapshot(tmp_path / "snapshot.pkl", lookalike.eg3d_snapshot(lookalike.module_source(marker)))
    snapshot = read_snapshot(path)
    G = snapshot["G_ema"]
    assert isinstance(G, PersistentRecord) and G.class_name == "TriPlaneGenerator"
    assert G.module_source == lookalike.module_source(marker)  # kept as text
    assert isinstance(G.state["_modules"]["decoder"], ObjectRecord)
    assert G.state["_modules"]["decoder"].class_path == "training.triplane.OSGDecoder"
    assert init_kwargs(G)["mapping_kwargs"] == {"num_layers": 2}  # EasyDict -> dict
    tensors = module_tensors(G)
    original = lookalike.eg3d_generator(lookalike.module_source(marker)).state_dict()
    assert set(tensors) == set(original)
    for key, value in original.items():
        assert torch.equal(tensors[key], value), key
    assert not marker.exists()


@pytest.mark.parametrize("protocol", [2, 4])
@pytest.mark.parametrize("name", ["os.system", "builtins.eval", "subprocess.Popen", "builtins.exec"])
def test_refuses_any_other_callable_and_runs_nothing(tmp_path, name, protocol):
    marker = tmp_path / "executed"
    snapshot = lookalike.eg3d_snapshot(lookalike.module_source(marker))
    snapshot["G_ema"].hidden = _attacks(marker)[name]  # deep inside the generator's state
    path = lookalike.write_snapshot(tmp_path / "evil.pkl", snapshot, protocol=protocol)
    with pytest.raises(UnsafePickleError) as error:
        read_snapshot(path)
    module, _, function = name.rpartition(".")
    assert str(path) in str(error.value) and function in str(error.value)
    assert not marker.exists()


def test_refuses_a_persistence_record_that_is_not_a_class_record(tmp_path):
    meta = dict(type="function", version=6, module_src="open('x', 'w')", class_name="f", state={})
    with lookalike.official_module_names():
        data = pickle.dumps({"G_ema": _Calls(lookalike._reconstruct_eg3d, meta)})
    path = tmp_path / "odd.pkl"
    path.write_bytes(data)
    with pytest.raises(UnsafePickleError, match="only 'class' records"):
        read_snapshot(path)


def test_truncated_and_unrelated_files_are_named_in_the_error(tmp_path):
    path = lookalike.write_snapshot(tmp_path / "snapshot.pkl", lookalike.eg3d_snapshot(""))
    truncated = tmp_path / "truncated.pkl"
    truncated.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(UnsafePickleError, match="truncated") as error:
        read_snapshot(truncated)
    assert str(truncated) in str(error.value)
    text = tmp_path / "notes.pkl"
    text.write_text("not a pickle at all")
    with pytest.raises(UnsafePickleError, match="not a pickle") as error:
        read_snapshot(text)
    assert str(text) in str(error.value)
    with pytest.raises(FileNotFoundError, match="missing.pkl"):
        read_snapshot(tmp_path / "missing.pkl")


@pytest.mark.parametrize("protocol", [2, 4])
def test_tensors_parameters_and_numbers_come_back_equal(tmp_path, protocol):
    values = OrderedDict(
        weight=torch.nn.Parameter(torch.arange(6.0).reshape(2, 3)),
        view=torch.arange(10, dtype=torch.int64)[2:8:2],
        half=torch.tensor([0.5, -1.5], dtype=torch.float16),
        scalar=np.float64(0.25),
        count=np.int64(7),
        array=np.arange(4, dtype=np.float32).reshape(2, 2),
        names={"a", "b"},
    )
    path = tmp_path / "values.pkl"
    path.write_bytes(pickle.dumps(values, protocol=protocol))
    out = read_snapshot(path)
    assert torch.equal(out["weight"], values["weight"].detach()) and type(out["weight"]) is torch.Tensor
    assert torch.equal(out["view"], values["view"]) and torch.equal(out["half"], values["half"])
    assert out["scalar"] == 0.25 and out["count"] == 7
    assert np.array_equal(out["array"], values["array"]) and out["names"] == {"a", "b"}


def test_refuses_numpy_object_arrays(tmp_path):
    path = tmp_path / "objects.pkl"
    path.write_bytes(pickle.dumps({"x": np.array([print], dtype=object)}))
    with pytest.raises(UnsafePickleError):
        read_snapshot(path)

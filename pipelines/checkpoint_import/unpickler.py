"""A pickle reader for the official snapshots that executes nothing: every global in the stream is looked
up in an explicit allow-list and replaced by inert code of our own; anything else is refused by name.

What a snapshot may contain, and what each becomes here:

* tensors and parameters (``torch._utils._rebuild_tensor_v2`` / ``_rebuild_parameter``): tensors, rebuilt
  from their storage, whose bytes are read by ``torch.load(weights_only=True)`` (torch's own restricted
  reader), never by ``torch.storage._load_from_bytes``;
* the persistence module's ``_reconstruct_persistent_obj(meta)``: a :class:`PersistentRecord` holding the
  module source as a string (never compiled) and the object's state;
* ``EasyDict``, ``torch.nn`` containers and activations, EG3D's decoder/renderer objects and OmegaConf
  configs: :class:`ObjectRecord` stand-ins holding their state;
* ``collections.OrderedDict``, ``builtins.set``/``frozenset`` and the latin-1 bytes codec: themselves;
* numpy scalars and arrays of plain number types: decoded from their bytes (``numpy.frombuffer``).
"""

from __future__ import annotations

import io
import pickle
import re
from collections import OrderedDict
from pathlib import Path
from typing import Any

import torch

from pipelines.checkpoint_import.records import ObjectRecord, PersistentRecord


class UnsafePickleError(ValueError):
    """The pickle references something outside the allow-list, or cannot be read as a snapshot."""


# Packages the official code bases are imported under (EG3D and Mimic3D: top level; EpiGRAF: ``src.``).
_OFFICIAL_ROOTS = ("", "src.")
_PERSISTENCE_MODULES = {f"{root}torch_utils.persistence" for root in _OFFICIAL_ROOTS}
_EASYDICT_MODULES = {f"{root}dnnlib.util" for root in _OFFICIAL_ROOTS} | {f"{root}dnnlib" for root in _OFFICIAL_ROOTS}
# Source modules are exec'd by the official loader under this name; a re-saved snapshot may name them.
_IMPORTED_MODULE = re.compile(r"^_imported_module_[0-9a-f]{32}$")

# Classes pickled by reference (not through the persistence module) that may appear in a snapshot;
# each becomes an ObjectRecord. Nothing is imported.
_STAND_IN_CLASSES = {
    "torch.nn.modules.container": {"Sequential", "ModuleList", "ModuleDict", "ParameterList", "ParameterDict"},
    "torch.nn.modules.activation": {"Softplus", "ReLU", "LeakyReLU", "Sigmoid", "Tanh"},
    "torch.nn.modules.linear": {"Identity", "Linear"},
    # EG3D / Mimic3D: undecorated classes in their training package.
    "training.triplane": {"OSGDecoder"},
    "training.volumetric_rendering.renderer": {"ImportanceRenderer"},
    "training.volumetric_rendering.ray_marcher": {"MipRayMarcher2", "MipRayMarcher"},
    "training.volumetric_rendering.ray_sampler": {"RaySampler"},
    # EpiGRAF's hydra config travels inside its networks.
    "omegaconf.dictconfig": {"DictConfig"},
    "omegaconf.listconfig": {"ListConfig"},
    "omegaconf.base": {"ContainerMetadata", "Metadata"},
    "omegaconf.nodes": {"AnyNode", "StringNode", "IntegerNode", "FloatNode", "BooleanNode", "BytesNode", "PathNode"},
}
_IMPORTED_MODULE_CLASSES = {"OSGDecoder"}
# Types that only appear as values (OmegaConf's ref_type / object_type): kept as names.
_TYPE_NAMES = {("typing", "Any"), ("builtins", "dict"), ("builtins", "list"), ("builtins", "str"),
               ("builtins", "int"), ("builtins", "float"), ("builtins", "bool"), ("builtins", "object"),
               ("builtins", "NoneType"), ("typing", "Dict"), ("typing", "List"),
               ("typing", "Optional"), ("typing", "Union")}


_PY2_MODULES = {"__builtin__": "builtins", "copy_reg": "copyreg", "_codecs": "_codecs"}


class TypeName(str):
    """A type named in the stream as a value (never called)."""


class _StandIn:
    """Base of the stand-in classes made per class path; unpickling makes an :class:`ObjectRecord`."""

    class_path = ""

    def __new__(cls, *args: object, **kwargs: object) -> Any:  # noqa: ARG003
        return _RecordBuilder(cls.class_path)


class _RecordBuilder(ObjectRecord):
    """The record while it is being filled by the pickle machine (state, dict items, list items)."""

    def __init__(self, class_path: str) -> None:
        super().__init__(class_path)

    def __setstate__(self, state: object) -> None:
        self.state = state

    def __setitem__(self, key: object, value: object) -> None:
        self.items[key] = value

    def append(self, value: object) -> None:
        self.list_items.append(value)

    def extend(self, values: list) -> None:
        self.list_items.extend(values)


def _stand_in(class_path: str) -> type:
    return type(class_path.rsplit(".", 1)[-1], (_StandIn,), {"class_path": class_path})


def _reconstruct_persistent(meta: object) -> PersistentRecord:
    """Replaces the persistence module's reconstruct call: keeps the source as text, runs nothing."""
    if isinstance(meta, ObjectRecord):  # an EasyDict of the meta fields
        meta = meta.items
    if not isinstance(meta, dict):
        raise UnsafePickleError(f"a persistence record holds {type(meta).__name__}, expected a dict")
    if meta.get("type") != "class":
        raise UnsafePickleError(f"persistence record of type {meta.get('type')!r}; only 'class' records are read")
    source, name, state = meta.get("module_src"), meta.get("class_name"), meta.get("state")
    if not isinstance(source, str) or not isinstance(name, str):
        raise UnsafePickleError("a persistence record lacks its class name or module source")
    if isinstance(state, ObjectRecord):
        state = dict(state.items)
    if not isinstance(state, dict):
        raise UnsafePickleError(f"persistence record of {name} holds a {type(state).__name__} state, expected a dict")
    return PersistentRecord(class_name=name, module_source=source, version=meta.get("version"), state=state)


def _load_storage_bytes(data: bytes) -> torch.UntypedStorage | torch.TypedStorage:
    """A storage saved by ``torch.save`` inside the pickle, read with torch's weights-only reader."""
    if not isinstance(data, (bytes, bytearray)):
        raise UnsafePickleError(f"a tensor storage holds {type(data).__name__}, expected bytes")
    return torch.load(io.BytesIO(bytes(data)), weights_only=True, map_location="cpu")


def _as_untyped(storage: object) -> tuple[torch.UntypedStorage, torch.dtype]:
    if isinstance(storage, torch.TypedStorage):
        return storage._untyped_storage, storage.dtype
    raise UnsafePickleError(f"a tensor is built on {type(storage).__name__}, expected a storage")


def _rebuild_tensor(storage: object, offset: int, size: tuple, stride: tuple, *rest: object) -> torch.Tensor:
    untyped, dtype = _as_untyped(storage)
    tensor = torch.empty((0,), dtype=dtype)
    tensor.set_(untyped, int(offset), torch.Size(size), tuple(stride))
    requires_grad = bool(rest[0]) if rest else False
    return tensor.requires_grad_(requires_grad) if tensor.is_floating_point() else tensor


def _rebuild_parameter(data: object, requires_grad: object = False, *rest: object) -> torch.Tensor:
    if not isinstance(data, torch.Tensor):
        raise UnsafePickleError(f"a parameter is built from {type(data).__name__}, expected a tensor")
    return data.detach()


def _rebuild_from_type(func: object, new_type: object, args: tuple, state: object) -> torch.Tensor:
    if func not in (_rebuild_tensor, _rebuild_parameter):
        raise UnsafePickleError("a tensor subclass is rebuilt by a function outside the allow-list")
    return func(*args)


def _encode_latin1(text: object, encoding: str = "latin1") -> bytes:
    """Protocol-2 pickles store bytes as latin-1 text passed through ``_codecs.encode``."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise UnsafePickleError(f"_codecs.encode is allowed for latin-1 byte strings only, got encoding {encoding!r}")
    return text.encode("latin1")


# numpy values (the official code stores e.g. ``np.log2`` results in its modules): plain numeric dtypes only,
# decoded from their bytes with ``numpy.frombuffer``.
_NUMPY_KINDS = "biuf"


class _DtypeBuilder:
    """Stand-in for ``numpy.dtype(name, align, copy)``: only the name is kept; its pickled state is ignored."""

    def __init__(self, name: object, *args: object) -> None:
        import numpy as np

        if not isinstance(name, str):
            raise UnsafePickleError(f"a numpy dtype named by {type(name).__name__}")
        dtype = np.dtype(name)
        if dtype.kind not in _NUMPY_KINDS or dtype.hasobject:
            raise UnsafePickleError(f"numpy dtype {name!r} is not a plain number type")
        self.dtype = dtype

    def __setstate__(self, state: object) -> None:
        if isinstance(state, tuple) and len(state) > 1 and state[1] in ("<", ">", "|", "="):
            self.dtype = self.dtype.newbyteorder(state[1]) if state[1] in "<>" else self.dtype


def _numpy_scalar(dtype: object, data: object = None) -> Any:
    import numpy as np

    if not isinstance(dtype, _DtypeBuilder) or not isinstance(data, (bytes, bytearray)):
        raise UnsafePickleError("a numpy scalar without a plain dtype and its bytes")
    return np.frombuffer(bytes(data), dtype=dtype.dtype, count=1)[0].item()


class _ArrayBuilder:
    """Stand-in for ``numpy.core.multiarray._reconstruct(ndarray, ...)``; BUILD gives shape, dtype and bytes."""

    def __init__(self, *args: object) -> None:
        self.array = None

    def __setstate__(self, state: object) -> None:
        import numpy as np

        if not (isinstance(state, tuple) and len(state) == 5 and isinstance(state[2], _DtypeBuilder)
                and isinstance(state[4], (bytes, bytearray))):
            raise UnsafePickleError("a numpy array that is not a plain numeric array")
        _, shape, dtype, fortran, data = state
        array = np.frombuffer(bytes(data), dtype=dtype.dtype).copy()
        self.array = array.reshape(shape, order="F" if fortran else "C")


def _numpy_reconstruct(cls: object, *args: object) -> _ArrayBuilder:
    if cls is not _NdarrayType:
        raise UnsafePickleError("numpy _reconstruct of a class other than ndarray")
    return _ArrayBuilder()


class _NdarrayType:
    """Marker for ``numpy.ndarray`` inside ``_reconstruct``."""


class _TensorType:
    """Marker for ``torch.Tensor`` inside ``_rebuild_from_type_v2``."""


class _ParameterType:
    """Marker for ``torch.nn.Parameter`` inside ``_rebuild_from_type_v2``."""


def _plain_defaultdict(*args: object) -> dict:
    """OmegaConf's resolver cache is a ``defaultdict``; an empty dict holds the same data."""
    return {}


_SAFE_CALLABLES: dict[tuple[str, str], Any] = {
    ("collections", "OrderedDict"): OrderedDict,
    ("collections", "defaultdict"): _plain_defaultdict,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("_codecs", "encode"): _encode_latin1,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
    ("torch._tensor", "_rebuild_from_type_v2"): _rebuild_from_type,
    ("torch.storage", "_load_from_bytes"): _load_storage_bytes,
    ("torch", "Tensor"): _TensorType,
    ("torch.nn.parameter", "Parameter"): _ParameterType,
    ("torch", "device"): torch.device,
    ("numpy", "dtype"): _DtypeBuilder,
    ("numpy", "ndarray"): _NdarrayType,
}
for _numpy_core in ("numpy.core.multiarray", "numpy._core.multiarray"):
    _SAFE_CALLABLES[(_numpy_core, "scalar")] = _numpy_scalar
    _SAFE_CALLABLES[(_numpy_core, "_reconstruct")] = _numpy_reconstruct


class SnapshotUnpickler(pickle.Unpickler):
    """``pickle.Unpickler`` whose ``find_class`` only hands out the inert code above."""

    def find_class(self, module: str, name: str) -> Any:
        # Protocol 0-2 pickles name the Python 2 modules, as the standard unpickler translates them.
        module = _PY2_MODULES.get(module, module)
        key = (module, name)
        if key in _SAFE_CALLABLES:
            return _SAFE_CALLABLES[key]
        if name == "_reconstruct_persistent_obj" and module in _PERSISTENCE_MODULES:
            return _reconstruct_persistent
        if name == "EasyDict" and module in _EASYDICT_MODULES:
            return _stand_in(f"{module}.{name}")
        if name in _STAND_IN_CLASSES.get(module, ()):
            return _stand_in(f"{module}.{name}")
        if _IMPORTED_MODULE.match(module) and name in _IMPORTED_MODULE_CLASSES:
            return _stand_in(f"{module}.{name}")
        if key in _TYPE_NAMES:
            return TypeName(f"{module}.{name}")
        raise UnsafePickleError(
            f"refers to {module}.{name}, which is not on the allow-list of a network snapshot (tensors, "
            "persistence records, EasyDict, torch.nn containers, OmegaConf configs); nothing was executed"
        )

    def persistent_load(self, pid: object) -> Any:
        raise UnsafePickleError(f"uses a persistent id ({pid!r:.60}); network snapshots do not")


def _finalize(value: Any, seen: dict[int, Any] | None = None) -> Any:
    """Turns the builders into plain :class:`ObjectRecord` objects (same data, no pickle hooks)."""
    seen = {} if seen is None else seen
    if id(value) in seen:
        return seen[id(value)]
    if isinstance(value, _RecordBuilder):
        out = ObjectRecord(value.class_path)
        seen[id(value)] = out
        out.state = _finalize(value.state, seen)
        out.items = {k: _finalize(v, seen) for k, v in value.items.items()}
        out.list_items = [_finalize(v, seen) for v in value.list_items]
        return out
    if isinstance(value, PersistentRecord):
        seen[id(value)] = value
        value.state = _finalize(value.state, seen)
        return value
    if isinstance(value, OrderedDict):
        out = OrderedDict()
        seen[id(value)] = out
        out.update((k, _finalize(v, seen)) for k, v in value.items())
        return out
    if isinstance(value, dict):
        out = {}
        seen[id(value)] = out
        out.update((k, _finalize(v, seen)) for k, v in value.items())
        return out
    if isinstance(value, list):
        out = []
        seen[id(value)] = out
        out.extend(_finalize(v, seen) for v in value)
        return out
    if isinstance(value, tuple):
        return tuple(_finalize(v, seen) for v in value)
    if isinstance(value, _ArrayBuilder):
        return value.array
    if isinstance(value, _DtypeBuilder):
        return str(value.dtype)
    return value


def read_snapshot(path: str | Path) -> Any:
    """The contents of an official ``.pkl`` snapshot as plain data and records; nothing in it is executed.

    Raises :class:`UnsafePickleError` (a ``ValueError``) naming the file for a global outside the
    allow-list, a truncated file, or a file that is not a pickle.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file; pass the path of an official network snapshot (.pkl)")
    with path.open("rb") as handle:
        head = handle.read(2)
        handle.seek(0)
        if len(head) < 2 or head[0] != 0x80:
            raise UnsafePickleError(
                f"{path}: not a pickle (it does not start with a pickle protocol header); expected an official "
                "EG3D / EpiGRAF / Mimic3D network snapshot such as network-snapshot-*.pkl"
            )
        try:
            return _finalize(SnapshotUnpickler(handle).load())
        except UnsafePickleError as error:
            raise UnsafePickleError(f"{path}: {error}") from None
        except (EOFError, pickle.UnpicklingError, ValueError, TypeError, AttributeError, IndexError, KeyError,
                RuntimeError) as error:
            raise UnsafePickleError(
                f"{path}: cannot be read as a network snapshot ({type(error).__name__}: {error}); the file is "
                "truncated or damaged, download it again"
            ) from None

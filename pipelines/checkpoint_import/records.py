"""Plain-data stand-ins for the objects of an official snapshot, and how to read modules out of them.

A StyleGAN-style snapshot pickles each network as a *persistence record*: the source text of the
module that defined its class, the class name, and the object's ``__dict__`` (parameters, buffers,
child modules, constructor kwargs). Other objects (``torch.nn.Sequential``, EG3D's decoder, OmegaConf
configs) are pickled by class reference plus state. Here both become inert records: the source text
stays a string and no class named in the file is ever imported.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from torch import Tensor


@dataclass
class ObjectRecord:
    """An object pickled by class reference: the class's dotted name and the state it was given."""

    class_path: str
    """``module.QualName`` as written in the file (never imported)."""
    state: Any = None
    """What the pickle passed to ``__setstate__`` (usually the object's ``__dict__``)."""
    items: dict = field(default_factory=dict)
    """Dict items of a dict subclass (``EasyDict``)."""
    list_items: list = field(default_factory=list)
    """List items of a list subclass."""

    @property
    def class_name(self) -> str:
        return self.class_path.rsplit(".", 1)[-1]


@dataclass
class PersistentRecord:
    """An object saved by the official ``persistence`` module: class name, module source (text only), state."""

    class_name: str
    module_source: str
    """The source text of the module that defined the class; kept as a string, never compiled."""
    version: int | None
    state: dict
    """The object's ``__dict__`` as pickled."""


ModuleRecord = ObjectRecord | PersistentRecord


def is_module_record(value: object) -> bool:
    """Whether ``value`` is a record whose state looks like an ``nn.Module``'s ``__dict__``."""
    state = getattr(value, "state", None)
    return isinstance(value, (ObjectRecord, PersistentRecord)) and isinstance(state, dict) and "_parameters" in state


def module_tensors(record: ModuleRecord, prefix: str = "") -> dict[str, Tensor]:
    """The ``state_dict`` of a module record: parameters and persistent buffers under dotted names.

    Example: a record of ``Sequential(FC, Softplus, FC)`` gives ``{"0.weight", "0.bias", "2.weight", "2.bias"}``.
    """
    if not is_module_record(record):
        raise ValueError(f"{prefix or 'object'} is not a network module record (got {type(record).__name__})")
    state = record.state
    out: dict[str, Tensor] = {}
    for name, value in (state.get("_parameters") or {}).items():
        if isinstance(value, Tensor):
            out[prefix + name] = value
    skip = set(state.get("_non_persistent_buffers_set") or ())
    for name, value in (state.get("_buffers") or {}).items():
        if isinstance(value, Tensor) and name not in skip:
            out[prefix + name] = value
    for name, child in (state.get("_modules") or {}).items():
        if child is not None:
            out.update(module_tensors(child, f"{prefix}{name}."))
    return out


def submodule(record: ModuleRecord, path: str) -> ModuleRecord:
    """The child module record at a dotted ``path`` (``"backbone.mapping"``)."""
    current = record
    for part in path.split("."):
        modules = current.state.get("_modules") or {} if is_module_record(current) else {}
        if part not in modules or modules[part] is None:
            raise KeyError(f"no submodule {path!r} (missing {part!r})")
        current = modules[part]
    return current


def attribute(record: ModuleRecord, name: str, default: Any = None) -> Any:
    """A plain attribute of a record's state (``rendering_kwargs``, ``_init_kwargs``), as plain data."""
    state = record.state if isinstance(record.state, dict) else {}
    return to_plain(state.get(name, default))


def init_kwargs(record: ModuleRecord) -> dict:
    """The constructor kwargs the persistence module recorded (``_init_kwargs``), as plain dicts."""
    kwargs = attribute(record, "_init_kwargs", {})
    return kwargs if isinstance(kwargs, dict) else {}


def to_plain(value: Any) -> Any:
    """Dicts, lists, numbers and strings out of records: ``EasyDict`` and OmegaConf containers become dicts/lists."""
    if isinstance(value, ObjectRecord):
        name = value.class_name
        if name == "DictConfig":
            return {k: to_plain(v) for k, v in _omegaconf_content(value).items()}
        if name == "ListConfig":
            return [to_plain(v) for v in _omegaconf_content(value)]
        if name.endswith("Node") and isinstance(value.state, dict):
            return to_plain(value.state.get("_val"))
        if value.items or not value.state:
            return {k: to_plain(v) for k, v in value.items.items()}
        return value
    if isinstance(value, (dict, OrderedDict)):
        return {k: to_plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(to_plain(v) for v in value)
    return value


def plain_config(record: Any) -> Any:
    """An OmegaConf node of a snapshot as plain dicts, with its ``${a.b}`` interpolations resolved.

    A pickled node carries its parents, so interpolations are resolved against the whole tree, as
    OmegaConf would; custom resolvers are not run (such values stay strings).
    """
    path: list[str] = []
    node = record
    while isinstance(node, ObjectRecord) and isinstance(node.state, dict) and isinstance(node.state.get("_parent"), ObjectRecord):
        metadata = node.state.get("_metadata")
        key = metadata.state.get("key") if isinstance(metadata, ObjectRecord) and isinstance(metadata.state, dict) else None
        path.insert(0, key)
        node = node.state["_parent"]
    root = to_plain(node)
    resolved = _resolve(root, root, depth=0)
    for key in path:
        if not isinstance(resolved, dict) or key not in resolved:
            return _resolve(to_plain(record), root, depth=0)
        resolved = resolved[key]
    return resolved


_INTERPOLATION = re.compile(r"\$\{([A-Za-z0-9_.]+)\}")


def _lookup(root: Any, dotted: str) -> Any:
    value = root
    for part in dotted.split("."):
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            raise KeyError(dotted)
    return value


def _resolve(value: Any, root: Any, depth: int) -> Any:
    if depth > 32:  # an interpolation cycle; leave the rest as written
        return value
    if isinstance(value, dict):
        return {k: _resolve(v, root, depth) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve(v, root, depth) for v in value]
    if not isinstance(value, str) or "${" not in value:
        return value
    whole = _INTERPOLATION.fullmatch(value)
    try:
        if whole:
            return _resolve(_lookup(root, whole.group(1)), root, depth + 1)
        return _INTERPOLATION.sub(lambda m: str(_resolve(_lookup(root, m.group(1)), root, depth + 1)), value)
    except KeyError:
        return value


def _omegaconf_content(record: ObjectRecord) -> Any:
    state = record.state if isinstance(record.state, dict) else {}
    # OmegaConf pickles {"__dict__": {...}} or the plain __dict__, depending on its version.
    inner = state.get("__dict__", state)
    content = inner.get("_content")
    if content is None:
        return {} if record.class_name == "DictConfig" else []
    return content

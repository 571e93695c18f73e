"""Typed dataclass configs to and from plain JSON-ready dicts (nested dataclasses, Literals, tuples)."""

from __future__ import annotations

import dataclasses
import json
import pathlib
import types
import typing
from typing import Any, TypeVar, Union

T = TypeVar("T")


def config_to_dict(config: Any) -> dict[str, Any]:
    """A dataclass instance as a dict of JSON types (tuples become lists, nested dataclasses dicts).

    Example: ``config_to_dict(TriPlaneGeneratorConfig())["z_dim"] == 512``.
    """
    if not dataclasses.is_dataclass(config) or isinstance(config, type):
        raise TypeError(f"config_to_dict expects a dataclass instance, got {type(config).__name__}")
    return {f.name: _to_plain(getattr(config, f.name)) for f in dataclasses.fields(config) if f.init}


def _to_plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return config_to_dict(value)
    if isinstance(value, (tuple, list)):
        return [_to_plain(v) for v in value]
    if isinstance(value, pathlib.PurePath):
        return str(value)
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(f"cannot serialize a value of type {type(value).__name__} ({value!r}) to JSON")


def config_from_dict(cls: type[T], data: dict[str, Any]) -> T:
    """Build dataclass ``cls`` from a dict made by :func:`config_to_dict` (or read from JSON).

    Missing keys keep the dataclass defaults; unknown keys and values of the wrong type raise a
    ``ValueError`` that names the key.
    """
    return _from_dict(cls, data, prefix="")


def _from_dict(cls: type[T], data: Any, prefix: str) -> T:
    if not isinstance(data, dict):
        raise ValueError(f"{prefix or cls.__name__}: expected a dict for {cls.__name__}, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    kwargs = {}
    for key, value in data.items():
        path = f"{prefix}{key}"
        if key not in fields:
            raise ValueError(
                f"unknown config key {path!r} for {cls.__name__}; known keys: {sorted(fields)}"
            )
        kwargs[key] = _convert(hints[key], value, path)
    return cls(**kwargs)


def _convert(annotation: Any, value: Any, path: str) -> Any:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if annotation is Any:
        return value
    if origin is Union or origin is types.UnionType:
        if value is None and type(None) in args:
            return None
        errors = []
        for option in args:
            if option is type(None):
                continue
            try:
                return _convert(option, value, path)
            except ValueError as error:
                errors.append(str(error))
        raise ValueError(f"{path}: {value!r} matches none of {annotation}: {'; '.join(errors)}")
    if origin is typing.Literal:
        if value not in args:
            raise ValueError(f"{path}: expected one of {list(args)}, got {value!r}")
        return value
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"{path}: expected a list, got {value!r}")
        if origin is tuple and not (len(args) == 2 and args[1] is Ellipsis):
            if args and len(args) != len(value):
                raise ValueError(f"{path}: expected {len(args)} items, got {len(value)}")
            items = [_convert(a, v, f"{path}[{i}]") for i, (a, v) in enumerate(zip(args, value))] if args else list(value)
        else:
            item_type = args[0] if args else Any
            items = [_convert(item_type, v, f"{path}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if dataclasses.is_dataclass(annotation):
        return _from_dict(annotation, value, prefix=f"{path}.")
    if annotation is type(None):
        if value is not None:
            raise ValueError(f"{path}: expected null, got {value!r}")
        return None
    if annotation is bool:
        if not isinstance(value, bool):
            raise ValueError(f"{path}: expected true or false, got {value!r}")
        return value
    if annotation is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{path}: expected an integer, got {value!r}")
        return value
    if annotation is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"{path}: expected a number, got {value!r}")
        return float(value)
    if annotation is str:
        if not isinstance(value, str):
            raise ValueError(f"{path}: expected a string, got {value!r}")
        return value
    if isinstance(annotation, type) and issubclass(annotation, pathlib.PurePath):
        if not isinstance(value, str):
            raise ValueError(f"{path}: expected a path string, got {value!r}")
        return annotation(value)
    raise ValueError(f"{path}: unsupported config field type {annotation!r}")


def config_to_json(config: Any, indent: int = 2) -> str:
    """JSON text of a dataclass config (see :func:`config_to_dict`)."""
    return json.dumps(config_to_dict(config), indent=indent, sort_keys=False)


def config_from_json(cls: type[T], text: str) -> T:
    """Inverse of :func:`config_to_json`."""
    return config_from_dict(cls, json.loads(text))

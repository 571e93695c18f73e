"""JSON round trip of the dataset configs (paths as strings, tuples as lists)."""

from __future__ import annotations

import dataclasses
import json
import typing
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


def config_to_json(config: Any) -> str:
    """A dataclass config as JSON text."""

    def plain(value: Any) -> Any:
        if isinstance(value, Path):
            return str(value)
        if isinstance(value, tuple):
            return list(value)
        return value

    return json.dumps({f.name: plain(getattr(config, f.name)) for f in dataclasses.fields(config)})


def config_from_json(cls: type[T], text: str) -> T:
    """Inverse of :func:`config_to_json`: unknown keys are an error, missing keys take defaults."""
    data = json.loads(text)
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(data) - names
    if unknown:
        raise ValueError(f"{cls.__name__}: unknown keys {sorted(unknown)} in JSON; known keys: {sorted(names)}")
    values = {}
    for name, value in data.items():
        hint = str(hints[name])
        if value is not None and "Path" in hint:
            value = Path(value)
        elif isinstance(value, list) and "tuple" in hint:
            value = tuple(value)
        values[name] = value
    return cls(**values)

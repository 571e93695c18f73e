"""Dataclass configs to JSON and back."""

import json
from dataclasses import dataclass, field
from typing import Literal

import pytest

from epigraf_field.config_io import config_from_dict, config_from_json, config_to_dict, config_to_json
from epigraf_field.generator import TriPlaneGeneratorConfig


@dataclass
class Inner:
    kind: Literal["a", "b"] = "a"
    sizes: tuple[int, ...] = (1, 2)
    pair: tuple[float, int] = (0.5, 3)


@dataclass
class Outer:
    name: str = "x"
    rate: float = 1.0
    steps: int = 3
    flag: bool = False
    limit: float | None = None
    inner: Inner = field(default_factory=Inner)


def test_generator_config_json_round_trip():
    config = TriPlaneGeneratorConfig.small()
    again = config_from_json(TriPlaneGeneratorConfig, config_to_json(config))
    assert again == config and again != TriPlaneGeneratorConfig()


def test_nested_literal_tuple_optional_round_trip():
    config = Outer(name="y", rate=2, steps=5, flag=True, limit=0.25, inner=Inner("b", (4, 5, 6), (1.5, 2)))
    data = json.loads(json.dumps(config_to_dict(config)))
    assert data["inner"]["sizes"] == [4, 5, 6]
    again = config_from_dict(Outer, data)
    assert again == config and isinstance(again.inner.sizes, tuple) and isinstance(again.rate, float)


def test_missing_keys_keep_defaults():
    assert config_from_dict(Outer, {"inner": {"kind": "b"}}) == Outer(inner=Inner(kind="b"))


@pytest.mark.parametrize(
    "data, message",
    [
        ({"speed": 1}, "speed"),
        ({"inner": {"colour": 1}}, "inner.colour"),
        ({"inner": {"kind": "c"}}, "inner.kind"),
        ({"steps": 1.5}, "steps"),
        ({"flag": 1}, "flag"),
        ({"limit": "high"}, "limit"),
        ({"inner": {"pair": [1.0]}}, "inner.pair"),
    ],
)
def test_bad_values_name_the_key(data, message):
    with pytest.raises(ValueError, match=message):
        config_from_dict(Outer, data)

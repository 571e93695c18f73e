"""Recipes: a paper's whole training configuration for one dataset, applied over a pipeline's GPU preset.

A pipeline offers recipes through a ``recipes`` module beside the module of its presets (for
``pipelines.patch_gan.pipeline:gpu_preset``, ``pipelines.patch_gan.recipes``) holding ``RECIPES``, a
tuple of :class:`Recipe`. A plug-in pipeline does the same in its own package (and gives its config
a ``recipe: str | None`` field, where the name is recorded); a pipeline without such a module has
no recipes. ``epigraf-train --recipe NAME`` applies the recipe to the preset before the command
line is parsed, so every option given on the command line still wins.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pipelines.engine.options import flatten_options, same_value
from pipelines.registry import PipelineSpec


@dataclass(frozen=True)
class Recipe:
    """One paper's configuration for one dataset."""

    name: str
    """The --recipe name (the dataset: ffhq, afhq, ...)."""
    summary: str
    """One line for `epigraf-train --help`: what it trains and whose numbers it follows."""
    apply: Callable[[Any], Any]
    """The pipeline's config with the recipe's values (a copy: the argument is left as it is)."""


def recipes_module(spec: PipelineSpec) -> str:
    """Where a pipeline's recipes live: ``recipes`` beside the module of its GPU preset."""
    preset_module = spec.gpu_preset.partition(":")[0]
    package = preset_module.rpartition(".")[0]
    return f"{package}.recipes" if package else "recipes"


def recipes_of(spec: PipelineSpec) -> dict[str, Recipe]:
    """The recipes of a pipeline by name (empty when it has none)."""
    name = recipes_module(spec)
    try:
        found = importlib.util.find_spec(name)
    except ModuleNotFoundError:  # the parent package itself is missing
        found = None
    if found is None:
        return {}
    recipes = getattr(importlib.import_module(name), "RECIPES", ())
    return {recipe.name: recipe for recipe in recipes}


def get_recipe(spec: PipelineSpec, name: str) -> Recipe:
    """The recipe ``name`` of the pipeline; an unknown name is a ValueError listing the pipeline's recipes."""
    recipes = recipes_of(spec)
    if name not in recipes:
        known = f"its recipes: {', '.join(recipes)}" if recipes else "it has none"
        raise ValueError(f"--recipe {name!r} is not a recipe of --pipeline {spec.name}; {known}")
    return recipes[name]


def apply_recipe(spec: PipelineSpec, name: str, config: Any) -> Any:
    """``config`` with recipe ``name`` applied and the recipe's name recorded in its ``recipe`` field."""
    configured = get_recipe(spec, name).apply(config)
    if any(item.name == "recipe" for item in dataclasses.fields(configured)):
        configured = dataclasses.replace(configured, recipe=name)
    return configured


def recipes_help(spec: PipelineSpec) -> str:
    """The recipes of a pipeline for the --help description: a heading, then one indented ``name: summary``
    line each (tyro keeps indented lines apart)."""
    recipes = recipes_of(spec)
    if not recipes:
        return f"--pipeline {spec.name} has no recipes."
    listed = "".join(f"\n  {name}: {recipe.summary}" for name, recipe in recipes.items())
    return (f"Recipes of {spec.name} (--recipe NAME: a paper's configuration for a dataset over the GPU preset; "
            f"options given on the command line still win; --data is yours to give):{listed}")


def replace_options(config: Any, changes: Mapping[str, Any]) -> Any:
    """A copy of ``config`` with options given by dotted name replaced (``dataclasses.replace`` at every level).

    Example: ``replace_options(config, {"batch": 32, "model.losses.r1_gamma": 1.0})``; ``config`` is unchanged.
    """
    direct: dict[str, Any] = {}
    nested: dict[str, dict[str, Any]] = {}
    names = {item.name for item in dataclasses.fields(config) if item.init}
    for name, value in changes.items():
        head, dot, rest = name.partition(".")
        if head not in names:
            raise ValueError(f"{type(config).__name__} has no option {head!r} (in {name!r}); known: {sorted(names)}")
        if dot:
            nested.setdefault(head, {})[rest] = value
        else:
            direct[head] = value
    for head, inner in nested.items():
        direct[head] = replace_options(direct.get(head, getattr(config, head)), inner)
    return dataclasses.replace(config, **direct)


def _format(value: Any) -> str:
    if isinstance(value, (tuple, list)):
        return "[" + " ".join(_format(v) for v in value) + "]"
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def recipe_line(name: str, preset: Any, recipe: Any, final: Any) -> str:
    """``recipe NAME set: resolution=512, ...``: the options the recipe changed from the preset (in option
    order), each followed by the command line's value where that won (``r1_gamma=0.1 (given: 0.5)``)."""
    before, after, given = flatten_options(preset), flatten_options(recipe), flatten_options(final)
    settings = []
    for option, value in after.items():
        if option == "recipe" or (option in before and same_value(before[option], value)):
            continue
        text = f"{option}={_format(value)}"
        if option in given and not same_value(given[option], value):
            text += f" (given: {_format(given[option])})"
        settings.append(text)
    return f"recipe {name} set: {', '.join(settings) if settings else 'nothing beyond the preset'}"

"""The registry of training pipelines: every ``epigraf.pipelines`` entry point names one :class:`PipelineSpec`.

A pipeline, in this repository or in another installed package, registers itself with one line in
its ``pyproject.toml``::

    [project.entry-points."epigraf.pipelines"]
    my-method = "my_package.plugin:PIPELINE"

where ``PIPELINE`` is a :class:`PipelineSpec`. The spec names its classes and functions as
``module:attribute`` strings, so listing the pipelines (``epigraf-train --help``) imports none of them.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, Callable

ENTRY_POINT_GROUP = "epigraf.pipelines"


def load_reference(reference: str) -> Any:
    """The object a ``module:attribute`` string names."""
    module, _, attribute = reference.partition(":")
    if not module or not attribute:
        raise ValueError(f"{reference!r} is not a 'module:attribute' reference")
    target = importlib.import_module(module)
    for part in attribute.split("."):
        target = getattr(target, part)
    return target


@dataclass(frozen=True)
class PipelineSpec:
    """How to build one registered pipeline and open what it saves."""

    name: str
    """The --pipeline name (equal to the entry point's name)."""
    description: str
    """One line for `epigraf-train --help`."""
    pipeline_class: str
    """``module:Class`` of the :class:`pipelines.pipeline.Pipeline` subclass."""
    gpu_preset: str
    """``module:function`` returning the paper-like GPU defaults (a TrainConfig)."""
    cpu_preset: str
    """``module:function`` returning the CPU defaults (a TrainConfig)."""
    model_loader: str
    """``module:function(directory, device, backend)`` returning the :class:`pipelines.model.GeneratorModel` of a bundle."""

    def preset(self, kind: str) -> Callable[[], Any]:
        return load_reference(self.gpu_preset if kind == "gpu" else self.cpu_preset)

    def build_pipeline(self, *args: Any, **kwargs: Any) -> Any:
        return load_reference(self.pipeline_class)(*args, **kwargs)

    def load_model(self, directory: Path, device: Any, backend: str | None = None) -> Any:
        return load_reference(self.model_loader)(directory, device, backend)


def registered_pipelines() -> dict[str, PipelineSpec]:
    """Every installed pipeline by name (read from the entry points on each call: plug-ins may come and go)."""
    specs: dict[str, PipelineSpec] = {}
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        try:
            spec = entry.load()
        except Exception as error:  # noqa: BLE001 - a broken plug-in must not hide the others
            raise RuntimeError(
                f"the {ENTRY_POINT_GROUP} entry point {entry.name!r} = {entry.value!r} cannot be loaded ({error}); "
                "reinstall or uninstall the package that provides it"
            ) from error
        if not isinstance(spec, PipelineSpec) or spec.name != entry.name:
            raise RuntimeError(
                f"the {ENTRY_POINT_GROUP} entry point {entry.name!r} = {entry.value!r} must name a PipelineSpec "
                f"whose name is {entry.name!r}"
            )
        if entry.name in specs and specs[entry.name] != spec:
            raise RuntimeError(f"two installed packages register the pipeline {entry.name!r}; uninstall one")
        specs[entry.name] = spec
    if not specs:
        raise RuntimeError(
            f"no pipeline is registered in the {ENTRY_POINT_GROUP} entry point group: the epigraf package is not "
            "installed; run pip install -e . in the repository"
        )
    return dict(sorted(specs.items()))


def get_pipeline_spec(name: str) -> PipelineSpec:
    specs = registered_pipelines()
    if name not in specs:
        raise ValueError(f"--pipeline {name!r} is not registered; choose one of: {', '.join(specs)}")
    return specs[name]

"""The registry of training pipelines: name -> config presets and pipeline class."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Callable


@dataclass(frozen=True)
class PipelineSpec:
    """How to build one registered pipeline."""

    name: str
    description: str
    module: str
    """Module holding the pipeline (imported on first use, so the CLI starts fast)."""
    pipeline_class: str
    gpu_preset: str
    """Name of the function in ``module`` returning the paper-like GPU defaults (a TrainConfig)."""
    cpu_preset: str
    """Name of the function in ``module`` returning the CPU defaults (a TrainConfig)."""

    def load(self, attribute: str) -> Any:
        return getattr(importlib.import_module(self.module), attribute)

    def preset(self, kind: str) -> Callable[[], Any]:
        return self.load(self.gpu_preset if kind == "gpu" else self.cpu_preset)


PIPELINES: dict[str, PipelineSpec] = {
    "patch-gan": PipelineSpec(
        name="patch-gan",
        description="EpiGRAF: pure 3D tri-plane generator trained patch-wise, no 2D upsampler",
        module="pipelines.patch_gan.pipeline",
        pipeline_class="PatchGanPipeline",
        gpu_preset="gpu_preset",
        cpu_preset="cpu_preset",
    ),
    "eg3d": PipelineSpec(
        name="eg3d",
        description="EG3D: tri-plane render at a low neural resolution, 2D super-resolution, dual discrimination",
        module="pipelines.eg3d.pipeline",
        pipeline_class="Eg3dPipeline",
        gpu_preset="gpu_preset",
        cpu_preset="cpu_preset",
    ),
}


def get_pipeline_spec(name: str) -> PipelineSpec:
    if name not in PIPELINES:
        raise ValueError(f"--pipeline {name!r} is not registered; choose one of: {', '.join(sorted(PIPELINES))}")
    return PIPELINES[name]

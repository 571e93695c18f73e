"""The mimic3d pipeline's registration (the ``epigraf.pipelines`` entry point); imports nothing heavy."""

from pipelines.registry import PipelineSpec

PIPELINE = PipelineSpec(
    name="mimic3d",
    description="Mimic3D: EG3D's 2D branch plus a direct 3D render taught by 3D-to-2D imitation, 3D-aware convolutions",
    pipeline_class="pipelines.mimic3d.pipeline:Mimic3dPipeline",
    gpu_preset="pipelines.mimic3d.pipeline:gpu_preset",
    cpu_preset="pipelines.mimic3d.pipeline:cpu_preset",
    model_loader="pipelines.mimic3d.model:load_model",
)

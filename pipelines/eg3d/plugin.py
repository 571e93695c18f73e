"""The eg3d pipeline's registration (the ``epigraf.pipelines`` entry point); imports nothing heavy."""

from pipelines.registry import PipelineSpec

PIPELINE = PipelineSpec(
    name="eg3d",
    description="EG3D: tri-plane render at a low neural resolution, 2D super-resolution, dual discrimination",
    pipeline_class="pipelines.eg3d.pipeline:Eg3dPipeline",
    gpu_preset="pipelines.eg3d.pipeline:gpu_preset",
    cpu_preset="pipelines.eg3d.pipeline:cpu_preset",
    model_loader="pipelines.eg3d.model:load_model",
)

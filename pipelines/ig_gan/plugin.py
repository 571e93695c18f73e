"""The ig-gan pipeline's registration (the ``epigraf.pipelines`` entry point); imports nothing heavy."""

from pipelines.registry import PipelineSpec

PIPELINE = PipelineSpec(
    name="ig-gan",
    description="IG-GAN: voxel shapes learnt through a non-differentiable Mitsuba renderer and a proxy neural renderer",
    pipeline_class="pipelines.ig_gan.pipeline:IgGanPipeline",
    gpu_preset="pipelines.ig_gan.pipeline:gpu_preset",
    cpu_preset="pipelines.ig_gan.pipeline:cpu_preset",
    model_loader="pipelines.ig_gan.model:load_model",
)

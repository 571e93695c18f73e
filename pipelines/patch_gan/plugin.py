"""The patch-gan pipeline's registration (the ``epigraf.pipelines`` entry point); imports nothing heavy."""

from pipelines.registry import PipelineSpec

PIPELINE = PipelineSpec(
    name="patch-gan",
    description="EpiGRAF: pure 3D tri-plane generator trained patch-wise, no 2D upsampler",
    pipeline_class="pipelines.patch_gan.pipeline:PatchGanPipeline",
    gpu_preset="pipelines.patch_gan.pipeline:gpu_preset",
    cpu_preset="pipelines.patch_gan.pipeline:cpu_preset",
    model_loader="pipelines.patch_gan.model:load_model",
)

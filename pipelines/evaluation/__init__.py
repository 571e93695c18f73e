"""Evaluation and export: FID/KID, SWD, multi-view consistency, geometry metrics, meshes, grids and videos."""

from pipelines.evaluation.consistency import ConsistencyResult, multiview_psnr, rotate_cameras_about_y, warp_to_target
from pipelines.evaluation.fid import FeatureStatistics, fid_from_features, frechet_distance, kernel_inception_distance
from pipelines.evaluation.inception import InceptionV3Features, InceptionWeightsNotFoundError, find_inception_weights
from pipelines.evaluation.meshes import MeshExtractionConfig, extract_meshes, save_mesh
from pipelines.evaluation.metrics import (
    METRICS,
    MetricsCache,
    MetricsConfig,
    check_metric_names,
    compute_metrics,
    model_consistency,
    model_geometry,
)
from pipelines.evaluation.shape_metrics import ShapeMetrics, compare_shapes
from pipelines.evaluation.swd import SWDConfig, sliced_wasserstein_distance
from pipelines.evaluation.video import write_video

__all__ = [
    "METRICS",
    "ConsistencyResult",
    "FeatureStatistics",
    "InceptionV3Features",
    "InceptionWeightsNotFoundError",
    "MeshExtractionConfig",
    "MetricsCache",
    "MetricsConfig",
    "SWDConfig",
    "ShapeMetrics",
    "check_metric_names",
    "compare_shapes",
    "compute_metrics",
    "extract_meshes",
    "fid_from_features",
    "find_inception_weights",
    "frechet_distance",
    "kernel_inception_distance",
    "model_consistency",
    "model_geometry",
    "multiview_psnr",
    "rotate_cameras_about_y",
    "save_mesh",
    "sliced_wasserstein_distance",
    "warp_to_target",
    "write_video",
]

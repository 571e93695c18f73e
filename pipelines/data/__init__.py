"""Datasets: image loading and validation, camera distributions, and the synthetic dataset with ground truth."""

from pipelines.data.builtin import cache_root, ensure_builtin_dataset
from pipelines.camera_distributions import CameraDistributionConfig, sample_cameras
from epigraf_field.config_io import config_from_json, config_to_json
from pipelines.data.image_dataset import DatasetConfig, ImageDataset, validate_dataset
from pipelines.data.problems import DatasetProblem, DatasetValidationError, ValidationReport
from pipelines.data.synthetic import SynthConfig, build_synthetic_dataset

__all__ = [
    "CameraDistributionConfig",
    "DatasetConfig",
    "DatasetProblem",
    "DatasetValidationError",
    "ImageDataset",
    "SynthConfig",
    "ValidationReport",
    "build_synthetic_dataset",
    "cache_root",
    "config_from_json",
    "config_to_json",
    "ensure_builtin_dataset",
    "sample_cameras",
    "validate_dataset",
]

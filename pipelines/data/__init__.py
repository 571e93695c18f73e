"""Datasets: image loading and validation, and the synthetic dataset with ground truth."""

from pipelines.data.builtin import cache_root, ensure_builtin_dataset
from pipelines.data.image_dataset import DatasetConfig, ImageDataset, validate_dataset
from pipelines.data.problems import DatasetProblem, DatasetValidationError, ValidationReport
from pipelines.data.synthetic import SynthConfig, build_synthetic_dataset

__all__ = [
    "DatasetConfig",
    "DatasetProblem",
    "DatasetValidationError",
    "ImageDataset",
    "SynthConfig",
    "ValidationReport",
    "build_synthetic_dataset",
    "cache_root",
    "ensure_builtin_dataset",
    "validate_dataset",
]

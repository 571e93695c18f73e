"""Fréchet Inception Distance (Heusel et al. 2017) and Kernel Inception Distance (Bińkowski et al. 2018) on features."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor


PRECOMPUTE_LIMIT = 4096


@dataclass
class FeatureStatistics:
    """Mean [d] and covariance [d, d] of a feature set (float64), what FID compares."""

    mean: np.ndarray
    covariance: np.ndarray
    count: int

    @classmethod
    def of(cls, features: Tensor | np.ndarray) -> FeatureStatistics:
        array = np.asarray(features.detach().cpu() if isinstance(features, Tensor) else features, dtype=np.float64)
        if array.ndim != 2 or array.shape[0] < 2:
            raise ValueError(f"FID needs features [n >= 2, d], got shape {list(array.shape)}; use more images")
        return cls(array.mean(axis=0), np.cov(array, rowvar=False), array.shape[0])


def _sqrt_psd(matrix: np.ndarray) -> np.ndarray:
    """Symmetric square root of a positive semi-definite matrix (rounding negatives clipped to 0)."""
    values, vectors = np.linalg.eigh(matrix)
    return (vectors * np.sqrt(np.clip(values, 0.0, None))) @ vectors.T


def frechet_distance(a: FeatureStatistics, b: FeatureStatistics) -> float:
    """``|mu_a - mu_b|^2 + tr(S_a + S_b - 2 (S_a S_b)^(1/2))``, the Fréchet distance of two Gaussians.

    ``S_a S_b`` has the eigenvalues of the symmetric ``R S_b R`` with ``R = S_a^(1/2)``, so the trace of
    its square root is the sum of square roots of those eigenvalues; two symmetric eigen-decompositions
    are several times faster than a general matrix square root and need no cleanup of imaginary parts.
    """
    if a.mean.shape != b.mean.shape:
        raise ValueError(f"feature dimensions differ: {a.mean.shape[0]} vs {b.mean.shape[0]}")
    root = _sqrt_psd(a.covariance)
    inner = root @ b.covariance @ root
    trace_sqrt = np.sqrt(np.clip(np.linalg.eigvalsh((inner + inner.T) / 2.0), 0.0, None)).sum()
    diff = a.mean - b.mean
    return float(diff @ diff + np.trace(a.covariance) + np.trace(b.covariance) - 2.0 * trace_sqrt)


def fid_from_features(features_a: Tensor | np.ndarray, features_b: Tensor | np.ndarray) -> float:
    """FID of two feature sets [n, d] and [m, d].

    With fewer samples than dimensions (1,000 images against 2,048 Inception features) the covariances
    are low rank, and ``tr((S_a S_b)^(1/2))`` equals the sum of singular values of
    ``X_a X_b^T / sqrt((n - 1)(m - 1))`` (X: centred features), an n x m problem instead of a d x d one.
    """
    a = np.asarray(features_a.detach().cpu() if isinstance(features_a, Tensor) else features_a, dtype=np.float64)
    b = np.asarray(features_b.detach().cpu() if isinstance(features_b, Tensor) else features_b, dtype=np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1] or min(a.shape[0], b.shape[0]) < 2:
        raise ValueError(f"FID needs feature sets [n >= 2, d] and [m >= 2, d], got {list(a.shape)} and {list(b.shape)}")
    if min(a.shape[0], b.shape[0]) >= a.shape[1]:
        return frechet_distance(FeatureStatistics.of(a), FeatureStatistics.of(b))
    centred_a, centred_b = a - a.mean(axis=0), b - b.mean(axis=0)
    scale = (a.shape[0] - 1) * (b.shape[0] - 1)
    trace_sqrt = np.linalg.svd(centred_a @ centred_b.T, compute_uv=False).sum() / np.sqrt(scale)
    diff = a.mean(axis=0) - b.mean(axis=0)
    traces = (centred_a**2).sum() / (a.shape[0] - 1) + (centred_b**2).sum() / (b.shape[0] - 1)
    return float(diff @ diff + traces - 2.0 * trace_sqrt)


def kernel_inception_distance(
    features_a: Tensor,
    features_b: Tensor,
    rng: torch.Generator,
    num_subsets: int = 100,
    subset_size: int = 1000,
) -> tuple[float, float]:
    """KID (mean, std over subsets): the unbiased MMD^2 with kernel ``k(x, y) = (x.y / d + 1)^3``.

    Following Bińkowski et al. (2018), ``num_subsets`` random subsets of ``subset_size`` features
    are drawn (without replacement, from ``rng``) from each set; the subset size shrinks to the
    smaller set when it has fewer features.
    """
    a = features_a.detach().cpu().double()
    b = features_b.detach().cpu().double()
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"KID needs feature sets [n, d] and [m, d], got {list(a.shape)} and {list(b.shape)}")
    m = min(subset_size, a.shape[0], b.shape[0])
    if m < 2:
        raise ValueError(f"KID needs at least 2 features per set, got {a.shape[0]} and {b.shape[0]}")
    d = a.shape[1]
    kernel = lambda x, y: (x @ y.T / d + 1.0) ** 3  # noqa: E731
    # Up to a few thousand features the full kernel matrices fit in memory: compute them once and let
    # every subset index into them instead of redoing the d-dimensional products per subset.
    full = max(a.shape[0], b.shape[0]) <= PRECOMPUTE_LIMIT
    if full:
        full_xx, full_yy, full_xy = kernel(a, a), kernel(b, b), kernel(a, b)
    values = []
    for _ in range(num_subsets):
        i = torch.randperm(a.shape[0], generator=rng)[:m]
        j = torch.randperm(b.shape[0], generator=rng)[:m]
        if full:
            k_xx, k_yy, k_xy = full_xx[i][:, i], full_yy[j][:, j], full_xy[i][:, j]
        else:
            x, y = a[i], b[j]
            k_xx, k_yy, k_xy = kernel(x, x), kernel(y, y), kernel(x, y)
        # Unbiased estimator: the diagonals (a sample with itself) are left out of the within-set terms.
        within = (k_xx.sum() - k_xx.diagonal().sum() + k_yy.sum() - k_yy.diagonal().sum()) / (m * (m - 1))
        values.append(float(within - 2.0 * k_xy.mean()))
    values_np = np.asarray(values)
    return float(values_np.mean()), float(values_np.std())

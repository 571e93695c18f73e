"""The family histogram: for each generated shape, the family of its nearest ground-truth mesh by Chamfer distance.

COV/MMD/1-NNA say how close two sets of shapes are; they do not say *which* kinds of object a
generator makes. On the built-in dataset (mushrooms, vases, chairs and tables in equal shares, see
``pipelines/data/shapes.py``) a generator that makes only vases can still reach a fair MMD. The
histogram counts, over the generated shapes, the family of each one's nearest reference mesh (point
clouds normalized as in :mod:`pipelines.evaluation.shape_metrics`); a good generator covers every
family in about the dataset's shares. Empty meshes (no surface at the iso-level) are counted apart.

Every shape has a nearest reference, a shapeless blob too. So the histogram also says how many generated
shapes are *recognised*: no farther from their nearest reference than references usually are from their
own nearest other reference (the 95th percentile of those leave-one-out distances over a sample of them).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from pipelines.evaluation.shape_metrics import (
    chamfer_distance_matrix, find_synthetic_metadata, metadata_candidates, normalize_point_clouds, sample_surface_points,
)

EMPTY = "empty"
"""The bucket of generated meshes without a surface."""
RECOGNITION_QUANTILE = 0.95
"""Quantile of the references' leave-one-out nearest distances that bounds a recognised shape."""


@dataclass
class FamilyHistogram:
    """How many generated shapes fall nearest to each family, beside the families' shares among the references."""

    counts: dict[str, int]
    """Generated shapes per family (reference families in order), then the empty meshes under ``"empty"``."""
    reference_shares: dict[str, float]
    """Share of each family among the reference meshes (sums to 1)."""
    recognised: int | None = None
    """Generated shapes within ``threshold`` of their nearest reference (None: not measured)."""
    threshold: float | None = None
    """Chamfer distance up to which a shape is recognised (see the module doc)."""

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def shares(self) -> dict[str, float]:
        """Share of each bucket among the generated shapes (empty included; sums to 1)."""
        total = max(self.total, 1)
        return {name: count / total for name, count in self.counts.items()}

    def families_present(self) -> int:
        """How many reference families are the nearest family of at least one generated shape."""
        return sum(1 for name in self.reference_shares if self.counts.get(name, 0) > 0)

    def total_variation(self) -> float:
        """Total variation distance between the generated and the reference shares, in [0, 1] (0: same shares).

        Empty meshes are mass on no family, so they count fully against the generator.
        Example: references half chairs half tables, generated all chairs: 0.5.
        """
        shares = self.shares()
        names = set(self.reference_shares) | set(shares)
        return 0.5 * sum(abs(shares.get(n, 0.0) - self.reference_shares.get(n, 0.0)) for n in names)

    def as_dict(self, prefix: str = "family_") -> dict[str, float]:
        """Flat scores for tables and JSON: the share of each bucket, the families present and the distance."""
        result = {f"{prefix}{name}": share for name, share in self.shares().items()}
        result[f"{prefix}present"] = float(self.families_present())
        result[f"{prefix}tv"] = self.total_variation()
        if self.recognised is not None:
            result[f"{prefix}recognised"] = self.recognised / max(self.total, 1)
        return result


def nearest_families(distances: Tensor, reference_families: list[str]) -> list[str]:
    """The family of the nearest reference of each generated shape, from Chamfer distances [g, r].

    Example: distances ``[[0.3, 0.1], [0.2, 0.5]]`` with families ``["vase", "chair"]`` give ``["chair", "vase"]``.
    """
    if distances.ndim != 2 or distances.shape[1] != len(reference_families):
        raise ValueError(f"distances must be [generated, references] with {len(reference_families)} references "
                         f"(one per family name), got shape {tuple(distances.shape)}")
    if distances.shape[0] == 0:
        return []
    return [reference_families[int(i)] for i in distances.argmin(dim=1)]


def family_histogram(generated: list, references: list, reference_families: list[str], num_points: int,
                     rng: torch.Generator, threshold_sample: int = 0) -> FamilyHistogram:
    """The family histogram of ``generated`` meshes against ``references`` (trimesh objects) of known families.

    Each mesh becomes ``num_points`` surface points drawn from ``rng``; a generated mesh without faces
    counts as ``"empty"``. With ``threshold_sample`` > 0, that many references (drawn from ``rng``) set the
    recognition threshold and the histogram counts the recognised shapes (see the module doc).
    """
    if len(references) != len(reference_families) or not references:
        raise ValueError(f"family_histogram needs one family name per reference mesh, got {len(references)} meshes "
                         f"and {len(reference_families)} names")
    order = list(dict.fromkeys(reference_families))
    reference_shares = {name: reference_families.count(name) / len(reference_families) for name in order}
    counts = {name: 0 for name in order}
    solid = [mesh for mesh in generated if len(mesh.faces) > 0]
    counts[EMPTY] = len(generated) - len(solid)
    ref = normalize_point_clouds(torch.stack([sample_surface_points(m, num_points, rng) for m in references]))
    threshold = None
    if threshold_sample > 0 and len(references) > 1:
        pick = torch.randperm(len(references), generator=rng)[:threshold_sample]
        own = chamfer_distance_matrix(ref[pick], ref)
        own[torch.arange(len(pick)), pick] = float("inf")  # leave each reference itself out
        threshold = float(torch.quantile(own.amin(dim=1), RECOGNITION_QUANTILE))
    recognised = None if threshold is None else 0
    if solid:
        gen = normalize_point_clouds(torch.stack([sample_surface_points(m, num_points, rng) for m in solid]))
        distances = chamfer_distance_matrix(gen, ref)
        for name in nearest_families(distances, reference_families):
            counts[name] += 1
        if threshold is not None:
            recognised = int((distances.amin(dim=1) <= threshold).sum())
    return FamilyHistogram(counts=counts, reference_shares=reference_shares, recognised=recognised, threshold=threshold)


def reference_families(dataset_path: str | Path) -> list[str]:
    """The family of each ground-truth mesh in a synthetic dataset's ``metadata.json``, in the order it lists them.

    ``dataset_path`` is the dataset zip/folder (``metadata.json`` beside it or in it) or the file itself, as for
    :func:`pipelines.evaluation.shape_metrics.find_reference_meshes`.
    """
    path = Path(dataset_path)
    metadata = find_synthetic_metadata(path)
    if metadata is None:
        raise ValueError(f"{path}: the family histogram needs the synthetic dataset's metadata.json (looked at "
                         f"{', '.join(str(c) for c in metadata_candidates(path))}); use the built-in dataset or one made by "
                         "pipelines/data/synthetic.py")
    try:
        objects = json.loads(metadata.read_text())["objects"]
        families = [str(obj["family"]) for obj in objects]
    except (json.JSONDecodeError, KeyError, TypeError) as error:
        raise ValueError(f"{metadata}: every object needs a 'family' (as the synthetic dataset writes it): "
                         f"{error!r}; rebuild the dataset") from error
    if not families:
        raise ValueError(f"{metadata}: lists no objects; rebuild the dataset")
    return families

"""The family histogram: hand-made shapes of each family score their own family; the bookkeeping by hand."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import trimesh

from pipelines.data.shapes import FAMILIES, make_object
from pipelines.evaluation.families import EMPTY, FamilyHistogram, family_histogram, nearest_families, reference_families


@pytest.fixture(scope="module")
def references() -> tuple[list, list[str]]:
    """Sixteen procedural objects of each built-in family (with two or four, a small-capped mushroom can sit
    nearest a vase: the histogram needs references that span each family, as the dataset's 64 per family do)."""
    rng = np.random.default_rng(1)
    meshes, names = [], []
    for _ in range(16):
        for family in FAMILIES:
            meshes.append(make_object(family, rng).combined_mesh())
            names.append(family)
    return meshes, names


@pytest.mark.parametrize("family", FAMILIES)
def test_a_new_shape_of_each_family_scores_its_own_family(references, family):
    meshes, names = references
    # Another object of the family, moved and shrunk as a generator's shape may be: only its form should count.
    shape = make_object(family, np.random.default_rng(7)).combined_mesh()
    shape.apply_scale(0.6).apply_translation((0.05, -0.1, 0.02))
    histogram = family_histogram([shape], meshes, names, 512, torch.Generator().manual_seed(0))
    assert histogram.counts == {**{f: int(f == family) for f in FAMILIES}, EMPTY: 0}
    assert histogram.reference_shares == {f: 0.25 for f in FAMILIES}


def test_objects_are_recognised_and_shapeless_blobs_are_not(references):
    """A sphere or a box still has a nearest family; it is not recognised as one, where a new object is."""
    meshes, names = references
    shapes = [trimesh.creation.icosphere(subdivisions=3, radius=0.4), trimesh.creation.box((0.5, 0.5, 0.5)),
              *[make_object(family, np.random.default_rng(7)).combined_mesh() for family in FAMILIES]]
    for shape, expected in zip(shapes, [0, 0, 1, 1, 1, 1]):
        histogram = family_histogram([shape], meshes, names, 512, torch.Generator().manual_seed(0), threshold_sample=16)
        assert histogram.total == 1 and histogram.threshold > 0
        assert histogram.recognised == expected
        assert histogram.as_dict()["family_recognised"] == expected


def test_empty_meshes_are_counted_apart_and_against_the_generator(references):
    meshes, names = references
    empty = trimesh.Trimesh(vertices=np.zeros((0, 3)), faces=np.zeros((0, 3), np.int64))
    vase = make_object("vase", np.random.default_rng(3)).combined_mesh()
    histogram = family_histogram([empty, vase, empty], meshes, names, 256, torch.Generator().manual_seed(0))
    assert histogram.counts == {"mushroom": 0, "vase": 1, "chair": 0, "table": 0, EMPTY: 2}
    assert histogram.families_present() == 1
    # Generated shares: vase 1/3, empty 2/3; references 1/4 each: TV = (1/4 + |1/3 - 1/4| + 1/4 + 1/4 + 2/3) / 2.
    assert histogram.total_variation() == pytest.approx((0.75 + 1 / 12 + 2 / 3) / 2)


def test_shares_and_distance_by_hand():
    histogram = FamilyHistogram(counts={"chair": 3, "table": 1, EMPTY: 0},
                                reference_shares={"chair": 0.5, "table": 0.5})
    assert histogram.shares() == {"chair": 0.75, "table": 0.25, EMPTY: 0.0}
    assert histogram.total_variation() == pytest.approx(0.25)
    assert histogram.as_dict() == {"family_chair": 0.75, "family_table": 0.25, "family_empty": 0.0,
                                   "family_present": 2.0, "family_tv": pytest.approx(0.25)}


def test_nearest_families_take_the_closest_reference():
    distances = torch.tensor([[0.3, 0.1, 0.5], [0.2, 0.5, 0.9]])
    assert nearest_families(distances, ["vase", "chair", "chair"]) == ["chair", "vase"]
    with pytest.raises(ValueError, match="one per family name"):
        nearest_families(distances, ["vase", "chair"])


def test_reference_families_come_from_the_metadata_and_errors_name_the_file(tmp_path):
    (tmp_path / "metadata.json").write_text(json.dumps({"objects": [{"family": "vase"}, {"family": "table"}]}))
    assert reference_families(tmp_path / "dataset.zip") == ["vase", "table"]
    (tmp_path / "metadata.json").write_text(json.dumps({"objects": [{"mesh": "meshes/obj00000.ply"}]}))
    with pytest.raises(ValueError, match="metadata.json.*'family'"):
        reference_families(tmp_path)
    with pytest.raises(ValueError, match="metadata.json"):
        reference_families(tmp_path / "elsewhere" / "dataset.zip")

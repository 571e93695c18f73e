"""Geometry against ground truth: Chamfer distances of sampled point clouds, COV, MMD and 1-NNA.

Protocol (Achlioptas et al. 2018 for COV/MMD, Yang et al. 2019 "PointFlow" for 1-NNA):

* every mesh is turned into ``num_points`` points sampled uniformly on its surface (area-weighted);
* each cloud is normalized on its own: translated so its bounding-box centre is at the origin and
  scaled so its farthest point lies on the unit sphere. This compares shapes, not placement or size
  (a generator that is right up to scale is not penalised); an empty mesh becomes a single point at
  the origin, far from every real shape;
* Chamfer distance ``CD(X, Y) = mean_x min_y |x - y|^2 + mean_y min_x |x - y|^2``.

With generated set G and reference set R: COV = share of R that is the nearest reference of some
generated shape (higher is better, 1 at best); MMD = mean over R of the distance to the closest
generated shape (lower is better); 1-NNA = leave-one-out accuracy of the 1-nearest-neighbour
classifier on G u R (0.5 is ideal; 1 means the sets are told apart perfectly; below 0.5 happens
when generated shapes are near-copies of references).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor


@dataclass
class ShapeMetrics:
    """COV, MMD (Chamfer) and 1-NNA of a generated set against a reference set."""

    coverage: float
    mmd: float
    one_nna: float

    def as_dict(self, prefix: str = "") -> dict[str, float]:
        return {f"{prefix}cov": self.coverage, f"{prefix}mmd": self.mmd, f"{prefix}1nna": self.one_nna}


def sample_surface_points(mesh, num_points: int, rng: torch.Generator) -> Tensor:
    """``num_points`` points [p, 3] uniform on the mesh surface (area-weighted triangles, uniform barycentrics).

    An empty mesh gives ``num_points`` copies of the origin.
    """
    faces = np.asarray(mesh.faces)
    if len(faces) == 0:
        return torch.zeros(num_points, 3)
    triangles = torch.as_tensor(np.asarray(mesh.vertices)[faces], dtype=torch.float64)  # [f, 3, 3]
    edges_a, edges_b = triangles[:, 1] - triangles[:, 0], triangles[:, 2] - triangles[:, 0]
    areas = torch.linalg.cross(edges_a, edges_b).norm(dim=-1)
    if not areas.sum() > 0:
        return triangles[:, 0].mean(dim=0).float().expand(num_points, 3).clone()
    index = torch.multinomial(areas, num_points, replacement=True, generator=rng)
    r1, r2 = torch.rand(num_points, generator=rng, dtype=torch.float64), torch.rand(
        num_points, generator=rng, dtype=torch.float64)
    # Reflecting (r1, r2) beyond the diagonal keeps barycentric samples uniform inside the triangle.
    flip = r1 + r2 > 1.0
    r1, r2 = torch.where(flip, 1.0 - r1, r1), torch.where(flip, 1.0 - r2, r2)
    points = triangles[index, 0] + r1[:, None] * edges_a[index] + r2[:, None] * edges_b[index]
    return points.float()


def normalize_point_clouds(points: Tensor) -> Tensor:
    """Each cloud of [m, p, 3] centred on its bounding box and scaled to the unit sphere (see module doc)."""
    center = (points.amax(dim=1, keepdim=True) + points.amin(dim=1, keepdim=True)) / 2.0
    centred = points - center
    radius = centred.norm(dim=-1).amax(dim=1, keepdim=True)[..., None]
    return centred / torch.where(radius > 0, radius, torch.ones_like(radius))


def chamfer_distance_matrix(a: Tensor, b: Tensor, chunk: int = 8) -> Tensor:
    """Chamfer distances [m, k] between clouds a [m, p, 3] and b [k, q, 3] (squared distances, see module doc).

    On the CPU nearest neighbours come from k-d trees (O(p log q) per pair instead of the p x q distance
    matrix, about 50x faster at 2,048 points); on CUDA from batched ``torch.cdist``.
    """
    if a.is_cuda:
        return _chamfer_dense(a, b, chunk)
    from scipy.spatial import cKDTree

    a_np, b_np = a.detach().double().numpy(), b.detach().double().numpy()
    m, k = a_np.shape[0], b_np.shape[0]

    def tree(cloud: np.ndarray) -> cKDTree:
        # Repeated points do not change a nearest distance, but a tree over thousands of copies of one
        # point (an empty mesh's cloud) cannot split them and answers each query by a linear scan.
        return cKDTree(np.unique(cloud, axis=0))

    # One query per tree with every point of the other set: term [i, j] = mean over b_j of d(., a_i)^2.
    b_to_a = np.stack([tree(cloud).query(b_np.reshape(-1, 3), k=1, workers=-1)[0].reshape(k, -1) for cloud in a_np])
    a_to_b = np.stack([tree(cloud).query(a_np.reshape(-1, 3), k=1, workers=-1)[0].reshape(m, -1) for cloud in b_np])
    result = (b_to_a**2).mean(axis=2) + (a_to_b**2).mean(axis=2).T
    return torch.from_numpy(result).float()


def _chamfer_dense(a: Tensor, b: Tensor, chunk: int) -> Tensor:
    result = torch.empty(a.shape[0], b.shape[0], device=a.device)
    for i in range(a.shape[0]):
        for j in range(0, b.shape[0], chunk):
            others = b[j : j + chunk]
            squared = torch.cdist(a[i].expand(others.shape[0], -1, 3), others).square()
            result[i, j : j + chunk] = squared.amin(dim=2).mean(dim=1) + squared.amin(dim=1).mean(dim=1)
    return result.cpu()


def shape_metrics_from_distances(gen_ref: Tensor, gen_gen: Tensor, ref_ref: Tensor) -> ShapeMetrics:
    """COV, MMD and 1-NNA from Chamfer matrices [g, r], [g, g] and [r, r]."""
    g, r = gen_ref.shape
    if g < 1 or r < 1:
        raise ValueError(f"shape metrics need at least one generated and one reference shape, got {g} and {r}")
    coverage = gen_ref.argmin(dim=1).unique().numel() / r
    mmd = float(gen_ref.amin(dim=0).mean())
    # 1-NNA: label 0 = generated, 1 = reference; each sample's nearest other sample votes its label.
    full = torch.cat([torch.cat([gen_gen, gen_ref], dim=1), torch.cat([gen_ref.T, ref_ref], dim=1)], dim=0)
    full = full + torch.diag(torch.full((g + r,), float("inf")))
    labels = torch.cat([torch.zeros(g), torch.ones(r)])
    nearest = full.argmin(dim=1)
    one_nna = float((labels[nearest] == labels).float().mean())
    return ShapeMetrics(coverage=float(coverage), mmd=mmd, one_nna=one_nna)


def compare_shapes(generated: list, references: list, num_points: int, rng: torch.Generator) -> ShapeMetrics:
    """COV / MMD / 1-NNA of generated meshes against reference meshes (trimesh objects)."""
    if not generated or not references:
        raise ValueError(f"compare_shapes needs meshes in both sets, got {len(generated)} and {len(references)}")
    gen = normalize_point_clouds(torch.stack([sample_surface_points(m, num_points, rng) for m in generated]))
    ref = normalize_point_clouds(torch.stack([sample_surface_points(m, num_points, rng) for m in references]))
    return shape_metrics_from_distances(
        chamfer_distance_matrix(gen, ref), chamfer_distance_matrix(gen, gen), chamfer_distance_matrix(ref, ref)
    )


def metadata_candidates(dataset_path: str | Path) -> list[Path]:
    """Where a synthetic dataset's ``metadata.json`` may be: the path itself if it is that file, else inside
    the dataset folder and beside the dataset zip/folder, in that order."""
    path = Path(dataset_path)
    return [path] if path.name == "metadata.json" else [path / "metadata.json", path.parent / "metadata.json"]


def find_synthetic_metadata(dataset_path: str | Path) -> Path | None:
    """The first of :func:`metadata_candidates` that exists (None: the dataset is not a synthetic one)."""
    return next((c for c in metadata_candidates(dataset_path) if c.is_file()), None)


def find_reference_meshes(dataset_path: str | Path) -> list[Path]:
    """Ground-truth mesh files listed in the ``metadata.json`` of a synthetic dataset.

    ``dataset_path`` is the dataset zip/folder (``metadata.json`` is looked for beside it and in it)
    or the ``metadata.json`` itself.
    """
    path = Path(dataset_path)
    metadata = find_synthetic_metadata(path)
    if metadata is None:
        raise ValueError(
            f"{path}: geometry metrics need ground-truth meshes, listed in a metadata.json next to the dataset "
            f"(looked at {', '.join(str(c) for c in metadata_candidates(path))}); build the dataset with the synthetic dataset "
            "builder (pipelines/data/synthetic.py) or leave 'geometry' out of --metrics"
        )
    try:
        objects = json.loads(metadata.read_text())["objects"]
        files = [metadata.parent / obj["mesh"] for obj in objects]
    except (json.JSONDecodeError, KeyError, TypeError) as error:
        raise ValueError(f"{metadata}: expected {{'objects': [{{'mesh': 'meshes/....ply'}}, ...]}} ({error})") from error
    missing = [str(f) for f in files if not f.is_file()]
    if missing or not files:
        raise ValueError(f"{metadata}: ground-truth meshes missing: {missing[:3] or 'none listed'}; rebuild the dataset")
    return files


def load_meshes(paths: list[Path]) -> list:
    import trimesh

    return [trimesh.load(str(p), force="mesh", process=False) for p in paths]

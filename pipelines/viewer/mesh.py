"""Marching cubes on a field's density in the scene box, with vertex colours from the field."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch


@dataclass
class ExtractedMesh:
    """A triangle mesh in world coordinates."""

    vertices: np.ndarray
    """[v, 3] float32 positions."""
    faces: np.ndarray
    """[f, 3] int32 vertex indices, counter-clockwise seen from outside."""
    colors: np.ndarray
    """[v, 3] uint8 vertex colours."""

    def to_trimesh(self):
        import trimesh

        return trimesh.Trimesh(self.vertices, self.faces, vertex_colors=self.colors, process=False)

    def save(self, path: Path) -> Path:
        """Writes the mesh (format from the suffix: .ply keeps the colours; .obj, .glb also work)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.to_trimesh().export(path)
        return path


@torch.inference_mode()
def density_grid(field: object, resolution: int, box_half_size: float, chunk_size: int = 1 << 17) -> np.ndarray:
    """Density [res, res, res] (indexed x, y, z) at the centres of a grid over the scene box (scene 0)."""
    if resolution < 2:
        raise ValueError(f"mesh resolution must be at least 2 cells per side, got {resolution}")
    device = getattr(getattr(field, "planes", None), "device", torch.device("cpu"))
    axis = (torch.arange(resolution, dtype=torch.float32, device=device) + 0.5) / resolution
    axis = (2.0 * axis - 1.0) * box_half_size
    points = torch.stack(torch.meshgrid(axis, axis, axis, indexing="ij"), dim=-1).reshape(1, -1, 3)
    values = [field.density(points[:, i : i + chunk_size])[0, :, 0] for i in range(0, points.shape[1], chunk_size)]
    return torch.cat(values).reshape(resolution, resolution, resolution).float().cpu().numpy()


@torch.inference_mode()
def extract_mesh(field: object, resolution: int = 128, threshold: float = 10.0, box_half_size: float = 0.5) -> ExtractedMesh:
    """The ``density = threshold`` level set of scene 0 of ``field`` (PyMCubes), coloured by the field's rgb.

    Raises ValueError when the level set is empty (density never crosses the threshold), naming the
    density range so the threshold can be chosen.
    """
    import mcubes

    grid = density_grid(field, resolution, box_half_size)
    low, high = float(grid.min()), float(grid.max())
    if not low < threshold < high:
        raise ValueError(
            f"mesh threshold {threshold:g} is outside the density range [{low:.3g}, {high:.3g}] of this latent; "
            "choose a threshold inside it"
        )
    vertices, faces = mcubes.marching_cubes(grid, threshold)
    # Grid index i sits at the centre of cell i: world = ((i + 0.5) / res * 2 - 1) * half size.
    vertices = ((vertices + 0.5) / resolution * 2.0 - 1.0) * box_half_size
    # PyMCubes winds triangles counter-clockwise seen from the low side, i.e. from outside a density
    # blob, so the faces already point outward (tested on a ball).
    colors = _vertex_colors(field, vertices)
    return ExtractedMesh(vertices.astype(np.float32), np.ascontiguousarray(faces).astype(np.int32), colors)


def _vertex_colors(field: object, vertices: np.ndarray, chunk_size: int = 1 << 17) -> np.ndarray:
    if len(vertices) == 0:
        return np.zeros((0, 3), dtype=np.uint8)
    device = getattr(getattr(field, "planes", None), "device", torch.device("cpu"))
    points = torch.from_numpy(vertices.astype(np.float32)).to(device)[None]
    rgb = torch.cat([field(points[:, i : i + chunk_size]).rgb[0] for i in range(0, points.shape[1], chunk_size)])
    return (rgb.clamp(0, 1) * 255 + 0.5).to(torch.uint8).cpu().numpy()

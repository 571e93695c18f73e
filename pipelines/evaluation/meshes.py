"""Meshes from density fields: a chunked density grid, marching cubes (PyMCubes), vertex colours, export (trimesh)."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

MESH_FORMATS = ("ply", "obj", "glb")


@dataclass
class MeshExtractionConfig:
    """How a field's density becomes a mesh."""

    resolution: int = 256
    """Grid points per side of the scene box (resolution^3 density queries)."""
    level: float = 10.0
    """Density iso-level of the surface (EG3D extracts its shapes at 10). Must be > 0: outside the box is 0."""
    chunk_size: int = 262144
    """Points per field query (over all scenes); bounds the memory of one query."""
    box_half_size: float = 0.5
    """Half side of the box [-h, h]^3 that is meshed (the field's scene box)."""
    colors: bool = True
    """Query the field's rgb at the vertices and store it as vertex colours."""

    def __post_init__(self) -> None:
        if self.resolution < 2:
            raise ValueError(f"MeshExtractionConfig.resolution must be >= 2, got {self.resolution}")
        if not self.level > 0:
            raise ValueError(
                f"MeshExtractionConfig.level must be > 0 (density is >= 0 and the grid is padded with 0), got {self.level}"
            )
        if self.chunk_size <= 0 or not self.box_half_size > 0:
            raise ValueError("MeshExtractionConfig.chunk_size and box_half_size must be positive")


def grid_points(resolution: int, box_half_size: float, device: torch.device | str = "cpu") -> Tensor:
    """The resolution^3 grid of the box, corners included, as points [resolution^3, 3] in (x, y, z) 'ij' order."""
    axis = torch.linspace(-box_half_size, box_half_size, resolution, device=device)
    return torch.stack(torch.meshgrid(axis, axis, axis, indexing="ij"), dim=-1).reshape(-1, 3)


@torch.no_grad()
def density_grid(field: object, num_scenes: int, config: MeshExtractionConfig,
                 device: torch.device | str = "cpu") -> Tensor:
    """Density of each scene on the grid, [b, N, N, N] indexed [x, y, z], queried ``chunk_size`` points at a time."""
    points = grid_points(config.resolution, config.box_half_size, device)
    per_chunk = max(1, config.chunk_size // num_scenes)
    values = []
    for start in range(0, points.shape[0], per_chunk):
        chunk = points[start : start + per_chunk][None].expand(num_scenes, -1, 3)
        values.append(field.density(chunk)[..., 0].float().cpu())
    n = config.resolution
    return torch.cat(values, dim=1).reshape(num_scenes, n, n, n)


def check_level_in_range(grid: Tensor | np.ndarray, level: float) -> None:
    """Raises ValueError naming the grid's density range when ``level`` is not strictly inside it (no surface)."""
    low, high = float(grid.min()), float(grid.max())
    if not low < level < high:
        raise ValueError(
            f"mesh level {level:g} is outside the density range [{low:.3g}, {high:.3g}] of this scene; "
            "choose a level inside it"
        )


def marching_cubes(grid: Tensor | np.ndarray, level: float, box_half_size: float):
    """A closed trimesh of the ``grid > level`` region of one [N, N, N] grid, in world coordinates.

    The grid is padded with one layer of zeros so a shape touching the box is still closed; faces are
    oriented outwards (positive volume).
    """
    import mcubes
    import trimesh

    volume = np.pad(np.asarray(grid, dtype=np.float64), 1, mode="constant", constant_values=0.0)
    vertices, faces = mcubes.marching_cubes(volume, float(level))
    n = volume.shape[0] - 2
    spacing = 2.0 * box_half_size / (n - 1)
    vertices = -box_half_size + (vertices - 1.0) * spacing  # padded index 1 is the box corner
    # Surfaces closed by the padding would sit half a cell outside the box: put them on its faces.
    vertices = np.clip(vertices, -box_half_size, box_half_size)
    mesh = trimesh.Trimesh(vertices=vertices, faces=faces.astype(np.int64), process=True)
    if len(mesh.faces) and mesh.volume < 0:
        mesh.invert()
    return mesh


@torch.no_grad()
def vertex_colors(field: object, scene: int, num_scenes: int, vertices: np.ndarray, chunk_size: int,
                  device: torch.device | str = "cpu") -> np.ndarray:
    """uint8 RGBA [v, 4] from the field's rgb of one scene at the vertices (other scenes get the same points)."""
    if len(vertices) == 0:
        return np.zeros((0, 4), np.uint8)
    points = torch.as_tensor(vertices, dtype=torch.float32, device=device)
    per_chunk = max(1, chunk_size // num_scenes)
    colors = []
    for start in range(0, len(points), per_chunk):
        chunk = points[start : start + per_chunk][None].expand(num_scenes, -1, 3)
        colors.append(field(chunk).rgb[scene].float().cpu())
    rgb = (torch.cat(colors).clamp(0, 1) * 255).round().to(torch.uint8).numpy()
    return np.concatenate([rgb, np.full((len(rgb), 1), 255, np.uint8)], axis=1)


def extract_meshes(field: object, num_scenes: int, config: MeshExtractionConfig | None = None,
                   device: torch.device | str = "cpu", require_surface: bool = False) -> list:
    """One trimesh per scene of ``field`` (any radiance field with ``density``; colours need ``__call__``).

    A scene whose density never reaches ``config.level`` gives an empty mesh and a warning that names
    the densest value found, so the level can be lowered. With ``require_surface`` a level outside a
    scene's density range raises ValueError (``check_level_in_range``) instead, before any meshing.
    """
    config = config or MeshExtractionConfig()
    grids = density_grid(field, num_scenes, config, device)
    if require_surface:
        for grid in grids:
            check_level_in_range(grid, config.level)
    return meshes_from_grids(grids, config, field, device)


def meshes_from_grids(grids: Tensor, config: MeshExtractionConfig, field: object | None = None,
                      device: torch.device | str = "cpu") -> list:
    """One trimesh per [N, N, N] grid of :func:`density_grid` (``field`` gives the vertex colours when
    ``config.colors``); an empty mesh, with a warning naming the densest value, where the level is never reached."""
    meshes = []
    for scene in range(len(grids)):
        mesh = marching_cubes(grids[scene], config.level, config.box_half_size)
        if len(mesh.faces) == 0:
            warnings.warn(
                f"scene {scene}: density never reaches level {config.level} (max {float(grids[scene].max()):.3g}); "
                "the mesh is empty, lower --level", stacklevel=2,
            )
        elif config.colors and field is not None:
            mesh.visual.vertex_colors = vertex_colors(field, scene, len(grids), mesh.vertices, config.chunk_size,
                                                      device)
        meshes.append(mesh)
    return meshes


def save_mesh(mesh, path: str | Path) -> Path:
    """Writes a mesh as PLY, OBJ or GLB (chosen by the file suffix) with its vertex colours."""
    path = Path(path)
    suffix = path.suffix.lower().lstrip(".")
    if suffix not in MESH_FORMATS:
        raise ValueError(f"{path}: mesh format must be one of {', '.join(MESH_FORMATS)} (by suffix), got {suffix!r}")
    path.parent.mkdir(parents=True, exist_ok=True)
    mesh.export(str(path), file_type=suffix)
    return path

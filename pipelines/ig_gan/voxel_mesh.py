"""The surface of a binary voxel grid as a triangle mesh of voxel faces, each face in its voxel's colour."""

from __future__ import annotations

import numpy as np

# For a face normal to axis a (of x, y, z), the in-plane axes (u, v) with u x v = +a.
_PLANE_AXES = {0: (1, 2), 1: (2, 0), 2: (0, 1)}


def voxel_surface_mesh(occupied: np.ndarray, colors: np.ndarray, box_half_size: float
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(vertices [v, 3], faces [f, 3], vertex colours [v, 3]) of the boundary of a binary grid.

    ``occupied`` [D, D, D] bool is indexed [d, h, w] = world (z, y, x), the grid spanning
    [-h, h]^3 (the voxel field's layout); ``colors`` [3, D, D, D] in [0, 1]. Every face between an
    occupied voxel and an empty one (or the outside) becomes two triangles wound counter-clockwise
    seen from outside (outward normals: Mitsuba's diffuse material is one-sided), with four
    vertices of its own, so the mesh shows each voxel's colour flat, as the binarized grid is.
    Voxel faces rather than marching cubes: they are exactly the binarized grid, corners included.

    Example: a single occupied voxel gives 6 faces, 12 triangles, 24 vertices.
    """
    occupied = np.asarray(occupied, dtype=bool)
    n = occupied.shape[0]
    if occupied.shape != (n, n, n):
        raise ValueError(f"occupied must be a cube [D, D, D], got {list(occupied.shape)}")
    xyz_occupied = occupied.transpose(2, 1, 0)  # index [x, y, z]
    xyz_colors = np.asarray(colors, dtype=np.float32).transpose(3, 2, 1, 0)  # [x, y, z, 3]
    padded = np.pad(xyz_occupied, 1)
    step = 2.0 * box_half_size / n
    vertices, faces, vertex_colors = [], [], []
    count = 0
    for axis in range(3):
        u, v = _PLANE_AXES[axis]
        for side in (1, -1):
            neighbour = np.roll(padded, -side, axis=axis)[1:-1, 1:-1, 1:-1]
            cells = np.argwhere(xyz_occupied & ~neighbour)  # [k, 3] voxel indices (x, y, z)
            if len(cells) == 0:
                continue
            base = cells.astype(np.float64)
            base[:, axis] += 1.0 if side > 0 else 0.0
            corners = np.repeat(base[:, None, :], 4, axis=1)  # [k, 4, 3]
            corners[:, 1, u] += 1.0
            corners[:, 2, u] += 1.0
            corners[:, 2, v] += 1.0
            corners[:, 3, v] += 1.0
            vertices.append((corners * step - box_half_size).reshape(-1, 3))
            index = count + 4 * np.arange(len(cells))[:, None]
            quad = np.array([[0, 1, 2], [0, 2, 3]]) if side > 0 else np.array([[0, 2, 1], [0, 3, 2]])
            faces.append((index[:, None, :1] + quad[None]).reshape(-1, 3))
            colour = xyz_colors[cells[:, 0], cells[:, 1], cells[:, 2]]
            vertex_colors.append(np.repeat(colour, 4, axis=0))
            count += 4 * len(cells)
    if not faces:
        return np.zeros((0, 3), np.float32), np.zeros((0, 3), np.uint32), np.zeros((0, 3), np.float32)
    return (np.concatenate(vertices).astype(np.float32), np.concatenate(faces).astype(np.uint32),
            np.concatenate(vertex_colors).astype(np.float32))

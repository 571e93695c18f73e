"""Procedural 3D objects with continuous shape parameters: mushrooms, vases, chairs and tables."""

from __future__ import annotations

import colorsys
from dataclasses import dataclass, field

import numpy as np
import trimesh

FAMILIES = ("mushroom", "vase", "chair", "table")
# Objects are scaled to this bounding-sphere radius about the origin: inside the scene box
# (|coord| <= 0.5 * 0.9) and inside the view cone of the synthetic cameras (radius 1.3, fov 40).
OBJECT_RADIUS = 0.42
_SECTIONS = 48  # revolution segments: smooth at 64-128 px, cheap to render


@dataclass
class Part:
    """One piece of an object with its own material."""

    mesh: trimesh.Trimesh
    color: tuple[float, float, float]
    """sRGB reflectance in [0, 1]."""
    smooth: bool
    """Shade with interpolated vertex normals (surfaces of revolution) or flat (boxes)."""


@dataclass
class ProceduralObject:
    family: str
    parameters: dict[str, float]
    """The continuous shape parameters (and discrete choices as 0/1) that made the object."""
    parts: list[Part]
    material: str = "diffuse"
    """'diffuse' or 'roughplastic'."""
    roughness: float = 0.0
    extra: dict[str, float] = field(default_factory=dict)

    def combined_mesh(self) -> trimesh.Trimesh:
        """All parts in one mesh, each vertex coloured with its part's colour."""
        meshes = []
        for part in self.parts:
            mesh = part.mesh.copy()
            rgba = np.array([*[round(c * 255) for c in part.color], 255], dtype=np.uint8)
            mesh.visual = trimesh.visual.ColorVisuals(mesh, vertex_colors=np.tile(rgba, (len(mesh.vertices), 1)))
            meshes.append(mesh)
        return trimesh.util.concatenate(meshes)


def _random_color(rng: np.random.Generator, saturation=(0.5, 0.9), value=(0.45, 0.9)) -> tuple[float, float, float]:
    rgb = colorsys.hsv_to_rgb(rng.uniform(0.0, 1.0), rng.uniform(*saturation), rng.uniform(*value))
    return tuple(float(c) for c in rgb)


def _y_up(mesh: trimesh.Trimesh) -> trimesh.Trimesh:
    """trimesh revolves about +z; the project's up axis is +y."""
    rotation = trimesh.transformations.rotation_matrix(-np.pi / 2, [1.0, 0.0, 0.0])
    return mesh.apply_transform(rotation)


def _lathe(radius_height: np.ndarray) -> trimesh.Trimesh:
    """A closed surface of revolution of a (radius, height) profile that starts and ends on the axis."""
    mesh = trimesh.creation.revolve(radius_height, sections=_SECTIONS)
    if mesh.volume < 0:
        # The profile's direction decides the winding; renderers need outward-facing triangles.
        mesh.invert()
    return _y_up(mesh)


def _box(center, extents) -> trimesh.Trimesh:
    return trimesh.creation.box(extents=extents, transform=trimesh.transformations.translation_matrix(center))


def _leg(center, thickness, height, round_leg: bool) -> trimesh.Trimesh:
    if round_leg:
        leg = trimesh.creation.cylinder(radius=thickness / 2, height=height, sections=12)
        leg.apply_transform(trimesh.transformations.rotation_matrix(-np.pi / 2, [1.0, 0.0, 0.0]))
        return leg.apply_translation(center)
    return _box(center, (thickness, height, thickness))


def mushroom(rng: np.random.Generator) -> ProceduralObject:
    p = {
        "stem_height": rng.uniform(0.45, 1.0), "stem_radius": rng.uniform(0.07, 0.16),
        "stem_flare": rng.uniform(0.0, 0.6), "cap_radius": rng.uniform(0.3, 0.6),
        "cap_height": rng.uniform(0.12, 0.45), "cap_roundness": rng.uniform(0.5, 2.5),
        "cap_thickness": rng.uniform(0.04, 0.1),
    }
    t = np.linspace(0.0, 1.0, 12)
    stem_r = p["stem_radius"] * (1.0 + p["stem_flare"] * (1.0 - t) ** 2)
    stem = np.concatenate([[[0.0, 0.0]], np.stack([stem_r, t * p["stem_height"]], 1), [[0.0, p["stem_height"]]]])
    base = p["stem_height"] - 0.5 * p["cap_thickness"]
    s = np.linspace(0.0, 1.0, 16)
    top = np.stack([p["cap_radius"] * s, base + p["cap_height"] * (1.0 - s ** p["cap_roundness"]) ** 0.5 + 1e-3], 1)
    under = np.stack([p["cap_radius"] * s[::-1], base - p["cap_thickness"] * (1.0 - s[::-1]) ** 2], 1)
    cap = np.concatenate([top, under[1:]])
    stem_color = _random_color(rng, saturation=(0.05, 0.3), value=(0.75, 0.95))
    return ProceduralObject("mushroom", p, [Part(_lathe(stem), stem_color, True),
                                            Part(_lathe(cap), _random_color(rng), True)])


def vase(rng: np.random.Generator) -> ProceduralObject:
    from scipy.interpolate import CubicSpline

    p = {"height": rng.uniform(0.8, 1.5), "foot_radius": rng.uniform(0.15, 0.35),
         "belly_radius": rng.uniform(0.25, 0.5), "belly_height": rng.uniform(0.2, 0.6),
         "neck_radius": rng.uniform(0.08, 0.25), "lip_radius": rng.uniform(0.1, 0.35),
         "opening_depth": rng.uniform(0.05, 0.2)}
    heights = np.array([0.0, p["belly_height"], 0.8, 1.0]) * p["height"]
    radii = np.array([p["foot_radius"], p["belly_radius"], p["neck_radius"], p["lip_radius"]])
    y = np.linspace(0.0, p["height"], 24)
    r = np.clip(CubicSpline(heights, radii, bc_type="natural")(y), 0.05, 0.55)
    inner = 0.8 * r[-1]
    profile = np.concatenate([[[0.0, 0.0]], np.stack([r, y], 1),
                              [[inner, p["height"]], [inner, p["height"] - p["opening_depth"]],
                               [0.0, p["height"] - p["opening_depth"]]]])
    return ProceduralObject("vase", p, [Part(_lathe(profile), _random_color(rng), True)])


def chair(rng: np.random.Generator) -> ProceduralObject:
    p = {"seat_width": rng.uniform(0.7, 1.1), "seat_depth": rng.uniform(0.7, 1.1),
         "seat_thickness": rng.uniform(0.06, 0.15), "leg_height": rng.uniform(0.6, 1.0),
         "leg_thickness": rng.uniform(0.06, 0.14), "back_height": rng.uniform(0.5, 1.2),
         "back_thickness": rng.uniform(0.06, 0.12), "back_tilt": rng.uniform(0.0, 0.3),
         "round_legs": float(rng.integers(0, 2))}
    w, d, t, lh, lt = (p[k] for k in ("seat_width", "seat_depth", "seat_thickness", "leg_height", "leg_thickness"))
    legs = [_leg((sx * (w - lt) / 2, lh / 2, sz * (d - lt) / 2), lt, lh, bool(p["round_legs"]))
            for sx in (-1, 1) for sz in (-1, 1)]
    seat = _box((0.0, lh + t / 2, 0.0), (w, t, d))
    # The backrest stands at -z, so a chair faces +z (the yaw-0 camera).
    back = _box((0.0, p["back_height"] / 2, 0.0), (w, p["back_height"], p["back_thickness"]))
    back.apply_transform(trimesh.transformations.rotation_matrix(-p["back_tilt"], [1.0, 0.0, 0.0]))
    back.apply_translation((0.0, lh + t, -(d - p["back_thickness"]) / 2))
    seat_color = _random_color(rng)
    leg_color = _random_color(rng, saturation=(0.2, 0.7), value=(0.25, 0.6))
    return ProceduralObject("chair", p, [Part(seat, seat_color, False), Part(back, seat_color, False),
                                         *[Part(leg, leg_color, False) for leg in legs]])


def table(rng: np.random.Generator) -> ProceduralObject:
    p = {"round_top": float(rng.integers(0, 2)), "width": rng.uniform(1.0, 1.6), "depth": rng.uniform(0.6, 1.2),
         "top_thickness": rng.uniform(0.05, 0.12), "height": rng.uniform(0.6, 1.0),
         "leg_thickness": rng.uniform(0.06, 0.16), "pedestal": float(rng.integers(0, 2))}
    w, d, tt, h, lt = (p[k] for k in ("width", "depth", "top_thickness", "height", "leg_thickness"))
    if p["round_top"]:
        d = w  # a round top is a disc of diameter width
        top = _lathe(np.array([[0.0, h - tt], [w / 2, h - tt], [w / 2, h], [0.0, h]]))
    else:
        top = _box((0.0, h - tt / 2, 0.0), (w, tt, d))
    if p["pedestal"]:
        column = _leg((0.0, (h - tt) / 2, 0.0), 1.5 * lt, h - tt, True)
        foot = _lathe(np.array([[0.0, 0.0], [0.3 * w, 0.0], [0.25 * w, 0.05], [0.0, 0.05]]))
        legs = [column, foot]
    else:
        inset = 0.1 * min(w, d)
        legs = [_leg((sx * (w / 2 - inset), (h - tt) / 2, sz * (d / 2 - inset)), lt, h - tt, False)
                for sx in (-1, 1) for sz in (-1, 1)]
    leg_color = _random_color(rng, saturation=(0.2, 0.7), value=(0.25, 0.6))
    return ProceduralObject("table", p, [Part(top, _random_color(rng), False),
                                         *[Part(leg, leg_color, False) for leg in legs]])


_BUILDERS = {"mushroom": mushroom, "vase": vase, "chair": chair, "table": table}


def make_object(family: str, rng: np.random.Generator) -> ProceduralObject:
    """A random object of ``family``, centred and scaled to :data:`OBJECT_RADIUS`, with a random material."""
    if family not in _BUILDERS:
        raise ValueError(f"unknown object family {family!r}; choose from {', '.join(FAMILIES)}")
    obj = _BUILDERS[family](rng)
    if rng.uniform() < 0.5:
        obj.material, obj.roughness = "roughplastic", float(rng.uniform(0.1, 0.35))
    vertices = np.concatenate([part.mesh.vertices for part in obj.parts])
    center = 0.5 * (vertices.min(0) + vertices.max(0))
    scale = OBJECT_RADIUS / np.linalg.norm(vertices - center, axis=1).max()
    for part in obj.parts:
        part.mesh.apply_translation(-center)
        part.mesh.apply_scale(scale)
    obj.extra = {"scale": float(scale)}
    return obj

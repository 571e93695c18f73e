"""Cameras and class indices of a dataset, from ``dataset.json`` (EG3D, StyleGAN, EpiGRAF) or ``transforms.json``.

Cameras become the project's 25-float label (OpenCV cam2world + normalized intrinsics, see
``renderers/cameras.py``); class indices are integers 0..K-1. Every problem is written into a
:class:`ValidationReport` instead of being raised, so that one pass finds all of them.

``dataset.json`` layouts (paths relative to the dataset root):

* This project's: EG3D's cameras, plus a class per image for class-conditional data::

      {"labels":  [["img0.png", [25 floats]], ...],   # camera per image; null or absent: no cameras
       "classes": [["img0.png", 3], ...],             # optional: class index per image
       "num_classes": 198}                            # optional: K, if the highest classes have no image

* StyleGAN2-ADA's class labels: ``{"labels": [["img0.png", 3], ...]}`` (every value one integer):
  classes, no cameras.
* EpiGRAF's: ``{"camera_angles": {"img0.png": [yaw, pitch, roll], ...}, "labels": {"img0.png": 3, ...}}``,
  ``labels`` (class indices) optional, each field a dict or a list of [path, value] pairs. As in EpiGRAF
  (``src/training/dataset.py``), names match whatever their extension, and a zip's wrapping folder is the
  root (see ``sources.wrapping_folder``). The angles are radians in EpiGRAF's convention
  (``src/training/rendering.py``): the camera is at ``radius * (sin(pitch) cos(yaw), cos(pitch),
  sin(pitch) sin(yaw))`` looking at the origin with +y up: pitch is the polar angle from +y in [0, pi]
  (pi/2 on the equator), yaw 0 is on +x (its frontal view) and its x-flip negates yaw; roll is ignored,
  as EpiGRAF's renderer ignores it. Radius and field of view are not in the file: they come from
  ``DatasetConfig.camera_radius`` / ``camera_fov_degrees`` (EpiGRAF's configs: radius 1, fov 12 degrees
  for faces, 30 for Megascans). :func:`epigraf_angles_to_labels` does the conversion.

A class index is an integer >= 0 (3.0 counts as 3) and below ``num_classes`` when that is given;
K (``LabelTable.num_classes``) is ``num_classes``, else the largest index + 1. Classes of 0..K-1 that no
entry uses are allowed, with a warning.
"""

from __future__ import annotations

import io
import itertools
import json
import math
import posixpath
import zipfile
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from pipelines.data.problems import ValidationReport
from pipelines.data.sources import IMAGE_EXTENSIONS, LABEL_FILES, DatasetSource, normalize_name
from renderers.cameras import LABEL_SIZE, Cameras

# OpenGL / Blender camera axes (x right, y up, z backwards) to OpenCV (x right, y down, z forward).
OPENGL_TO_OPENCV = np.diag([1.0, -1.0, -1.0, 1.0])
# A rotation's R^T R may differ from I by rounding in stored labels; real shears or scales are larger.
RIGID_TOLERANCE = 1e-2
# The generator's scene box is centred at the origin with this half-size (GeneratorConfig.box_half_size default).
SCENE_BOX_HALF_SIZE = 0.5
# From d = 1e4 half-sizes away the box covers at most fx * 2 / 1e4 of the image width (fx: normalized focal length,
# about 1-5 for real lenses): under one pixel at 1024 px unless fx > 5. Such a label is in practice a unit mistake
# (millimetres for metres) or a broken pose, and float32 ray origins that far out lose precision inside the box.
MAX_DISTANCE_IN_BOX_SIZES = 1e4
MAX_CAMERA_DISTANCE = MAX_DISTANCE_IN_BOX_SIZES * SCENE_BOX_HALF_SIZE


# EpiGRAF's data preparation refuses yaw outside [-pi, pi]; beyond a full turn either way it is surely degrees.
MAX_EPIGRAF_YAW = 2.0 * math.pi
# Stored angles are rounded; a pitch this far outside [0, pi] is still read (EpiGRAF clamps it the same way).
ANGLE_TOLERANCE = 1e-6
# EpiGRAF's data preparation refuses roll angles above this (it has no roll in its renderer).
MAX_IGNORED_ROLL = 1e-5
# Class indices index embedding tables (int32 on some backends); larger ones are typing mistakes.
MAX_CLASS_INDEX = 2**31 - 1


@dataclass
class LabelTable:
    """The labels found in a dataset: cameras and class indices by image path, and which file they come from."""

    kind: str
    """'dataset.json', 'transforms.json' or 'none' (no label file)."""
    cameras: bool = True
    """Whether the file holds cameras (False for class-only dataset.json files)."""
    labels: dict[str, np.ndarray] = field(default_factory=dict)
    """Valid 25-float labels (float64) by normalized image path."""
    listed: set[str] = field(default_factory=set)
    """Every image path given a camera, valid or not (for 'image without label' checks)."""
    classes: dict[str, int] = field(default_factory=dict)
    """Valid class indices by normalized image path."""
    class_listed: set[str] | None = None
    """Every image path given a class, valid or not; None when the file has no class labels."""
    num_classes: int = 0
    """K: classes are 0..K-1 (0: no class labels)."""

    @property
    def has_labels(self) -> bool:
        """Whether the images come with cameras."""
        return self.kind != "none" and self.cameras

    @property
    def has_classes(self) -> bool:
        return self.class_listed is not None


def label_field_name(index: int) -> str:
    """The name of value ``index`` of a 25-float label: ``label_field_name(3)`` is 'cam2world[0][3] (translation x)'."""
    if index < 16:
        row, col = divmod(index, 4)
        role = "last row" if row == 3 else f"translation {'xyz'[row]}" if col == 3 else "rotation"
        return f"cam2world[{row}][{col}] ({role})"
    row, col = divmod(index - 16, 3)
    role = {(0, 0): " (fx)", (1, 1): " (fy)", (0, 2): " (cx)", (1, 2): " (cy)"}.get((row, col), "")
    return f"intrinsics[{row}][{col}]{role}"


def _non_finite_fields(stored: np.ndarray) -> str:
    bad = np.flatnonzero(~np.isfinite(stored))
    return ", ".join(label_field_name(int(i)) for i in bad[:4]) + (", ..." if bad.size > 4 else "")


def _far_camera_fix(label_file: str) -> str:
    if label_file == "transforms.json":
        return (f"rescale the scene with --data.camera-scale (camera positions are multiplied by it; pick it so the "
                f"object fits the box of half-size {SCENE_BOX_HALF_SIZE}), or fix this frame's transform_matrix")
    return (f"rescale the scene: multiply the translations (label values 3, 7, 11) of every label in {label_file} by "
            f"one factor so the object fits the box of half-size {SCENE_BOX_HALF_SIZE} (normalized intrinsics "
            "need no change), or fix this camera's pose")


def check_label(values: Any, label_file: str = "dataset.json") -> tuple[str, str, str] | None:
    """``None`` for a usable 25-float label, else (kind, problem, fix).

    The checks are made on the float32 values the dataset stores (a finite float64 like 1e300
    becomes inf), and cameras farther than :data:`MAX_CAMERA_DISTANCE` from the origin are
    refused. ``label_file`` ('dataset.json' or 'transforms.json') picks the advice given in fixes.
    """
    stored = _stored_values(values)
    if isinstance(stored, tuple):
        return stored
    return _check_camera(stored.astype(np.float64), label_file)


_LABEL_LAYOUT_FIX = "write 25 numbers: 16 for the 4x4 cam2world matrix, 9 for the 3x3 normalized intrinsics"


def _stored_values(values: Any) -> np.ndarray | tuple[str, str, str]:
    """The float32 label the dataset will hold, or the (kind, problem, fix) that prevents it."""
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        return ("bad_label", f"label is not a list of numbers ({str(values)[:60]})", _LABEL_LAYOUT_FIX)
    if array.ndim != 1 or array.size != LABEL_SIZE:
        return ("bad_label_length", f"label has {array.size} values, expected {LABEL_SIZE}", _LABEL_LAYOUT_FIX)
    if not np.isfinite(array).all():
        return ("non_finite_label", f"label holds NaN or Inf values in {_non_finite_fields(array)}",
                "recompute this camera pose, or remove the entry")
    with np.errstate(over="ignore"):
        stored = array.astype(np.float32)
    if not np.isfinite(stored).all():
        return ("label_overflow", f"{_non_finite_fields(stored)} overflows float32 (largest finite value "
                f"{float(np.finfo(np.float32).max):.3g}) and would be stored as inf",
                "store positions in scene units and intrinsics normalized by the image size "
                "(fx = focal_px / width), or remove the entry")
    return stored


def _check_camera(array: np.ndarray, label_file: str) -> tuple[str, str, str] | None:
    pose, intrinsics = array[:16].reshape(4, 4), array[16:].reshape(3, 3)
    distance = float(np.linalg.norm(pose[:3, 3]))
    if distance > MAX_CAMERA_DISTANCE:
        return ("camera_too_far", f"camera centre (cam2world translation) is {distance:.3g} from the origin, more "
                f"than {MAX_CAMERA_DISTANCE:g} (= {MAX_DISTANCE_IN_BOX_SIZES:g} x the scene box half-size "
                f"{SCENE_BOX_HALF_SIZE})", _far_camera_fix(label_file))
    rotation = pose[:3, :3]
    if (not np.allclose(pose[3], [0.0, 0.0, 0.0, 1.0], atol=1e-4)
            or not np.allclose(rotation.T @ rotation, np.eye(3), atol=RIGID_TOLERANCE)
            or np.linalg.det(rotation) < 0):
        return ("non_rigid_pose", "cam2world is not a rigid transform (rotation must be orthonormal with "
                "det +1 and the last row 0 0 0 1)",
                "store camera-to-world matrices without scale, shear or reflection (OpenCV axes)")
    if intrinsics[0, 0] <= 0 or intrinsics[1, 1] <= 0 or not np.allclose(intrinsics[2], [0.0, 0.0, 1.0], atol=1e-4):
        return ("bad_intrinsics", "intrinsics need fx, fy > 0 and the last row 0 0 1",
                "store intrinsics normalized by the image size (fx = focal_px / width, cx = 0.5)")
    return None


def read_label_table(source: DatasetSource, mode: str, report: ValidationReport, camera_scale: float = 1.0,
                     camera_radius: float = 1.0, camera_fov_degrees: float = 12.0) -> LabelTable:
    """Reads the label file ``mode`` selects ('auto' picks dataset.json, then transforms.json).

    ``camera_scale`` multiplies transforms.json camera positions; ``camera_radius`` and
    ``camera_fov_degrees`` place the cameras of EpiGRAF ``camera_angles``.
    """
    if mode not in ("auto", "dataset.json", "transforms.json", "none"):
        raise ValueError(f"labels must be 'auto', 'dataset.json', 'transforms.json' or 'none', got {mode!r}")
    if mode == "auto":
        mode = next((m for m in LABEL_FILES if m in source), "none")
    if mode == "none":
        return LabelTable("none")
    if mode not in source:
        report.fatal = True
        report.add(mode, "missing_label_file", f"{mode} not found in {source.path}",
                   "add the label file at the dataset root, or set labels='auto' or 'none'")
        return LabelTable(mode)
    try:
        data = source.read(mode)
    except (OSError, KeyError, zipfile.BadZipFile, EOFError) as error:  # e.g. a zip member failing its CRC
        report.fatal = True
        report.add(mode, "unreadable_label_file", f"{mode} cannot be read from the dataset ({error})",
                   f"re-create the zip or restore {mode}")
        return LabelTable(mode)
    try:
        document = json.loads(data)
    except (ValueError, UnicodeDecodeError) as error:
        report.fatal = True
        report.add(mode, "unreadable_label_file", f"{mode} is not valid JSON ({error})",
                   f"repair or regenerate {mode}")
        return LabelTable(mode)
    if mode == "dataset.json":
        return _read_dataset_json(document, source, report, camera_radius, camera_fov_degrees)
    return _read_transforms(document, source, report, camera_scale)


def _add_entry(table: LabelTable, report: ValidationReport, name: str, values: Any, seen: dict[str, int]) -> None:
    seen[name] = seen.get(name, 0) + 1
    table.listed.add(name)
    if seen[name] == 2:
        table.labels.pop(name, None)
        report.add(name, "duplicate_entry", f"listed more than once in {table.kind}",
                   "keep a single label per image")
    if seen[name] > 1:
        return
    issue = check_label(values, table.kind)
    if issue is not None:
        report.add(name, *issue)
        return
    table.labels[name] = np.asarray(values, dtype=np.float64)


def _read_dataset_json(document: Any, source: DatasetSource, report: ValidationReport, camera_radius: float,
                       camera_fov_degrees: float) -> LabelTable:
    table = LabelTable("dataset.json")
    if not isinstance(document, dict):  # e.g. a bare list of pairs: reading it as unlabeled would drop the cameras
        return _fatal(table, report, f"dataset.json holds a {type(document).__name__}, not an object",
                      "write {\"labels\": [[\"img.png\", [25 floats]], ...]}, or {\"labels\": null} for images "
                      "without cameras")
    fields = {key: _entries(document, key, report) for key in ("labels", "classes", "camera_angles")}
    if any(entries is _BAD for entries in fields.values()):
        return table
    labels, classes, angles = fields["labels"], fields["classes"], fields["camera_angles"]
    labels_are_classes = labels is not None and _all_scalars(labels)
    if labels_are_classes and classes is not None:
        return _fatal(table, report, "dataset.json holds class indices in both 'labels' and 'classes'",
                      "keep one of them: 'classes' next to 25-float camera 'labels', or 'labels' alone")
    if angles is not None and labels and not labels_are_classes:
        return _fatal(table, report, "dataset.json holds two kinds of camera: 'camera_angles' and 25-float 'labels'",
                      "keep one of them (EpiGRAF's 'labels' hold class indices, one integer per image)")
    epigraf = angles is not None or isinstance(document.get("labels"), dict)
    if angles is not None:
        _read_angles(table, report, source, angles, camera_radius, camera_fov_degrees)
    elif labels is not None and not labels_are_classes:
        _read_camera_labels(table, report, labels)
    else:
        table.cameras = False
        if labels is None and classes is None:
            return LabelTable("none")  # EG3D writes {"labels": null} for unlabeled collections.
    class_entries = labels if labels_are_classes else classes
    if class_entries is not None:
        field_name = "labels" if labels_are_classes else "classes"
        _read_classes(table, report, class_entries, field_name, document.get("num_classes"),
                      source if epigraf else None)
    return table


_BAD = object()
"""What :func:`_entries` returns for a field that cannot be read at all."""


def _fatal(table: LabelTable, report: ValidationReport, problem: str, fix: str) -> LabelTable:
    """Reports a dataset.json that cannot be read as a whole; its entries are not looked at."""
    report.fatal = True
    report.add("dataset.json", "bad_label_file", problem, fix)
    table.cameras, table.labels, table.listed = False, {}, set()
    return table


def _entries(document: dict, key: str, report: ValidationReport) -> Any:
    """The (where, path, value) entries of one field (path None for a malformed entry); None when absent,
    :data:`_BAD` when the field is neither a list nor a dict (a fatal problem, reported here).

    A field is a list of [path, value] pairs (EG3D, StyleGAN) or a {path: value} dict (EpiGRAF).
    """
    value = document.get(key)
    if value is None:
        return None
    if isinstance(value, dict):
        return [(f"dataset.json {key}[{path!r}]", path, item) for path, item in value.items()]
    if not isinstance(value, list):
        report.fatal = True
        report.add("dataset.json", "bad_label_file", f"'{key}' must be a list of [path, value] pairs or a "
                   f"{{path: value}} dict, got {type(value).__name__}",
                   "write {\"labels\": [[\"img.png\", [25 floats]], ...]} (see pipelines/data/labels.py)")
        return _BAD
    entries = []
    for index, item in enumerate(value):
        ok = isinstance(item, (list, tuple)) and len(item) == 2 and isinstance(item[0], str)
        entries.append((f"dataset.json {key}[{index}]", item[0] if ok else None, item[1] if ok else None))
    return entries


def _all_scalars(entries: list[tuple[str, str | None, Any]]) -> bool:
    """Whether no value is a list: StyleGAN's class labels rather than EG3D's 25-float cameras."""
    return bool(entries) and not any(isinstance(value, (list, tuple)) for _, _, value in entries)


def _read_camera_labels(table: LabelTable, report: ValidationReport, entries: list) -> None:
    seen: dict[str, int] = {}
    for where, path, values in entries:
        if path is None:
            report.add(where, "bad_label", "entry is not a [path, [25 floats]] pair",
                       "write each entry as [\"relative/path.png\", [25 numbers]]")
            continue
        _add_entry(table, report, normalize_name(path), values, seen)


def _path_stem(name: str) -> str:
    """A dataset path without its extension, as EpiGRAF matches names: ``'a/b.png'`` -> ``'a/b'``."""
    return posixpath.splitext(normalize_name(name))[0]


def _by_stem(entries: list, source: DatasetSource, report: ValidationReport, field_name: str) -> dict[str, Any]:
    """EpiGRAF's matching: each image takes the entry of its path without extension. Returns {image: value}.

    Entries that match no image are returned under their own path (reported as missing files later); two
    entries of one path stem are a duplicate_entry problem, and their images get :data:`_DUPLICATE`.
    """
    values: dict[str, Any] = {}
    paths: dict[str, str] = {}
    for where, path, value in entries:
        if path is None:
            report.add(where, "bad_label", "entry is not a [path, value] pair",
                       f"write {field_name} as {{\"relative/path.png\": value, ...}}")
            continue
        key = _path_stem(path)
        if key in values and values[key] is not _DUPLICATE:
            report.add(normalize_name(path), "duplicate_entry", f"dataset.json {field_name} lists {paths[key]} and "
                       f"{normalize_name(path)}, the same image once its extension is left out (as in EpiGRAF)",
                       "keep a single entry per image")
            value = _DUPLICATE
        paths.setdefault(key, normalize_name(path))
        values[key] = value
    images: dict[str, list[str]] = {}
    for name in source.image_names():
        images.setdefault(_path_stem(name), []).append(name)
    return {image: value for key, value in values.items() for image in images.get(key, [paths[key]])}


_DUPLICATE = object()
"""The value of an image listed twice (already reported)."""


def _read_angles(table: LabelTable, report: ValidationReport, source: DatasetSource, entries: list,
                 radius: float, fov_degrees: float) -> None:
    rolled, valid = [], {}
    for name, value in _by_stem(entries, source, report, "camera_angles").items():
        table.listed.add(name)
        if value is _DUPLICATE:
            continue
        issue = check_epigraf_angles(value)
        if issue is not None:
            report.add(name, *issue)
            continue
        valid[name] = np.asarray(value, dtype=np.float64)
        if valid[name].size == 3 and abs(valid[name][2]) > MAX_IGNORED_ROLL:
            rolled.append(name)
    if rolled:
        report.warn("dataset.json", "ignored_roll", f"{len(rolled)} camera_angles have a roll angle (e.g. "
                    f"{', '.join(rolled[:3])}); it is ignored, as in EpiGRAF", "store roll 0, or use EG3D labels "
                    "(25 floats) for cameras that roll")
    if not valid:
        return
    labels = epigraf_angles_to_labels(np.stack(list(valid.values())), radius, fov_degrees)
    for name, label in zip(valid, labels):
        issue = check_label(label)
        if issue is not None:
            report.add(name, issue[0], issue[1], "lower DatasetConfig.camera_radius, or fix this entry")
            continue
        table.labels[name] = label


def check_epigraf_angles(values: Any) -> tuple[str, str, str] | None:
    """``None`` for usable EpiGRAF camera angles ([yaw, pitch] or [yaw, pitch, roll] in radians), else
    (kind, problem, fix).

    Example: ``check_epigraf_angles([0.3, 1.4, 0.0])`` is None; ``check_epigraf_angles([30, 80, 0])``
    says the pitch lies outside [0, pi] (degrees were stored).
    """
    fix = "store [yaw, pitch, roll] in radians: yaw 0 frontal (EpiGRAF's +x), pitch the angle from +y (pi/2 level)"
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        return ("bad_camera_angles", f"camera_angles is not a list of numbers ({str(values)[:60]})", fix)
    if array.ndim != 1 or array.size not in (2, 3):
        return ("bad_camera_angles", f"camera_angles has {array.size} values, expected 3 (yaw, pitch, roll)", fix)
    if not np.isfinite(array).all():
        which = ", ".join(n for n, v in zip(("yaw", "pitch", "roll"), array) if not math.isfinite(v))
        return ("non_finite_camera_angles", f"camera_angles holds NaN or Inf ({which})",
                "recompute this camera, or remove the entry")
    yaw, pitch = float(array[0]), float(array[1])
    if not -ANGLE_TOLERANCE <= pitch <= math.pi + ANGLE_TOLERANCE:
        return ("bad_camera_angles", f"pitch {pitch:g} lies outside [0, pi] (EpiGRAF's pitch is the polar angle "
                "from +y in radians; degrees, or elevation from the horizon, were probably stored)", fix)
    if abs(yaw) > MAX_EPIGRAF_YAW:
        return ("bad_camera_angles", f"yaw {yaw:g} is more than a full turn (2 pi); degrees were probably stored",
                fix)
    return None


def epigraf_angles_to_labels(angles: np.ndarray, radius: float, fov_degrees: float) -> np.ndarray:
    """25-float labels [n, 25] (float64) of EpiGRAF ``camera_angles`` [n, 2 or 3] (yaw, pitch[, roll], radians).

    EpiGRAF's world is ours turned a quarter turn about +y so that its frontal camera (yaw 0, on +x) is
    ours (yaw 0, on +z): its point (x, y, z) is our (-z, y, x). Our yaw is then minus its yaw and our pitch
    (elevation) pi/2 minus its pitch, so its x-flip (yaw -> -yaw) is :meth:`Cameras.mirror_x`. Both use
    +y up without roll and the same image axes (u right, v down). The fov spans the image from edge to
    edge (EpiGRAF's rays put the outer pixel centres at tan(fov / 2): a difference of one pixel).

    Example: EpiGRAF's front view, yaw 0 and pitch pi/2 at radius 1, is a camera at (0, 0, 1) looking at -z:
        >>> label = epigraf_angles_to_labels(np.array([[0.0, np.pi / 2, 0.0]]), 1.0, 12.0)[0]
        >>> np.round(label[[3, 7, 11]], 6).tolist(), np.round(label[[2, 6, 10]], 6).tolist()
        ([0.0, 0.0, 1.0], [0.0, 0.0, -1.0])
    """
    if not (math.isfinite(radius) and radius > 0):
        raise ValueError(f"DatasetConfig.camera_radius must be positive, got {radius}")
    if not 0 < fov_degrees < 180:
        raise ValueError(f"DatasetConfig.camera_fov_degrees must lie in (0, 180), got {fov_degrees}")
    angles = torch.as_tensor(np.asarray(angles, dtype=np.float64)).reshape(len(angles), -1)
    # EpiGRAF's generator clamps its pitch into [1e-5, pi - 1e-5] (networks_epigraf.py, SynthesisNetwork.forward).
    pitch = math.pi / 2 - angles[:, 1].clamp(0.0, math.pi)
    cameras = Cameras.from_spherical(-angles[:, 0].float(), pitch.float(), float(radius), float(fov_degrees))
    return cameras.to_label().double().numpy()


def _class_issue(value: Any, num_classes: int | None) -> tuple[str, str, str] | None:
    fix = "give the image its class as one integer 0..K-1"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return ("bad_class", f"class index is not an integer ({str(value)[:60]})", fix)
    if not math.isfinite(value) or value != int(value):
        return ("bad_class", f"class index {value} is not an integer", fix)
    if value < 0:
        return ("negative_class", f"class index {int(value)} is negative", fix)
    if num_classes is not None and value >= num_classes:
        return ("class_out_of_range", f"class index {int(value)} is not below num_classes {num_classes} "
                "given in dataset.json", f"{fix}, or raise num_classes")
    if value > MAX_CLASS_INDEX:
        return ("class_out_of_range", f"class index {int(value)} is above {MAX_CLASS_INDEX}, more classes than an "
                "embedding table can hold", fix)
    return None


def _read_classes(table: LabelTable, report: ValidationReport, entries: list, field_name: str, declared: Any,
                  epigraf_source: DatasetSource | None) -> None:
    if declared is not None and (isinstance(declared, bool) or not isinstance(declared, int)
                                 or not 1 <= declared <= MAX_CLASS_INDEX + 1):
        _fatal(table, report, f"num_classes must be a positive integer, got {declared!r}",
               "set num_classes to the number of classes K, or remove it (K is then the largest index + 1)")
        return
    table.class_listed = set()
    if epigraf_source is not None:
        named = _by_stem(entries, epigraf_source, report, field_name)
    else:
        named = {}
        for where, path, value in entries:
            if path is None:
                report.add(where, "bad_class", "entry is not a [path, class index] pair",
                           "write each entry as [\"relative/path.png\", class index]")
            elif normalize_name(path) in named:
                if named[normalize_name(path)] is not _DUPLICATE:
                    report.add(normalize_name(path), "duplicate_entry", f"dataset.json {field_name} lists it more "
                               "than once", "keep a single class per image")
                named[normalize_name(path)] = _DUPLICATE
            else:
                named[normalize_name(path)] = value
    for name, value in named.items():
        table.class_listed.add(name)
        issue = None if value is _DUPLICATE else _class_issue(value, declared)
        if issue is not None:
            report.add(name, *issue)
        elif value is not _DUPLICATE:
            table.classes[name] = int(value)
    used = set(table.classes.values())
    table.num_classes = declared if declared is not None else max(used, default=-1) + 1
    unused = table.num_classes - len(used)
    if unused:
        first = list(itertools.islice((k for k in range(table.num_classes) if k not in used), 8))
        shown = ", ".join(str(k) for k in first) + (", ..." if unused > len(first) else "")
        report.warn("dataset.json", "unused_classes", f"{unused} of the {table.num_classes} classes have no "
                    f"entry ({shown})", "renumber the classes 0..K-1 if they are not meant to exist")


def transforms_frame_label(frame: dict, defaults: dict, image_size: tuple[int, int] | None,
                           camera_scale: float = 1.0) -> np.ndarray:
    """The 25-float label of one transforms.json frame (OpenGL cam2world, pixel or angle intrinsics).

    ``image_size`` (width, height) is used when the file gives focal lengths in pixels without
    ``w``/``h``. Raises ValueError/KeyError/TypeError on missing or malformed fields.
    """
    get = lambda key: frame.get(key, defaults.get(key))  # noqa: E731
    pose_gl = np.asarray(frame["transform_matrix"], dtype=np.float64)
    if pose_gl.shape == (3, 4):
        pose_gl = np.vstack([pose_gl, [0.0, 0.0, 0.0, 1.0]])
    if pose_gl.shape != (4, 4):
        raise ValueError(f"transform_matrix must be 4x4, got shape {list(pose_gl.shape)}")
    pose = pose_gl @ OPENGL_TO_OPENCV
    pose[:3, 3] *= camera_scale
    width, height = get("w"), get("h")
    if (width is None or height is None) and image_size is not None:
        width, height = image_size
    intrinsics = np.eye(3)
    if get("fl_x") is not None:
        if width is None or height is None:
            raise ValueError("fl_x is in pixels but the image size (w, h) is unknown")
        fl_x = float(get("fl_x"))
        fl_y = float(get("fl_y")) if get("fl_y") is not None else fl_x
        cx = float(get("cx")) if get("cx") is not None else width / 2.0
        cy = float(get("cy")) if get("cy") is not None else height / 2.0
        intrinsics[0, 0], intrinsics[1, 1] = fl_x / width, fl_y / height
        intrinsics[0, 2], intrinsics[1, 2] = cx / width, cy / height
    elif get("camera_angle_x") is not None:
        fx = 0.5 / math.tan(float(get("camera_angle_x")) / 2.0)
        if get("camera_angle_y") is not None:
            fy = 0.5 / math.tan(float(get("camera_angle_y")) / 2.0)
        else:
            # Square pixels: the focal length in pixels is the same on both axes.
            fy = fx * (width / height if width and height else 1.0)
        intrinsics[0, 0], intrinsics[1, 1] = fx, fy
        intrinsics[0, 2], intrinsics[1, 2] = 0.5, 0.5
    else:
        raise ValueError("neither fl_x nor camera_angle_x is given")
    return np.concatenate([pose.reshape(-1), intrinsics.reshape(-1)])


def _resolve_frame_path(file_path: str, source: DatasetSource) -> str:
    name = normalize_name(file_path)
    if name in source or name.lower().endswith(IMAGE_EXTENSIONS):
        return name
    # Blender-style synthetic scenes write file paths without an extension.
    for extension in IMAGE_EXTENSIONS:
        if name + extension in source:
            return name + extension
    return name


def _image_size(source: DatasetSource, name: str) -> tuple[int, int] | None:
    from PIL import Image

    try:
        with Image.open(io.BytesIO(source.read(name))) as image:
            return image.size
    except Exception:  # noqa: BLE001 - an unreadable image is reported by the image checks
        return None


def _read_transforms(document: Any, source: DatasetSource, report: ValidationReport,
                     camera_scale: float) -> LabelTable:
    table = LabelTable("transforms.json")
    frames = document.get("frames") if isinstance(document, dict) else None
    if not isinstance(frames, list):
        report.fatal = True
        report.add("transforms.json", "bad_label_file", "'frames' must be a list of frames",
                   "write {\"frames\": [{\"file_path\": ..., \"transform_matrix\": [[...]]}, ...]}")
        return table
    defaults = {k: v for k, v in document.items() if k != "frames"}
    seen: dict[str, int] = {}
    for index, frame in enumerate(frames):
        if not isinstance(frame, dict) or not isinstance(frame.get("file_path"), str):
            report.add(f"transforms.json frames[{index}]", "bad_label", "frame has no 'file_path'",
                       "give each frame a file_path relative to transforms.json")
            continue
        name = _resolve_frame_path(frame["file_path"], source)
        needs_size = (frame.get("w", defaults.get("w")) is None)
        size = _image_size(source, name) if needs_size and name in source else None
        try:
            values: Any = transforms_frame_label(frame, defaults, size, camera_scale)
        except (KeyError, ValueError, TypeError) as error:
            values = None
            table.listed.add(name)
            report.add(name, "bad_label", f"transforms.json frame {index} cannot be converted ({error})",
                       "give transform_matrix (4x4) and fl_x/fl_y/w/h or camera_angle_x")
            continue
        _add_entry(table, report, name, values, seen)
    return table

"""Camera labels of a dataset: EG3D ``dataset.json`` and nerfstudio / instant-ngp ``transforms.json``.

Both are turned into the project's 25-float label (OpenCV cam2world + normalized intrinsics, see
``renderers/cameras.py``). Every problem is written into a :class:`ValidationReport` instead of
being raised, so that one pass finds all of them.
"""

from __future__ import annotations

import io
import json
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pipelines.data.problems import ValidationReport
from pipelines.data.sources import IMAGE_EXTENSIONS, DatasetSource, normalize_name
from renderers.cameras import LABEL_SIZE

# OpenGL / Blender camera axes (x right, y up, z backwards) to OpenCV (x right, y down, z forward).
OPENGL_TO_OPENCV = np.diag([1.0, -1.0, -1.0, 1.0])
LABEL_FILES = ("dataset.json", "transforms.json")
"""Label files at a dataset root, in the order labels='auto' looks for them."""
# A rotation's R^T R may differ from I by rounding in stored labels; real shears or scales are larger.
RIGID_TOLERANCE = 1e-2
# The generator's scene box is centred at the origin with this half-size (GeneratorConfig.box_half_size default).
SCENE_BOX_HALF_SIZE = 0.5
# From d = 1e4 half-sizes away the box covers at most fx * 2 / 1e4 of the image width (fx: normalized focal length,
# about 1-5 for real lenses): under one pixel at 1024 px unless fx > 5. Such a label is in practice a unit mistake
# (millimetres for metres) or a broken pose, and float32 ray origins that far out lose precision inside the box.
MAX_DISTANCE_IN_BOX_SIZES = 1e4
MAX_CAMERA_DISTANCE = MAX_DISTANCE_IN_BOX_SIZES * SCENE_BOX_HALF_SIZE


@dataclass
class LabelTable:
    """The labels found in a dataset: which file each belongs to."""

    kind: str
    """'dataset.json', 'transforms.json' or 'none' (an unlabeled collection)."""
    labels: dict[str, np.ndarray] = field(default_factory=dict)
    """Valid 25-float labels (float64) by normalized image path."""
    listed: set[str] = field(default_factory=set)
    """Every image path the label file names, valid or not (for 'image without label' checks)."""

    @property
    def has_labels(self) -> bool:
        return self.kind != "none"


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


def read_label_table(source: DatasetSource, mode: str, report: ValidationReport,
                     camera_scale: float = 1.0) -> LabelTable:
    """Reads the label file ``mode`` selects ('auto' picks dataset.json, then transforms.json)."""
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
        document = json.loads(source.read(mode))
    except (ValueError, UnicodeDecodeError) as error:
        report.fatal = True
        report.add(mode, "unreadable_label_file", f"{mode} is not valid JSON ({error})",
                   f"repair or regenerate {mode}")
        return LabelTable(mode)
    if mode == "dataset.json":
        return _read_eg3d(document, report)
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


def _read_eg3d(document: Any, report: ValidationReport) -> LabelTable:
    labels = document.get("labels") if isinstance(document, dict) else None
    if labels is None:
        # EG3D writes {"labels": null} for unlabeled collections.
        return LabelTable("none")
    table = LabelTable("dataset.json")
    if not isinstance(labels, list):
        report.fatal = True
        report.add("dataset.json", "bad_label_file", "'labels' must be a list of [path, [25 floats]] pairs",
                   "write {\"labels\": [[\"img.png\", [25 floats]], ...]}")
        return table
    seen: dict[str, int] = {}
    for index, item in enumerate(labels):
        if not (isinstance(item, (list, tuple)) and len(item) == 2 and isinstance(item[0], str)):
            report.add(f"dataset.json labels[{index}]", "bad_label", "entry is not a [path, [25 floats]] pair",
                       "write each entry as [\"relative/path.png\", [25 numbers]]")
            continue
        _add_entry(table, report, normalize_name(item[0]), item[1], seen)
    return table


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

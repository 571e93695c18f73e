"""The image dataset the trainer reads: EG3D / EpiGRAF zips/folders, transforms.json scenes or unlabeled images."""

from __future__ import annotations

import io
import logging
import os
import zipfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from pipelines.data.images import ImageProblem, check_size, load_image, load_image_checked
from pipelines.data.labels import LABEL_FILES, LABEL_SIZE, LabelTable, read_label_table
from pipelines.data.problems import DatasetValidationError, ValidationReport
from pipelines.data.sources import DatasetSource, is_image_name
from renderers.cameras import Cameras

_LOG = logging.getLogger(__name__)


@dataclass
class DatasetConfig:
    """Where the training images are and how to read them."""

    path: Path | None = None
    """A zip or folder of images, with dataset.json or transforms.json for cameras and classes (pipelines/data/labels.py)."""
    resolution: int = 64
    """Training resolution R: items are R x R images."""
    background: tuple[float, float, float] = (1.0, 1.0, 1.0)
    """RGB in [0, 1] that RGBA images are composited over."""
    xflip: bool = False
    """Doubles the dataset with mirrored copies: image flipped left-right and its camera mirrored (Cameras.mirror_x)."""
    skip_bad: bool = False
    """Train on the good entries when some are broken (the list goes to report_dir); default: fail listing every problem."""
    report_dir: Path | None = None
    """Where bad_entries.txt / bad_entries.json are written when skip_bad drops entries (usually the run folder)."""
    resize: Literal["resize", "error"] = "resize"
    """'resize': rescale square images to the resolution; 'error': report images of another size."""
    labels: Literal["auto", "dataset.json", "transforms.json", "none"] = "auto"
    """Camera label source; 'auto' uses dataset.json, then transforms.json, else the images are unlabeled."""
    camera_scale: float = 1.0
    """Factor on camera positions read from transforms.json, to bring the scene into the box of half-size 0.5."""
    camera_radius: float = 1.0
    """Distance of the cameras from the origin for EpiGRAF's camera_angles (its configs: 1 for faces and Megascans)."""
    camera_fov_degrees: float = 12.0
    """Field of view of the cameras for EpiGRAF's camera_angles: 12 for its faces (FFHQ, cats), 30 for Megascans."""
    max_images: int | None = None
    """Use only the first N images (sorted by path); None: all."""
    cache: Literal["auto", "always", "never"] = "auto"
    """Keep decoded uint8 images in memory: 'auto' does so when they fit in cache_max_megabytes."""
    cache_max_megabytes: int = 4096
    """Memory budget of the decoded-image cache for cache='auto'."""
    check_images: Literal["decode", "header"] = "decode"
    """'decode' decodes every image before training (finds corrupt files); 'header' only reads sizes (faster for huge sets)."""


@dataclass
class _Scan:
    report: ValidationReport
    source: DatasetSource | None
    names: list[str]
    labels: np.ndarray | None
    images: np.ndarray | None
    classes: np.ndarray | None = None
    num_classes: int = 0


@dataclass
class _Decoded:
    """What checking one image gave: its pixels (when kept), a problem that excludes it, or a warning."""

    image: np.ndarray | None = None
    problem: ImageProblem | None = None
    warning: ImageProblem | None = None


def _check_image(source: DatasetSource, name: str, config: DatasetConfig, keep: bool) -> _Decoded:
    try:
        data = source.read(name)
    except (OSError, KeyError, zipfile.BadZipFile, EOFError) as error:
        return _Decoded(problem=ImageProblem("unreadable_file", f"cannot be read from the dataset ({error})",
                                             "re-create the zip or restore the file"))
    try:
        if keep or config.check_images == "decode":
            image, warning = load_image_checked(data, config.resolution, config.background, config.resize)
            return _Decoded(image if keep else None, warning=warning)
        with Image.open(io.BytesIO(data)) as header:
            return _Decoded(warning=check_size(header, config.resolution, config.resize))
    except ImageProblem as problem:
        return _Decoded(problem=problem)
    except Exception as error:  # noqa: BLE001 - any decoder failure means a bad file
        return _Decoded(problem=ImageProblem("corrupt_image", f"unreadable or corrupt image ({error})",
                                             "re-export or remove it"))


def _decode_all(source: DatasetSource, names: list[str], config: DatasetConfig, keep: bool,
                report: ValidationReport) -> tuple[list[str], np.ndarray | None]:
    """Decodes (or header-checks) every image in parallel; returns the good names and the cache."""
    with ThreadPoolExecutor(max_workers=max(1, min(8, os.cpu_count() or 1))) as pool:
        results = list(pool.map(lambda name: _check_image(source, name, config, keep), names))
    good, arrays = [], []
    for name, result in zip(names, results):
        if result.problem is not None:
            report.add(name, result.problem.kind, result.problem.problem, result.problem.fix)
            continue
        if result.warning is not None:
            report.warn(name, result.warning.kind, result.warning.problem, result.warning.fix)
        good.append(name)
        if keep:
            arrays.append(result.image)
    cache = np.stack(arrays).transpose(0, 3, 1, 2).copy() if keep and arrays else None
    return good, cache


def _report_member_names(source: DatasetSource, report: ValidationReport) -> None:
    """Zip members merged under one name (images and label files), or pointing outside the dataset, are problems."""
    for clash in (c for c in source.clashes if is_image_name(c.name) or c.name in LABEL_FILES):
        report.add(clash.name, "duplicate_member", f"{len(clash.members)} zip members are read as the one file "
                   f"{clash.name}: {', '.join(clash.members)}",
                   "keep one of them: re-create the zip without the duplicates")
        if clash.name in LABEL_FILES:
            report.fatal = True  # which label file holds the truth is unknown: skipping images cannot help
    for member in source.escaping_members:
        report.add(member, "unsafe_member_name", "zip member name leaves the dataset root (absolute path or '..')",
                   "re-create the zip with paths relative to the dataset root (e.g. `cd dataset && zip -r ../d.zip .`)")


def scan_dataset(config: DatasetConfig) -> _Scan:
    """Reads labels and checks every entry; never raises for bad data (see :func:`validate_dataset`)."""
    path = Path(config.path).expanduser()
    report = ValidationReport(str(path))
    if config.resolution <= 0:
        raise ValueError(f"DatasetConfig.resolution must be positive, got {config.resolution}")
    try:
        source = DatasetSource(path)
    except FileNotFoundError:
        report.fatal = True
        report.add(str(path), "missing_dataset", "dataset path does not exist",
                   "pass an existing zip or folder (or leave path unset for the built-in dataset)")
        return _Scan(report, None, [], None, None)
    except zipfile.BadZipFile as error:
        report.fatal = True
        report.add(str(path), "corrupt_zip", f"not a readable zip archive, probably truncated ({error})",
                   "download or create the zip again (check its size), or unpack it into a folder")
        return _Scan(report, None, [], None, None)
    _report_member_names(source, report)
    table: LabelTable = read_label_table(source, config.labels, report, config.camera_scale, config.camera_radius,
                                         config.camera_fov_degrees)
    image_names = source.image_names()
    present = set(image_names)
    report.num_entries = len(present | table.listed)
    if table.has_labels:
        for name in sorted(table.listed - present):
            report.add(name, "missing_file", f"listed in {table.kind} but not found in the dataset",
                       f"add the image, or remove its entry from {table.kind}")
        for name in image_names:
            if name not in table.listed:
                report.add(name, "unlabeled_image", f"image has no label in {table.kind}",
                           f"add a label for it to {table.kind}, or remove the image")
    if table.has_classes:
        _report_class_coverage(table, image_names, present, report)
    candidates = [n for n in image_names if not table.has_labels or n in table.labels]
    candidates = [n for n in candidates if n not in report.bad_entries]
    if config.max_images is not None:
        candidates = candidates[: config.max_images]
    bytes_needed = len(candidates) * 3 * config.resolution**2
    keep = config.cache == "always" or (config.cache == "auto" and bytes_needed <= config.cache_max_megabytes * 2**20)
    if not image_names and not report.fatal:
        report.fatal = True
        report.add(str(path), "no_images", "the dataset holds no images (.png, .jpg, .webp, ...)",
                   "point path at a zip or folder of images")
    names, cache = _decode_all(source, candidates, config, keep, report)
    labels = np.stack([table.labels[n] for n in names]).astype(np.float32) if table.has_labels and names else None
    classes = np.array([table.classes[n] for n in names], dtype=np.int64) if table.has_classes else None
    return _Scan(report, source, names, labels, cache, classes, table.num_classes)


def _report_class_coverage(table: LabelTable, image_names: list[str], present: set[str],
                           report: ValidationReport) -> None:
    """Every image needs a class and every class entry an image (files already missing are reported once)."""
    for name in sorted(table.class_listed - present - table.listed):
        report.add(name, "missing_file", "given a class in dataset.json but not found in the dataset",
                   "add the image, or remove its entry from dataset.json")
    for name in image_names:
        if name not in table.class_listed:
            report.add(name, "missing_class", "image has no class index in dataset.json",
                       "give every image a class index 0..K-1, or remove the image")


def validate_dataset(config: DatasetConfig) -> ValidationReport:
    """Every problem of the dataset ``config`` points at, without raising for them."""
    return scan_dataset(config).report


class ImageDataset(Dataset):
    """Items are ``(image float [3, R, R] in [-1, 1], label float [25])``.

    The dataset is checked when it is opened: with problems and ``skip_bad=False`` the
    constructor raises :class:`DatasetValidationError` whose message lists every problem.
    Unlabeled datasets return zero labels (``has_labels`` is False; cameras then come from a
    configured camera distribution). With ``xflip`` items ``len/2 ..`` are the mirrored copies.
    Class-conditional datasets also carry :attr:`class_labels` (``num_classes`` > 0).
    The files are never modified.
    """

    def __init__(self, config: DatasetConfig):
        if config.path is None:
            raise ValueError("DatasetConfig.path is None: pass a dataset zip or folder (the built-in dataset's path "
                             "comes from pipelines.data.builtin.ensure_builtin_dataset)")
        self.config = config
        scan = scan_dataset(config)
        self.report = scan.report
        if scan.report.fatal or not scan.names or (not scan.report.ok and not config.skip_bad):
            hint = "" if scan.report.fatal or not scan.names else (
                f"Fix the entries above, or set skip_bad=True (--skip-bad in epigraf-train) to train on the other "
                f"{len(scan.names)} images.")
            raise DatasetValidationError(scan.report, hint)
        if not scan.report.ok and config.report_dir is not None:
            scan.report.write(config.report_dir)
        if not scan.report.ok or scan.report.warnings:
            _LOG.warning("%s", scan.report.summary(config.report_dir if not scan.report.ok else None))
        self._source = scan.source
        self.names: list[str] = scan.names
        """Dataset-relative paths of the images in use (before x-flip doubling)."""
        self._cache = scan.images
        self._has_labels = scan.labels is not None
        labels = scan.labels if scan.labels is not None else np.zeros((len(self.names), LABEL_SIZE), np.float32)
        labels_t = torch.from_numpy(labels)
        if config.xflip:
            mirrored = Cameras.from_label(labels_t).mirror_x().to_label() if self.has_labels else labels_t
            labels_t = torch.cat([labels_t, mirrored])
        self._labels = labels_t.contiguous()
        self._num_classes = scan.num_classes
        self._class_labels = None
        if scan.classes is not None:
            classes = torch.from_numpy(scan.classes)
            self._class_labels = torch.cat([classes, classes]) if config.xflip else classes

    @property
    def has_labels(self) -> bool:
        """Whether the images come with cameras (dataset.json or transforms.json)."""
        return self._has_labels

    def __len__(self) -> int:
        return len(self.names) * (2 if self.config.xflip else 1)

    @property
    def labels(self) -> torch.Tensor:
        """All labels, float [len, 25] (mirrored ones included with xflip)."""
        return self._labels

    @property
    def class_labels(self) -> torch.Tensor | None:
        """Class index of every item, int64 [len] (mirrored copies keep their class); None when unconditional."""
        return self._class_labels

    @property
    def num_classes(self) -> int:
        """K: class indices are 0..K-1; 0 for an unconditional dataset."""
        return self._num_classes

    def raw_image(self, raw_index: int) -> np.ndarray:
        """uint8 [3, R, R] of an image before flipping."""
        if self._cache is not None:
            return self._cache[raw_index]
        data = self._source.read(self.names[raw_index])
        image = load_image(data, self.config.resolution, self.config.background, self.config.resize)
        return np.ascontiguousarray(image.transpose(2, 0, 1))

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for a dataset of {len(self)} items")
        raw_index = index % len(self.names)
        image = torch.from_numpy(np.asarray(self.raw_image(raw_index)))
        if index >= len(self.names):
            image = image.flip(-1)
        image = image.to(torch.float32) / 127.5 - 1.0
        return image, self._labels[index].clone()

    def validate(self) -> ValidationReport:
        """The report of the check made when the dataset was opened (problems skipped, if any)."""
        return self.report

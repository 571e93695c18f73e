"""nerfstudio dataparser ``eg3d-data``: our EG3D-layout datasets (zip or folder + dataset.json), checked as ours."""

from __future__ import annotations

import fnmatch
import hashlib
import io
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Type

import numpy as np
import torch
from PIL import Image

from pipelines.nerfstudio.imports import require_nerfstudio

require_nerfstudio()

from nerfstudio.data.dataparsers.base_dataparser import DataParser, DataParserConfig, DataparserOutputs  # noqa: E402
from nerfstudio.data.scene_box import SceneBox  # noqa: E402
from nerfstudio.data.utils.dataparsers_utils import get_train_eval_split_fraction  # noqa: E402
from nerfstudio.plugins.registry_dataparser import DataParserSpecification  # noqa: E402

from pipelines.data.builtin import cache_root, ensure_builtin_dataset  # noqa: E402
from pipelines.data.image_dataset import DatasetConfig, ImageDataset  # noqa: E402
from pipelines.data.problems import DatasetValidationError, ValidationReport  # noqa: E402
from pipelines.data.sources import DatasetSource  # noqa: E402
from pipelines.nerfstudio.cameras import to_nerfstudio_cameras  # noqa: E402
from pipelines.nerfstudio.field_model import SCENE_METADATA_KEY  # noqa: E402
from pipelines.nerfstudio.scene_transform import nerfstudio_scene  # noqa: E402
from renderers.cameras import Cameras  # noqa: E402

CACHE_FORMAT_VERSION = 1
"""Bumped when the decoded images written for nerfstudio change; old cache folders are then not reused."""
UNSET_DATA = Path()
"""``data`` when neither ``--data`` nor ``eg3d-data --data`` is given: the built-in dataset."""


@dataclass
class Eg3dDataParserConfig(DataParserConfig):
    """An EG3D-layout dataset: a zip or folder of images with ``dataset.json`` ({"labels": [[path, [25 floats]]]}).

    The dataset is checked as ``epigraf-data validate`` checks it (a bad one stops with the same
    report), its images are decoded as ``epigraf-train`` decodes them (alpha over ``background``,
    resized to ``resolution``) into a cache folder keyed by their content, and its cameras (OpenCV
    cam2world in the dataset's world, normalized intrinsics) become nerfstudio cameras in a scene
    where the dataset's box ``[-box_half_size, box_half_size]^3`` is ``[-1, 1]^3`` with z up.
    """

    _target: Type = field(default_factory=lambda: Eg3dDataParser)
    data: Path = UNSET_DATA
    """Zip or folder of the dataset; unset: the built-in synthetic dataset (built into the cache first if missing)."""
    include: tuple[str, ...] = ()
    """Glob patterns of the image paths to use, e.g. 'images/obj00003_*' (one object of a multi-object dataset:
    a NeRF or an inversion fits one scene); none: every image."""
    resolution: int | None = None
    """Image size in pixels nerfstudio trains on; None: the size of the dataset's first image."""
    box_half_size: float = 0.5
    """Half-size of the box the dataset's objects lie in (epigraf's scene box): one nerfstudio scene unit is this
    many dataset units."""
    background: tuple[float, float, float] = (1.0, 1.0, 1.0)
    """RGB in [0, 1] that RGBA images are composited over (as in epigraf-train)."""
    train_split_fraction: float = 0.9
    """Fraction of the images for training; the others, evenly spaced, are the eval images (all images when
    the fraction leaves none)."""
    skip_bad: bool = False
    """Use the good images when some are broken (the problems are printed); default: stop listing every problem."""
    cache_dir: Path | None = None
    """Where the decoded images are written; None: the nerfstudio folder under epigraf's dataset cache
    ($EPIGRAF_CACHE_DIR/datasets, else ~/.cache/epigraf/datasets)."""


@dataclass
class ParsedDataset:
    """The images nerfstudio reads and their labels, before the train / eval split."""

    image_filenames: list[Path]
    labels: torch.Tensor
    resolution: int
    report: ValidationReport


class Eg3dDataParser(DataParser):
    """Parses an EG3D-layout dataset once per instance (train and eval splits share the work)."""

    config: Eg3dDataParserConfig

    def __init__(self, config: Eg3dDataParserConfig) -> None:
        super().__init__(config)
        self._parsed: ParsedDataset | None = None

    def dataset_path(self) -> Path:
        data = Path(self.config.data)
        if data == UNSET_DATA:
            return ensure_builtin_dataset()
        return data.expanduser()

    def parse(self) -> ParsedDataset:
        if self._parsed is None:
            self._parsed = parse_dataset(self.dataset_path(), self.config)
        return self._parsed

    def _generate_dataparser_outputs(self, split: str = "train", **kwargs) -> DataparserOutputs:
        cfg = self.config
        parsed = self.parse()
        if split == "train":
            indices, _ = split_indices(len(parsed.image_filenames), cfg.train_split_fraction)
        else:
            _, indices = split_indices(len(parsed.image_filenames), cfg.train_split_fraction)
        transform = nerfstudio_scene(cfg.box_half_size)
        cameras = to_nerfstudio_cameras(Cameras.from_label(parsed.labels[indices]), parsed.resolution,
                                        parsed.resolution, transform)
        matrix, scale = transform.scene_from_box_matrix()
        return DataparserOutputs(
            image_filenames=[parsed.image_filenames[i] for i in indices],
            cameras=cameras,
            scene_box=SceneBox(aabb=torch.tensor([[-1.0, -1.0, -1.0], [1.0, 1.0, 1.0]])),
            dataparser_transform=matrix,
            dataparser_scale=scale,
            metadata={SCENE_METADATA_KEY: transform},
        )


def split_indices(count: int, train_fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """nerfstudio's evenly spaced train / eval split; every image is an eval image when the fraction leaves none."""
    if not 0.0 < train_fraction <= 1.0:
        raise ValueError(f"eg3d-data --train-split-fraction must lie in (0, 1], got {train_fraction}")
    train, evaluation = get_train_eval_split_fraction(list(range(count)), train_fraction)
    if len(evaluation) == 0:
        evaluation = train
    return train, evaluation


def parse_dataset(path: Path, config: Eg3dDataParserConfig) -> ParsedDataset:
    """Checks the dataset as ``epigraf-data validate`` does, then writes its chosen images for nerfstudio."""
    if not config.box_half_size > 0:
        raise ValueError(f"eg3d-data --box-half-size must be positive, got {config.box_half_size}")
    resolution = config.resolution or first_image_size(path)
    try:
        dataset = ImageDataset(DatasetConfig(path=path, resolution=resolution, background=config.background,
                                             skip_bad=config.skip_bad))
    except DatasetValidationError as error:
        report = error.report
        usable = report.num_entries - len(report.bad_entries)
        hint = "" if report.fatal or usable <= 0 else (
            "Fix the entries above, or pass eg3d-data --skip-bad True to use the other images.")
        raise DatasetValidationError(report, hint) from None
    if not dataset.has_labels:
        raise ValueError(f"{path}: the dataset has no camera labels (no dataset.json or transforms.json), and "
                         "nerfstudio needs a camera per image; add dataset.json with a 25-float label per image")
    indices = [i for i, name in enumerate(dataset.names) if included(name, config.include)]
    if not indices:
        raise ValueError(f"{path}: no image path matches --include {' '.join(config.include)} (paths look like "
                         f"{dataset.names[0]}); pass glob patterns of dataset paths, e.g. 'images/obj00000_*'")
    if dataset.report.problems or dataset.report.warnings:
        print(dataset.report.summary())
    folder = write_images(path, dataset, indices, resolution, config)
    filenames = [folder / image_file_name(dataset.names[i]) for i in indices]
    labels = dataset.labels[indices].to(torch.float32)
    return ParsedDataset(filenames, labels, resolution, dataset.report)


def first_image_size(path: Path) -> int:
    """Width of the dataset's first image (in path order), the resolution used when none is given."""
    try:
        source = DatasetSource(path)
    except FileNotFoundError as error:
        raise FileNotFoundError(f"eg3d-data: {error}") from None
    for name in source.image_names():
        try:
            with Image.open(io.BytesIO(source.read(name))) as image:
                return int(image.size[0])
        except Exception:  # noqa: BLE001 - a broken image is reported by the dataset check
            continue
    return 64  # no readable image: the dataset check reports why


def included(name: str, patterns: tuple[str, ...]) -> bool:
    return not patterns or any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns)


def image_file_name(name: str) -> str:
    """Where a dataset image is written in the cache folder: its path, as a PNG."""
    return name if name.lower().endswith(".png") else name + ".png"


def cache_key(dataset: ImageDataset, indices: list[int], resolution: int, background: tuple[float, ...]) -> str:
    """SHA-256 of what nerfstudio will read: the decoded pixels, names and labels of the chosen images."""
    digest = hashlib.sha256(f"v{CACHE_FORMAT_VERSION} r{resolution} bg{tuple(background)}".encode())
    for index in indices:
        digest.update(dataset.names[index].encode() + b"\0")
        digest.update(dataset.labels[index].numpy().astype(np.float32).tobytes())
        digest.update(np.ascontiguousarray(dataset.raw_image(index)).tobytes())
    return digest.hexdigest()


def write_images(path: Path, dataset: ImageDataset, indices: list[int], resolution: int,
                 config: Eg3dDataParserConfig) -> Path:
    """The cache folder of the chosen decoded images (written once, atomically; reused while the content holds)."""
    root = Path(config.cache_dir).expanduser() if config.cache_dir is not None else cache_root() / "nerfstudio"
    key = cache_key(dataset, indices, resolution, config.background)
    final = root / f"{path.stem}-{key[:16]}"
    if final.is_dir():
        return final
    root.mkdir(parents=True, exist_ok=True)
    building = Path(tempfile.mkdtemp(prefix=f".building-{final.name}-", dir=root))
    try:
        for index in indices:
            target = building / image_file_name(dataset.names[index])
            target.parent.mkdir(parents=True, exist_ok=True)
            pixels = np.ascontiguousarray(dataset.raw_image(index).transpose(1, 2, 0))
            Image.fromarray(pixels, "RGB").save(target)
        try:
            os.rename(building, final)
        except OSError:
            # Another process wrote the same content first; keep its folder.
            if not final.is_dir():
                raise
    finally:
        if building.exists():
            shutil.rmtree(building, ignore_errors=True)
    return final


eg3d_data = DataParserSpecification(
    config=Eg3dDataParserConfig(),
    description="EG3D-layout dataset (zip or folder + dataset.json of 25-float labels), checked and decoded as "
    "epigraf does; its box becomes nerfstudio's [-1, 1]^3 scene, z up",
)

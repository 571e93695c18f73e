"""The built-in synthetic dataset: built once into a cache folder, reused afterwards."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Literal

from pipelines.data.synthetic import FORMAT_VERSION, SynthConfig, build_synthetic_dataset

# A build folder untouched for this long belongs to a build that was killed.
_STALE_BUILD_SECONDS = 6 * 3600


def cache_root() -> Path:
    """``$EPIGRAF_CACHE_DIR/datasets`` if the variable is set, else ``~/.cache/epigraf/datasets``."""
    base = os.environ.get("EPIGRAF_CACHE_DIR")
    root = Path(base).expanduser() if base else Path.home() / ".cache" / "epigraf"
    return root / "datasets"


def builtin_dataset_name(resolution: int, num_objects: int, views_per_object: int, cameras: str, seed: int,
                         family_classes: bool = True) -> str:
    classes = "-families" if family_classes else ""
    return f"synth-v{FORMAT_VERSION}-{cameras}-r{resolution}-n{num_objects}x{views_per_object}-s{seed}{classes}"


def _remove_stale_builds(root: Path) -> None:
    for folder in root.glob(".building-*"):
        try:
            if time.time() - folder.stat().st_mtime > _STALE_BUILD_SECONDS:
                shutil.rmtree(folder, ignore_errors=True)
        except OSError:
            pass


def ensure_builtin_dataset(
    resolution: int = 64,
    num_objects: int = 256,
    views_per_object: int = 8,
    cameras: Literal["frontal", "360"] = "360",
    seed: int = 0,
    spp: int = 16,
    family_classes: bool = True,
    cache_dir: Path | None = None,
    progress: bool = True,
) -> Path:
    """Path of the built-in dataset's ``dataset.zip``, building it first if it is not in the cache.

    The default (256 procedural objects x 8 views at 64^2, 2,048 images, cameras all around) is
    what the trainer uses when no ``--data`` is given. Its four families (mushroom, vase, chair,
    table) are recorded as classes (``family_classes``), as a multi-category collection is trained
    class-conditionally (EpiGRAF's Megascans Plants): unconditionally, a short run drops chairs and
    tables. The build writes into a temporary folder next to the final one and renames it when
    complete, so a killed build never leaves a folder that looks finished; two processes building at
    once both end with the same complete folder.
    """
    root = Path(cache_dir) if cache_dir is not None else cache_root()
    final = root / builtin_dataset_name(resolution, num_objects, views_per_object, cameras, seed, family_classes)
    if (final / "dataset.zip").is_file():
        return final / "dataset.zip"
    root.mkdir(parents=True, exist_ok=True)
    _remove_stale_builds(root)
    building = Path(tempfile.mkdtemp(prefix=f".building-{final.name}-", dir=root))
    try:
        build_synthetic_dataset(SynthConfig(
            out=building, num_objects=num_objects, views_per_object=views_per_object, resolution=resolution,
            cameras=cameras, seed=seed, spp=spp, family_classes=family_classes, progress=progress,
        ))
        try:
            os.rename(building, final)
        except OSError:
            # Another process finished the same dataset first; keep its copy.
            if not (final / "dataset.zip").is_file():
                raise
    finally:
        if building.exists():
            shutil.rmtree(building, ignore_errors=True)
    return final / "dataset.zip"

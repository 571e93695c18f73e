"""The converters, one module per official code base, and the entry points: read, detect, convert, save.

Adding a family is one module with ``FAMILY``, ``matches(generator_record)`` and
``convert(generator_record, source_path) -> ImportedModel``, listed in :data:`CONVERTER_MODULES`.
"""

from __future__ import annotations

import hashlib
import importlib
import os
import shutil
from pathlib import Path
from types import ModuleType

from pipelines.checkpoint_import.converted import ImportedModel
from pipelines.checkpoint_import.records import PersistentRecord, is_module_record
from pipelines.checkpoint_import.unpickler import read_snapshot

CONVERTER_MODULES = (
    "pipelines.checkpoint_import.eg3d",
    "pipelines.checkpoint_import.epigraf",
    "pipelines.checkpoint_import.mimic3d",
)
# Which network of a snapshot is converted: the EMA generator, as the official tools use.
GENERATOR_KEYS = ("G_ema", "G")
PICKLE_SUFFIXES = (".pkl", ".pickle")
CACHE_ENV = "EPIGRAF_IMPORT_CACHE"


def converters() -> list[ModuleType]:
    return [importlib.import_module(name) for name in CONVERTER_MODULES]


def is_official_snapshot_path(path: Path | str) -> bool:
    """Whether a path names an official pickle snapshot (by its suffix) rather than one of our bundles."""
    return Path(path).suffix.lower() in PICKLE_SUFFIXES and Path(path).is_file()


def generator_record(snapshot: object, source: Path) -> PersistentRecord:
    """The generator to convert: ``G_ema`` (else ``G``) of the snapshot dict."""
    if not isinstance(snapshot, dict):
        raise ValueError(f"{source}: holds a {type(snapshot).__name__}, not a network snapshot dict (G, D, G_ema, ...)")
    for key in GENERATOR_KEYS:
        if is_module_record(snapshot.get(key)):
            return snapshot[key]
    raise ValueError(f"{source}: no generator network (keys {sorted(map(str, snapshot))}); expected {' or '.join(GENERATOR_KEYS)}")


def import_snapshot(path: Path | str) -> ImportedModel:
    """Reads an official snapshot without executing it and converts its generator to our model.

    Raises ValueError naming the file when it is unsafe, damaged or of an unsupported family.
    """
    path = Path(path)
    snapshot = read_snapshot(path)
    record = generator_record(snapshot, path)
    for module in converters():
        if module.matches(record):
            try:
                return module.convert(record, path)
            except (KeyError, ValueError) as error:
                raise ValueError(f"{path}: {module.FAMILY} generator {record.class_name} cannot be converted: "
                                 f"{error}") from None
    families = ", ".join(m.FAMILY for m in converters())
    raise ValueError(f"{path}: generator class {record.class_name!r} is not a supported family ({families}); "
                     "the snapshot was read safely but there is no converter for it")


def cache_directory() -> Path:
    """Where converted bundles of ``.pkl`` files are kept (``$EPIGRAF_IMPORT_CACHE`` or ~/.cache/epigraf/imports)."""
    root = os.environ.get(CACHE_ENV)
    return Path(root) if root else Path.home() / ".cache" / "epigraf" / "imports"


def _file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()[:16]


def converted_bundle(path: Path | str) -> Path:
    """A bundle of the snapshot's generator, converted once and kept in the cache by the file's content hash."""
    path = Path(path)
    target = cache_directory() / f"{path.stem}-{_file_digest(path)}"
    if (target / "pipeline.json").is_file():
        return target
    imported = import_snapshot(path)
    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    imported.model.save(partial)
    shutil.rmtree(target, ignore_errors=True)  # a damaged earlier conversion
    partial.rename(target)
    return target

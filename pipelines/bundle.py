"""A trained generator as shipped: its weights and config plus how to render and frame it.

A bundle directory holds the generator files (``config.json`` + ``weights.safetensors``,
readable by ``TriPlaneGenerator.load`` alone), ``renderer.json`` (the volume renderer's
config), ``cameras.json`` (+ ``camera_poses.safetensors`` for dataset cameras: the camera
distribution it was trained under), ``pipeline.json`` (which pipeline wrote it, and the
bundle format) and ``manifest.json`` (each file's size and SHA-256; bundles written before it have
none and still load). Every checkpoint holds one in ``generator/``. Nothing in it is pickled.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import torch

from epigraf_field.config_io import config_from_dict, config_to_dict
from epigraf_field.generator import TriPlaneGenerator
from pipelines.camera_distributions import CameraDistribution
from renderers.volume_renderer import VolumeRenderer, VolumeRendererConfig

RENDERER_FILE = "renderer.json"
PIPELINE_FILE = "pipeline.json"
WEIGHTS_FILE = "weights.safetensors"
MANIFEST_FILE = "manifest.json"
MANIFEST_FORMAT_VERSION = 1
CHECKPOINT_MANIFEST_FILE = "checkpoint.json"
"""The manifest of the checkpoint a bundle in ``step-*/generator/`` belongs to (see pipelines.engine.checkpoints)."""
_HASH_CHUNK = 1 << 20
BUNDLE_FORMAT_VERSION = 2
"""2: camera poses recorded with dataset cameras; 1 (no version in pipeline.json): before."""


@dataclass(frozen=True)
class BundleHeader:
    """What ``pipeline.json`` says: the pipeline that wrote the bundle and the bundle format."""

    pipeline: str
    format_version: int
    image_resolution: int | None = None
    """Resolution of the images the generator was trained on (None: not recorded)."""
    num_classes: int = 0
    """Classes of a class-conditional generator (0: unconditional, and every bundle that does not record it)."""


@dataclass
class GeneratorBundle:
    """A loaded tri-plane generator with the renderer settings and cameras it was trained with."""

    generator: TriPlaneGenerator
    renderer_config: VolumeRendererConfig
    cameras: CameraDistribution
    pipeline: str
    directory: Path
    image_resolution: int | None = None
    num_classes: int = 0

    @property
    def renderer(self) -> VolumeRenderer:
        return VolumeRenderer(self.renderer_config)


def save_bundle(
    directory: Path,
    generator: TriPlaneGenerator,
    renderer_config: VolumeRendererConfig,
    cameras: CameraDistribution,
    pipeline: str,
    extra_tensors: dict[str, torch.Tensor] | None = None,
    image_resolution: int | None = None,
    num_classes: int = 0,
) -> Path:
    directory = Path(directory)
    generator.save(directory, extra_tensors=extra_tensors)
    (directory / RENDERER_FILE).write_text(json.dumps(config_to_dict(renderer_config), indent=2))
    cameras.save(directory)
    header = {"pipeline": pipeline, "format_version": BUNDLE_FORMAT_VERSION, "image_resolution": image_resolution,
              "num_classes": int(num_classes)}
    (directory / PIPELINE_FILE).write_text(json.dumps(header, indent=2))
    write_bundle_manifest(directory)
    return directory


# ------------------------------------------------------------------------------------------- integrity
def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB chunks (a real run's checkpoint is tens of MB)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(_HASH_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def file_records(directory: Path, exclude: tuple[str, ...] = ()) -> dict[str, dict[str, int | str]]:
    """``{relative path: {"size", "sha256"}}`` of every file under ``directory`` except ``exclude``."""
    directory = Path(directory)
    records = {}
    for path in sorted(directory.rglob("*")):
        name = path.relative_to(directory).as_posix()
        if path.is_file() and name not in exclude:
            records[name] = {"size": path.stat().st_size, "sha256": file_sha256(path)}
    return records


def find_damaged_file(directory: Path, records: dict, require_hash: bool = True) -> str | None:
    """What is wrong with the first file of ``records`` that ``directory`` does not match (None: all match).

    A record is ``{"size", "sha256"}``, or a bare size (checkpoint manifests of format 1, checked by size).
    """
    if not isinstance(records, dict):
        return f"the manifest's 'files' is {type(records).__name__}, not a mapping of file names"
    for name, record in records.items():
        problem = _record_problem(Path(directory) / name, record, require_hash)
        if problem:
            return problem
    return None


def _record_problem(file: Path, record: object, require_hash: bool) -> str | None:
    size, expected = _parse_record(record)
    if size is None or (expected is None and require_hash):
        return f"the manifest's record of {file} ({record!r}) is malformed"
    if not file.is_file():
        return f"{file} is missing"
    actual_size = file.stat().st_size
    if actual_size != size:
        return f"{file} has {actual_size} bytes but the manifest records {size}: the file is truncated or damaged"
    if expected is not None and (actual := file_sha256(file)) != expected:
        return f"{file} does not match its SHA-256 in the manifest ({actual[:16]}... instead of {expected[:16]}...)"
    return None


def _parse_record(record: object) -> tuple[int | None, str | None]:
    """(size, hex SHA-256) of a manifest record; None for what it lacks or holds in the wrong type."""
    if isinstance(record, int) and not isinstance(record, bool):
        return record, None
    if not isinstance(record, dict):
        return None, None
    size, digest = record.get("size"), record.get("sha256")
    return (size if isinstance(size, int) else None), (digest if isinstance(digest, str) else None)


def write_bundle_manifest(directory: Path) -> Path:
    """Records the size and SHA-256 of every file of a bundle in ``manifest.json`` (call it after the last file)."""
    directory = Path(directory)
    manifest = {"format_version": MANIFEST_FORMAT_VERSION, "files": file_records(directory, exclude=(MANIFEST_FILE,))}
    path = directory / MANIFEST_FILE
    path.write_text(json.dumps(manifest, indent=2))
    return path


def verify_bundle_manifest(directory: Path) -> None:
    """Checks a standalone bundle's files against its ``manifest.json``; a bundle without one passes (older)."""
    path = Path(directory) / MANIFEST_FILE
    if not path.is_file():
        return
    try:
        manifest = json.loads(path.read_text())
        version, records = manifest["format_version"], manifest["files"]
    except (json.JSONDecodeError, KeyError, TypeError) as error:
        raise ValueError(f"{path} is damaged ({error}); copy the bundle again from its run") from error
    if version != MANIFEST_FORMAT_VERSION:
        raise ValueError(f"{path}: manifest format {version!r} is not the one this epigraf reads "
                         f"({MANIFEST_FORMAT_VERSION}); upgrade epigraf (pip install -U epigraf)")
    problem = find_damaged_file(directory, records)
    if problem:
        raise ValueError(f"{problem}: the bundle {directory} is damaged; copy it again from its run")


def enclosing_checkpoint(directory: Path) -> Path | None:
    """The checkpoint whose manifest covers a bundle in ``<checkpoint>/generator/`` (None: a standalone bundle)."""
    directory = Path(directory)
    if directory.name == "generator" and (directory.parent / CHECKPOINT_MANIFEST_FILE).is_file():
        return directory.parent
    return None


def _verify_enclosing_checkpoint(directory: Path) -> Path:
    checkpoint = enclosing_checkpoint(directory)
    if checkpoint is not None:
        from pipelines.engine.checkpoints import GENERATOR_DIR, verify_checkpoint

        verify_checkpoint(checkpoint, only=GENERATOR_DIR)
    return directory


def resolve_bundle_dir(path: Path) -> Path:
    """Accepts a bundle directory, a checkpoint directory, or a run folder (its newest checkpoint that verifies).

    A bundle in a checkpoint is checked against the checkpoint's manifest here (sizes and SHA-256);
    a standalone bundle's own ``manifest.json`` is checked by :func:`load_bundle`.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist: pass a run folder, a checkpoint or a generator directory")
    if (path / WEIGHTS_FILE).is_file():
        return _verify_enclosing_checkpoint(path)
    if (path / "generator" / WEIGHTS_FILE).is_file():
        return _verify_enclosing_checkpoint(path / "generator")
    if (path / "checkpoints").is_dir():
        from pipelines.engine.checkpoints import find_latest_checkpoint

        return find_latest_checkpoint(path) / "generator"  # verified there; damaged newer ones are skipped
    raise FileNotFoundError(
        f"{path} holds no generator ({WEIGHTS_FILE}), checkpoint (generator/) or run (checkpoints/)"
    )


def read_bundle_header(directory: Path) -> BundleHeader:
    """``pipeline.json`` of a bundle directory; a bundle without one is a patch-gan bundle of format 1."""
    path = Path(directory) / PIPELINE_FILE
    if not path.is_file():
        return BundleHeader("patch-gan", 1)
    try:
        data = json.loads(path.read_text())
        pipeline, version = data["pipeline"], data.get("format_version", 1)
        resolution = data.get("image_resolution")
        num_classes = data.get("num_classes", 0)  # bundles written before class conditioning: unconditional
        if not isinstance(pipeline, str) or not isinstance(version, int):
            raise ValueError("'pipeline' must be a string and 'format_version' an integer")
        if resolution is not None and (not isinstance(resolution, int) or resolution <= 0):
            raise ValueError(f"'image_resolution' must be a positive integer, got {resolution!r}")
        if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 0:
            raise ValueError(f"'num_classes' must be a non-negative integer, got {num_classes!r}")
    except (json.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as error:
        raise ValueError(f"{path} is damaged ({error}); copy the bundle again from its run") from error
    if version > BUNDLE_FORMAT_VERSION:
        raise ValueError(
            f"{path}: bundle format {version} is newer than this epigraf reads ({BUNDLE_FORMAT_VERSION}); "
            "upgrade epigraf (pip install -U epigraf)"
        )
    return BundleHeader(pipeline, version, resolution, num_classes)


def load_bundle(path: Path, device: torch.device | str = "cpu", backend: str | None = None) -> GeneratorBundle:
    """Loads a generator bundle from a bundle, checkpoint or run directory (nothing is unpickled).

    Every file is checked against a manifest before the bundle is returned: the enclosing
    checkpoint's, else the bundle's ``manifest.json`` (if it has one). The standalone check runs after
    the parts are read so that a missing or unparsable part is named with its own fix.
    """
    directory = resolve_bundle_dir(path)
    header = read_bundle_header(directory)
    generator = TriPlaneGenerator.load(directory, device=device, backend=backend).eval().requires_grad_(False)
    renderer_config = _read_config(directory / RENDERER_FILE, VolumeRendererConfig)
    cameras = CameraDistribution.load(directory)
    if enclosing_checkpoint(directory) is None:
        verify_bundle_manifest(directory)
    return GeneratorBundle(generator, renderer_config, cameras, header.pipeline, directory, header.image_resolution,
                           header.num_classes)


def _read_config(path: Path, cls: type):
    if not path.is_file():
        return cls()
    try:
        return config_from_dict(cls, json.loads(path.read_text()))
    except (json.JSONDecodeError, ValueError, TypeError) as error:
        raise ValueError(f"{path} is not a valid {cls.__name__} ({error}); the bundle is damaged") from error


def read_side_config(bundle: GeneratorBundle, file_name: str, format_version: int, holds: str, pipeline: str) -> dict:
    """The JSON a pipeline writes beside the generator files (e.g. eg3d's super-resolution config).

    ``holds`` names what the file describes and ``pipeline`` the pipeline that writes it, for the errors: a
    missing file means another pipeline wrote the bundle; an unreadable one, or one of another format
    version, that it is damaged.
    """
    path = bundle.directory / file_name
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} is missing: {bundle.directory} holds a generator without {holds} "
            f"(pipeline {bundle.pipeline!r}); pass a bundle written by the {pipeline} pipeline"
        )
    try:
        meta = json.loads(path.read_text())
        if not isinstance(meta, dict):
            raise ValueError(f"expected a JSON object, got {type(meta).__name__}")
    except (json.JSONDecodeError, ValueError) as error:
        raise ValueError(f"{path} is not valid JSON ({error}); the bundle is damaged") from error
    if meta.get("format_version") != format_version:
        raise ValueError(f"{path} has format_version {meta.get('format_version')!r}, expected {format_version}; "
                         "the bundle is damaged or was written by another version of epigraf")
    return meta


def side_config_error(bundle: GeneratorBundle, file_name: str, error: Exception) -> ValueError:
    """The error for a side config (see :func:`read_side_config`) whose entries do not make a valid config."""
    return ValueError(f"{bundle.directory / file_name} is not a valid config ({type(error).__name__}: {error}); "
                      "the bundle is damaged")


def load_prefixed_tensors(bundle: GeneratorBundle, modules: dict[str, torch.nn.Module], side_file: str) -> None:
    """Loads each module from the bundle's extra tensors named ``prefix + key`` (``modules``: prefix -> module)."""
    extra = TriPlaneGenerator.load_extra_tensors(bundle.directory)
    for prefix, module in modules.items():
        state = {k[len(prefix):]: v for k, v in extra.items() if k.startswith(prefix)}
        try:
            module.load_state_dict(state)
        except RuntimeError as error:
            raise ValueError(
                f"{bundle.directory}: the {prefix}* tensors do not match {side_file} ({error}); the bundle is damaged"
            ) from error

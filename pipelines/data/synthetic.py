"""A synthetic dataset with ground-truth 3D: procedural objects path-traced from known cameras.

Layout of the output folder::

    dataset.zip     EG3D format: dataset.json + images/objNNNNN_viewVVV.png (white background)
    meshes/         objNNNNN.ply, the ground-truth mesh of each object in world coordinates
    metadata.json   objects (id, family, parameters, material, mesh, images) and the build settings

Scene conventions: objects are centred at the origin inside a sphere of radius 0.42
(``shapes.OBJECT_RADIUS``), so inside the scene box of half-size 0.5 with a 10% margin.
Cameras look at the origin from radius 1.3 with a 40 degree field of view
(``CameraDistributionConfig.synthetic``), which keeps the whole object in view from any direction.
"""

from __future__ import annotations

import io
import json
import time
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from PIL import Image

from pipelines.camera_distributions import CameraDistributionConfig, sample_cameras
from pipelines.data.shapes import FAMILIES, OBJECT_RADIUS, make_object

FORMAT_VERSION = 1
BOX_HALF_SIZE = 0.5
# Fixed zip timestamps keep the archive byte-identical for a seed.
_ZIP_DATE = (2020, 1, 1, 0, 0, 0)


@dataclass
class SynthConfig:
    """What synthetic dataset to build."""

    out: Path
    """Output folder (created): dataset.zip, meshes/, metadata.json."""
    num_objects: int = 256
    """Number of procedural objects."""
    views_per_object: int = 8
    """Images rendered of each object."""
    resolution: int = 64
    """Image size in pixels (square)."""
    cameras: Literal["frontal", "360"] = "360"
    """'frontal': yaw and pitch uniform within +-30 degrees; '360': any yaw, pitch uniform in [-15, 45] degrees."""
    seed: int = 0
    """Seed of shapes, materials, cameras and path-tracer noise; the same seed gives the same dataset."""
    families: tuple[str, ...] = FAMILIES
    """Object families, used in turn (mushroom, vase, chair, table)."""
    family_classes: bool = False
    """Record each image's family (its index in ``families``) as its class in dataset.json: a run on the
    dataset then trains class-conditionally, one class per family."""
    spp: int = 16
    """Path-tracing samples per pixel (a square number uses stratified sampling)."""
    variant: str = "auto"
    """Mitsuba variant; 'auto': scalar_rgb up to 128 px, above that cuda_ad_rgb, llvm_ad_rgb (libLLVM >= 19) or scalar_rgb."""
    progress: bool = True
    """Show a progress bar."""


def _object_seed(seed: int, object_id: int) -> int:
    return int(np.random.SeedSequence([seed, object_id]).generate_state(1)[0])


def _png_bytes(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image, "RGB").save(buffer, format="PNG", compress_level=6)
    return buffer.getvalue()


def _zip_write(archive: zipfile.ZipFile, name: str, data: bytes, compress: bool) -> None:
    info = zipfile.ZipInfo(name, date_time=_ZIP_DATE)
    info.compress_type = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    archive.writestr(info, data)


def build_synthetic_dataset(config: SynthConfig) -> Path:
    """Builds the dataset into ``config.out`` and returns the path of its ``dataset.zip``."""
    from tqdm import tqdm

    from pipelines.data.mitsuba_renderer import ObjectRenderer

    for name in ("num_objects", "views_per_object", "resolution", "spp"):
        if getattr(config, name) <= 0:
            raise ValueError(f"SynthConfig.{name} must be positive, got {getattr(config, name)}")
    unknown = [f for f in config.families if f not in FAMILIES]
    if unknown or not config.families:
        raise ValueError(f"SynthConfig.families: unknown {unknown}; choose from {', '.join(FAMILIES)}")
    out = Path(config.out)
    (out / "meshes").mkdir(parents=True, exist_ok=True)
    camera_config = CameraDistributionConfig.synthetic(config.cameras)
    start = time.perf_counter()
    renderer = ObjectRenderer(config.resolution, config.spp, config.variant)
    labels, classes, objects = [], [], []
    zip_tmp = out / "dataset.zip.partial"
    try:
        with zipfile.ZipFile(zip_tmp, "w") as archive:
            bar = tqdm(range(config.num_objects), desc=f"synth ({renderer.variant})", unit="obj",
                       disable=not config.progress)
            for object_id in bar:
                object_seed = _object_seed(config.seed, object_id)
                family = config.families[object_id % len(config.families)]
                obj = make_object(family, np.random.default_rng(object_seed))
                cameras = sample_cameras(camera_config, config.views_per_object,
                                         torch.Generator().manual_seed(object_seed))
                images = renderer.render(obj, cameras, seed=object_seed % 2**30)
                names = []
                for view, (image, label) in enumerate(zip(images, cameras.to_label().tolist())):
                    name = f"images/obj{object_id:05d}_view{view:03d}.png"
                    _zip_write(archive, name, _png_bytes(image), compress=False)
                    labels.append([name, label])
                    classes.append([name, config.families.index(family)])
                    names.append(name)
                mesh_name = f"meshes/obj{object_id:05d}.ply"
                obj.combined_mesh().export(out / mesh_name)
                objects.append({"id": object_id, "family": family, "parameters": obj.parameters,
                                "material": {"type": obj.material, "roughness": obj.roughness,
                                             "colors_srgb": [list(p.color) for p in obj.parts]},
                                "normalization_scale": obj.extra["scale"], "mesh": mesh_name, "images": names})
            document = {"labels": labels, **({"classes": classes} if config.family_classes else {})}
            _zip_write(archive, "dataset.json", json.dumps(document).encode(), compress=True)
        zip_tmp.replace(out / "dataset.zip")
    finally:
        renderer.close()
        zip_tmp.unlink(missing_ok=True)
    settings = asdict(config)
    settings["out"] = str(settings["out"])
    metadata = {
        "format_version": FORMAT_VERSION, "settings": settings, "mitsuba_variant": renderer.variant,
        "box_half_size": BOX_HALF_SIZE, "object_radius": OBJECT_RADIUS,
        "camera_distribution": asdict(camera_config), "num_images": len(labels),
        "build_seconds": round(time.perf_counter() - start, 2), "objects": objects,
    }
    (out / "metadata.json").write_text(json.dumps(metadata, indent=1))
    return out / "dataset.zip"

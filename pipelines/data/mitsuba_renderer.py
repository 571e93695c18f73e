"""Mitsuba 3 renders under the built-in dataset's scene: its lighting, cameras and background (imported lazily).

One module serves the synthetic dataset builder (:class:`ObjectRenderer`, procedural objects with
their materials) and IG-GAN's off-the-shelf renderer (:class:`MeshBatchRenderer`, coloured meshes of
binarized voxel grids); both build their scenes from :func:`lighting_elements` and
:func:`sensor_element` and composite the film with :func:`film_to_srgb`.
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from pipelines.data.shapes import ProceduralObject
from renderers.cameras import Cameras

# drjit's LLVM backend needs LLVM >= 19 (older ones abort in the first kernel, killing the process).
MIN_LLVM_VERSION = 19
_LLVM_GLOBS = (
    "/usr/lib/x86_64-linux-gnu/libLLVM*.so*", "/usr/lib/aarch64-linux-gnu/libLLVM*.so*",
    "/usr/lib/llvm-*/lib/libLLVM*.so*", "/usr/local/lib/libLLVM*.so*", "/usr/lib64/libLLVM*.so*",
    "/opt/homebrew/opt/llvm/lib/libLLVM.dylib", "/usr/local/opt/llvm/lib/libLLVM.dylib",
)
_PROBE = """
import mitsuba as mi, numpy as np
mi.set_variant({variant!r})
scene = mi.load_dict({{"type": "scene", "ball": {{"type": "sphere"}}, "integrator": {{"type": "path"}},
    "sensor": {{"type": "perspective", "film": {{"type": "hdrfilm", "width": 8, "height": 8}}}}}})
assert np.isfinite(np.array(mi.render(scene, spp=2))).all()
print("ok")
"""
_working_llvm: str | None = None  # '' once probed and none works


def _probe(variant: str, llvm_path: str | None = None, timeout: float = 120.0) -> bool:
    """Renders a tiny scene in a child process: a failing backend may abort instead of raising."""
    env = dict(os.environ)
    if llvm_path is not None:
        env["DRJIT_LIBLLVM_PATH"] = llvm_path
    try:
        result = subprocess.run([sys.executable, "-c", _PROBE.format(variant=variant)], env=env,
                                capture_output=True, text=True, timeout=timeout)
    except (subprocess.TimeoutExpired, OSError):
        return False
    return result.returncode == 0 and "ok" in result.stdout


def _llvm_version(path: str) -> int | None:
    match = re.search(r"libLLVM[-.]?(\d+)", os.path.basename(path)) or re.search(r"llvm-(\d+)", path)
    return int(match.group(1)) if match else None


def find_llvm_libraries() -> list[str]:
    """libLLVM shared libraries of version >= 19 on this machine, newest first."""
    found = {}
    for pattern in _LLVM_GLOBS:
        for path in glob.glob(pattern):
            version = _llvm_version(path)
            if version is not None and version >= MIN_LLVM_VERSION:
                found.setdefault(os.path.realpath(path), (version, path))
    return [path for _version, path in sorted(found.values(), reverse=True)]


def _has_nvidia_gpu() -> bool:
    return shutil.which("nvidia-smi") is not None or os.path.exists("/dev/nvidiactl")


def choose_variant(preference: str = "auto", resolution: int = 64) -> str:
    """The Mitsuba variant to render with.

    'auto': ``scalar_rgb`` up to 128 px. The JIT variants compile new kernels for every new
    scene (one per object here): measured on a 2-core CPU, llvm_ad_rgb spent 0.7-2.4 s per
    object of 8 views at 64^2, while scalar_rgb renders such a view in about 20 ms. Above
    128 px the render itself dominates, and 'auto' tries ``cuda_ad_rgb``, then ``llvm_ad_rgb``
    with a libLLVM >= 19 (probed in a child process, since an unsuitable LLVM aborts the
    process; ``DRJIT_LIBLLVM_PATH`` is then set here), then falls back to ``scalar_rgb``.
    Any other ``preference`` is used as given; ``EPIGRAF_MITSUBA_VARIANT`` overrides 'auto'.
    """
    preference = os.environ.get("EPIGRAF_MITSUBA_VARIANT", preference) if preference == "auto" else preference
    if preference != "auto":
        if preference.startswith("llvm") and "DRJIT_LIBLLVM_PATH" not in os.environ:
            llvm = find_working_llvm()
            if llvm is not None:
                os.environ["DRJIT_LIBLLVM_PATH"] = llvm
        return preference
    if resolution <= 128:
        return "scalar_rgb"
    if _has_nvidia_gpu() and _probe("cuda_ad_rgb"):
        return "cuda_ad_rgb"
    llvm = find_working_llvm()
    if llvm is not None:
        os.environ["DRJIT_LIBLLVM_PATH"] = llvm
        return "llvm_ad_rgb"
    return "scalar_rgb"


def find_working_llvm() -> str | None:
    """A libLLVM that drjit's LLVM backend renders with (probed once per process), or None."""
    global _working_llvm
    if _working_llvm is not None:
        return _working_llvm or None
    candidates = find_llvm_libraries()
    given = os.environ.get("DRJIT_LIBLLVM_PATH")
    if given:
        candidates = [given] + candidates
    _working_llvm = next((path for path in candidates if _probe("llvm_ad_rgb", path)), "")
    return _working_llvm or None


MITSUBA_INSTALL_HINT = "pip install mitsuba (Mitsuba 3, https://mitsuba.readthedocs.io)"


def import_mitsuba(variant: str, purpose: str = "the synthetic dataset"):
    """The ``mitsuba`` module set to ``variant``; an ImportError naming the package and the install command."""
    try:
        import mitsuba as mi
    except ImportError as error:
        raise ImportError(f"{purpose} needs Mitsuba 3, which is not installed: {MITSUBA_INSTALL_HINT}") from error
    if mi.variant() != variant:
        mi.set_variant(variant)
    return mi


def linear_to_srgb(linear: np.ndarray) -> np.ndarray:
    """The sRGB transfer curve (IEC 61966-2-1) on values in [0, 1]."""
    linear = np.clip(linear, 0.0, 1.0)
    return np.where(linear <= 0.0031308, 12.92 * linear, 1.055 * np.power(linear, 1.0 / 2.4) - 0.055)


def srgb_to_linear(srgb: np.ndarray) -> np.ndarray:
    srgb = np.asarray(srgb, dtype=np.float64)
    return np.where(srgb <= 0.04045, srgb / 12.92, np.power((srgb + 0.055) / 1.055, 2.4))


# OpenCV camera axes (x right, y down) to Mitsuba's (x left, y up); z looks forward in both.
_OPENCV_TO_MITSUBA = np.diag([-1.0, -1.0, 1.0, 1.0])


def lighting_elements(max_depth: int = 3) -> dict:
    """The dataset's integrator and lighting: a constant environment plus a directional key light."""
    return {
        "type": "scene",
        "integrator": {"type": "path", "max_depth": max_depth, "hide_emitters": True},
        "environment": {"type": "constant", "radiance": {"type": "rgb", "value": 0.45}},
        "key_light": {"type": "directional", "direction": [-0.35, -1.0, -0.55],
                      "irradiance": {"type": "rgb", "value": 2.2}},
    }


def sampler_type(spp: int) -> str:
    """Stratified samples (a square count) reach a given noise level with fewer samples."""
    return "stratified" if round(spp**0.5) ** 2 == spp else "independent"


def sensor_element(mi, cameras: Cameras, index: int, resolution: int, spp: int,
                   offset: tuple[float, float, float] | None = None) -> dict:
    """A perspective sensor for camera ``index`` (centred principal point, square pixels), moved by ``offset``."""
    to_world = cameras.cam2world[index].double().numpy() @ _OPENCV_TO_MITSUBA
    if offset is not None:
        to_world = to_world.copy()
        to_world[:3, 3] += np.asarray(offset, dtype=np.float64)
    return {
        "type": "perspective", "fov": cameras.fov_degrees.tolist()[index], "fov_axis": "y",
        "to_world": mi.ScalarTransform4f(to_world.tolist()),
        "film": {"type": "hdrfilm", "width": resolution, "height": resolution,
                 "rfilter": {"type": "box"}, "pixel_format": "rgba"},
        "sampler": {"type": sampler_type(spp), "sample_count": spp},
    }


def film_to_srgb(rgba: np.ndarray, background: tuple[float, float, float]) -> np.ndarray:
    """sRGB values in [0, 1] of a linear rgba film [R, R, 4], composited over an sRGB ``background``.

    Mitsuba's film holds rgb weighted by coverage (misses add zero), i.e. premultiplied alpha.
    """
    linear = rgba[..., :3] + (1.0 - np.clip(rgba[..., 3:4], 0.0, 1.0)) * srgb_to_linear(background)
    return linear_to_srgb(linear)


class ObjectRenderer:
    """Renders objects under fixed lighting: a constant environment plus a directional key light."""

    def __init__(self, resolution: int, spp: int, variant: str = "auto", max_depth: int = 3):
        self.resolution, self.spp, self.max_depth = resolution, spp, max_depth
        self.sampler = sampler_type(spp)
        self.variant = choose_variant(variant, resolution)
        self.mi = import_mitsuba(self.variant)
        self._tmp = tempfile.TemporaryDirectory(prefix="epigraf-parts-")

    def _bsdf(self, obj: ProceduralObject, color: tuple[float, float, float]) -> dict:
        reflectance = {"type": "rgb", "value": srgb_to_linear(color).tolist()}
        if obj.material == "roughplastic":
            return {"type": "roughplastic", "diffuse_reflectance": reflectance, "alpha": obj.roughness}
        return {"type": "diffuse", "reflectance": reflectance}

    def _scene(self, obj: ProceduralObject, cameras: Cameras) -> object:
        scene = lighting_elements(self.max_depth)
        for index, part in enumerate(obj.parts):
            file_name = str(Path(self._tmp.name) / f"part{index}.ply")
            part.mesh.export(file_name)
            scene[f"part{index}"] = {"type": "ply", "filename": file_name, "face_normals": not part.smooth,
                                     "bsdf": self._bsdf(obj, part.color)}
        for index in range(cameras.batch_size):
            scene[f"sensor{index}"] = sensor_element(self.mi, cameras, index, self.resolution, self.spp)
        return self.mi.load_dict(scene)

    def render(self, obj: ProceduralObject, cameras: Cameras, seed: int,
               background: tuple[float, float, float] = (1.0, 1.0, 1.0)) -> list[np.ndarray]:
        """uint8 [R, R, 3] sRGB images of ``obj`` from each camera, composited over ``background``.

        Cameras must have a centred principal point and square pixels (what the synthetic
        dataset uses); ``seed`` makes the path tracer's noise reproducible.
        """
        scene = self._scene(obj, cameras)
        images = []
        for index in range(cameras.batch_size):
            rgba = np.array(self.mi.render(scene, sensor=index, seed=seed + index), dtype=np.float64)
            images.append(np.rint(film_to_srgb(rgba, background) * 255.0).astype(np.uint8))
        return images

    def close(self) -> None:
        self._tmp.cleanup()


class MeshBatchRenderer:
    """Renders a batch of coloured triangle meshes, mesh i from camera i, in one Mitsuba scene per call.

    The meshes stand ``spacing`` apart along +x, each seen by its own sensor moved with it; the
    lighting is a constant environment and a directional light, which do not change under
    translation, so each view equals a scene of its mesh alone up to the light the other meshes,
    more than ``spacing`` away, could block (none at the default spacing for objects inside the unit
    box). One scene per batch keeps Mitsuba's per-scene set-up to one per call. Every face is
    diffuse with its vertices' colour (sRGB in [0, 1]); the integrator, lights, camera model and
    background compositing are the synthetic dataset's (:func:`lighting_elements`).
    """

    def __init__(self, resolution: int, spp: int = 4, variant: str = "auto", max_depth: int = 3,
                 spacing: float = 100.0, purpose: str = "the ig-gan pipeline's renderer"):
        self.resolution, self.spp, self.max_depth, self.spacing = resolution, spp, max_depth, spacing
        self.variant = choose_variant(variant, resolution)
        self.mi = import_mitsuba(self.variant, purpose)

    def _mesh(self, name: str, vertices: np.ndarray, faces: np.ndarray, colors: np.ndarray, offset: float):
        mi = self.mi
        props = mi.Properties()
        props["bsdf"] = mi.load_dict({"type": "diffuse",
                                      "reflectance": {"type": "mesh_attribute", "name": "vertex_color"}})
        mesh = mi.Mesh(name, len(vertices), len(faces), props, has_vertex_normals=False, has_vertex_texcoords=False)
        params = mi.traverse(mesh)
        shifted = np.asarray(vertices, dtype=np.float32) + np.array([offset, 0.0, 0.0], dtype=np.float32)
        params["vertex_positions"] = _mitsuba_buffer(mi, shifted.ravel(), float)
        params["faces"] = _mitsuba_buffer(mi, np.asarray(faces, dtype=np.uint32).ravel(), int)
        params.update()
        linear = srgb_to_linear(np.clip(colors, 0.0, 1.0)).astype(np.float32)
        mesh.add_attribute("vertex_color", 3, _mitsuba_buffer(mi, linear.ravel(), float))
        return mesh

    def render(self, meshes: list[tuple[np.ndarray, np.ndarray, np.ndarray]], cameras: Cameras, seed: int,
               background: tuple[float, float, float] = (1.0, 1.0, 1.0)) -> np.ndarray:
        """float32 [b, R, R, 3] sRGB images in [0, 1]: mesh i = (vertices [v, 3], faces [f, 3], vertex colours
        [v, 3]) seen from camera i; an empty mesh (no faces) gives the background."""
        if len(meshes) != cameras.batch_size:
            raise ValueError(f"{len(meshes)} meshes for {cameras.batch_size} cameras: pass one camera per mesh")
        scene = lighting_elements(self.max_depth)
        for index, (vertices, faces, colors) in enumerate(meshes):
            offset = index * self.spacing
            if len(faces) > 0:
                scene[f"mesh{index}"] = self._mesh(f"mesh{index}", vertices, faces, colors, offset)
            scene[f"sensor{index}"] = sensor_element(self.mi, cameras, index, self.resolution, self.spp,
                                                     offset=(offset, 0.0, 0.0))
        loaded = self.mi.load_dict(scene)
        images = np.empty((len(meshes), self.resolution, self.resolution, 3), dtype=np.float32)
        for index in range(len(meshes)):
            rgba = np.array(self.mi.render(loaded, sensor=index, seed=seed + index), dtype=np.float64)
            images[index] = film_to_srgb(rgba, background)
        return images


def _mitsuba_buffer(mi, values: np.ndarray, kind: type):
    """A flat array as the buffer type of the active variant (numpy for scalar variants, drjit arrays otherwise)."""
    if mi.variant().startswith("scalar"):
        return values
    return (mi.Float if kind is float else mi.UInt32)(values)

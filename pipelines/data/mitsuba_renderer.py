"""Path-traced views of procedural objects with Mitsuba 3 (imported lazily; variant probed once)."""

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


def _import_mitsuba(variant: str):
    try:
        import mitsuba as mi
    except ImportError as error:
        raise ImportError("the synthetic dataset needs Mitsuba 3: pip install mitsuba") from error
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


class ObjectRenderer:
    """Renders objects under fixed lighting: a constant environment plus a directional key light."""

    def __init__(self, resolution: int, spp: int, variant: str = "auto", max_depth: int = 3):
        self.resolution, self.spp, self.max_depth = resolution, spp, max_depth
        # Stratified samples (a square count) reach a given noise level with fewer samples.
        self.sampler = "stratified" if round(spp**0.5) ** 2 == spp else "independent"
        self.variant = choose_variant(variant, resolution)
        self.mi = _import_mitsuba(self.variant)
        self._tmp = tempfile.TemporaryDirectory(prefix="epigraf-parts-")

    def _bsdf(self, obj: ProceduralObject, color: tuple[float, float, float]) -> dict:
        reflectance = {"type": "rgb", "value": srgb_to_linear(color).tolist()}
        if obj.material == "roughplastic":
            return {"type": "roughplastic", "diffuse_reflectance": reflectance, "alpha": obj.roughness}
        return {"type": "diffuse", "reflectance": reflectance}

    def _scene(self, obj: ProceduralObject, cameras: Cameras) -> object:
        mi = self.mi
        scene = {
            "type": "scene",
            "integrator": {"type": "path", "max_depth": self.max_depth, "hide_emitters": True},
            "environment": {"type": "constant", "radiance": {"type": "rgb", "value": 0.45}},
            "key_light": {"type": "directional", "direction": [-0.35, -1.0, -0.55],
                          "irradiance": {"type": "rgb", "value": 2.2}},
        }
        for index, part in enumerate(obj.parts):
            file_name = str(Path(self._tmp.name) / f"part{index}.ply")
            part.mesh.export(file_name)
            scene[f"part{index}"] = {"type": "ply", "filename": file_name, "face_normals": not part.smooth,
                                     "bsdf": self._bsdf(obj, part.color)}
        fov = cameras.fov_degrees.tolist()
        for index in range(cameras.batch_size):
            to_world = cameras.cam2world[index].double().numpy() @ _OPENCV_TO_MITSUBA
            scene[f"sensor{index}"] = {
                "type": "perspective", "fov": fov[index], "fov_axis": "y",
                "to_world": mi.ScalarTransform4f(to_world.tolist()),
                "film": {"type": "hdrfilm", "width": self.resolution, "height": self.resolution,
                         "rfilter": {"type": "box"}, "pixel_format": "rgba"},
                "sampler": {"type": self.sampler, "sample_count": self.spp},
            }
        return mi.load_dict(scene)

    def render(self, obj: ProceduralObject, cameras: Cameras, seed: int,
               background: tuple[float, float, float] = (1.0, 1.0, 1.0)) -> list[np.ndarray]:
        """uint8 [R, R, 3] sRGB images of ``obj`` from each camera, composited over ``background``.

        Cameras must have a centred principal point and square pixels (what the synthetic
        dataset uses); ``seed`` makes the path tracer's noise reproducible.
        """
        scene = self._scene(obj, cameras)
        background_linear = srgb_to_linear(background)
        images = []
        for index in range(cameras.batch_size):
            rgba = np.array(self.mi.render(scene, sensor=index, seed=seed + index), dtype=np.float64)
            # Mitsuba's film holds rgb weighted by coverage (misses add zero), i.e. premultiplied alpha.
            linear = rgba[..., :3] + (1.0 - np.clip(rgba[..., 3:4], 0.0, 1.0)) * background_linear
            images.append(np.rint(linear_to_srgb(linear) * 255.0).astype(np.uint8))
        return images

    def close(self) -> None:
        self._tmp.cleanup()

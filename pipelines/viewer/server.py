"""The viser viewer: a browser tab that renders the generator from the user's camera, with its GUI."""

from __future__ import annotations

import math
import socket
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch import Tensor

from pipelines.camera_distributions import CameraDistribution
from pipelines.evaluation.meshes import MeshExtractionConfig, extract_meshes, save_mesh
from pipelines.model import GeneratorModel
from pipelines.viewer.camera_conversion import (
    ViewCamera,
    cameras_from_view,
    look_at_pose,
    matrix_to_quaternion,
    view_from_cameras,
)
from pipelines.viewer.frame import render_final_view, render_grid_view, render_view, to_display_image
from pipelines.viewer.framing import home_view
from pipelines.viewer.generator_copy import GeneratorCopy, LatentCache
from pipelines.viewer.render_worker import Quality, RenderWorker, RenderWorkerConfig
from pipelines.viewer.settings import OUTPUTS, SEED_CLASS, VIEW_SAMPLERS, ViewSettings
from renderers.cameras import Cameras
from renderers.volume_renderer import VolumeRenderer

PREVIEW_SAMPLERS = ("grid", "settings")

CAMERA_SEED = 2024
"""Seed of the dataset-like cameras drawn for the frustums (fixed so every session shows the same)."""


@dataclass
class ViewerConfig:
    """Where the viewer listens and how it renders."""

    host: str = "127.0.0.1"
    """Address to bind; 127.0.0.1 keeps the viewer on this machine, 0.0.0.0 exposes it to the network."""
    port: int = 8080
    """Port to listen on; when it is busy the next free port is used (the URL is printed)."""
    resolution: int = 128
    """Rows of a refined frame (the GUI can change it)."""
    preview_fraction: float = 0.5
    """A moving camera is rendered at this fraction of the resolution."""
    preview_sampler: Literal["grid", "settings"] = "grid"
    """How a moving camera is rendered: 'grid' samples only the occupied cells of an occupancy grid built
    once per latent (fast); 'settings' uses the refined frame's sampler and samples at the lower resolution."""
    preview_samples: int = 32
    """Samples per ray of a 'grid' preview, spread over the ray's chord through the occupied part of the box
    (only those in occupied cells query the field)."""
    preview_grid_resolution: int = 64
    """Cells per side of the preview's occupancy grid (built once per latent: resolution^3 density queries)."""
    preview_threads: int = 1
    """Intra-op threads while rendering a preview (0: as for refined frames). A preview is small: one thread
    spares it the hand-offs between threads, which cost the most when other programs keep the cores busy."""
    samples_per_ray: int = 32
    """Samples per ray at start (the GUI can change it)."""
    sampler: str = "stratified"
    """Sampler at start: 'stratified', 'importance' or 'occupancy'."""
    seed: int = 0
    """Seed shown at start."""
    truncation_psi: float = 1.0
    """Truncation at start."""
    max_seed: int = 1000
    """Upper end of the seed sliders."""
    settle_seconds: float = 0.2
    """The view is refined after the camera and GUI have been still this long."""
    max_busy_fraction: float = 1.0
    """Largest share of wall time spent rendering (the live training viewer uses a small one)."""
    torch_threads: int = 0
    """Intra-op threads of the render thread (0: torch's default)."""
    num_frustums: int = 32
    """Dataset-like cameras drawn as frustums."""
    jpeg_quality: int = 90
    """JPEG quality of the frames sent to the browser."""
    mesh_resolution: int = 128
    """Marching-cubes grid points per side of the scene box."""
    mesh_threshold: float = 10.0
    """Density level of the extracted surface."""
    output_dir: Path = Path("viewer_output")
    """Where saved views (PNG) and meshes (PLY) are written."""
    device: str | None = None
    """Where the viewer renders: cpu, cuda (default: the generator's device; epigraf-view picks CUDA when present)."""
    verbose: bool = True
    """Print the URL (and let viser print its banner)."""

    def __post_init__(self) -> None:
        if not 0 < self.preview_fraction <= 1:
            raise ValueError(f"preview_fraction must lie in (0, 1], got {self.preview_fraction}")
        if not 1 <= self.port <= 65535:
            raise ValueError(f"port must lie in 1..65535, got {self.port}")
        if self.sampler not in VIEW_SAMPLERS:
            raise ValueError(f"sampler must be one of {VIEW_SAMPLERS}, got {self.sampler!r}")
        if self.num_frustums < 0 or self.max_seed < 1:
            raise ValueError("num_frustums must be >= 0 and max_seed >= 1")
        if self.preview_sampler not in PREVIEW_SAMPLERS:
            raise ValueError(f"preview_sampler must be one of {PREVIEW_SAMPLERS}, got {self.preview_sampler!r}")
        if self.preview_samples < 2 or self.preview_grid_resolution < 2 or self.preview_threads < 0:
            raise ValueError(
                f"preview_samples and preview_grid_resolution must be >= 2 and preview_threads >= 0, got "
                f"{self.preview_samples}, {self.preview_grid_resolution}, {self.preview_threads}"
            )


def find_free_port(host: str, port: int, attempts: int = 200) -> int:
    """The first port from ``port`` on that can be bound on ``host``."""
    for candidate in range(port, min(port + attempts, 65536)):
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((host, candidate))
            except OSError:
                continue
            return candidate
    raise OSError(f"no free port in {port}..{port + attempts - 1} on {host}; pass another --port")


def reset_view(cameras: CameraDistribution) -> ViewCamera:
    """A dataset-like pose: the centre pose (mean yaw, pitch, radius and fov) of the camera distribution."""
    return view_from_cameras(cameras.center_pose())


@contextmanager
def intra_op_threads(count: int):
    """Runs the block with ``count`` torch intra-op threads on this thread (0: unchanged), then restores them."""
    previous = torch.get_num_threads()
    if count <= 0 or count == previous:
        yield
        return
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def distribution_cameras(cameras: CameraDistribution, count: int) -> Cameras | None:
    """``count`` cameras of the distribution, drawn as frustums (a fixed seed: every session shows the same)."""
    if count <= 0:
        return None
    return cameras.sample(count, torch.Generator().manual_seed(CAMERA_SEED))


class GeneratorViewer:
    """Serves one generator to any number of browser tabs.

    Each tab renders from its own camera; the GUI (latent, quality, output) is shared. Frames are
    rendered on one :class:`RenderWorker` thread from a private copy of the generator that
    :meth:`update_model` refreshes, so training can go on in another thread.
    """

    def __init__(
        self,
        model: GeneratorModel,
        config: ViewerConfig | None = None,
        cameras: Cameras | None = None,
        title: str = "epigraf",
    ) -> None:
        self.config = ViewerConfig() if config is None else config
        self.renderer_config = model.renderer.config
        self.title = title
        self.cameras = cameras.to("cpu") if cameras is not None else distribution_cameras(
            model.cameras, self.config.num_frustums
        )
        self.camera_distribution = model.cameras
        self.num_classes = int(getattr(model, "num_classes", 0) or 0)
        """Classes of a class-conditional generator (0: unconditional); the GUI's class control lists them."""
        self.box_half_size = float(self.renderer_config.box_half_size)
        self.home = home_view(model.cameras, self.box_half_size)
        # A pose-conditioned generator sees the dataset's mean pose, wherever the browser's camera is.
        self._condition_camera = cameras_from_view(reset_view(model.cameras))
        self._generator = GeneratorCopy(model, self.config.device)
        self._cache = LatentCache()
        self._settings = ViewSettings(
            seed=self.config.seed, seed_b=self.config.seed + 1, truncation_psi=self.config.truncation_psi,
            resolution=self.config.resolution, samples_per_ray=self.config.samples_per_ray,
            sampler=self.config.sampler,
        )
        self._settings_lock = threading.Lock()
        self.worker = RenderWorker(
            self._render,
            self._send,
            RenderWorkerConfig(self.config.settle_seconds, self.config.max_busy_fraction, self.config.torch_threads),
        )
        self.server = None
        self.gui: _Gui | None = None
        self.port: int | None = None
        self.url: str | None = None
        self.status = ""
        self.mesh_path: Path | None = None
        self.frustums: list = []

    # ----------------------------------------------------------------------------------- lifecycle
    def start(self) -> str:
        """Starts the server and the render thread; returns (and prints) the URL."""
        if self.server is not None:
            return self.url
        import viser

        port = find_free_port(self.config.host, self.config.port)
        self.server = viser.ViserServer(host=self.config.host, port=port, verbose=self.config.verbose)
        self.port = int(self.server.get_port())
        shown_host = "localhost" if self.config.host in ("127.0.0.1", "localhost") else self.config.host
        self.url = f"http://{shown_host}:{self.port}"
        self.server.scene.set_up_direction("+y")
        self._set_initial_camera()
        self.gui = _Gui(self)
        self._add_frustums()
        self.server.on_client_connect(self._on_connect)
        self.server.on_client_disconnect(self._on_disconnect)
        self.worker.start()
        if self.config.verbose:
            print(f"epigraf viewer: {self.url}", flush=True)
        return self.url

    def stop(self) -> None:
        """Stops the render thread and the server (idempotent)."""
        self.worker.stop()
        if self.server is not None:
            self.server.stop()
            self.server = None

    def __enter__(self) -> GeneratorViewer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------------------ state changes
    @property
    def settings(self) -> ViewSettings:
        with self._settings_lock:
            return self._settings

    def set_settings(self, **changes: object) -> ViewSettings:
        """Changes GUI values (validated); every client gets a new frame."""
        with self._settings_lock:
            new = self._settings.updated(**changes)
            changed = new != self._settings
            self._settings = new
        if changed:
            self.worker.invalidate()
        return new

    def update_model(self, model: GeneratorModel) -> None:
        """Copies new weights (e.g. the EMA generator after a tick); clients are redrawn at full quality."""
        self._generator.update(model)
        self.worker.invalidate(skip_preview=True)

    @property
    def generator_version(self) -> int:
        return self._generator.version

    @property
    def frame_count(self) -> int:
        return self.worker.frames_rendered

    @property
    def client_count(self) -> int:
        return 0 if self.server is None else len(self.server.get_clients())

    # --------------------------------------------------------------------------------- rendering
    def _scene(self, settings: ViewSettings) -> tuple[GeneratorModel, Tensor, Tensor, int]:
        model, version = self._generator.acquire()
        scene, ws = self._cache.scene(model, version, settings.latent_key, self._condition_camera)
        return model, scene, ws, version

    def _render(self, camera: ViewCamera, quality: Quality) -> np.ndarray:
        settings = self.settings
        model, scene, ws, version = self._scene(settings)
        field = model.field(scene)
        renderer_config = settings.renderer_config(self.renderer_config)
        height = settings.resolution
        if quality == "preview":
            height = max(8, int(round(settings.resolution * self.config.preview_fraction)))
        final = settings.output == "rgb" and not model.renders_directly
        # The grid preview composites intervals (the 'quadrature' marcher); other marchers keep their own.
        quadrature = getattr(renderer_config, "marcher", "quadrature") == "quadrature"
        grid_preview = quality == "preview" and self.config.preview_sampler == "grid" and quadrature and not final
        occupancy = None
        if renderer_config.sampler == "occupancy" and not grid_preview:
            occupancy = self._cache.occupancy(field, version, settings.latent_key, renderer_config)
        start = time.monotonic()
        with intra_op_threads(self.config.preview_threads if quality == "preview" else 0):
            if grid_preview:
                # Built once per latent, on the preview's threads too: it is part of that latent's first preview.
                grid = self._cache.preview_grid(field, version, settings.latent_key, renderer_config,
                                                self.config.preview_grid_resolution, self.config.preview_samples)
                images = render_grid_view(field, camera, height, renderer_config, grid, self.config.preview_samples)
            elif final:
                images = render_final_view(model, scene, ws, camera, height, VolumeRenderer(renderer_config))
            else:
                images = render_view(field, camera, height, renderer_config, occupancy)
            image = to_display_image(images, settings)
        self.status = (
            f"{quality} {image.shape[1]}x{image.shape[0]} in {1000 * (time.monotonic() - start):.0f} ms"
            f" · frames {self.worker.frames_rendered + 1} · weights v{version}"
        )
        return image

    def _send(self, client_id: int, image: np.ndarray, quality: Quality) -> None:
        if self.server is None:
            return
        client = self.server.get_clients().get(client_id)
        if client is None:
            return
        client.scene.set_background_image(image, format="jpeg", jpeg_quality=self.config.jpeg_quality)
        if quality == "full" and self.gui is not None:
            self.gui.show_status(self.status)

    # --------------------------------------------------------------------------------- actions
    def render_still(self, camera: ViewCamera) -> np.ndarray:
        """A full-quality frame from ``camera`` with the current settings, rendered on the render thread."""
        return self.worker.submit(lambda: self._render(camera, "full")).result()

    def save_view(self, camera: ViewCamera, path: Path | None = None) -> Path:
        """Renders ``camera``'s view at full quality and writes it as PNG."""
        import imageio.v3 as iio

        image = self.render_still(camera)
        settings = self.settings
        if path is None:
            stamp = time.strftime("%Y%m%d-%H%M%S")
            path = self.config.output_dir / f"view-seed{settings.seed}-{settings.output}-{stamp}.png"
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        iio.imwrite(path, image)
        return path

    def extract_mesh(self, resolution: int | None = None, threshold: float | None = None, path: Path | None = None):
        """Marching cubes on the current latent's density (render thread); saves a PLY and returns the trimesh.

        Raises ValueError naming the density range when ``threshold`` is outside it (no surface).
        """
        mesh_config = MeshExtractionConfig(
            resolution=self.config.mesh_resolution if resolution is None else int(resolution),
            level=self.config.mesh_threshold if threshold is None else float(threshold),
            box_half_size=self.renderer_config.box_half_size,
        )
        settings = self.settings

        def work():
            model, scene, _, _ = self._scene(settings)
            return extract_meshes(model.field(scene), 1, mesh_config, self._generator.device, require_surface=True)[0]

        mesh = self.worker.submit(work).result()
        if path is None:
            path = self.config.output_dir / f"mesh-seed{settings.seed}-{time.strftime('%Y%m%d-%H%M%S')}.ply"
        self.mesh_path = save_mesh(mesh, path)
        return mesh

    def home_for(self, aspect: float) -> ViewCamera:
        """The first view for a window of ``aspect`` (width / height): the dataset's view of the object,
        from far enough that it fills about half the window's height (and fits its width)."""
        return home_view(self.camera_distribution, self.box_half_size, aspect)

    def reset_camera(self, client: object) -> None:
        """Puts a browser's camera at the dataset-like view, framed for its window (see :meth:`home_for`)."""
        try:
            aspect = float(client.camera.aspect)
        except (AttributeError, AssertionError, ZeroDivisionError):  # no camera message from the browser yet
            aspect = 1.0
        home = self.home_for(aspect if math.isfinite(aspect) and aspect > 0 else 1.0)
        position, look_at, up = look_at_pose(home)
        with client.atomic():
            client.camera.fov = home.fov
            client.camera.up_direction = up
            client.camera.position = position
            client.camera.look_at = look_at

    # ------------------------------------------------------------------------------- connections
    def _set_initial_camera(self) -> None:
        initial = getattr(self.server, "initial_camera", None)  # viser >= 1.0 only
        if initial is None:
            return
        position, look_at, up = look_at_pose(self.home)
        initial.position, initial.look_at, initial.up, initial.fov = position, look_at, up, self.home.fov

    def _on_connect(self, client: object) -> None:
        client_id = client.client_id
        client.camera.on_update(lambda camera: self.worker.update_camera(client_id, ViewCamera.from_viser(camera)))
        self.reset_camera(client)
        self.worker.update_camera(client_id, ViewCamera.from_viser(client.camera))

    def _on_disconnect(self, client: object) -> None:
        self.worker.remove_client(client.client_id)

    def _add_frustums(self) -> None:
        if self.cameras is None:
            return
        size = 0.08 * float(self.cameras.centers.norm(dim=-1).mean())
        for index in range(len(self.cameras)):
            cam2world = self.cameras.cam2world[index].double().numpy()
            self.frustums.append(
                self.server.scene.add_camera_frustum(
                    f"/dataset_cameras/{index}",
                    fov=math.radians(float(self.cameras.fov_degrees[index])),
                    aspect=1.0,
                    scale=size,
                    color=(200, 80, 40),
                    wxyz=tuple(matrix_to_quaternion(cam2world[:3, :3])),
                    position=tuple(cam2world[:3, 3]),
                    visible=False,
                )
            )

    def show_frustums(self, visible: bool) -> None:
        for frustum in self.frustums:
            frustum.visible = bool(visible)


class _Gui:
    """The panel: every control writes into the viewer's settings or triggers one of its actions."""

    def __init__(self, viewer: GeneratorViewer) -> None:
        self.viewer = viewer
        gui = viewer.server.gui
        settings = viewer.settings
        config = viewer.config
        gui.add_markdown(f"**{viewer.title}**")
        with gui.add_folder("Latent"):
            self.seed = gui.add_slider("Seed", min=0, max=config.max_seed, step=1, initial_value=settings.seed)
            self.seed_b = gui.add_slider("Second seed", min=0, max=config.max_seed, step=1,
                                         initial_value=settings.seed_b)
            self.mix = gui.add_slider("Interpolation", min=0.0, max=1.0, step=0.01, initial_value=settings.mix)
            self.psi = gui.add_slider("Truncation psi", min=0.0, max=1.5, step=0.05,
                                      initial_value=settings.truncation_psi)
            self.class_index = gui.add_dropdown(
                "Class", options=[SEED_CLASS, *(str(k) for k in range(viewer.num_classes))],
                initial_value=SEED_CLASS, disabled=viewer.num_classes == 0)
        with gui.add_folder("Rendering"):
            self.resolution = gui.add_slider("Resolution", min=min(16, settings.resolution),
                                             max=max(512, settings.resolution), step=8,
                                             initial_value=settings.resolution)
            self.samples = gui.add_slider("Samples per ray", min=min(4, settings.samples_per_ray),
                                          max=max(192, settings.samples_per_ray), step=2,
                                          initial_value=settings.samples_per_ray)
            self.sampler = gui.add_dropdown("Sampler", options=list(VIEW_SAMPLERS), initial_value=settings.sampler)
            self.output = gui.add_dropdown("Output", options=list(OUTPUTS), initial_value=settings.output)
            self.background = gui.add_rgb("Background", initial_value=settings.background)
        with gui.add_folder("Scene"):
            self.frustums = gui.add_checkbox("Dataset cameras", initial_value=False,
                                             disabled=viewer.cameras is None)
            self.reset = gui.add_button("Reset camera")
            self.save = gui.add_button("Save view (PNG)")
            self.mesh_resolution = gui.add_slider("Mesh resolution", min=min(16, config.mesh_resolution),
                                                  max=max(256, config.mesh_resolution), step=16,
                                                  initial_value=config.mesh_resolution)
            self.mesh_threshold = gui.add_number("Mesh threshold", initial_value=float(config.mesh_threshold),
                                                 min=0.0, step=0.5)
            self.mesh = gui.add_button("Extract mesh")
            self.show_mesh = gui.add_checkbox("Show mesh", initial_value=True)
        self.status = gui.add_markdown("waiting for a browser")
        self.mesh_node = None
        self._wire()

    def _wire(self) -> None:
        bind = {
            "seed": self.seed, "seed_b": self.seed_b, "mix": self.mix, "truncation_psi": self.psi,
            "class_index": self.class_index,
            "resolution": self.resolution, "samples_per_ray": self.samples, "sampler": self.sampler,
            "output": self.output, "background": self.background,
        }
        for name, handle in bind.items():
            handle.on_update(self._setter(name, handle))
        self.frustums.on_update(lambda _: self.viewer.show_frustums(self.frustums.value))
        self.show_mesh.on_update(lambda _: self._mesh_visibility())
        self.reset.on_click(self._on_reset)
        self.save.on_click(self._on_save)
        self.mesh.on_click(self._on_mesh)

    def _setter(self, name: str, handle: object):
        def update(_event: object) -> None:
            try:
                self.viewer.set_settings(**{name: handle.value})
            except ValueError as error:
                self.show_status(f"invalid {name}: {error}")

        return update

    def show_status(self, text: str) -> None:
        try:
            self.status.content = text
        except Exception:  # the server may be shutting down
            pass

    def _clients(self, event: object) -> list:
        client = getattr(event, "client", None)
        return [client] if client is not None else list(self.viewer.server.get_clients().values())

    def _on_reset(self, event: object) -> None:
        for client in self._clients(event):
            self.viewer.reset_camera(client)

    def _on_save(self, event: object) -> None:
        for client in self._clients(event):
            camera = self.viewer.worker.camera_of(client.client_id)
            if camera is None:
                continue
            path = self.viewer.save_view(camera)
            self.show_status(f"saved {path}")
            client.send_file_download(path.name, path.read_bytes())

    def _on_mesh(self, event: object) -> None:
        self.show_status("extracting mesh ...")
        try:
            mesh = self.viewer.extract_mesh(self.mesh_resolution.value, self.mesh_threshold.value)
        except ValueError as error:
            self.show_status(str(error))
            return
        self.mesh_node = self.viewer.server.scene.add_mesh_trimesh("/mesh", mesh)
        self._mesh_visibility()
        path = self.viewer.mesh_path
        self.show_status(f"mesh: {len(mesh.vertices)} vertices, {len(mesh.faces)} faces, saved {path}")
        content = path.read_bytes()
        for client in self._clients(event):
            client.send_file_download(path.name, content)

    def _mesh_visibility(self) -> None:
        if self.mesh_node is not None:
            self.mesh_node.visible = bool(self.show_mesh.value)

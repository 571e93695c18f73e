"""The generator interface every consumer takes (snapshots, metrics, viewer, commands, nerfstudio), and open_model."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Protocol, runtime_checkable

import torch
from jaxtyping import Float, Int
from torch import Tensor, nn

from epigraf_field.generator import TriPlaneGenerator
from pipelines.camera_distributions import CameraDistribution
from renderers.cameras import Cameras
from renderers.volume_renderer import RenderedImages, VolumeRenderer


@runtime_checkable
class GeneratorModel(Protocol):
    """A trained generator as its consumers see it, whatever pipeline made it.

    A scene is made in three steps: latents ``z`` become ``ws`` (:meth:`mapping`, where the camera
    condition rule lives), ``ws`` become a scene representation (:meth:`synthesize`: tri-planes,
    voxels; the part worth caching per latent), and a representation becomes a radiance field
    (:meth:`field`, for depth, occupancy and meshes) or final images (:meth:`render_scene`: a
    direct volume render, or a render plus super-resolution).
    """

    pipeline: str
    """Name of the pipeline that trained it."""
    cameras: CameraDistribution
    """The camera distribution it was trained under (frames every view of it)."""
    renderer: VolumeRenderer
    """How its fields are volume-rendered."""
    truncation_psi: float
    truncation_cutoff: int | None
    image_resolution: int | None
    """Resolution of the images it was trained on (None: unknown)."""

    @property
    def z_dim(self) -> int: ...

    @property
    def device(self) -> torch.device: ...

    @property
    def box_half_size(self) -> float: ...

    @property
    def network(self) -> nn.Module:
        """Every weight of the generator in one module (the viewer copies it, the trainer updates it)."""

    @property
    def renders_directly(self) -> bool:
        """Whether final images are volume renders of the field at the asked resolution (no 2D network)."""

    def mapping(self, z: Tensor, condition: Cameras | None = None) -> Tensor:
        """ws [b, num_ws, w_dim] of latents ``z`` [b, z_dim], truncated; ``condition`` is the camera a
        pose-conditioned generator is conditioned on (default: the distribution's centre pose)."""

    def synthesize(self, ws: Tensor) -> Tensor:
        """The scene representation of ``ws`` (constant noise)."""

    def field(self, scene: Tensor) -> object:
        """A radiance field (the renderer's protocol) over ``scene``'s batch."""

    def render_scene(self, scene: Tensor, ws: Tensor, cameras: Cameras, resolution: int,
                     renderer: VolumeRenderer | None = None) -> RenderedImages:
        """Final images [b, 3, resolution, resolution] in [0, 1] of scene i from camera i, with depth and opacity."""

    def with_options(self, **changes: object) -> GeneratorModel:
        """A copy with other settings (``truncation_psi``, ``truncation_cutoff``, ``renderer``; ``class_index`` for
        a class-conditional :class:`TriPlaneModel`, ValueError when out of range) sharing the weights."""

    def save(self, directory: Path) -> Path:
        """Writes a bundle that :func:`open_model` reads back."""


def latent_classes(z: Float[Tensor, "b z_dim"], num_classes: int) -> Int[Tensor, " b"]:
    """The class [b] each latent is generated in when no class is asked for: a hash of the latent's bytes,
    modulo ``num_classes``.

    A latent keeps its class in every command (the viewer, render, export and metrics all draw the
    same object for a seed), and over many latents the classes come out uniform, independent of the
    latent's values (the mapping still sees z ~ N(0, I) in every class, as in training).
    """
    rows = z.detach().to("cpu", torch.float32).contiguous().numpy()
    digests = [hashlib.blake2b(row.tobytes(), digest_size=8).digest() for row in rows]
    return torch.tensor([int.from_bytes(d, "little") % num_classes for d in digests], dtype=torch.long)


def drawn_classes(z: Float[Tensor, "b z_dim"], num_classes: int, class_index: int | None = None) -> Int[Tensor, " b"]:
    """The class [b] each latent of ``z`` is drawn in: ``class_index`` for every latent when given, else the
    latent's own (:func:`latent_classes`); all 0 for an unconditional generator (``num_classes`` 0).

    Example: ``num_classes=4, class_index=None`` gives each latent the class it has in every command.
    """
    if num_classes == 0 or class_index is not None:
        return torch.full((len(z),), 0 if class_index is None else class_index, dtype=torch.long)
    return latent_classes(z, num_classes)


def condition_labels(c_dim: int, condition: Cameras | None, cameras: CameraDistribution, count: int,
                     device: torch.device, num_classes: int = 0, class_index: int | None = None,
                     z: Tensor | None = None) -> Tensor | None:
    """The condition [count, c_dim] a conditioned mapping sees: camera label, then one-hot class.

    The camera part (``c_dim - num_classes`` numbers, 25 or none) is ``condition``'s label, else the
    distribution's centre pose. A class-conditional generator (``num_classes > 0``) also sees the
    one-hot of ``class_index``; when None, each latent of ``z`` [count, z_dim] is drawn in its own
    class (:func:`latent_classes`), so every consumer shows all classes and the same class for a
    latent; without ``z``, class 0. One rule for every consumer; None for an unconditional
    generator (``c_dim == 0``).

    Example: ``c_dim=28, num_classes=3, class_index=2`` gives ``[*centre_label(25), 0, 0, 1]`` per row.
    """
    if c_dim == 0:
        return None
    camera_dim = c_dim - num_classes
    parts = []
    if camera_dim > 0:
        if condition is None:
            labels = cameras.center_pose().to_label().expand(count, -1)
        else:
            labels = condition.to_label()
        if labels.shape[1] != camera_dim:
            classes = f" ({num_classes} of them its classes)" if num_classes else ""
            raise ValueError(f"the generator is conditioned on {c_dim} numbers{classes}, but camera labels have "
                             f"{labels.shape[1]}")
        parts.append(labels.to(device))
    elif camera_dim < 0:
        raise ValueError(f"the generator is conditioned on {c_dim} numbers, fewer than its {num_classes} classes")
    if num_classes > 0:
        if z is None:
            index = torch.full((count,), 0 if class_index is None else class_index, dtype=torch.long)
        else:
            index = drawn_classes(z, num_classes, class_index)
        parts.append(torch.nn.functional.one_hot(index.to(device), num_classes).float())
    return torch.cat(parts, dim=1)


class DirectlyRenderedModel:
    """What every model whose final images are volume renders of its own field shares (tri-planes, voxels):
    the accessors of its ``generator`` (whose ``config`` holds ``z_dim`` and ``box_half_size``) and rendering
    with its ``renderer``. Subclasses are dataclasses with those two fields and a ``field(scene)`` method."""

    generator: nn.Module
    renderer: VolumeRenderer

    @property
    def z_dim(self) -> int:
        return self.generator.config.z_dim

    @property
    def device(self) -> torch.device:
        return next(self.generator.parameters()).device

    @property
    def box_half_size(self) -> float:
        return self.generator.config.box_half_size

    @property
    def network(self) -> nn.Module:
        return self.generator

    @property
    def renders_directly(self) -> bool:
        return True

    def render_scene(self, scene: Tensor, ws: Tensor, cameras: Cameras, resolution: int,
                     renderer: VolumeRenderer | None = None) -> RenderedImages:
        images = (renderer or self.renderer).render_image(self.field(scene), cameras.to(self.device), resolution)
        return replace(images, rgb=images.rgb.clamp(0, 1))


@dataclass
class TriPlaneModel(DirectlyRenderedModel):
    """A :class:`TriPlaneGenerator` rendered directly by the volume renderer (patch-gan, EpiGRAF)."""

    generator: TriPlaneGenerator
    renderer: VolumeRenderer
    cameras: CameraDistribution
    pipeline: str = "patch-gan"
    truncation_psi: float = 1.0
    """Truncation towards the mean w (1: none)."""
    truncation_cutoff: int | None = None
    """Truncate only the first N ws (None: all)."""
    image_resolution: int | None = None
    """Resolution of the images it was trained on (None: unknown)."""
    num_classes: int = 0
    """Classes of a class-conditional generator (0: unconditional; the last ``num_classes`` numbers of its c_dim)."""
    class_index: int | None = None
    """The class every scene is generated in (None: each latent in its own class, :func:`latent_classes`); only for
    a class-conditional generator."""

    def __post_init__(self) -> None:
        if self.class_index is not None and not 0 <= self.class_index < max(self.num_classes, 0):
            if self.num_classes == 0:
                raise ValueError(f"class index {self.class_index} given, but this generator is not class-conditional")
            raise ValueError(f"class index {self.class_index} is out of range: the generator has {self.num_classes} "
                             f"classes (0..{self.num_classes - 1})")

    def mapping(self, z: Tensor, condition: Cameras | None = None) -> Tensor:
        c = condition_labels(self.generator.config.c_dim, condition, self.cameras, len(z), self.device,
                             self.num_classes, self.class_index, z)
        return self.generator.mapping(z.to(self.device), c, self.truncation_psi, self.truncation_cutoff)

    def synthesize(self, ws: Tensor) -> Tensor:
        return self.generator.synthesis(ws.to(self.device), noise_mode="const")

    def field(self, scene: Tensor) -> object:
        return self.generator.field(scene)

    def with_options(self, **changes: object) -> TriPlaneModel:
        return replace(self, **changes)

    def save(self, directory: Path) -> Path:
        from pipelines.bundle import save_bundle

        return save_bundle(directory, self.generator, self.renderer.config, self.cameras, self.pipeline,
                           image_resolution=self.image_resolution, num_classes=self.num_classes)


# ------------------------------------------------------------------------------------ what consumers call
def fields(model: GeneratorModel, z: Tensor, condition: Cameras | None = None) -> object:
    """One radiance field per latent (scene batch = len(z))."""
    return model.field(model.synthesize(model.mapping(z, condition)))


def render_ws(model: GeneratorModel, ws_of, cameras: Cameras, resolution: int, batch_size: int = 8,
              renderer: VolumeRenderer | None = None, progress=None) -> RenderedImages:
    """Final images of scene i from camera i, ``batch_size`` scenes at a time; outputs on the CPU.

    ``ws_of(slice)`` gives the ws of the scenes in that slice; ``progress(count)`` is told of each batch.
    """
    outputs = []
    for start in range(0, cameras.batch_size, batch_size):
        sl = slice(start, start + batch_size)
        with torch.no_grad():
            ws = ws_of(sl)
            out = model.render_scene(model.synthesize(ws), ws, cameras[sl], resolution, renderer)
        outputs.append(out)
        if progress is not None:
            progress(len(cameras[sl]))
    return _cat_images(outputs)


def render(model: GeneratorModel, z: Tensor, cameras: Cameras, resolution: int, condition: Cameras | None = None,
           batch_size: int = 8, renderer: VolumeRenderer | None = None, progress=None) -> RenderedImages:
    """Final images of latent i from camera i; a pose-conditioned generator sees ``condition`` (default ``cameras``)."""
    condition = cameras if condition is None else condition
    return render_ws(model, lambda sl: model.mapping(z[sl], condition[sl]), cameras, resolution, batch_size,
                     renderer, progress)


def render_rows_by_class(model: GeneratorModel, z: Tensor, cameras: Cameras, resolution: int, columns: int,
                         condition: Cameras | None = None) -> RenderedImages:
    """:func:`render`, with row r of a ``columns``-wide grid drawn in class r mod K by a class-conditional model
    (K classes); other models draw every latent as :func:`render` does.

    A training snapshot then shows the classes row by row, where each latent's own class (see
    :func:`condition_labels`) would mix them. Example: 8 latents, 4 columns, 3 classes: latents 0-3 in class 0, 4-7 in class 1.
    """
    num_classes = int(getattr(model, "num_classes", 0) or 0)
    if num_classes == 0:
        return render(model, z, cameras, resolution, condition)
    condition = cameras if condition is None else condition
    row_classes = (torch.arange(len(z)) // columns) % num_classes
    outputs, order = [], []
    for class_index in row_classes.unique().tolist():
        index = (row_classes == class_index).nonzero().flatten()
        outputs.append(render(model.with_options(class_index=class_index), z[index], cameras[index], resolution,
                              condition[index]))
        order.append(index)
    images = _cat_images(outputs)
    inverse = torch.argsort(torch.cat(order))
    return replace(images, rgb=images.rgb[inverse], depth=images.depth[inverse], opacity=images.opacity[inverse])


def _cat_images(outputs: list[RenderedImages]) -> RenderedImages:
    cat = lambda name: torch.cat([getattr(o, name).cpu() for o in outputs])  # noqa: E731
    return RenderedImages(rgb=cat("rgb"), depth=cat("depth"), opacity=cat("opacity"),
                          num_field_evaluations=sum(o.num_field_evaluations for o in outputs))


def latents_from_seeds(seeds: list[int] | tuple[int, ...], z_dim: int) -> Tensor:
    """One z [len(seeds), z_dim] per seed, each from its own ``torch.Generator`` (a seed's latent never depends on the others)."""
    return torch.stack([torch.randn(z_dim, generator=torch.Generator().manual_seed(int(s))) for s in seeds])


# ------------------------------------------------------------------------------------------- opening
class ModelLoadError(ValueError):
    """A run, checkpoint or bundle that cannot be opened; the message names the file and the fix."""


def open_model(path: Path | str, device: torch.device | str = "cpu", backend: str | None = None) -> GeneratorModel:
    """Opens a run folder (its newest checkpoint), a checkpoint, a generator bundle or an official
    EG3D / EpiGRAF / Mimic3D ``.pkl`` snapshot (converted without executing it, see :mod:`pipelines.checkpoint_import`) as its model.

    The bundle's ``pipeline.json`` names the pipeline that wrote it; that pipeline's registered
    loader builds the model. Nothing is unpickled (a .pkl goes through the allow-list reader). Raises :class:`ModelLoadError` naming the file
    for a missing, damaged, unknown-pipeline or newer-format bundle.
    """
    from pipelines.bundle import read_bundle_header, resolve_bundle_dir
    from pipelines.checkpoint_import.registry import converted_bundle, is_official_snapshot_path
    from pipelines.registry import get_pipeline_spec

    try:
        # An official .pkl snapshot is read without executing it, converted once and cached as a bundle.
        source = converted_bundle(path) if is_official_snapshot_path(path) else Path(path)
        directory = resolve_bundle_dir(source)
        header = read_bundle_header(directory)
        try:
            spec = get_pipeline_spec(header.pipeline)
        except ValueError as error:
            raise ModelLoadError(f"{directory / 'pipeline.json'}: written by pipeline {header.pipeline!r}, which is "
                                 f"not installed here ({error})") from None
        return spec.load_model(directory, torch.device(device), backend)
    except ModelLoadError:
        raise
    except (FileNotFoundError, ValueError, RuntimeError, OSError, KeyError) as error:
        message = str(error) if str(path) in str(error) else f"cannot open {path}: {error}"
        raise ModelLoadError(message) from error

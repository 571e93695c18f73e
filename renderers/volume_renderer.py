"""The volume renderer: rays -> samples -> field -> composited pixels, for any radiance field."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from jaxtyping import Float
from torch import Tensor

from renderers.cameras import Cameras
from renderers.compositing import BACKDROP, BACKGROUNDS, Composite, composite
from renderers.field import check_field
from renderers.patches import PIXEL_GRIDS
from renderers.point_marchers import (
    composite_left_points,
    composite_midpoints,
    left_point_depths,
    left_point_importance_depths,
    midpoint_depths,
    midpoint_importance_depths,
)
from renderers.occupancy import OccupancyGrid, default_step_size, occupancy_samples
from renderers.patches import Patch
from renderers.rays import RayBundle, generate_rays
from renderers.samplers import RaySamples, importance_samples, merge_samples, sample_points, stratified_samples

SAMPLERS = ("stratified", "importance", "occupancy")
TRAVERSAL_BACKENDS = ("auto", "torch", "nerfacc")
SamplerName = Literal["stratified", "importance", "occupancy"]
BackgroundName = Literal["white", "black", "random", "color", "last_sample"]
TraversalBackend = Literal["auto", "torch", "nerfacc"]
MarcherName = Literal["quadrature", "midpoint", "left_point"]
MARCHERS = ("quadrature", "midpoint", "left_point")
PixelGrid = Literal["centers", "corners"]


@dataclass
class VolumeRendererConfig:
    """How rays are sampled and composited."""

    sampler: SamplerName = "importance"
    """'stratified' (num_coarse samples), 'importance' (num_coarse stratified + num_fine resampled from
    their weights, EpiGRAF/EG3D's 48 + 48), or 'occupancy' (march only through occupied grid cells)."""
    num_coarse: int = 48
    """Stratified samples per ray."""
    num_fine: int = 48
    """Importance samples per ray (sampler 'importance')."""
    occupancy_resolution: int = 64
    """Cells per side of the occupancy grid (sampler 'occupancy'); building it costs resolution^3 density
    queries per scene, paid once per latent when viewing and at every render that is given no grid."""
    occupancy_threshold: float = 0.01
    """A cell is occupied when one marching step there has opacity 1 - exp(-density * step) above this.
    0 keeps every cell with any density (a randomly initialised generator has a little everywhere)."""
    occupancy_dilation: int = 1
    """Cells by which occupied regions are grown, so thin structures and surface rims are kept."""
    march_steps: int = 256
    """Occupancy marching step = box diagonal / march_steps."""
    traversal_backend: TraversalBackend = "auto"
    """Grid traversal: 'auto' (nerfacc's CUDA kernel for CUDA tensors when it loads, else torch), 'torch', 'nerfacc'."""
    background: BackgroundName = "white"
    """'white' (360-degree objects: Megascans, ShapeNet), 'black' (EG3D's FFHQ), 'random' (a random colour per
    ray, drawn from ``rng``), 'color' (background_color) or 'last_sample' (EpiGRAF's learned backdrop: one more
    sample per ray at its far end is opaque, so every ray has opacity 1 and what the object leaves uncovered
    shows the field's own colour there; its depth is the far distance)."""
    background_color: tuple[float, float, float] = (1.0, 1.0, 1.0)
    """The fixed (r, g, b) background in [0, 1] used when background is 'color'."""
    chunk_size: int = 32768
    """Rays (over all scenes) rendered per chunk; bounds the memory of one field call."""
    box_half_size: float = 0.5
    """Half the side of the scene box [-h, h]^3 (EG3D's box of side 1)."""
    marcher: MarcherName = "quadrature"
    """'quadrature' (ours: intervals tiling [near, far], one field value each), 'midpoint' (EG3D's ray marcher:
    points from near to far inclusive, each neighbouring pair an interval with the mean of their colours and of their
    density logits) or 'left_point' (EpiGRAF's: each point holds until the next, the last is an opaque backdrop).
    The last two reproduce released weights' renders, with their own importance passes; they apply to the stratified
    and importance samplers with a colour background and >= 3 coarse samples (otherwise, e.g. when a viewer switches
    to the occupancy sampler, the quadrature marcher renders). See renderers.point_marchers."""
    pixel_grid: PixelGrid = "centers"
    """Where the rays of an image pass: pixel centres (ours, EG3D) or 'corners', spread from edge to edge of the
    image plane (EpiGRAF's rays)."""

    def __post_init__(self) -> None:
        self.background_color = tuple(float(c) for c in self.background_color)
        if self.sampler not in SAMPLERS:
            raise ValueError(f"VolumeRendererConfig.sampler must be one of {SAMPLERS}, got {self.sampler!r}")
        if self.background not in (*BACKGROUNDS, "color"):
            raise ValueError(
                f"VolumeRendererConfig.background must be one of {(*BACKGROUNDS, 'color')}, got {self.background!r}"
            )
        if self.traversal_backend not in TRAVERSAL_BACKENDS:
            raise ValueError(
                f"VolumeRendererConfig.traversal_backend must be one of {TRAVERSAL_BACKENDS}, got {self.traversal_backend!r}"
            )
        if len(self.background_color) != 3:
            raise ValueError(f"VolumeRendererConfig.background_color must be 3 numbers, got {self.background_color}")
        for name in ("num_coarse", "occupancy_resolution", "march_steps", "chunk_size"):
            if getattr(self, name) <= 0:
                raise ValueError(f"VolumeRendererConfig.{name} must be positive, got {getattr(self, name)}")
        if self.num_fine < 0 or self.occupancy_dilation < 0:
            raise ValueError("VolumeRendererConfig.num_fine and occupancy_dilation must be >= 0")
        if not 0 <= self.occupancy_threshold < 1:
            raise ValueError(f"VolumeRendererConfig.occupancy_threshold must lie in [0, 1), got {self.occupancy_threshold}")
        if not self.box_half_size > 0:
            raise ValueError(f"VolumeRendererConfig.box_half_size must be positive, got {self.box_half_size}")
        if self.marcher not in MARCHERS:
            raise ValueError(f"VolumeRendererConfig.marcher must be one of {MARCHERS}, got {self.marcher!r}")
        if self.pixel_grid not in PIXEL_GRIDS:
            raise ValueError(f"VolumeRendererConfig.pixel_grid must be one of {PIXEL_GRIDS}, got {self.pixel_grid!r}")

    @property
    def uses_point_marcher(self) -> bool:
        """Whether renders use the 'midpoint' or 'left_point' marcher (see ``marcher``)."""
        return (self.marcher != "quadrature" and self.sampler != "occupancy" and self.background != BACKDROP
                and self.num_coarse >= 3)

    @property
    def step_size(self) -> float:
        """Occupancy marching step in world units."""
        return default_step_size(self.box_half_size, self.march_steps)


@dataclass(kw_only=True)
class RenderOutput(Composite):
    """Per-ray render results for ``b`` scenes of ``r`` rays: the composite (rgb, depth, opacity,
    weights, features; padding samples have zero weight, rays that hit nothing the far plane as
    depth) and the samples it was made from. With background 'last_sample' the samples end with
    each ray's backdrop sample (a zero-length interval at the far end, holding the weight left over)."""

    samples: RaySamples
    """The samples the weights belong to."""
    num_field_evaluations: int = 0
    """Points sent to the field (padding included): the cost of the render."""

    def to_images(self, height: int, width: int) -> RenderedImages:
        """Reshapes row-major rays to images [b, c, h, w]."""
        b, r = self.rgb.shape[:2]
        if height * width != r:
            raise ValueError(f"cannot reshape {r} rays to a {height} x {width} image")
        image = lambda x: x.reshape(b, height, width, -1).permute(0, 3, 1, 2)  # noqa: E731
        return RenderedImages(
            rgb=image(self.rgb),
            depth=image(self.depth),
            opacity=image(self.opacity),
            features=None if self.features is None else image(self.features),
            num_field_evaluations=self.num_field_evaluations,
        )


@dataclass
class RenderedImages:
    """Render results as images."""

    rgb: Float[Tensor, "b 3 h w"]
    depth: Float[Tensor, "b 1 h w"]
    opacity: Float[Tensor, "b 1 h w"]
    features: Float[Tensor, "b f h w"] | None = None
    num_field_evaluations: int = 0


@dataclass
class _FieldSamples:
    density: Tensor  # [b, r, s]
    rgb: Tensor  # [b, r, s, 3]
    features: Tensor | None  # [b, r, s, f]
    count: int
    density_logits: Tensor | None = None  # [b, r, s], when asked for and the field gives them


class VolumeRenderer:
    """Renders anything that satisfies :class:`renderers.field.RadianceField`.

    Example:
        >>> from renderers.analytic import SphereField
        >>> renderer = VolumeRenderer(VolumeRendererConfig(sampler="stratified", num_coarse=8))
        >>> cams = Cameras.from_spherical(torch.zeros(2), torch.zeros(2), radius=2.0, fov_degrees=30.0)
        >>> renderer.render_image(SphereField(), cams, resolution=8).rgb.shape
        torch.Size([2, 3, 8, 8])
    """

    def __init__(self, config: VolumeRendererConfig | None = None) -> None:
        self.config = VolumeRendererConfig() if config is None else config

    @property
    def background(self) -> str | tuple[float, float, float]:
        cfg = self.config
        return cfg.background_color if cfg.background == "color" else cfg.background

    def build_occupancy(
        self,
        field: object,
        batch_size: int,
        rng: torch.Generator | None = None,
        device: torch.device | str | None = None,
    ) -> OccupancyGrid:
        """An occupancy grid per scene from the field's current density (keep it to reuse it)."""
        cfg = self.config
        return OccupancyGrid.from_field(
            field,
            batch_size,
            resolution=cfg.occupancy_resolution,
            box_half_size=cfg.box_half_size,
            step_size=cfg.step_size,
            alpha_threshold=cfg.occupancy_threshold,
            dilation=cfg.occupancy_dilation,
            rng=rng,
            device=device,
        )

    def render_rays(
        self,
        field: object,
        rays: RayBundle,
        rng: torch.Generator | None = None,
        occupancy: OccupancyGrid | None = None,
    ) -> RenderOutput:
        """Renders ``rays`` (one scene of the field per batch item), in chunks of rays.

        ``rng`` switches on training randomness (jittered samples, grid probes and the
        'random' background); without it a render is deterministic. With the 'occupancy' sampler and
        no ``occupancy`` grid, a grid is built from the field first (what a training step does).
        With background 'last_sample' the field is also queried once per ray at its far end (see
        :func:`backdrop_distances`). Differentiable with respect to the field's outputs.
        """
        check_field(field)
        if not isinstance(rays, RayBundle):
            raise ValueError(f"rays must be a renderers.rays.RayBundle, got {type(rays).__name__}")
        b, r = rays.batch_size, rays.num_rays
        if self.config.sampler == "occupancy" and occupancy is None:
            occupancy = self.build_occupancy(field, b, rng, rays.device)
        if occupancy is not None and occupancy.batch_size != b:
            raise ValueError(f"occupancy grid holds {occupancy.batch_size} scenes but rays belong to {b}")
        rays_per_chunk = max(1, self.config.chunk_size // b)
        chunks = [self._render_chunk(field, rays.slice(i, i + rays_per_chunk), rng, occupancy)
                  for i in range(0, r, rays_per_chunk)]
        return _concat_chunks(chunks) if len(chunks) > 1 else chunks[0]

    def render_image(
        self,
        field: object,
        cameras: Cameras,
        resolution: int,
        patch: Patch | None = None,
        rng: torch.Generator | None = None,
        occupancy: OccupancyGrid | None = None,
    ) -> RenderedImages:
        """Renders a ``resolution x resolution`` image (or patch) per camera as [b, c, h, w] tensors."""
        rays = generate_rays(cameras, resolution, patch, self.config.box_half_size, self.config.pixel_grid)
        return self.render_rays(field, rays, rng, occupancy).to_images(resolution, resolution)

    def _render_chunk(
        self, field: object, rays: RayBundle, rng: torch.Generator | None, occupancy: OccupancyGrid | None
    ) -> RenderOutput:
        cfg = self.config
        if cfg.uses_point_marcher:
            return self._render_chunk_points(field, rays, rng)
        if cfg.sampler == "occupancy":
            samples = occupancy_samples(rays, occupancy, cfg.step_size, rng, cfg.traversal_backend)
            values = _evaluate(field, rays, samples)
        else:
            samples = stratified_samples(rays, cfg.num_coarse, rng)
            values = _evaluate(field, rays, samples)
            if cfg.sampler == "importance" and cfg.num_fine > 0:
                with torch.no_grad():
                    coarse = composite(samples.t_starts, samples.t_ends, values.density.detach(),
                                       values.rgb.detach(), "black")
                t_fine = importance_samples(samples, coarse.weights, cfg.num_fine, rng)
                fine = _evaluate(field, rays, RaySamples(t_fine, t_fine, t_points=t_fine))
                samples, order = merge_samples(samples, t_fine)
                values = _merge_values(values, fine, order)
        if cfg.background == BACKDROP:
            samples, values = _append_backdrop(field, rays, samples, values)
        out = composite(
            samples.t_starts, samples.t_ends, values.density, values.rgb,
            background=self.background, t_points=samples.t_points, features=values.features,
            empty_depth=rays.far, rng=rng,
        )
        return RenderOutput(
            rgb=out.rgb, depth=out.depth, opacity=out.opacity, weights=out.weights, features=out.features,
            samples=samples, num_field_evaluations=values.count,
        )


    def _render_chunk_points(self, field: object, rays: RayBundle, rng: torch.Generator | None) -> RenderOutput:
        """EG3D's or EpiGRAF's coarse pass, importance pass and final march over the merged points
        (see renderers.point_marchers)."""
        cfg = self.config
        midpoint = cfg.marcher == "midpoint"
        t = midpoint_depths(rays, cfg.num_coarse, rng) if midpoint else left_point_depths(rays, cfg.num_coarse, rng)
        values = _evaluate(field, rays, RaySamples(t, t, t_points=t), keep_logits=midpoint)
        if cfg.sampler == "importance" and cfg.num_fine > 0:
            with torch.no_grad():
                if midpoint:
                    coarse = composite_midpoints(t, values.density, values.rgb, "black", values.density_logits)
                    t_fine = midpoint_importance_depths(t, coarse.weights, cfg.num_fine, rng)
                else:
                    coarse = composite_left_points(t, values.density, values.rgb, "black")
                    t_fine = left_point_importance_depths(t, coarse.weights, cfg.num_fine, rng)
            fine = _evaluate(field, rays, RaySamples(t_fine, t_fine, t_points=t_fine), keep_logits=midpoint)
            t, order = torch.sort(torch.cat([t, t_fine], dim=-1), dim=-1)
            values = _merge_values(values, fine, order)
        if midpoint:
            out = composite_midpoints(t, values.density, values.rgb, self.background, values.density_logits,
                                      values.features, rng)
            # The weights belong to the intervals between neighbouring points.
            samples = RaySamples(t[..., :-1], t[..., 1:])
        else:
            out = composite_left_points(t, values.density, values.rgb, self.background, values.features, rng)
            # Point i stands for [t_i, t_{i+1}]; the last one's interval is cut at its own distance here.
            samples = RaySamples(t, torch.cat([t[..., 1:], t[..., -1:]], dim=-1), t_points=t)
        return RenderOutput(rgb=out.rgb, depth=out.depth, opacity=out.opacity, weights=out.weights,
                            features=out.features, samples=samples, num_field_evaluations=values.count)


def backdrop_distances(rays: RayBundle) -> Float[Tensor, "b r 1"]:
    """Where the renderer samples each ray's backdrop (background 'last_sample'): the far end of the ray.

    That is the far plane, or the exit of the scene box for box-bounded rays. A ray without length
    (``near == far``: it missed the box) has no far end in the scene; it takes the point of its line
    closest to the box centre (the origin), or its far end when that point lies behind it, so every
    pixel shows some colour of the field and the picture has no holes.

    Example:
        >>> origins = torch.tensor([[[0.0, 0.0, 2.0], [0.0, 0.6, 2.0]]])
        >>> directions = torch.tensor([0.0, 0.0, -1.0]).expand(1, 2, 3)
        >>> near, far = torch.tensor([[[1.0], [1.0]]]), torch.tensor([[[3.0], [1.0]]])
        >>> backdrop_distances(RayBundle(origins, directions, near, far))[..., 0]
        tensor([[3., 2.]])
    """
    closest = -(rays.origins * rays.directions).sum(dim=-1, keepdim=True)
    return torch.where(rays.far > rays.near, rays.far, torch.maximum(rays.far, closest))


def _append_backdrop(
    field: object, rays: RayBundle, samples: RaySamples, values: _FieldSamples
) -> tuple[RaySamples, _FieldSamples]:
    """Samples and values with one more sample per ray, the backdrop, after all others (padding
    included). It is evaluated separately, not chosen among the samples: an occupancy march ends in
    the last occupied cell (or has no samples at all), which is not the far end of the ray. Its
    interval has zero length; compositing with 'last_sample' makes it opaque whatever its length."""
    t_back = backdrop_distances(rays)
    back = _evaluate(field, rays, RaySamples(t_back, t_back, t_points=t_back))
    cat = lambda front, last: torch.cat([front, last], dim=2)  # noqa: E731
    mask = None if samples.mask is None else cat(samples.mask, torch.ones_like(t_back, dtype=torch.bool))
    merged = RaySamples(cat(samples.t_starts, t_back), cat(samples.t_ends, t_back),
                        t_points=cat(samples.positions, t_back), mask=mask)
    features = None
    if back.features is not None:
        # A march that found no sample in any scene returns no features; its slots are padding.
        front = values.features
        if front is None:
            front = back.features.new_zeros(*values.density.shape, back.features.shape[-1])
        features = cat(front, back.features)
    return merged, _FieldSamples(
        cat(values.density, back.density), cat(values.rgb, back.rgb), features, values.count + back.count
    )


def _evaluate(field: object, rays: RayBundle, samples: RaySamples, keep_logits: bool = False) -> _FieldSamples:
    """Queries the field at the samples; with a mask, only real samples are sent (per scene, padded
    to the largest scene's count) and the results are scattered back (zero density elsewhere).
    ``keep_logits`` keeps the field's ``density_logits`` when it gives them (unmasked samples only)."""
    b, r, s = samples.t_starts.shape
    if samples.mask is None:
        points = sample_points(rays, samples).reshape(b, r * s, 3)
        directions = rays.directions[:, :, None, :].expand(b, r, s, 3).reshape(b, r * s, 3)
        out = field(points, directions)
        _check_outputs(out, b, r * s)
        feats = None if out.features is None else out.features.reshape(b, r, s, -1)
        logits = getattr(out, "density_logits", None) if keep_logits else None
        return _FieldSamples(out.density.reshape(b, r, s), out.rgb.reshape(b, r, s, 3), feats, b * r * s,
                             None if logits is None else logits.reshape(b, r, s))
    mask = samples.mask.reshape(b, r * s)
    counts = mask.sum(dim=1)
    n_max = int(counts.max().item()) if mask.numel() else 0
    if n_max == 0:
        zeros = samples.t_starts.new_zeros(b, r, s)
        return _FieldSamples(zeros, zeros[..., None].expand(b, r, s, 3), None, 0)
    # Each scene's real samples, in order, in slots 0..count-1; the remaining slots (padding up to
    # the largest scene's count) are evaluated at the origin and discarded.
    scene, flat_index = torch.nonzero(mask, as_tuple=True)
    slot = torch.arange(scene.numel(), device=mask.device) - (torch.cumsum(counts, 0) - counts)[scene]
    ray = flat_index // s
    t = samples.positions.reshape(b, r * s)[scene, flat_index]
    directions = rays.directions[scene, ray]
    points = rays.origins.new_zeros(b, n_max, 3).index_put((scene, slot), rays.origins[scene, ray] + directions * t[:, None])
    out = field(points, rays.directions.new_zeros(b, n_max, 3).index_put((scene, slot), directions))
    _check_outputs(out, b, n_max)

    def scatter(values: Tensor) -> Tensor:
        full = values.new_zeros(b, r * s, values.shape[-1])
        return full.index_put((scene, flat_index), values[scene, slot])

    feats = None if out.features is None else scatter(out.features).reshape(b, r, s, -1)
    return _FieldSamples(scatter(out.density).reshape(b, r, s), scatter(out.rgb).reshape(b, r, s, 3), feats, b * n_max)


def _check_outputs(out: object, b: int, n: int) -> None:
    density, rgb = getattr(out, "density", None), getattr(out, "rgb", None)
    if not isinstance(density, Tensor) or tuple(density.shape) != (b, n, 1):
        got = list(density.shape) if isinstance(density, Tensor) else type(density).__name__
        raise ValueError(f"field output density must have shape [{b}, {n}, 1], got {got}")
    if not isinstance(rgb, Tensor) or tuple(rgb.shape) != (b, n, 3):
        got = list(rgb.shape) if isinstance(rgb, Tensor) else type(rgb).__name__
        raise ValueError(f"field output rgb must have shape [{b}, {n}, 3], got {got}")
    features = getattr(out, "features", None)
    if features is not None and (features.ndim != 3 or tuple(features.shape[:2]) != (b, n)):
        raise ValueError(f"field output features must have shape [{b}, {n}, f], got {list(features.shape)}")


def _merge_values(coarse: _FieldSamples, fine: _FieldSamples, order: Tensor) -> _FieldSamples:
    """Field values of coarse and fine samples in the merged (sorted) order."""
    pick = lambda c, f: torch.cat([c, f], dim=2).gather(  # noqa: E731
        2, order if c.ndim == 3 else order[..., None].expand(*order.shape, c.shape[-1])
    )
    features = None
    if coarse.features is not None and fine.features is not None:
        features = pick(coarse.features, fine.features)
    logits = None
    if coarse.density_logits is not None and fine.density_logits is not None:
        logits = pick(coarse.density_logits, fine.density_logits)
    return _FieldSamples(
        pick(coarse.density, fine.density), pick(coarse.rgb, fine.rgb), features, coarse.count + fine.count, logits
    )


def _pad_samples(tensor: Tensor, size: int, value: Tensor | float | bool) -> Tensor:
    """Pads the sample axis (dim 2) of a [b, r, s] tensor to ``size``."""
    missing = size - tensor.shape[2]
    if missing == 0:
        return tensor
    if isinstance(value, Tensor):
        pad = value.expand(*tensor.shape[:2], missing).to(tensor.dtype)
    else:
        pad = torch.full((*tensor.shape[:2], missing), value, dtype=tensor.dtype, device=tensor.device)
    return torch.cat([tensor, pad], dim=2)


def _concat_chunks(chunks: list[RenderOutput]) -> RenderOutput:
    """Joins chunks of rays; sample axes of different lengths are padded with zero-length, zero-weight samples."""
    s = max(c.weights.shape[2] for c in chunks)
    weights, starts, ends, points, masks = [], [], [], [], []
    for c in chunks:
        far = c.samples.t_ends[..., -1:] if c.samples.num_samples else c.depth
        weights.append(_pad_samples(c.weights, s, 0.0))
        starts.append(_pad_samples(c.samples.t_starts, s, far))
        ends.append(_pad_samples(c.samples.t_ends, s, far))
        points.append(_pad_samples(c.samples.positions, s, far))
        mask = c.samples.mask if c.samples.mask is not None else torch.ones_like(c.weights, dtype=torch.bool)
        masks.append(_pad_samples(mask, s, False))
    cat = lambda xs: torch.cat(xs, dim=1)  # noqa: E731
    features = None if chunks[0].features is None else cat([c.features for c in chunks])
    any_mask = any(c.samples.mask is not None for c in chunks) or any(c.weights.shape[2] != s for c in chunks)
    samples = RaySamples(cat(starts), cat(ends), t_points=cat(points), mask=cat(masks) if any_mask else None)
    return RenderOutput(
        rgb=cat([c.rgb for c in chunks]),
        depth=cat([c.depth for c in chunks]),
        opacity=cat([c.opacity for c in chunks]),
        weights=cat(weights),
        samples=samples,
        features=features,
        num_field_evaluations=sum(c.num_field_evaluations for c in chunks),
    )

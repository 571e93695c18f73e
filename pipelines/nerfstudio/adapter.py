"""Any nerfstudio ``Field`` as our field protocol, so :class:`renderers.VolumeRenderer` can render it."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
from torch import Tensor

from pipelines.nerfstudio.imports import require_nerfstudio
from pipelines.nerfstudio.scene_transform import SceneTransformConfig
from renderers.field import FieldValues


@dataclass
class NerfstudioFieldAdapterConfig:
    """How our renderer's queries are turned into nerfstudio ray samples."""

    transform: SceneTransformConfig = dataclasses.field(default_factory=SceneTransformConfig)
    """Where the nerfstudio scene sits in our renderer's world (``p_ours = scale * R p_scene + translation``)."""
    camera_index: int = 0
    """Camera index handed to the field (per-image appearance embeddings, e.g. nerfacto's)."""
    pixel_area: float = 1e-6
    """Projected pixel area at unit distance handed to the field (only cone-traced encodings read it)."""
    default_direction: tuple[float, float, float] = (0.0, 0.0, 1.0)
    """Scene-space view direction used when the renderer passes no directions (density-only queries)."""


class NerfstudioFieldAdapter:
    """Wraps a nerfstudio ``Field`` as a :class:`renderers.field.RadianceField` of one scene.

    Each query point becomes a zero-length nerfstudio ``Frustums`` whose origin is the point
    (mapped into scene coordinates) and whose direction is the ray direction, so the field sees
    exactly the positions and directions our renderer samples. Densities come back per unit of our
    world (divided by the transform's scale). ``b`` scenes of points are flattened into one query:
    a nerfstudio field holds one scene, so every batch item sees the same field.

    Fields that integrate over conical frustums (mip-NeRF's integrated encodings) see zero-length
    frustums and degrade to point samples; point-sampled fields (nerfacto, instant-ngp, vanilla
    NeRF, our :class:`EpigrafField`) are evaluated exactly.

    Example:
        >>> adapter = NerfstudioFieldAdapter(nerfacto_field)          # doctest: +SKIP
        >>> VolumeRenderer(config).render_image(adapter, cameras, 64)  # doctest: +SKIP
    """

    def __init__(self, field: torch.nn.Module, config: NerfstudioFieldAdapterConfig | None = None) -> None:
        require_nerfstudio()
        from nerfstudio.fields.base_field import Field

        if not isinstance(field, Field):
            raise ValueError(f"field must be a nerfstudio.fields.base_field.Field, got {type(field).__name__}")
        self.field = field
        self.config = NerfstudioFieldAdapterConfig() if config is None else config

    def _ray_samples(self, points: Tensor, directions: Tensor | None):
        from nerfstudio.cameras.rays import Frustums, RaySamples

        if points.ndim != 3 or points.shape[-1] != 3:
            raise ValueError(f"points must have shape [b, n, 3], got {list(points.shape)}")
        transform = self.config.transform
        flat = transform.points_from_box(points.reshape(-1, 3))
        if directions is None:
            dirs = flat.new_tensor(self.config.default_direction).expand_as(flat)
        else:
            if directions.shape != points.shape:
                raise ValueError(f"directions {list(directions.shape)} must match points {list(points.shape)}")
            dirs = transform.directions_from_box(directions.reshape(-1, 3))
        zeros = flat.new_zeros(flat.shape[0], 1)
        frustums = Frustums(
            origins=flat, directions=dirs, starts=zeros, ends=zeros,
            pixel_area=torch.full_like(zeros, self.config.pixel_area),
        )
        indices = torch.full((flat.shape[0], 1), self.config.camera_index, dtype=torch.long, device=flat.device)
        return RaySamples(frustums=frustums, camera_indices=indices, deltas=zeros)

    def __call__(self, points: Tensor, directions: Tensor | None = None) -> FieldValues:
        """Density [b, n, 1] (per unit of our world) and rgb [b, n, 3] at our world points."""
        from nerfstudio.field_components.field_heads import FieldHeadNames

        b, n = points.shape[:2]
        outputs = self.field(self._ray_samples(points, directions))
        density = outputs[FieldHeadNames.DENSITY].reshape(b, n, 1) / self.config.transform.scale
        return FieldValues(density=density, rgb=outputs[FieldHeadNames.RGB].reshape(b, n, 3), features=None)

    def density(self, points: Tensor) -> Tensor:
        """Density only [b, n, 1] (occupancy grids, marching cubes)."""
        b, n = points.shape[:2]
        density, _ = self.field.get_density(self._ray_samples(points, None))
        return density.reshape(b, n, 1) / self.config.transform.scale

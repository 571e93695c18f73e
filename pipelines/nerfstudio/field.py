"""Our tri-plane field as a nerfstudio ``Field``: one latent of a trained generator in a nerfstudio scene."""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn

from pipelines.nerfstudio.imports import require_nerfstudio

require_nerfstudio()

from nerfstudio.cameras.rays import RaySamples  # noqa: E402
from nerfstudio.field_components.field_heads import FieldHeadNames  # noqa: E402
from nerfstudio.fields.base_field import Field  # noqa: E402

from pipelines.model import GeneratorModel  # noqa: E402
from pipelines.nerfstudio.normals import density_normals  # noqa: E402
from pipelines.nerfstudio.scene_transform import SceneTransformConfig  # noqa: E402
from renderers.cameras import LABEL_SIZE, Cameras  # noqa: E402

LatentKind = Literal["z", "w", "w+"]
LATENT_KINDS = ("z", "w", "w+")


def mean_ws(model: GeneratorModel) -> Tensor:
    """ws [1, num_ws, w_dim] of the truncation centre (the generator's tracked mean w in every row).

    Truncation with psi 0 maps any latent onto the centre, so no consumer reads the mapping
    network's buffers. Example: a generator with 14 ws of 512 gives [1, 14, 512], every row w_avg.
    """
    centre = model.with_options(truncation_psi=0.0, truncation_cutoff=None)
    with torch.no_grad():
        return centre.mapping(torch.zeros(1, model.z_dim, device=model.device)).detach()


class EpigrafField(Field):
    """A nerfstudio ``Field`` that evaluates one scene of a trained generator (any :class:`GeneratorModel`).

    The scene is given by ``latent``: ``z`` [1, z_dim] (mapped with ``truncation_psi``; a
    pose-conditioned generator sees ``conditioning``, a [1, 25] camera label, or by default the
    centre pose of the cameras it was trained under), one ``w`` [1, w_dim] shared by every
    synthesis layer, or ``w+`` [1, num_ws, w_dim]. Its scene representation (tri-planes) is
    computed once and cached until the latent changes (an optimizer step or a loaded state), or
    until :meth:`invalidate_planes` is called (a training step does, so each step's planes carry a
    fresh autograd graph). After :meth:`use_plane_parameters` the planes themselves are the
    parameters and the latent is no longer used (pivotal tuning of the planes).

    The radiance field is the model's own (``model.field``): for eg3d that is the tri-plane field
    whose first feature channels are its rgb, rendered here directly without super-resolution.

    Sample positions come in nerfstudio scene coordinates and are mapped into the generator's
    box by ``transform`` (:class:`SceneTransformConfig`); densities are returned per scene unit.
    ``get_density`` evaluates density and colour in one decoder pass and hands the colour on as
    the density embedding, so ``forward`` costs one evaluation per sample.

    The generator's weights are frozen; only ``latent`` (when ``trainable``) and, after the switch,
    ``planes`` receive gradients.
    """

    def __init__(
        self,
        model: GeneratorModel,
        latent: Tensor,
        latent_kind: LatentKind = "w",
        truncation_psi: float = 1.0,
        conditioning: Tensor | None = None,
        transform: SceneTransformConfig | None = None,
        trainable: bool = False,
        plane_parameters: bool = False,
    ) -> None:
        super().__init__()
        if latent_kind not in LATENT_KINDS:
            raise ValueError(f"latent_kind must be one of {LATENT_KINDS}, got {latent_kind!r}")
        centre = mean_ws(model)
        _, self.num_ws, self.w_dim = centre.shape
        expected = {"z": (1, model.z_dim), "w": (1, self.w_dim), "w+": (1, self.num_ws, self.w_dim)}[latent_kind]
        if tuple(latent.shape) != expected:
            raise ValueError(
                f"latent of kind {latent_kind!r} must have shape {list(expected)} for this generator, "
                f"got {list(latent.shape)}"
            )
        if conditioning is not None and tuple(conditioning.shape) != (1, LABEL_SIZE):
            raise ValueError(
                f"conditioning must be one {LABEL_SIZE}-float camera label of shape [1, {LABEL_SIZE}] "
                f"(16 pose + 9 intrinsics), got {list(conditioning.shape)}"
            )
        self.model = model.with_options(truncation_psi=float(truncation_psi))
        # Registered so that moving the field moves the weights; frozen, and left out of every
        # parameter group of the nerfstudio model. The name keeps the checkpoint keys of earlier runs.
        self.generator = model.network.requires_grad_(False)
        self.latent_kind = latent_kind
        self.truncation_psi = float(truncation_psi)
        self.transform = SceneTransformConfig() if transform is None else transform
        self.latent = nn.Parameter(latent.detach().clone(), requires_grad=trainable)
        self.register_buffer("conditioning", None if conditioning is None else conditioning.detach().clone())
        self.register_buffer("mean_ws", centre, persistent=False)
        with torch.no_grad():
            planes_shape = model.synthesize(centre).shape
        # The plane parameters exist from the start (zeros until the switch) so that an optimizer
        # built before the switch already holds them; a checkpoint keeps them and the switch flag.
        self.planes = nn.Parameter(torch.zeros(planes_shape, device=latent.device), requires_grad=plane_parameters)
        self.register_buffer("uses_plane_parameters", torch.tensor(False, device=latent.device))
        self._cached_planes: Tensor | None = None
        self._cache_key: tuple | None = None

    # ----- the scene ---------------------------------------------------------------------------
    def ws(self) -> Tensor:
        """The latent as ws [1, num_ws, w_dim]."""
        if self.latent_kind == "w+":
            return self.latent
        if self.latent_kind == "w":
            return self.latent[:, None, :].expand(1, self.num_ws, -1)
        condition = None if self.conditioning is None else Cameras.from_label(self.conditioning)
        return self.model.mapping(self.latent, condition)

    def current_planes(self) -> Tensor:
        """Tri-planes [1, 3, C, R, R] of the scene (cached; recomputed when the latent has changed)."""
        if bool(self.uses_plane_parameters):
            return self.planes
        # A graph from the latent is only worth building when the latent is being optimized: a frozen
        # scene keeps one set of planes whatever the grad mode of the caller (normals need grad mode).
        needs_graph = torch.is_grad_enabled() and self.latent.requires_grad
        key = (self.latent._version, self.latent.data_ptr(), needs_graph)
        if self._cached_planes is None or key != self._cache_key:
            with torch.set_grad_enabled(needs_graph):
                self._cached_planes = self.model.synthesize(self.ws())
            self._cache_key = key
        return self._cached_planes

    @property
    def is_trainable(self) -> bool:
        """Whether the latent or the planes receive gradients (an inversion; a sampled scene is frozen)."""
        return bool(self.latent.requires_grad or self.planes.requires_grad)

    def invalidate_planes(self) -> None:
        """Forget the cached planes (the next query synthesizes them again)."""
        self._cached_planes, self._cache_key = None, None

    def use_plane_parameters(self) -> None:
        """From now on optimize the planes directly, starting from the current latent's planes."""
        with torch.no_grad():
            self.planes.copy_(self.model.synthesize(self.ws()))
        self.planes.requires_grad_(True)
        self.latent.requires_grad_(False)
        self.uses_plane_parameters.fill_(True)
        self.invalidate_planes()

    def planes_field(self):
        """The scene as our own field protocol (generator world coordinates)."""
        return self.model.field(self.current_planes())

    # ----- nerfstudio's Field interface ----------------------------------------------------------
    def query(self, positions: Tensor, planes: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Density [*bs, 1] per scene unit and colour [*bs, 3] at scene positions [*bs, 3] (default: current planes)."""
        batch_shape = positions.shape[:-1]
        points = self.transform.points_to_box(positions.reshape(1, -1, 3))
        out = self.model.field(self.current_planes() if planes is None else planes)(points)
        density = self.transform.density_to_scene(out.density).reshape(*batch_shape, 1)
        return density, out.rgb.reshape(*batch_shape, 3)

    def get_density(self, ray_samples: RaySamples) -> tuple[Tensor, Tensor]:
        """Density [*bs, 1] per scene unit, and the colour [*bs, 3] as the density embedding."""
        return self.query(ray_samples.frustums.get_positions())

    def forward(self, ray_samples: RaySamples, compute_normals: bool = False) -> dict:
        """Density and colour; with ``compute_normals`` also ``FieldHeadNames.NORMALS`` [*bs, 3] in scene axes.

        Normals are ``-normalize(grad sigma)`` with respect to the sample positions only
        (:func:`pipelines.nerfstudio.normals.density_normals`): the planes are taken in the caller's
        grad mode, so an evaluation under ``torch.no_grad()`` builds no graph to the latent.
        """
        if not compute_normals:
            return super().forward(ray_samples)
        planes = self.current_planes()
        colours: list[Tensor] = []

        def density_fn(positions: Tensor) -> Tensor:
            density, rgb = self.query(positions, planes)
            colours.append(rgb)
            return density

        positions = ray_samples.frustums.get_positions()
        density, normals = density_normals(density_fn, positions)
        rgb = colours[0] if torch.is_grad_enabled() else colours[0].detach()
        return {FieldHeadNames.RGB: rgb, FieldHeadNames.DENSITY: density, FieldHeadNames.NORMALS: normals}

    def get_outputs(self, ray_samples: RaySamples, density_embedding: Tensor | None = None) -> dict:
        """``{FieldHeadNames.RGB: colour [*bs, 3]}`` (the field has no view dependence)."""
        if density_embedding is None:
            _, density_embedding = self.get_density(ray_samples)
        return {FieldHeadNames.RGB: density_embedding}

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs) -> None:
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        # A loaded checkpoint may have switched to plane parameters: keep requires_grad consistent.
        if bool(self.uses_plane_parameters):
            self.planes.requires_grad_(True)
            self.latent.requires_grad_(False)
        self.invalidate_planes()

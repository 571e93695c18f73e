"""IG-GAN's voxel generator (3D-GAN style transposed convolutions) and the voxel grid as a radiance field."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import torch
from jaxtyping import Float
from torch import Tensor, nn

from epigraf_field.config_io import config_from_dict, config_to_dict
from renderers.field import FieldValues

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "weights.safetensors"
VOXEL_CHANNELS = 4
"""Channels of a generated grid: occupancy in [0, 1], then sRGB colour in [0, 1]."""


@dataclass
class VoxelGeneratorConfig:
    """A latent becomes a grid of continuous occupancies and colours (Wu et al. 2016, 3D-GAN, with colour added)."""

    z_dim: int = 200
    """Latent size (3D-GAN: 200)."""
    resolution: int = 64
    """Voxels per side (a power of two >= 8; IG-GAN: 64)."""
    channels: tuple[int, ...] = (256, 128, 64, 32)
    """Channels of the 4^3 start and of each transposed-convolution stage but the last (one fewer entry than
    log2(resolution / 4) + 1 would need is padded with the last value)."""
    box_half_size: float = 0.5
    """The grid spans [-h, h]^3 in world units (the dataset's scene box)."""
    density_scale: float = 100.0
    """Volume density of occupancy 1 per world unit: crossing one occupied voxel of side 2h / resolution then
    has opacity 1 - exp(-density_scale * 2h / resolution)."""
    blur: bool = True
    """A fixed [1, 2, 1] / 4 blur along each axis after every transposed convolution: it removes the period-2
    checkerboard that stride-2 transposed convolutions leave (not in 3D-GAN; without it G painted lattices that
    R renders but f, which sees the grid blurred, cannot, so nothing taught G to stop)."""
    surface_sharpness: float | None = 40.0
    """The field's density is density_scale * sigmoid(surface_sharpness * (occupancy - surface_threshold)): the
    surface R renders, without a fog of occupancy below the threshold; None: density_scale * occupancy."""
    surface_threshold: float = 0.5
    """The occupancy of the surface (the pipeline sets R's binarization threshold)."""
    occupancy_bias: float = 0.0
    """Added to the occupancy logit before the sigmoid (negative values start from emptier grids)."""
    initial_radius: float | None = None
    """None: the grid starts as the network's noise (3D-GAN; at occupancy ~0.5 its binarization is salt noise).
    A radius in world units: a fixed ball prior is added to the occupancy logit, min((r - |p|) / voxel, 3), so
    every latent starts as a ball of this radius whose surface the network then moves, and matter far outside
    it (the box's corners and faces) costs more the farther out it is (not in the paper)."""

    def __post_init__(self) -> None:
        self.channels = tuple(int(c) for c in self.channels)
        if self.resolution < 8 or self.resolution & (self.resolution - 1):
            raise ValueError(f"VoxelGeneratorConfig.resolution must be a power of two >= 8, got {self.resolution}")
        if self.z_dim <= 0 or not self.channels or min(self.channels) <= 0:
            raise ValueError("VoxelGeneratorConfig.z_dim and every entry of channels must be positive")
        if not self.box_half_size > 0 or not self.density_scale > 0:
            raise ValueError("VoxelGeneratorConfig.box_half_size and density_scale must be positive")
        if self.initial_radius is not None and not 0 < self.initial_radius < self.box_half_size:
            raise ValueError(f"VoxelGeneratorConfig.initial_radius must lie in (0, box_half_size = "
                             f"{self.box_half_size}) or be None, got {self.initial_radius}")

    @property
    def num_stages(self) -> int:
        """Transposed convolutions doubling 4^3 up to resolution^3."""
        return int(math.log2(self.resolution // 4))

    def stage_channels(self) -> list[int]:
        """Channels at 4^3 and after each stage but the last (the last stage outputs VOXEL_CHANNELS)."""
        wanted = self.num_stages
        return [self.channels[min(i, len(self.channels) - 1)] for i in range(wanted)]


def voxel_centres(resolution: int, box_half_size: float, device: torch.device | str | None = None
                  ) -> Float[Tensor, "d d d 3"]:
    """World points (x, y, z) of the voxel centres of a grid spanning [-h, h]^3, at index [d, h, w] (the grid
    layout: d is z, w is x)."""
    coords = (torch.arange(resolution, device=device, dtype=torch.float32) + 0.5) / resolution * 2 - 1
    coords = coords * box_half_size
    z, y, x = torch.meshgrid(coords, coords, coords, indexing="ij")
    return torch.stack([x, y, z], dim=-1)


def blur_3d(x: Float[Tensor, "b c d h w"]) -> Float[Tensor, "b c d h w"]:
    """Each channel filtered by [1, 2, 1] / 4 along each axis (edges replicated): constants pass unchanged and
    the period-2 checkerboard is removed exactly."""
    taps = torch.tensor([0.25, 0.5, 0.25], dtype=x.dtype, device=x.device)
    channels = x.shape[1]
    for axis in range(3):
        shape = [1, 1, 1, 1, 1]
        shape[2 + axis] = 3
        kernel = taps.reshape(shape).expand(channels, *shape[1:]).contiguous()
        pad = [0, 0, 0, 0, 0, 0]
        pad[2 * (2 - axis)] = pad[2 * (2 - axis) + 1] = 1  # F.pad lists the last axis first
        x = nn.functional.conv3d(nn.functional.pad(x, pad, mode="replicate"), kernel, groups=channels)
    return x


BALL_PRIOR_CLAMP = 3.0
"""Inside, the ball prior's logit saturates at 3 (occupancy 0.95) three voxels below its surface."""


def ball_logit_prior(config: VoxelGeneratorConfig) -> Float[Tensor, "1 1 d d d"]:
    """The fixed occupancy-logit offset of ``config.initial_radius`` (zeros when it is None): one logit unit per
    voxel of signed distance to a centred ball's surface, positive inside and at most 3."""
    size = config.resolution
    if config.initial_radius is None:
        return torch.zeros(1, 1, size, size, size)
    voxel = 2.0 * config.box_half_size / size
    radius = voxel_centres(size, config.box_half_size).norm(dim=-1)
    logit = ((config.initial_radius - radius) / voxel).clamp(max=BALL_PRIOR_CLAMP)
    return logit[None, None]


class VoxelGenerator(nn.Module):
    """z [b, z_dim] -> voxels [b, 4, D, D, D]: occupancy (sigmoid) and sRGB colour (sigmoid).

    A linear layer makes a 4^3 grid, then transposed 3D convolutions (kernel 4, stride 2) double it
    up to ``resolution`` as in 3D-GAN; leaky ReLUs between, no normalization (batch statistics would
    make a sample depend on its batch). Index [d, h, w] of the grid is world point (x, y, z) =
    (w, h, d) mapped to [-h, h] (the order ``grid_sample`` reads).

    Example:
        >>> g = VoxelGenerator(VoxelGeneratorConfig(z_dim=8, resolution=8, channels=(8,)))
        >>> g(torch.zeros(2, 8)).shape
        torch.Size([2, 4, 8, 8, 8])
    """

    def __init__(self, config: VoxelGeneratorConfig, seed: int = 0) -> None:
        super().__init__()
        self.config = config
        channels = config.stage_channels()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)  # initialization from the run's seed, not the caller's global state
            self.stem = nn.Linear(config.z_dim, channels[0] * 4**3)
            stages = []
            for index in range(config.num_stages):
                out = channels[index + 1] if index + 1 < len(channels) else VOXEL_CHANNELS
                stages.append(nn.ConvTranspose3d(channels[index], out, kernel_size=4, stride=2, padding=1))
            self.stages = nn.ModuleList(stages)
        self.register_buffer("occupancy_prior", ball_logit_prior(config), persistent=False)

    def forward(self, z: Float[Tensor, "b z"]) -> Float[Tensor, "b 4 d d d"]:
        x = self.stem(z).reshape(len(z), -1, 4, 4, 4)
        for stage in self.stages:
            x = nn.functional.leaky_relu(x, 0.2)
            x = stage(x)
            if self.config.blur:
                x = blur_3d(x)
        occupancy = torch.sigmoid(x[:, :1] + self.config.occupancy_bias + self.occupancy_prior)
        return torch.cat([occupancy, torch.sigmoid(x[:, 1:])], dim=1)

    # ------------------------------------------------------------------------------------- files
    def save(self, directory: Path) -> None:
        """``config.json`` (format, class, config) and ``weights.safetensors``."""
        from safetensors.torch import save_file

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        header = {"format_version": 1, "class": "VoxelGenerator", "config": config_to_dict(self.config)}
        (directory / CONFIG_FILE).write_text(json.dumps(header, indent=2))
        save_file({k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()},
                  str(directory / WEIGHTS_FILE))

    @classmethod
    def load(cls, directory: Path, device: torch.device | str = "cpu") -> VoxelGenerator:
        """Reads :meth:`save`'s files; errors name the file and what to do."""
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        directory = Path(directory)
        path = directory / CONFIG_FILE
        try:
            header = json.loads(path.read_text())
            if header.get("class") != "VoxelGenerator":
                raise ValueError(f"it describes a {header.get('class')!r}, not a VoxelGenerator")
            config = config_from_dict(VoxelGeneratorConfig, header["config"])
        except FileNotFoundError:
            raise FileNotFoundError(f"{path} is missing: the ig-gan bundle {directory} is incomplete; copy it again "
                                    "from its run") from None
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as error:
            raise ValueError(f"{path} is not a voxel generator config ({error}); the bundle is damaged") from error
        generator = cls(config)
        try:
            generator.load_state_dict(load_file(str(directory / WEIGHTS_FILE)))
        except (SafetensorError, RuntimeError, OSError) as error:
            raise ValueError(f"{directory / WEIGHTS_FILE} does not hold this voxel generator's weights ({error}); "
                             "the bundle is damaged: copy it again from its run") from error
        return generator.to(device)


# ------------------------------------------------------------------------------------- the field
def binarize(voxels: Float[Tensor, "b 4 d d d"], threshold: float = 0.5) -> Float[Tensor, "b 4 d d d"]:
    """The grid R renders: occupancy 1 where it is above ``threshold`` (strictly), else 0; colours kept."""
    occupied = (voxels[:, :1] > threshold).to(voxels.dtype)
    return torch.cat([occupied, voxels[:, 1:]], dim=1)


def soft_binarize(occupancy: Tensor, threshold: float, sharpness: float) -> Tensor:
    """A differentiable step at ``threshold``: sigmoid(sharpness * (occupancy - threshold)), in (0, 1)."""
    return torch.sigmoid(sharpness * (occupancy - threshold))


def sample_grid(voxels: Float[Tensor, "b c d d d"], points: Float[Tensor, "b n 3"],
                box_half_size: float) -> Float[Tensor, "b n c"]:
    """Trilinear values of the grid at world points; zero outside [-h, h]^3 (and fading to zero over the
    outer half voxel, where trilinear interpolation meets the zero padding)."""
    grid = (points / box_half_size).to(voxels.dtype)
    values = nn.functional.grid_sample(voxels, grid[:, :, None, None, :], mode="bilinear", padding_mode="zeros",
                                       align_corners=False)  # [b, c, n, 1, 1]
    values = values[:, :, :, 0, 0].transpose(1, 2)
    inside = (grid.abs() <= 1.0).all(dim=-1, keepdim=True)
    return values * inside


@dataclass
class VoxelField:
    """A batch of voxel grids as a radiance field (the renderer's protocol): density = density_scale * trilinear
    occupancy, colour = trilinear colour (no shading: the volume renderer shows albedo), zero outside the grid.

    Example:
        >>> grid = torch.zeros(1, 4, 8, 8, 8); grid[:, 0] = 1
        >>> VoxelField(grid, 0.5, 100.0).density(torch.tensor([[[0.0, 0.0, 0.0], [0.9, 0.0, 0.0]]]))[..., 0]
        tensor([[100.,   0.]])
    """

    voxels: Float[Tensor, "b 4 d d d"]
    box_half_size: float
    density_scale: float
    surface_sharpness: float | None = None
    """None: density proportional to occupancy; else a soft step at ``surface_threshold`` (see
    VoxelGeneratorConfig.surface_sharpness)."""
    surface_threshold: float = 0.5

    def _density(self, occupancy: Tensor) -> Tensor:
        if self.surface_sharpness is None:
            return self.density_scale * occupancy.clamp(min=0.0)
        inside = (occupancy != 0).to(occupancy.dtype)  # zero outside the grid, whatever the step gives at 0
        step = soft_binarize(occupancy, self.surface_threshold, self.surface_sharpness)
        return self.density_scale * step * inside

    def __call__(self, points: Float[Tensor, "b n 3"], directions: Float[Tensor, "b n 3"] | None = None) -> FieldValues:
        values = sample_grid(self.voxels, points, self.box_half_size)
        return FieldValues(density=self._density(values[..., :1]), rgb=values[..., 1:4].clamp(0.0, 1.0))

    def density(self, points: Float[Tensor, "b n 3"]) -> Float[Tensor, "b n 1"]:
        return self._density(sample_grid(self.voxels[:, :1], points, self.box_half_size))

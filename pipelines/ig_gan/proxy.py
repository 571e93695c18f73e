"""f, IG-GAN's proxy neural renderer in the style of RenderNet (Nguyen-Phuoc et al. 2018): voxels + camera -> image."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from jaxtyping import Float
from torch import Tensor, nn

from pipelines.ig_gan.voxels import sample_grid, soft_binarize
from renderers.cameras import Cameras
from renderers.rays import generate_rays


@dataclass
class ProxyRendererConfig:
    """RenderNet-style layers: frustum resampling, 3D convolutions, a projection unit, 2D convolutions."""

    frustum_resolution: int = 64
    """Pixels per side of the camera frustum the grid is resampled into (the 2D part upsamples to the image)."""
    frustum_depth: int = 64
    """Samples along each frustum ray, spread over the scene box's depth range."""
    channels_3d: tuple[int, ...] = (16, 32)
    """Channels of the 3D convolutions; each after the first halves the depth (stride 2 along depth)."""
    projection_channels: int = 128
    """Channels after the projection unit (depth folded into channels, then a 1 x 1 convolution)."""
    channels_2d: tuple[int, ...] = (128, 64, 32)
    """Channels of the 2D convolution stages; a stage after the first upsamples x2 while the image needs it."""
    composite_hints: bool = True
    """Besides the folded depth, the projection unit receives 8 channels composited front to back along each
    frustum ray: colour, opacity, world normal and depth of the grid binarized softly at ``hint_threshold``
    (not in RenderNet or IG-GAN: it hands f visibility and shading cues it would otherwise need long to learn;
    False: RenderNet's projection alone)."""
    hint_threshold: float = 0.5
    """The occupancy the soft binarization of the hints is centred on (the pipeline sets R's threshold)."""
    hint_sharpness: float = 20.0
    """Slope of the soft binarization: alpha = sigmoid(sharpness * (occupancy - hint_threshold))."""
    hint_supersampling: int = 2
    """The hints sample each ray this many times more densely than the frustum (a one-voxel-thin wall must not
    fall between two samples)."""

    def __post_init__(self) -> None:
        self.channels_3d = tuple(int(c) for c in self.channels_3d)
        self.channels_2d = tuple(int(c) for c in self.channels_2d)
        if not self.channels_3d or not self.channels_2d or min(self.channels_3d + self.channels_2d) <= 0:
            raise ValueError("ProxyRendererConfig.channels_3d and channels_2d need at least one positive entry each")
        if self.hint_supersampling < 1:
            raise ValueError("ProxyRendererConfig.hint_supersampling must be >= 1")
        if self.frustum_resolution < 4 or self.frustum_depth < 2 ** len(self.channels_3d):
            raise ValueError("ProxyRendererConfig: frustum_resolution must be >= 4 and frustum_depth >= "
                             "2^len(channels_3d)")

    @property
    def hint_channels(self) -> int:
        return HINT_CHANNELS if self.composite_hints else 0

    @property
    def folded_depth(self) -> int:
        return self.frustum_depth // 2 ** (len(self.channels_3d) - 1)


HINT_CHANNELS = 8
"""Composited colour (3), opacity (1), world normal (3) and depth (1)."""


def occupancy_normals(occupancy: Float[Tensor, "b 1 d d d"]) -> Float[Tensor, "b 3 d d d"]:
    """Outward unit normals (x, y, z) of an occupancy grid, minus its central-difference gradient (index
    [d, h, w] is world (z, y, x)); zero where the grid is flat."""
    padded = nn.functional.pad(occupancy, (1, 1, 1, 1, 1, 1), mode="replicate")
    d_x = padded[:, :, 1:-1, 1:-1, 2:] - padded[:, :, 1:-1, 1:-1, :-2]
    d_y = padded[:, :, 1:-1, 2:, 1:-1] - padded[:, :, 1:-1, :-2, 1:-1]
    d_z = padded[:, :, 2:, 1:-1, 1:-1] - padded[:, :, :-2, 1:-1, 1:-1]
    gradient = torch.cat([d_x, d_y, d_z], dim=1)
    return -gradient / (gradient.norm(dim=1, keepdim=True) + 1e-3)


def composite_front_to_back(alpha: Float[Tensor, "b s h w"], values: Float[Tensor, "b c s h w"]
                            ) -> tuple[Float[Tensor, "b c h w"], Float[Tensor, "b 1 h w"], Float[Tensor, "b 1 h w"]]:
    """Alpha compositing along the depth axis s (nearest first): composited values, opacity and normalized
    depth (the background counts as depth 1)."""
    depth_steps = alpha.shape[1]
    transmittance = torch.cumprod(torch.cat([torch.ones_like(alpha[:, :1]), 1.0 - alpha[:, :-1]], dim=1), dim=1)
    weights = transmittance * alpha  # [b, s, h, w]
    composited = (weights[:, None] * values).sum(dim=2)
    opacity = weights.sum(dim=1, keepdim=True)
    positions = (torch.arange(depth_steps, device=alpha.device, dtype=alpha.dtype) + 0.5) / depth_steps
    depth = (weights * positions[:, None, None]).sum(dim=1, keepdim=True) + (1.0 - opacity)
    return composited, opacity, depth


def frustum_points(cameras: Cameras, resolution: int, depth: int, box_half_size: float
                   ) -> Float[Tensor, "b s h w 3"]:
    """World points of each camera's frustum grid: ``depth`` samples per pixel ray over [c - sqrt(3) h, c + sqrt(3) h],
    c the camera's distance to the origin (the depth range of the scene box seen from any direction)."""
    rays = generate_rays(cameras, resolution, box_half_size=box_half_size)
    distance = cameras.centers.norm(dim=-1)  # [b]
    reach = math.sqrt(3.0) * box_half_size
    steps = (torch.arange(depth, device=cameras.device, dtype=rays.origins.dtype) + 0.5) / depth
    t = (distance[:, None] - reach).clamp(min=0.0) + 2.0 * reach * steps[None]  # [b, s]
    points = rays.origins[:, None] + t[:, :, None, None] * rays.directions[:, None]  # [b, s, r, 3]
    return points.reshape(cameras.batch_size, depth, resolution, resolution, 3)


class ProxyRenderer(nn.Module):
    """f(x, camera): images [b, 3, R, R] in [-1, 1] of continuous voxel grids [b, 4, D, D, D].

    As RenderNet: the grid is trilinearly resampled into the camera's frustum (so the rest of the
    network works in camera space, depth along one axis), with the frustum points' world
    coordinates as three more channels (the lighting is fixed in the world, so shading depends on
    world directions); 3D convolutions; the projection unit folds depth into channels and mixes them
    with a 1 x 1 convolution (learning visibility); 2D convolutions upsample to the image. With
    ``composite_hints`` (our addition) the projection unit also gets the softly binarized grid's colour,
    opacity, normal and depth composited along each ray. Every step is differentiable in the grid, so a
    generator can be trained through it.

    Example:
        >>> f = ProxyRenderer(ProxyRendererConfig(8, 8, (4,), 8, (8, 4)), image_resolution=16, box_half_size=0.5)
        >>> cams = Cameras.from_spherical(torch.zeros(2), torch.zeros(2), 1.3, 40.0)
        >>> f(torch.rand(2, 4, 8, 8, 8), cams).shape
        torch.Size([2, 3, 16, 16])
    """

    def __init__(self, config: ProxyRendererConfig, image_resolution: int, box_half_size: float, seed: int = 0):
        super().__init__()
        self.config, self.image_resolution, self.box_half_size = config, image_resolution, box_half_size
        upsamples = int(round(math.log2(image_resolution / config.frustum_resolution)))
        if 2**upsamples * config.frustum_resolution != image_resolution or upsamples < 0:
            raise ValueError(f"ProxyRendererConfig.frustum_resolution ({config.frustum_resolution}) must be the image "
                             f"resolution ({image_resolution}) divided by a power of two")
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            layers_3d, previous = [], 4 + 3
            for index, channels in enumerate(config.channels_3d):
                stride = (1 if index == 0 else 2, 1, 1)
                layers_3d += [nn.Conv3d(previous, channels, 3, stride=stride, padding=1), nn.LeakyReLU(0.2)]
                previous = channels
            self.layers_3d = nn.Sequential(*layers_3d)
            self.projection = nn.Conv2d(previous * config.folded_depth + config.hint_channels,
                                        config.projection_channels, 1)
            layers_2d, previous = [], config.projection_channels
            for index, channels in enumerate(config.channels_2d):
                if index > 0 and upsamples > 0:
                    layers_2d.append(nn.Upsample(scale_factor=2, mode="nearest"))
                    upsamples -= 1
                layers_2d += [nn.Conv2d(previous, channels, 3, padding=1), nn.LeakyReLU(0.2)]
                previous = channels
            for _ in range(upsamples):  # more doublings than stages: finish them on the last width
                layers_2d += [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(previous, previous, 3, padding=1),
                              nn.LeakyReLU(0.2)]
            self.layers_2d = nn.Sequential(*layers_2d)
            self.to_rgb = nn.Conv2d(previous, 3, 1)

    def _sample(self, voxels: Float[Tensor, "b 4 d d d"], cameras: Cameras, depth: int, normals: bool
                ) -> Float[Tensor, "b c s h w"]:
        """Occupancy, colour x occupancy (and normals) at ``depth`` samples per frustum ray, with the samples'
        world coordinates divided by h last."""
        config = self.config
        points = frustum_points(cameras.to(voxels.device), config.frustum_resolution, depth,
                                self.box_half_size).to(voxels.dtype)
        b, s, h, w, _ = points.shape
        # Colour premultiplied by occupancy: R shows no colour where there is no matter, so neither may f
        # (else G could change f's image, not R's, by painting empty space).
        grid = [voxels[:, :1], voxels[:, :1] * voxels[:, 1:]] + ([occupancy_normals(voxels[:, :1])] if normals else [])
        values = sample_grid(torch.cat(grid, dim=1), points.reshape(b, -1, 3), self.box_half_size)
        features = torch.cat([values, points.reshape(b, -1, 3) / self.box_half_size], dim=-1)
        return features.reshape(b, s, h, w, -1).permute(0, 4, 1, 2, 3)

    def resample(self, voxels: Float[Tensor, "b 4 d d d"], cameras: Cameras) -> Float[Tensor, "b 7 s h w"]:
        """The grid in each camera's frustum (occupancy, colour x occupancy) with the world coordinates of the
        samples (divided by h)."""
        return self._sample(voxels, cameras, self.config.frustum_depth, normals=False)

    def hints(self, voxels: Float[Tensor, "b 4 d d d"], cameras: Cameras) -> Float[Tensor, "b 8 h w"]:
        """Colour, opacity, normal and depth composited along each frustum ray (see ``composite_hints``)."""
        config = self.config
        samples = self._sample(voxels, cameras, config.frustum_depth * config.hint_supersampling, normals=True)
        occupancy, normals = samples[:, 0], samples[:, 4:7]
        colour = (samples[:, 1:4] / occupancy.clamp(min=1e-3)[:, None]).clamp(0, 1)
        alpha = soft_binarize(occupancy, config.hint_threshold, config.hint_sharpness)
        composited, opacity, depth = composite_front_to_back(alpha, torch.cat([colour, normals], dim=1))
        return torch.cat([composited[:, :3], opacity, composited[:, 3:], depth], dim=1)

    def forward(self, voxels: Float[Tensor, "b 4 d d d"], cameras: Cameras) -> Float[Tensor, "b 3 r r"]:
        x = self.layers_3d(self.resample(voxels, cameras))
        b, c, s, h, w = x.shape
        x = x.reshape(b, c * s, h, w)
        if self.config.composite_hints:
            x = torch.cat([x, self.hints(voxels, cameras)], dim=1)
        x = nn.functional.leaky_relu(self.projection(x), 0.2)
        return self.to_rgb(self.layers_2d(x))  # linear: the white background (1) is no saturated tanh

"""EG3D's 2D super-resolution network: bilinear-upsampled feature image + StyleGAN2 modulated blocks with toRGB skips."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from epigraf_field.layers import upsample_2d
from epigraf_field.synthesis import NoiseMode, SynthesisLayer, ToPlanes

# EG3D's hybrid upsamplers start their blocks at 64^2 (128^2 output) or 128^2 (256^2 and 512^2 outputs).
MAX_INPUT_RESOLUTION = 128


@dataclass
class SuperResolutionConfig:
    """The super-resolution network (EG3D's SuperresolutionHybrid 2X / 4X / 8XDC, for any power-of-two output)."""

    output_resolution: int = 256
    """Pixels per side of the super-resolved image (follows --resolution)."""
    in_channels: int = 32
    """Channels of the rendered feature image (follows the generator's num_feature_channels); the first 3 are rgb."""
    input_resolution: int | None = None
    """Resolution the feature image is bilinearly resized to before the first block; None: min(R / 2, 128) as EG3D."""
    channels: int | None = None
    """Channels of the first block (each later block has half, at least 1); None: 128, or 256 for outputs of 512
    and more (EG3D's 'DC' variant doubles the channels at 512^2)."""
    use_noise: bool = False
    """Per-pixel noise inputs in the blocks. EG3D trains with superresolution_noise_mode 'none': screen-space
    noise cannot follow the surface when the camera moves."""
    conv_clamp: float | None = None
    """Optional clamp of block activations (StyleGAN2-ADA uses 256 with mixed precision)."""

    def __post_init__(self) -> None:
        for name in ("output_resolution", "in_channels"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"SuperResolutionConfig.{name} must be a positive int, got {value!r}")
        if self.in_channels < 3:
            raise ValueError(
                f"SuperResolutionConfig.in_channels must be >= 3 (the first 3 channels are rgb), got {self.in_channels}; "
                "set the generator's num_feature_channels (EG3D: 32)"
            )
        r = self.resolved_input_resolution
        if r < 4 or r & (r - 1) or self.output_resolution & (self.output_resolution - 1) or r >= self.output_resolution:
            raise ValueError(
                f"SuperResolutionConfig: input_resolution ({r}) and output_resolution ({self.output_resolution}) must be "
                "powers of two with 4 <= input < output; leave input_resolution None for EG3D's choice"
            )

    @property
    def resolved_input_resolution(self) -> int:
        if self.input_resolution is not None:
            return self.input_resolution
        return min(self.output_resolution // 2, MAX_INPUT_RESOLUTION)

    @property
    def resolved_channels(self) -> int:
        if self.channels is not None:
            return self.channels
        return 256 if self.output_resolution >= 512 else 128

    def block_plan(self) -> list[tuple[int, int, int]]:
        """(resolution, channels, up) of each block: EG3D's layout.

        One doubling (2X, 4X) is a block at the input resolution followed by an upsampling block;
        two or more doublings (8XDC) are upsampling blocks only.
        """
        r = self.resolved_input_resolution
        doublings = int(math.log2(self.output_resolution // r))
        ups = [1, 2] if doublings == 1 else [2] * doublings
        plan, resolution, channels = [], r, self.resolved_channels
        for up in ups:
            resolution *= up
            plan.append((resolution, channels, up))
            channels = max(channels // 2, 1)
        return plan


class SuperResolutionBlock(nn.Module):
    """Two modulated 3x3 convs (the first upsamples when ``up == 2``) and a toRGB added to the upsampled skip image."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, resolution: int, up: int,
                 use_noise: bool, conv_clamp: float | None) -> None:
        super().__init__()
        self.up = up
        self.conv0 = SynthesisLayer(in_channels, out_channels, w_dim, resolution, up, use_noise, conv_clamp)
        self.conv1 = SynthesisLayer(out_channels, out_channels, w_dim, resolution, 1, use_noise, conv_clamp)
        self.to_rgb = ToPlanes(out_channels, 3, w_dim, conv_clamp)

    def forward(self, x: Tensor, img: Tensor, w: Tensor, noise_mode: NoiseMode,
                rng: torch.Generator | None) -> tuple[Tensor, Tensor]:
        x = self.conv0(x, w, noise_mode, rng)
        x = self.conv1(x, w, noise_mode, rng)
        img = upsample_2d(img) if self.up > 1 else img
        return x, img + self.to_rgb(x, w).to(img.dtype)


class SuperResolution(nn.Module):
    """Rendered rgb [b, 3, r, r] and features [b, f, r, r] (both in [-1, 1]) -> image [b, 3, R, R].

    EG3D (Chan et al. 2022, Sec. 4.2 and its SuperresolutionHybrid modules): both inputs are
    bilinearly resized to the input resolution; StyleGAN2 blocks then refine and upsample the
    features, and each block's toRGB output is added to the FIR-upsampled running image, which starts
    as the rendered rgb. So the network learns a residual on top of the upsampled render. Every layer
    takes the last w of the tri-plane synthesis (EG3D repeats ``ws[:, -1]``).

    Example:
        >>> sr = SuperResolution(SuperResolutionConfig(output_resolution=32, in_channels=8, channels=8), w_dim=8)
        >>> sr(torch.zeros(2, 3, 16, 16), torch.zeros(2, 8, 16, 16), torch.zeros(2, 5, 8)).shape
        torch.Size([2, 3, 32, 32])
    """

    def __init__(self, config: SuperResolutionConfig, w_dim: int) -> None:
        super().__init__()
        self.config, self.w_dim = config, w_dim
        blocks, in_channels = [], config.in_channels
        for resolution, channels, up in config.block_plan():
            blocks.append(SuperResolutionBlock(in_channels, channels, w_dim, resolution, up, config.use_noise,
                                               config.conv_clamp))
            in_channels = channels
        self.blocks = nn.ModuleList(blocks)

    def forward(self, rgb: Tensor, features: Tensor, ws: Tensor, noise_mode: NoiseMode = "const",
                rng: torch.Generator | None = None) -> Tensor:
        cfg = self.config
        if features.ndim != 4 or features.shape[1] != cfg.in_channels or rgb.shape[1] != 3:
            raise ValueError(
                f"SuperResolution: features must be [b, {cfg.in_channels}, h, w] and rgb [b, 3, h, w], got "
                f"{list(features.shape)} and {list(rgb.shape)}; render with num_feature_channels={cfg.in_channels}"
            )
        if ws.ndim != 3 or ws.shape[2] != self.w_dim:
            raise ValueError(f"SuperResolution: ws must be [b, num_ws, {self.w_dim}], got {list(ws.shape)}")
        size = cfg.resolved_input_resolution
        if features.shape[-1] != size:
            # Antialiasing only matters when shrinking (a 128^2 blended render into a 64^2 input).
            resize = dict(size=(size, size), mode="bilinear", align_corners=False, antialias=features.shape[-1] > size)
            features, rgb = F.interpolate(features, **resize), F.interpolate(rgb, **resize)
        w = ws[:, -1].float()
        x, img = features.float(), rgb.float()
        for block in self.blocks:
            x, img = block(x, img, w, noise_mode, rng)
        return img

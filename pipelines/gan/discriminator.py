"""EpiGRAF's location- and scale-aware StyleGAN2 residual discriminator for image patches."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from epigraf_field.layers import EqualizedConv2d, EqualizedLinear
from epigraf_field.mapping import normalize_2nd_moment
from renderers.patches import Patch


class PatchEmbedding(nn.Module):
    """Embeds (scale, offset x, offset y) in [0, 1]: Fourier features plus a learned lookup table.

    Each scalar ``x`` gives ``sin(pi 2^k x), cos(pi 2^k x)`` for ``k < num_frequencies`` and, as in
    EpiGRAF, a learned vector indexed by ``round(x * table_size)``.
    """

    def __init__(self, num_scalars: int = 3, num_frequencies: int = 10, table_size: int = 1000, table_dim: int = 256):
        super().__init__()
        self.num_scalars, self.table_size, self.table_dim = num_scalars, table_size, table_dim
        frequencies = math.pi * 2.0 ** torch.arange(num_frequencies, dtype=torch.float32)
        self.register_buffer("frequencies", frequencies, persistent=False)
        self.table = nn.Embedding(table_size + 1, table_dim) if table_dim > 0 else None

    @property
    def dim(self) -> int:
        return self.num_scalars * (2 * self.frequencies.numel() + self.table_dim)

    def forward(self, params: Tensor) -> Tensor:
        angles = params.float()[:, :, None] * self.frequencies  # [b, n, f]
        parts = [angles.sin(), angles.cos()]
        if self.table is not None:
            index = (params.float().clamp(0.0, 1.0) * self.table_size).round().long()
            parts.append(self.table(index))  # [b, n, table_dim]
        return torch.cat(parts, dim=2).flatten(1)


class ConditionMapping(nn.Module):
    """StyleGAN2-ADA's label mapping: embed, normalize, then ``num_layers`` leaky-ReLU FC layers."""

    def __init__(self, in_dim: int, out_dim: int, num_layers: int = 2, lr_multiplier: float = 0.01):
        super().__init__()
        self.embed = EqualizedLinear(in_dim, out_dim)
        self.layers = nn.Sequential(
            *[
                EqualizedLinear(out_dim, out_dim, activation="lrelu", lr_multiplier=lr_multiplier)
                for _ in range(num_layers)
            ]
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.layers(normalize_2nd_moment(self.embed(x)))


class MinibatchStd(nn.Module):
    """Appends the mean standard deviation over each group of consecutive items (StyleGAN2).

    Groups are consecutive (items 0..G-1, G..2G-1, ...) to match the patch sampler, which gives
    each such group one shared patch. (StyleGAN2's layer groups strided items i, i + b/G, ...,
    which only agrees with EpiGRAF's consecutive patch groups when b == G.)
    """

    def __init__(self, group_size: int = 4, num_channels: int = 1):
        super().__init__()
        self.group_size, self.num_channels = group_size, num_channels

    def forward(self, x: Tensor) -> Tensor:
        b, c, h, w = x.shape
        g = min(self.group_size, b)
        if b % g != 0:
            raise ValueError(
                f"MinibatchStd: batch size {b} is not divisible by the group size {g}; "
                "use a batch that is a multiple of DiscriminatorConfig.mbstd_group_size"
            )
        f = self.num_channels
        y = x.reshape(b // g, g, f, c // f, h, w)
        y = (y.var(dim=1, unbiased=False) + 1e-8).sqrt()  # [groups, f, c/f, h, w]
        y = y.mean(dim=(2, 3, 4))  # [groups, f]
        y = y.repeat_interleave(g, dim=0)[:, :, None, None].expand(b, f, h, w)
        return torch.cat([x, y], dim=1)


@dataclass
class DiscriminatorConfig:
    """StyleGAN2 residual discriminator with EpiGRAF's patch awareness and EG3D's camera conditioning."""

    resolution: int = 64
    """Pixels per side of the input (the patch resolution r; the image resolution for full images)."""
    image_resolution: int = 256
    """Pixels per side of full images (R); log2(R / r) extra blocks run at the input resolution."""
    in_channels: int = 3
    """Input channels (3 RGB; 6 for EG3D's dual discrimination)."""
    channel_base: int = 16384
    """Channels of a block at resolution res are min(channel_base // res, channel_max). EpiGRAF's default
    (fmaps 0.5, 27.4M parameters at 256^2 images with 64^2 patches); its R1 gamma was tuned for this width."""
    channel_max: int = 512
    """Upper bound on the channels of any block."""
    c_dim: int = 0
    """Size of the conditioning label (25 for the EG3D camera label; 0 = unconditional)."""
    cmap_dim: int | None = None
    """Size of the projection space of the conditioned output; None = the channels at 4x4."""
    patch_conditioning: bool = True
    """Condition on the patch (scale, offset): hyper-modulated blocks and the projection head."""
    mbstd_group_size: int = 4
    """Minibatch standard-deviation group size (consecutive items)."""
    mbstd_channels: int = 1
    """Number of minibatch standard-deviation features (0 = off)."""
    patch_frequencies: int = 10
    """Fourier frequencies pi * 2^k per patch scalar."""
    patch_table_dim: int = 256
    """Size of the learned lookup-table embedding per patch scalar (0 = Fourier features only)."""
    hyper_mod_dim: int = 512
    """Width of the hypernetwork that maps the patch embedding to per-block modulation."""
    mapping_layers: int = 2
    """Fully connected layers in the hypernetwork (patch embedding -> hyper-modulation), EpiGRAF's 2."""
    label_mapping_layers: int = 2
    """Fully connected layers in the label mapping of the projection head (camera label and patch embedding ->
    cmap). EpiGRAF: 2 (its mapping network's default); EG3D: 8 (StyleGAN2-ADA's). A config saved before this
    option existed gets 2, the depth it was trained with."""
    mapping_lr_multiplier: float = 0.01
    """Learning-rate multiplier of those layers (StyleGAN2's mapping network value)."""
    conv_clamp: float | None = 256.0
    """Clamp conv outputs to +-this (StyleGAN2-ADA's default; None = no clamp)."""

    def __post_init__(self) -> None:
        for name in ("resolution", "image_resolution", "in_channels", "channel_base", "channel_max"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"DiscriminatorConfig.{name} must be a positive int, got {value!r}")
        for name in ("resolution", "image_resolution"):
            value = getattr(self, name)
            if value < 8 or value & (value - 1):
                raise ValueError(f"DiscriminatorConfig.{name} must be a power of two >= 8, got {value}")
        if self.image_resolution < self.resolution:
            raise ValueError(
                f"DiscriminatorConfig.image_resolution ({self.image_resolution}) must be >= resolution "
                f"({self.resolution}); for full images set both to the image size"
            )
        for name in ("mapping_layers", "label_mapping_layers"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"DiscriminatorConfig.{name} must be an int >= 0, got {value!r}")
        if self.c_dim < 0 or self.mbstd_channels < 0:
            raise ValueError(
                f"DiscriminatorConfig.c_dim and mbstd_channels must be >= 0, got {self.c_dim}, {self.mbstd_channels}"
            )

    @property
    def num_extra_blocks(self) -> int:
        """EpiGRAF's additional blocks at the input resolution: log2(R / r)."""
        return int(math.log2(self.image_resolution // self.resolution))

    def channels(self, res: int) -> int:
        return min(self.channel_base // res, self.channel_max)


class DiscriminatorBlock(nn.Module):
    """Residual block: [3x3 conv, (hyper-modulated) 3x3 conv + downsample] plus a 1x1 skip, both
    scaled by sqrt(1/2) (Karras et al. 2020, Fig. 7c). ``down=1`` for EpiGRAF's extra blocks."""

    def __init__(
        self,
        in_channels: int,
        tmp_channels: int,
        out_channels: int,
        down: int,
        img_channels: int = 0,
        hyper_mod_dim: int = 0,
        conv_clamp: float | None = None,
    ):
        super().__init__()
        conv = dict(activation="lrelu", conv_clamp=conv_clamp)
        self.fromrgb = EqualizedConv2d(img_channels, tmp_channels, 1, **conv) if img_channels else None
        self.conv0 = EqualizedConv2d(tmp_channels, tmp_channels, 3, **conv)
        self.conv1 = EqualizedConv2d(tmp_channels, out_channels, 3, down=down, **conv)
        self.skip = EqualizedConv2d(tmp_channels, out_channels, 1, down=down, bias=False)
        # Hyper-modulation (EpiGRAF): per-sample input-channel scales of conv1, 1 + tanh(A(h)), A's bias 0.
        self.hyper_affine = EqualizedLinear(hyper_mod_dim, tmp_channels) if hyper_mod_dim else None

    def forward(self, x: Tensor | None, img: Tensor | None = None, hyper: Tensor | None = None) -> Tensor:
        if self.fromrgb is not None:
            x = self.fromrgb(img)
        gain = math.sqrt(0.5)
        y = self.skip(x, gain=gain)
        x = self.conv0(x)
        if self.hyper_affine is not None:
            # Scaling input channel i of every sample equals modulating the weights w[:, i] per
            # sample without demodulation; a shared-weight conv then serves the whole batch.
            x = x * (1.0 + torch.tanh(self.hyper_affine(hyper)))[:, :, None, None]
        x = self.conv1(x, gain=gain)
        return y + x


class DiscriminatorEpilogue(nn.Module):
    """4x4 head: minibatch std, 3x3 conv, FC, output FC (to 1 or to the projection space)."""

    def __init__(
        self, channels: int, out_dim: int, mbstd_group_size: int, mbstd_channels: int, conv_clamp: float | None
    ):
        super().__init__()
        self.mbstd = MinibatchStd(mbstd_group_size, mbstd_channels) if mbstd_channels > 0 else None
        self.conv = EqualizedConv2d(channels + mbstd_channels, channels, 3, activation="lrelu", conv_clamp=conv_clamp)
        self.fc = EqualizedLinear(channels * 16, channels, activation="lrelu")
        self.out = EqualizedLinear(channels, out_dim)

    def forward(self, x: Tensor) -> Tensor:
        if self.mbstd is not None:
            x = self.mbstd(x)
        return self.out(self.fc(self.conv(x).flatten(1)))


class Discriminator(nn.Module):
    """Patch discriminator of EpiGRAF (Skorokhodov et al. 2022, Sec. 3.2).

    A StyleGAN2 residual discriminator whose depth is that of a full-image discriminator at
    resolution R (log2(R / r) extra blocks at the input resolution), made aware of where a patch
    lies: (scale, offset x, offset y) are embedded (:class:`PatchEmbedding`), a small MLP (the
    hypernetwork) maps them to per-block modulation of the downsampling convolutions, and the same
    embedding (with the camera label when ``c_dim > 0``) feeds a projection head (Miyato & Koyama
    2018, as in StyleGAN2-ADA): ``logit = <features, cmap> / sqrt(cmap_dim)``.

    Example:
        >>> d = Discriminator(DiscriminatorConfig(resolution=16, image_resolution=32, channel_base=256, channel_max=32))
        >>> d(torch.zeros(4, 3, 16, 16), Patch.full(4)).shape
        torch.Size([4, 1])
    """

    def __init__(self, config: DiscriminatorConfig):
        super().__init__()
        self.config = cfg = config
        top = cfg.resolution * 2**cfg.num_extra_blocks  # = R: channel counts follow a full-image D
        resolutions = [top // 2**i for i in range(int(math.log2(top)) - 1)]  # top .. 8
        resolutions = [res for res in resolutions if res >= 8]
        self.patch_embedding = (
            PatchEmbedding(3, cfg.patch_frequencies, table_dim=cfg.patch_table_dim) if cfg.patch_conditioning else None
        )
        embed_dim = self.patch_embedding.dim if self.patch_embedding is not None else 0
        self.hyper_mapping = (
            ConditionMapping(embed_dim, cfg.hyper_mod_dim, cfg.mapping_layers, cfg.mapping_lr_multiplier)
            if cfg.patch_conditioning
            else None
        )
        blocks = []
        for i, res in enumerate(resolutions):
            blocks.append(
                DiscriminatorBlock(
                    in_channels=cfg.channels(res) if i else 0,
                    tmp_channels=cfg.channels(res),
                    out_channels=cfg.channels(res // 2),
                    down=1 if i < cfg.num_extra_blocks else 2,
                    img_channels=cfg.in_channels if i == 0 else 0,
                    hyper_mod_dim=cfg.hyper_mod_dim if cfg.patch_conditioning else 0,
                    conv_clamp=cfg.conv_clamp,
                )
            )
        self.blocks = nn.ModuleList(blocks)
        head_in = cfg.c_dim + embed_dim
        self.cmap_dim = (cfg.cmap_dim or cfg.channels(4)) if head_in > 0 else 0
        self.head_mapping = (
            ConditionMapping(head_in, self.cmap_dim, cfg.label_mapping_layers, cfg.mapping_lr_multiplier)
            if head_in > 0
            else None
        )
        self.epilogue = DiscriminatorEpilogue(
            cfg.channels(4), self.cmap_dim or 1, cfg.mbstd_group_size, cfg.mbstd_channels, cfg.conv_clamp
        )

    def forward(self, images: Tensor, patch: Patch | None = None, c: Tensor | None = None) -> Tensor:
        """Logits [b, 1] for ``images`` [b, in_channels, r, r] showing ``patch`` (None = whole images)
        with camera labels ``c`` [b, c_dim] (required when ``c_dim > 0``)."""
        cfg = self.config
        b = images.shape[0]
        if images.ndim != 4 or images.shape[1:] != (cfg.in_channels, cfg.resolution, cfg.resolution):
            raise ValueError(
                f"Discriminator: images must have shape [b, {cfg.in_channels}, {cfg.resolution}, {cfg.resolution}], "
                f"got {list(images.shape)}; crop or render patches at DiscriminatorConfig.resolution"
            )
        conditions = []
        if cfg.c_dim > 0:
            if c is None or c.shape != (b, cfg.c_dim):
                got = None if c is None else list(c.shape)
                raise ValueError(f"Discriminator: c must have shape [{b}, {cfg.c_dim}] (c_dim > 0), got {got}")
            conditions.append(c.to(images.dtype))
        hyper = None
        if self.patch_embedding is not None:
            patch = Patch.full(b, images.device) if patch is None else patch
            if patch.batch_size != b:
                raise ValueError(f"Discriminator: patch has {patch.batch_size} items for {b} images")
            embedding = self.patch_embedding(patch.as_params().to(images.device)).to(images.dtype)
            hyper = self.hyper_mapping(embedding)
            conditions.append(embedding)
        x = None
        for i, block in enumerate(self.blocks):
            x = block(x, images if i == 0 else None, hyper)
        x = self.epilogue(x)
        if self.head_mapping is None:
            return x
        cmap = self.head_mapping(torch.cat(conditions, dim=1))
        return (x * cmap).sum(dim=1, keepdim=True) / math.sqrt(self.cmap_dim)

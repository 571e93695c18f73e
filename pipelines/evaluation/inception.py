"""The Inception-v3 network of FID/KID (TensorFlow graph of 2015-12-05) and where its weights come from.

The layer layout and state-dict names are those of the weight files published with
torch-fidelity (``weights-inception-2015-12-05-6726825d.pth``) and pytorch-fid
(``pt_inception-2015-12-05-6726825d.pth``): both are conversions of the TensorFlow graph that the
original FID code (Heusel et al. 2017) uses, so features, and therefore scores, match theirs.
The network is defined here rather than imported because all three maintained packages
(torch-fidelity, pytorch-fid, clean-fid) require torchvision, which has no CPU-only build next to
our torch. Weights are never downloaded at run time.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pipelines.evaluation.weight_files import find_weight_file, hub_checkpoints

WEIGHTS_ENV = "EPIGRAF_INCEPTION_WEIGHTS"
WEIGHT_FILE_NAMES = ("weights-inception-2015-12-05-6726825d.pth", "pt_inception-2015-12-05-6726825d.pth")
WEIGHT_URLS = (
    "https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/weights-inception-2015-12-05-6726825d.pth",
    "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/pt_inception-2015-12-05-6726825d.pth",
)
INPUT_SIZE = 299
FEATURE_DIM = 2048


class InceptionWeightsNotFoundError(FileNotFoundError):
    """No Inception-v3 weight file was given or found in the cache; the message says how to get one."""


def _missing_weights_message(reason: str) -> str:
    cache = hub_checkpoints()
    return (
        f"{reason}. FID and KID need the Inception-v3 weights of the FID reference implementation, "
        f"which are never downloaded at run time. Download one of\n"
        f"  {WEIGHT_URLS[0]}\n  {WEIGHT_URLS[1]}\n"
        f"on a machine with internet access, then either pass it with --inception-weights PATH, set "
        f"{WEIGHTS_ENV}=PATH, or put it into {cache}/ (the torch hub cache, $TORCH_HOME/hub/checkpoints, "
        f"where torch-fidelity and pytorch-fid keep it). Metrics without weights: swd, mv_psnr, geometry."
    )


def find_inception_weights(path: str | Path | None = None) -> Path:
    """The weight file to use: ``path``, else ``$EPIGRAF_INCEPTION_WEIGHTS``, else the torch hub cache.

    Raises :class:`InceptionWeightsNotFoundError` with download and placement instructions.
    """
    found = find_weight_file(path, "--inception-weights", WEIGHTS_ENV, WEIGHT_FILE_NAMES,
                             lambda reason: InceptionWeightsNotFoundError(_missing_weights_message(reason)))
    if found is None:
        raise InceptionWeightsNotFoundError(_missing_weights_message(
            f"no Inception weights given and none of {', '.join(WEIGHT_FILE_NAMES)} in {hub_checkpoints()}"))
    return found


class ConvBlock(nn.Module):
    """Convolution without bias, batch norm (eps 1e-3, as in the TF graph), ReLU."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int | tuple[int, int],
                 stride: int = 1, padding: int | tuple[int, int] = 0) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel, stride=stride, padding=padding, bias=False)
        self.bn = nn.BatchNorm2d(out_channels, eps=1e-3)

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self.bn(self.conv(x)))


def _avg_pool(x: Tensor) -> Tensor:
    # The TF graph averages only over real pixels at the border (count_include_pad=False).
    return F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)


class MixedA(nn.Module):
    """35x35 block: 1x1, 5x5, double 3x3 and pooled branches."""

    def __init__(self, in_channels: int, pool_features: int) -> None:
        super().__init__()
        self.branch1x1 = ConvBlock(in_channels, 64, 1)
        self.branch5x5_1 = ConvBlock(in_channels, 48, 1)
        self.branch5x5_2 = ConvBlock(48, 64, 5, padding=2)
        self.branch3x3dbl_1 = ConvBlock(in_channels, 64, 1)
        self.branch3x3dbl_2 = ConvBlock(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = ConvBlock(96, 96, 3, padding=1)
        self.branch_pool = ConvBlock(in_channels, pool_features, 1)

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([
            self.branch1x1(x),
            self.branch5x5_2(self.branch5x5_1(x)),
            self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x))),
            self.branch_pool(_avg_pool(x)),
        ], dim=1)


class ReductionB(nn.Module):
    """35 -> 17 grid reduction."""

    def __init__(self, in_channels: int) -> None:
        super().__init__()
        self.branch3x3 = ConvBlock(in_channels, 384, 3, stride=2)
        self.branch3x3dbl_1 = ConvBlock(in_channels, 64, 1)
        self.branch3x3dbl_2 = ConvBlock(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = ConvBlock(96, 96, 3, stride=2)

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([
            self.branch3x3(x),
            self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x))),
            F.max_pool2d(x, 3, stride=2),
        ], dim=1)


class MixedC(nn.Module):
    """17x17 block with factorized 7x7 convolutions of width ``mid``."""

    def __init__(self, in_channels: int, mid: int) -> None:
        super().__init__()
        row, col = (1, 7), (7, 1)
        pad_row, pad_col = (0, 3), (3, 0)
        self.branch1x1 = ConvBlock(in_channels, 192, 1)
        self.branch7x7_1 = ConvBlock(in_channels, mid, 1)
        self.branch7x7_2 = ConvBlock(mid, mid, row, padding=pad_row)
        self.branch7x7_3 = ConvBlock(mid, 192, col, padding=pad_col)
        self.branch7x7dbl_1 = ConvBlock(in_channels, mid, 1)
        self.branch7x7dbl_2 = ConvBlock(mid, mid, col, padding=pad_col)
        self.branch7x7dbl_3 = ConvBlock(mid, mid, row, padding=pad_row)
        self.branch7x7dbl_4 = ConvBlock(mid, mid, col, padding=pad_col)
        self.branch7x7dbl_5 = ConvBlock(mid, 192, row, padding=pad_row)
        self.branch_pool = ConvBlock(in_channels, 192, 1)

    def forward(self, x: Tensor) -> Tensor:
        single = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        double = x
        for layer in (self.branch7x7dbl_1, self.branch7x7dbl_2, self.branch7x7dbl_3,
                      self.branch7x7dbl_4, self.branch7x7dbl_5):
            double = layer(double)
        return torch.cat([self.branch1x1(x), single, double, self.branch_pool(_avg_pool(x))], dim=1)


class ReductionD(nn.Module):
    """17 -> 8 grid reduction."""

    def __init__(self, in_channels: int) -> None:
        super().__init__()
        self.branch3x3_1 = ConvBlock(in_channels, 192, 1)
        self.branch3x3_2 = ConvBlock(192, 320, 3, stride=2)
        self.branch7x7x3_1 = ConvBlock(in_channels, 192, 1)
        self.branch7x7x3_2 = ConvBlock(192, 192, (1, 7), padding=(0, 3))
        self.branch7x7x3_3 = ConvBlock(192, 192, (7, 1), padding=(3, 0))
        self.branch7x7x3_4 = ConvBlock(192, 192, 3, stride=2)

    def forward(self, x: Tensor) -> Tensor:
        tower = x
        for layer in (self.branch7x7x3_1, self.branch7x7x3_2, self.branch7x7x3_3, self.branch7x7x3_4):
            tower = layer(tower)
        return torch.cat([self.branch3x3_2(self.branch3x3_1(x)), tower, F.max_pool2d(x, 3, stride=2)], dim=1)


class MixedE(nn.Module):
    """8x8 block with split 1x3 / 3x1 outputs; the last one of the TF graph max-pools its pool branch."""

    def __init__(self, in_channels: int, max_pool: bool) -> None:
        super().__init__()
        self.max_pool = max_pool
        self.branch1x1 = ConvBlock(in_channels, 320, 1)
        self.branch3x3_1 = ConvBlock(in_channels, 384, 1)
        self.branch3x3_2a = ConvBlock(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3_2b = ConvBlock(384, 384, (3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = ConvBlock(in_channels, 448, 1)
        self.branch3x3dbl_2 = ConvBlock(448, 384, 3, padding=1)
        self.branch3x3dbl_3a = ConvBlock(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = ConvBlock(384, 384, (3, 1), padding=(1, 0))
        self.branch_pool = ConvBlock(in_channels, 192, 1)

    def forward(self, x: Tensor) -> Tensor:
        split = self.branch3x3_1(x)
        double = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        pooled = F.max_pool2d(x, 3, stride=1, padding=1) if self.max_pool else _avg_pool(x)
        return torch.cat([
            self.branch1x1(x),
            self.branch3x3_2a(split), self.branch3x3_2b(split),
            self.branch3x3dbl_3a(double), self.branch3x3dbl_3b(double),
            self.branch_pool(pooled),
        ], dim=1)


def resize_bilinear_tf1(images: Tensor, size: int) -> Tensor:
    """Bilinear resize as TensorFlow 1.x ``resize_bilinear(align_corners=False)`` does it.

    TF 1.x maps output pixel ``i`` to source coordinate ``i * in / out`` (no half-pixel offset), which
    differs from ``F.interpolate``; FID's reference features were computed with this rule.
    """
    def axis_weights(length: int) -> tuple[Tensor, Tensor, Tensor]:
        source = torch.arange(size, dtype=torch.float64, device=images.device) * (length / size)
        low = source.floor().long().clamp(max=length - 1)
        high = (low + 1).clamp(max=length - 1)
        return low, high, (source - low).to(images.dtype)

    h, w = images.shape[-2:]
    low, high, frac = axis_weights(h)
    top, bottom = images[..., low, :], images[..., high, :]
    images = top + (bottom - top) * frac[:, None]
    low, high, frac = axis_weights(w)
    left, right = images[..., low], images[..., high]
    return left + (right - left) * frac


class InceptionV3Features(nn.Module):
    """Inception-v3 pool features (2048-d) of uint8 images [b, 3, h, w], as used by FID and KID.

    Build it with :meth:`from_weights` (the real network) or :meth:`random` (random weights: only for
    tests of the code path and for timing; its scores mean nothing).
    """

    def __init__(self) -> None:
        super().__init__()
        self.Conv2d_1a_3x3 = ConvBlock(3, 32, 3, stride=2)
        self.Conv2d_2a_3x3 = ConvBlock(32, 32, 3)
        self.Conv2d_2b_3x3 = ConvBlock(32, 64, 3, padding=1)
        self.Conv2d_3b_1x1 = ConvBlock(64, 80, 1)
        self.Conv2d_4a_3x3 = ConvBlock(80, 192, 3)
        self.Mixed_5b = MixedA(192, 32)
        self.Mixed_5c = MixedA(256, 64)
        self.Mixed_5d = MixedA(288, 64)
        self.Mixed_6a = ReductionB(288)
        self.Mixed_6b = MixedC(768, 128)
        self.Mixed_6c = MixedC(768, 160)
        self.Mixed_6d = MixedC(768, 160)
        self.Mixed_6e = MixedC(768, 192)
        self.Mixed_7a = ReductionD(768)
        self.Mixed_7b = MixedE(1280, max_pool=False)
        self.Mixed_7c = MixedE(2048, max_pool=True)
        self.is_random = False
        self.requires_grad_(False)
        self.eval()

    @classmethod
    def from_weights(cls, path: str | Path | None = None, device: torch.device | str = "cpu") -> InceptionV3Features:
        """The FID network with weights from :func:`find_inception_weights` (``.pth`` state dict or ``.safetensors``)."""
        path = find_inception_weights(path)
        model = cls()
        model.load_weights(path)
        return model.to(device)

    @classmethod
    def random(cls, seed: int = 0, device: torch.device | str = "cpu") -> InceptionV3Features:
        """Randomly initialized network of the same shape: for plumbing tests and timings, not for scores."""
        model = cls()
        rng = torch.Generator().manual_seed(seed)
        for module in model.modules():
            if isinstance(module, nn.Conv2d):
                # He init keeps activations from vanishing through ~90 ReLU layers, so features stay informative.
                nn.init.kaiming_normal_(module.weight, nonlinearity="relu", generator=rng)
        model.is_random = True
        return model.to(device)

    def load_weights(self, path: Path) -> None:
        """Loads a state dict without unpickling arbitrary objects; the classifier head is ignored."""
        path = Path(path)
        try:
            if path.suffix == ".safetensors":
                from safetensors.torch import load_file

                state = load_file(str(path))
            else:
                state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as error:  # torch and safetensors raise several types for damaged files
            raise ValueError(
                f"{path}: cannot read Inception weights ({error}); expected the state dict "
                f"{WEIGHT_FILE_NAMES[0]} or {WEIGHT_FILE_NAMES[1]}; download it again"
            ) from error
        if not isinstance(state, dict):
            raise ValueError(f"{path}: expected a state dict of tensors, got {type(state).__name__}")
        # The logits layer (fc) and torchvision's auxiliary head are not used for pool features.
        state = {k: v for k, v in state.items() if not k.startswith(("fc.", "AuxLogits."))}
        expected = self.state_dict()
        missing = sorted(set(expected) - set(state))
        unexpected = sorted(set(state) - set(expected))
        wrong = [k for k in set(expected) & set(state) if tuple(state[k].shape) != tuple(expected[k].shape)]
        if missing or unexpected or wrong:
            raise ValueError(
                f"{path}: not the FID Inception-v3 weights: missing {missing[:3]}, unexpected {unexpected[:3]}, "
                f"wrong shapes {wrong[:3]}; use {WEIGHT_FILE_NAMES[0]} or {WEIGHT_FILE_NAMES[1]}"
            )
        self.load_state_dict(state)
        self.is_random = False

    def forward(self, images: Tensor) -> Tensor:
        """uint8 images [b, 3, h, w] (any size) -> float32 features [b, 2048]."""
        if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"Inception expects uint8 images [b, 3, h, w], got {images.dtype} {list(images.shape)}")
        x = resize_bilinear_tf1(images.float(), INPUT_SIZE)
        x = (x - 128.0) / 128.0
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))
        x = F.max_pool2d(x, 3, stride=2)
        x = self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x))
        x = F.max_pool2d(x, 3, stride=2)
        for block in (self.Mixed_5b, self.Mixed_5c, self.Mixed_5d, self.Mixed_6a, self.Mixed_6b, self.Mixed_6c,
                      self.Mixed_6d, self.Mixed_6e, self.Mixed_7a, self.Mixed_7b, self.Mixed_7c):
            x = block(x)
        return x.mean(dim=(2, 3))


def to_uint8(images: Tensor) -> Tensor:
    """Images in [-1, 1] -> uint8 in [0, 255], rounded as when saving a PNG (FID is computed on such images)."""
    return ((images.detach().float() + 1.0) * 127.5).round().clamp(0, 255).to(torch.uint8)


@torch.no_grad()
def inception_features(model: InceptionV3Features, images: Tensor, batch_size: int = 50) -> Tensor:
    """Features [n, 2048] of images [n, 3, h, w] (uint8, or float in [-1, 1]), in batches."""
    device = next(model.parameters()).device
    images = images if images.dtype == torch.uint8 else to_uint8(images)
    out = [model(images[i : i + batch_size].to(device)).cpu() for i in range(0, len(images), batch_size)]
    return torch.cat(out) if out else torch.zeros(0, FEATURE_DIM)

"""LPIPS (Zhang et al., CVPR 2018) with the VGG16 trunk, and where its two weight files come from.

The distance of two images in [-1, 1]: both are shifted and scaled per channel, run through the
convolutional part of VGG16, and at each of five layers (relu1_2, relu2_2, relu3_3, relu4_3,
relu5_3) the features are normalized to unit length over channels; the squared difference is
weighted per channel by a learned linear head (a 1x1 convolution to one channel), averaged over
the pixels, and the five layer values are summed (the ``lpips`` package's v0.1, ``spatial=False``).

The VGG16 weights are torchvision's ImageNet file and the heads are the ``lpips`` package's
``weights/v0.1/vgg.pth``; their state-dict names are read as they are. The network is defined here
because torchvision and ``lpips`` (which needs torchvision) have no CPU-only build next to our torch.
Weights are never downloaded at run time.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch
from torch import Tensor, nn

from pipelines.evaluation.weight_files import find_weight_file, hub_checkpoints

VGG_WEIGHTS_ENV = "EPIGRAF_VGG16_WEIGHTS"
LINEAR_WEIGHTS_ENV = "EPIGRAF_LPIPS_WEIGHTS"
VGG_FILE_NAMES = ("vgg16-397923af.pth",)
"""torchvision's ImageNet VGG16 (``VGG16_Weights.IMAGENET1K_V1``), as the torch hub cache names it."""
LINEAR_FILE_NAMES = ("lpips-vgg-v0.1.pth", "vgg.pth")
"""The ``lpips`` package's linear heads for VGG (its ``weights/v0.1/vgg.pth``), under either name."""
VGG_URL = "https://download.pytorch.org/models/vgg16-397923af.pth"
LINEAR_URL = "https://github.com/richzhang/PerceptualSimilarity/raw/master/lpips/weights/v0.1/vgg.pth"
LAYER_CHANNELS = (64, 128, 256, 512, 512)
# VGG16's convolutional part: channels per 3x3 conv, "M" for a 2x2 max pool (torchvision's configuration "D").
VGG16_LAYOUT = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512)
# Index (in torchvision's ``features``) of the ReLU after which each LPIPS layer is taken.
TAPS = (3, 8, 15, 22, 29)
# The lpips package's input normalization (v0.1): (x - shift) / scale per RGB channel.
SHIFT = (-0.030, -0.088, -0.188)
SCALE = (0.458, 0.448, 0.450)


class LpipsWeightsNotFoundError(FileNotFoundError):
    """A weight file of LPIPS was not given or found in the cache; the message says how to get it."""


def _missing_weights_message(reason: str) -> str:
    cache = hub_checkpoints()
    return (
        f"{reason}. LPIPS needs two weight files, which are never downloaded at run time: torchvision's VGG16\n"
        f"  {VGG_URL}\nand the lpips package's linear heads (v0.1, VGG)\n  {LINEAR_URL}\n"
        f"Download them on a machine with internet access, then either pass them with --model.vgg-weights PATH "
        f"and --model.lpips-weights PATH, set {VGG_WEIGHTS_ENV}=PATH and {LINEAR_WEIGHTS_ENV}=PATH, or put them "
        f"into {cache}/ (the torch hub cache, $TORCH_HOME/hub/checkpoints, where torchvision keeps "
        f"{VGG_FILE_NAMES[0]}; name the heads {LINEAR_FILE_NAMES[0]}). An installed lpips package's own "
        "heads are found too."
    )


def _installed_lpips_heads() -> Path | None:
    """The heads shipped inside an installed ``lpips`` package (found without importing it)."""
    spec = importlib.util.find_spec("lpips")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / "weights" / "v0.1" / "vgg.pth"
    return path if path.is_file() else None


def find_lpips_weights(vgg_path: str | Path | None = None,
                       linear_path: str | Path | None = None) -> tuple[Path, Path]:
    """The VGG16 and linear-head files to use: the paths given, else the environment variables, else the torch hub
    cache (and, for the heads, an installed ``lpips`` package).

    Raises :class:`LpipsWeightsNotFoundError` naming the missing file, where to get it and where to put it.
    """
    def missing(reason: str) -> LpipsWeightsNotFoundError:
        return LpipsWeightsNotFoundError(_missing_weights_message(reason))

    vgg = find_weight_file(vgg_path, "--model.vgg-weights", VGG_WEIGHTS_ENV, VGG_FILE_NAMES, missing)
    if vgg is None:
        raise missing(f"no VGG16 weights given and no {', '.join(VGG_FILE_NAMES)} in {hub_checkpoints()}")
    linear = find_weight_file(linear_path, "--model.lpips-weights", LINEAR_WEIGHTS_ENV, LINEAR_FILE_NAMES, missing)
    if linear is None:
        linear = _installed_lpips_heads()
    if linear is None:
        raise missing(f"no LPIPS linear heads given and none of {', '.join(LINEAR_FILE_NAMES)} in {hub_checkpoints()}")
    return vgg, linear


def vgg16_features() -> nn.Sequential:
    """VGG16's convolutional part up to relu5_3, numbered as torchvision's ``features`` (30 modules)."""
    layers: list[nn.Module] = []
    channels = 3
    for item in VGG16_LAYOUT:
        if item == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        else:
            layers += [nn.Conv2d(channels, int(item), 3, padding=1), nn.ReLU()]
            channels = int(item)
    return nn.Sequential(*layers)


def normalize_channels(features: Tensor, eps: float = 1e-10) -> Tensor:
    """Features [b, c, h, w] divided by their length over channels (plus eps, as the lpips package does)."""
    return features / (features.square().sum(dim=1, keepdim=True).sqrt() + eps)


class Lpips(nn.Module):
    """LPIPS-VGG distance [b] between two batches of images [b, 3, h, w] in [-1, 1].

    Built with random weights; :func:`load_lpips` fills in the published ones. Gradients flow to the
    inputs; the weights are frozen (``requires_grad_(False)``) once loaded.

    Example:
        >>> lpips = Lpips()
        >>> x = torch.rand(2, 3, 32, 32) * 2 - 1
        >>> lpips(x, x)
        tensor([0., 0.])
    """

    def __init__(self) -> None:
        super().__init__()
        self.features = vgg16_features()
        self.heads = nn.ModuleList(nn.Conv2d(c, 1, 1, bias=False) for c in LAYER_CHANNELS)
        self.register_buffer("shift", torch.tensor(SHIFT).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", torch.tensor(SCALE).view(1, 3, 1, 1), persistent=False)

    def layer_features(self, images: Tensor) -> list[Tensor]:
        """The five tapped VGG16 activations of images in [-1, 1]."""
        x = (images - self.shift.to(images.dtype)) / self.scale.to(images.dtype)
        taps = []
        for index, layer in enumerate(self.features):
            x = layer(x)
            if index in TAPS:
                taps.append(x)
            if index == TAPS[-1]:
                break
        return taps

    def forward(self, images: Tensor, others: Tensor) -> Tensor:
        if images.shape != others.shape or images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"Lpips: both inputs must be [b, 3, h, w] of one shape, got {list(images.shape)} "
                             f"and {list(others.shape)}")
        both = self.layer_features(torch.cat([images, others]))
        total = images.new_zeros(images.shape[0])
        for head, features in zip(self.heads, both):
            a, b = normalize_channels(features).chunk(2)
            total = total + head((a - b).square()).mean(dim=(1, 2, 3))
        return total

    def load_published(self, vgg_state: dict[str, Tensor], linear_state: dict[str, Tensor]) -> None:
        """Loads torchvision's VGG16 state dict (``features.N.*``; the classifier is ignored) and the lpips
        package's heads (``linN.model.1.weight``); raises ValueError naming what does not fit."""
        features = {k[len("features."):]: v for k, v in vgg_state.items() if k.startswith("features.")}
        wanted = set(self.features.state_dict())
        features = {k: v for k, v in features.items() if k in wanted}
        heads = {}
        for index in range(len(LAYER_CHANNELS)):
            for key in (f"lin{index}.model.1.weight", f"lin{index}.model.weight"):
                if key in linear_state:
                    heads[f"{index}.weight"] = linear_state[key]
        try:
            self.features.load_state_dict(features)
            self.heads.load_state_dict(heads)
        except RuntimeError as error:
            raise ValueError(f"the weights are not VGG16 and LPIPS v0.1 heads ({error})") from error


def _read_state(path: Path) -> dict[str, Tensor]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - any unreadable file gets the same advice
        raise ValueError(f"{path} cannot be read as a state dict ({error}); download it again") from error
    if not isinstance(state, dict):
        raise ValueError(f"{path} holds a {type(state).__name__}, not a state dict; download it again")
    return state


def load_lpips(vgg_path: str | Path | None = None, linear_path: str | Path | None = None,
               device: torch.device | str = "cpu") -> Lpips:
    """LPIPS-VGG with the published weights (found by :func:`find_lpips_weights`), frozen, in eval mode."""
    vgg, linear = find_lpips_weights(vgg_path, linear_path)
    model = Lpips()
    try:
        model.load_published(_read_state(vgg), _read_state(linear))
    except ValueError as error:
        raise ValueError(f"{vgg} and {linear}: {error}") from error
    return model.to(device).eval().requires_grad_(False)


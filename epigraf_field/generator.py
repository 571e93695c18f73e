"""TriPlaneGenerator: mapping + tri-plane synthesis + decoder, with safetensors/JSON checkpoints."""

from __future__ import annotations

import contextlib
import json
import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

import torch
from jaxtyping import Float
from torch import Tensor, nn

from epigraf_field.config_io import config_from_dict, config_to_dict
from epigraf_field.decoder import ACTIVATIONS, BACKENDS, Backend, MLPDecoder
from epigraf_field.field import (
    Aggregation,
    ColorActivation,
    PaddingMode,
    PlaneAxes,
    TriPlaneField,
    TriPlaneFieldConfig,
    check_plane_margin,
    decoder_input_features,
)
from epigraf_field.mapping import MappingNetwork
from epigraf_field.synthesis import TriPlaneSynthesis

FORMAT_VERSION = 1
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "weights.safetensors"
EXTRA_PREFIX = "extra."


@dataclass
class TriPlaneGeneratorConfig:
    """A StyleGAN2 tri-plane generator and its field decoder. Defaults: EpiGRAF (planes 3 x 32 x 512^2)."""

    z_dim: int = 512
    """Dimensionality of the input latent z (0: label-only)."""
    c_dim: int = 0
    """Dimensionality of the conditioning label (25 for EG3D camera labels; 0: unconditional)."""
    w_dim: int = 512
    """Dimensionality of the intermediate latent w."""
    mapping_layers: int = 8
    """Fully connected layers in the mapping network (StyleGAN2: 8; EpiGRAF's released config: 2)."""
    mapping_lr_multiplier: float = 0.01
    """Learning-rate multiplier of the mapping layers (StyleGAN)."""
    w_avg_beta: float = 0.998
    """EMA decay of the tracked mean w used for truncation (EpiGRAF's and EG3D's mapping networks: 0.998;
    StyleGAN2-ADA's 0.995)."""
    plane_resolution: int = 512
    """Tri-plane resolution R (power of two >= 4)."""
    plane_channels: int = 32
    """Feature channels C per plane."""
    channel_base: int = 32768
    """Synthesis width rule: channels at resolution res = min(channel_base // res, channel_max)."""
    channel_max: int = 512
    """Maximum synthesis width."""
    use_noise: bool = True
    """Per-pixel noise inputs in the synthesis layers (EpiGRAF found them important)."""
    conv_clamp: float | None = None
    """Optional clamp of synthesis activations (StyleGAN2-ADA uses 256 with mixed precision)."""
    decoder_hidden: int = 64
    """Hidden width of the decoder MLP."""
    decoder_layers: int = 2
    """Linear layers in the decoder MLP (2 = one hidden layer, EpiGRAF)."""
    decoder_negative_slope: float = 0.2
    """Leaky ReLU slope of the decoder (StyleGAN's 0.2; tcnn needs 0.01 or 0)."""
    decoder_activation: Literal["leaky_relu", "softplus"] = "leaky_relu"
    """Hidden activation of the decoder: leaky_relu (EpiGRAF; slope decoder_negative_slope, gain sqrt(2)) or softplus
    (EG3D's decoder, no gain). Softplus runs on the torch backend only: auto picks torch for it. A config without
    this field (saved before it existed) gets leaky_relu, the decoder it was trained with."""
    decoder_backend: Backend = "auto"
    """Decoder implementation: auto (tcnn on CUDA when usable), torch or tcnn."""
    density_shift: float = 0.0
    """Added to the raw density before softplus (EG3D: -1)."""
    num_feature_channels: int = 0
    """Extra feature channels of the field (EG3D: 32, the first 3 are rgb); 0 for rgb only."""
    box_half_size: float = 0.5
    """Half side of the scene box, in world units: density is 0 outside it (with ``mask_outside_box``)."""
    plane_margin: float = 0.0
    """The tri-plane spans a box (1 + plane_margin) times the scene box's side, so its faded border texels lie
    outside the scene (where they leave sheets of density on the box faces otherwise); 0: the scene box."""
    aggregation: Aggregation = "mean"
    """How the three plane samples are combined: mean, sum or concat."""
    padding_mode: PaddingMode = "zeros"
    """grid_sample padding at the box faces: zeros or border."""
    plane_axes: PlaneAxes = "xy_xz_yz"
    """Plane sampling coordinates: xy_xz_yz (ours), xy_xz_zx (EG3D's released weights: the yz plane is never used)
    or xy_yz_zx (Mimic3D's released weights)."""
    align_corners: bool = False
    """grid_sample align_corners of the plane lookups (EpiGRAF: True)."""
    mask_outside_box: bool = True
    """Zero density outside the box (EG3D's weights were trained without this mask: False reproduces them)."""
    color_activation: ColorActivation = "widened_sigmoid"
    """widened_sigmoid (EG3D, ours) or linear (EpiGRAF: rgb = (raw + 1) / 2)."""

    def __post_init__(self) -> None:
        if self.decoder_activation not in ACTIVATIONS:
            raise ValueError(f"decoder_activation must be one of {ACTIVATIONS}, got {self.decoder_activation!r}")
        if self.decoder_backend == "tcnn" and self.decoder_activation != "leaky_relu":
            raise ValueError(
                f"decoder_backend 'tcnn' cannot run decoder_activation {self.decoder_activation!r}: the tcnn "
                "backend runs ReLU and LeakyReLU decoders only; use decoder_backend 'torch' or 'auto' (which picks "
                "torch for it)"
            )
        if self.num_feature_channels not in (0,) and self.num_feature_channels < 3:
            raise ValueError(
                f"num_feature_channels must be 0 or >= 3 (the first 3 are rgb), got {self.num_feature_channels}"
            )
        if self.plane_resolution < 4 or not math.log2(self.plane_resolution).is_integer():
            raise ValueError(f"plane_resolution must be a power of two >= 4, got {self.plane_resolution}")
        check_plane_margin(self.plane_margin, "generator")

    @property
    def field_config(self) -> TriPlaneFieldConfig:
        return TriPlaneFieldConfig(
            box_half_size=self.box_half_size,
            aggregation=self.aggregation,
            padding_mode=self.padding_mode,
            density_shift=self.density_shift,
            num_feature_channels=self.num_feature_channels,
            plane_axes=self.plane_axes,
            align_corners=self.align_corners,
            mask_outside_box=self.mask_outside_box,
            plane_margin=self.plane_margin,
            color_activation=self.color_activation,
        )

    @classmethod
    def benchmark(cls) -> TriPlaneGeneratorConfig:
        """The speed benchmark model: planes 3 x 32 x 64^2, 512 channels at every resolution."""
        return cls(plane_resolution=64, plane_channels=32, channel_base=512 * 64, channel_max=512)

    @classmethod
    def small(cls) -> TriPlaneGeneratorConfig:
        """A CPU-friendly model for tests and demos: planes 3 x 8 x 32^2, widths <= 64."""
        return cls(
            z_dim=64, w_dim=64, mapping_layers=2, plane_resolution=32, plane_channels=8,
            channel_base=1024, channel_max=64, decoder_hidden=32,
        )


class TriPlaneGenerator(nn.Module):
    """z (+ c) -> ws -> planes [b, 3, C, R, R] -> :class:`TriPlaneField` (EpiGRAF's generator).

    ``seed`` makes the initialization reproducible without touching the global RNG state.
    """

    def __init__(self, config: TriPlaneGeneratorConfig, seed: int | None = None, device: torch.device | str | None = None) -> None:
        super().__init__()
        self.config = config
        rng = torch.random.fork_rng(devices=[]) if seed is not None else contextlib.nullcontext()
        with rng:
            if seed is not None:
                torch.manual_seed(seed)
            self.synthesis_network = TriPlaneSynthesis(
                w_dim=config.w_dim, plane_resolution=config.plane_resolution,
                plane_channels=config.plane_channels, channel_base=config.channel_base,
                channel_max=config.channel_max, use_noise=config.use_noise, conv_clamp=config.conv_clamp,
            )
            self.num_ws = self.synthesis_network.num_ws
            self.mapping_network = MappingNetwork(
                z_dim=config.z_dim, c_dim=config.c_dim, w_dim=config.w_dim, num_ws=self.num_ws,
                num_layers=config.mapping_layers, lr_multiplier=config.mapping_lr_multiplier,
                w_avg_beta=config.w_avg_beta,
            )
            self.decoder = MLPDecoder(
                in_features=decoder_input_features(config.plane_channels, config.aggregation),
                out_features=1 + (config.num_feature_channels or 3),
                hidden_features=config.decoder_hidden, num_layers=config.decoder_layers,
                negative_slope=config.decoder_negative_slope, backend=config.decoder_backend, device=device,
                activation=config.decoder_activation,
            )
        if device is not None:
            self.to(device)

    @property
    def num_feature_channels(self) -> int:
        return self.config.num_feature_channels

    def mapping(
        self,
        z: Float[Tensor, "b zdim"],
        c: Float[Tensor, "b cdim"] | None = None,
        truncation_psi: float = 1.0,
        truncation_cutoff: int | None = None,
    ) -> Float[Tensor, "b num_ws wdim"]:
        """Latents to ws; see :class:`MappingNetwork` (its ``track_w_avg`` moves the truncation centre)."""
        return self.mapping_network(z, c, truncation_psi, truncation_cutoff)

    def synthesis(
        self,
        ws: Float[Tensor, "b num_ws wdim"],
        noise_mode: str = "const",
        rng: torch.Generator | None = None,
    ) -> Float[Tensor, "b 3 c r r"]:
        """ws to fp32 tri-planes; ``noise_mode='random'`` draws from ``rng``."""
        return self.synthesis_network(ws, noise_mode=noise_mode, rng=rng)

    def field(
        self,
        planes: Float[Tensor, "b 3 c r r"],
        density_noise_std: float = 0.0,
        rng: torch.Generator | None = None,
    ) -> TriPlaneField:
        """Bind planes to this generator's decoder as a radiance field."""
        return TriPlaneField(planes, self.decoder, self.config.field_config, density_noise_std, rng)

    def generate_planes(
        self,
        z: Float[Tensor, "b zdim"],
        c: Float[Tensor, "b cdim"] | None = None,
        truncation_psi: float = 1.0,
        truncation_cutoff: int | None = None,
        noise_mode: str = "const",
        rng: torch.Generator | None = None,
    ) -> Float[Tensor, "b 3 c r r"]:
        """``synthesis(mapping(z, c, truncation))`` in one call."""
        ws = self.mapping(z, c, truncation_psi, truncation_cutoff)
        return self.synthesis(ws, noise_mode=noise_mode, rng=rng)

    def forward(
        self, z: Float[Tensor, "b zdim"], c: Float[Tensor, "b cdim"] | None = None, **kwargs: object
    ) -> Float[Tensor, "b 3 c r r"]:
        return self.generate_planes(z, c, **kwargs)

    # ----- checkpoints --------------------------------------------------------------------------
    def save(self, directory: str | Path, extra_tensors: dict[str, Tensor] | None = None) -> None:
        """Write ``config.json`` (with ``format_version``) and ``weights.safetensors``.

        ``extra_tensors`` (e.g. an occupancy grid) are stored next to the weights under
        ``extra.<name>`` and read back with :meth:`load_extra_tensors`.
        """
        from safetensors.torch import save_file

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        tensors = {k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()}
        for name, value in (extra_tensors or {}).items():
            tensors[EXTRA_PREFIX + name] = value.detach().cpu().contiguous()
        meta = {"format_version": FORMAT_VERSION, "class": type(self).__name__, "config": config_to_dict(self.config)}
        # Write to temporary names first so an interrupted save never leaves a half-written pair.
        tmp_weights = directory / (WEIGHTS_FILE + ".tmp")
        tmp_config = directory / (CONFIG_FILE + ".tmp")
        save_file(tensors, str(tmp_weights), metadata={"format_version": str(FORMAT_VERSION)})
        tmp_config.write_text(json.dumps(meta, indent=2))
        tmp_weights.replace(directory / WEIGHTS_FILE)
        tmp_config.replace(directory / CONFIG_FILE)

    @staticmethod
    def read_config(directory: str | Path) -> TriPlaneGeneratorConfig:
        """The config stored in a checkpoint directory (checks the file and its format version)."""
        path = Path(directory) / CONFIG_FILE
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no generator config; expected a directory written by TriPlaneGenerator.save")
        try:
            meta = json.loads(path.read_text())
        except json.JSONDecodeError as error:
            raise ValueError(f"{path}: not valid JSON ({error}); the file is damaged, save the generator again") from error
        version = meta.get("format_version") if isinstance(meta, dict) else None
        if version != FORMAT_VERSION:
            raise ValueError(
                f"{path}: format_version is {version!r}, this code reads version {FORMAT_VERSION}; "
                "use a matching epigraf version or re-export the checkpoint"
            )
        try:
            return config_from_dict(TriPlaneGeneratorConfig, meta["config"])
        except (KeyError, ValueError) as error:
            raise ValueError(f"{path}: invalid generator config: {error}") from error

    @staticmethod
    def _read_tensors(directory: str | Path) -> dict[str, Tensor]:
        from safetensors.torch import load_file

        path = Path(directory) / WEIGHTS_FILE
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no generator weights; expected a directory written by TriPlaneGenerator.save")
        try:
            return load_file(str(path), device="cpu")
        except Exception as error:  # safetensors raises its own error type for damaged files
            raise ValueError(
                f"{path}: cannot read the safetensors file ({error}); it is truncated or corrupt, "
                "copy or save it again"
            ) from error

    @classmethod
    def load(
        cls,
        directory: str | Path,
        device: torch.device | str = "cpu",
        backend: str | None = None,
    ) -> TriPlaneGenerator:
        """Rebuild a generator from :meth:`save` output (no unpickling); ``backend`` overrides the decoder's."""
        config = cls.read_config(directory)
        if backend is not None:
            if backend not in BACKENDS:
                raise ValueError(f"backend must be one of {BACKENDS} or None, got {backend!r}")
            config = replace(config, decoder_backend=backend)
        tensors = cls._read_tensors(directory)
        model = cls(config, device=device)
        weights_path = Path(directory) / WEIGHTS_FILE
        state = {k: v for k, v in tensors.items() if not k.startswith(EXTRA_PREFIX)}
        expected = model.state_dict()
        missing = sorted(set(expected) - set(state))
        unexpected = sorted(set(state) - set(expected))
        if missing or unexpected:
            raise ValueError(
                f"{weights_path}: tensors do not match the config in {CONFIG_FILE}: "
                f"missing {missing[:5]}{'...' if len(missing) > 5 else ''}, "
                f"unexpected {unexpected[:5]}{'...' if len(unexpected) > 5 else ''}"
            )
        for key, value in state.items():
            if value.shape != expected[key].shape:
                raise ValueError(
                    f"{weights_path}: tensor {key!r} has shape {list(value.shape)}, the config expects "
                    f"{list(expected[key].shape)}; config.json and weights.safetensors come from different models"
                )
        model.load_state_dict(state)
        return model

    @staticmethod
    def load_extra_tensors(directory: str | Path) -> dict[str, Tensor]:
        """The ``extra_tensors`` passed to :meth:`save`, by name."""
        tensors = TriPlaneGenerator._read_tensors(directory)
        return {k[len(EXTRA_PREFIX) :]: v for k, v in tensors.items() if k.startswith(EXTRA_PREFIX)}


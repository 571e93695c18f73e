"""The tri-plane feature decoder MLP with a torch backend and a tiny-cuda-nn backend sharing one layout.

Weight layout (the only one that is ever saved): ``layers.{i}.weight`` [out, in] and, for the first
and the last layer only, ``layers.{i}.bias`` [out]. Weights are equalized-lr parameters (run-time
gain ``1 / sqrt(in)``, StyleGAN2). Hidden activations are leaky ReLUs followed by the gain sqrt(2)
(EpiGRAF, the default) or softplus without a gain (EG3D's OSGDecoder: ``FC, Softplus, FC``); softplus
decoders run on the torch backend only.

Why only the first and last biases: tiny-cuda-nn networks have no biases. The first layer's bias
becomes the weight of an extra constant-1 input column, the last layer's bias is added in torch
after the fused network; middle-layer biases (decoders with 3+ layers) have no exact tcnn
counterpart, so the decoder has none in either backend. For the default 2-layer decoder (one
hidden layer, EpiGRAF) this is the full affine MLP.

tcnn parameter layout assumed by :func:`torch_layout_to_tcnn_params` (tiny-cuda-nn's documented
dense layout): the layers' matrices one after another, each row-major [out_padded, in_padded];
the input width (features + the constant column) is padded to a multiple of ``input_align`` and
the output width to a multiple of ``output_align`` (16 for the fused MLP). The plain activation
slope must match tcnn's: ``LeakyReLU`` (slope 0.01) or ``ReLU`` (slope 0); the sqrt(2) gain and
the equalized-lr gains are folded into the matrices on conversion.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from jaxtyping import Float
from torch import Tensor, nn

Backend = Literal["auto", "torch", "tcnn"]
BACKENDS = ("auto", "torch", "tcnn")
Activation = Literal["leaky_relu", "softplus"]
ACTIVATIONS = ("leaky_relu", "softplus")
TCNN_LEAKY_SLOPE = 0.01
ACTIVATION_GAIN = math.sqrt(2.0)
FULLY_FUSED_WIDTHS = (16, 32, 64, 128)


def _round_up(x: int, multiple: int) -> int:
    return (x + multiple - 1) // multiple * multiple


def _check_backend(backend: str) -> None:
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")


def tcnn_available() -> bool:
    """True when ``import tinycudann`` works (it needs a CUDA build)."""
    try:
        import tinycudann  # noqa: F401
    except Exception:  # ImportError, or a CUDA/driver error raised while loading the extension
        return False
    return True


def _check_activation(activation: str) -> None:
    if activation not in ACTIVATIONS:
        raise ValueError(f"decoder activation must be one of {ACTIVATIONS}, got {activation!r}")


def tcnn_compatible(
    num_layers: int, hidden_features: int, negative_slope: float, activation: str = "leaky_relu"
) -> str | None:
    """``None`` if a decoder with these settings can run on tcnn, else the reason why not."""
    if activation != "leaky_relu":
        # The conversion below builds tcnn's ReLU / LeakyReLU networks only.
        return (
            f"the tcnn backend runs ReLU and LeakyReLU decoders only, this decoder's activation is {activation!r} "
            "(EG3D's softplus runs on the torch backend)"
        )
    if negative_slope not in (0.0, TCNN_LEAKY_SLOPE):
        return (
            f"tcnn's activations are ReLU (slope 0) and LeakyReLU (slope {TCNN_LEAKY_SLOPE}); "
            f"decoder negative_slope is {negative_slope}"
        )
    if num_layers < 2:
        return "tcnn needs at least one hidden layer (num_layers >= 2)"
    if hidden_features % 16 != 0:
        return f"tcnn needs hidden widths that are multiples of 16, got {hidden_features}"
    return None


def resolve_backend(backend: str, device: torch.device | str | None, reason_incompatible: str | None) -> str:
    """The concrete backend: ``auto`` means tcnn on CUDA when it loads and the decoder fits it."""
    _check_backend(backend)
    if backend != "auto":
        return backend
    on_cuda = device is not None and torch.device(device).type == "cuda"
    return "tcnn" if on_cuda and reason_incompatible is None and tcnn_available() else "torch"


def torch_layout_to_tcnn_params(
    weights: list[Tensor],
    biases: list[Tensor | None],
    input_align: int = 16,
    output_align: int = 16,
) -> tuple[Float[Tensor, " p"], Float[Tensor, " o"]]:
    """Plain MLP ``W_n act(... act(W_1 x + b_1)) + b_n`` -> (flat tcnn params, output bias).

    ``weights`` are the effective matrices [out, in] (gains folded in, see
    :meth:`MLPDecoder.plain_weights`); ``biases[0]`` becomes the weight of the constant-1 input
    column, ``biases[-1]`` is returned to be added after tcnn; middle biases must be ``None``.
    Padded rows and columns are zero.

    Example: a 32 -> 64 -> 4 MLP gives ``64 * 48 + 16 * 64`` parameters (input 32 + 1 padded to 48,
    output 4 padded to 16).
    """
    if len(weights) < 2 or len(weights) != len(biases):
        raise ValueError(f"need >= 2 layers and one bias entry per layer, got {len(weights)} and {len(biases)}")
    for i, b in enumerate(biases[1:-1], start=1):
        if b is not None:
            raise ValueError(f"biases[{i}] must be None: tcnn cannot hold middle-layer biases")
    chunks = []
    for i, w in enumerate(weights):
        out_f, in_f = w.shape
        if i == 0:
            w = torch.cat([w, (biases[0] if biases[0] is not None else w.new_zeros(out_f)).unsqueeze(1)], dim=1)
            in_f += 1
            w = F.pad(w, (0, _round_up(in_f, input_align) - in_f))
        if i == len(weights) - 1:
            w = F.pad(w, (0, 0, 0, _round_up(out_f, output_align) - out_f))
        chunks.append(w.reshape(-1))
    out_bias = biases[-1] if biases[-1] is not None else weights[-1].new_zeros(weights[-1].shape[0])
    return torch.cat(chunks), out_bias


def tcnn_params_to_torch_layout(
    params: Float[Tensor, " p"],
    output_bias: Float[Tensor, " o"] | None,
    in_features: int,
    hidden_features: int,
    out_features: int,
    num_layers: int,
    input_align: int = 16,
    output_align: int = 16,
    input_pad_value: float = 1.0,
) -> tuple[list[Tensor], list[Tensor | None]]:
    """Inverse of :func:`torch_layout_to_tcnn_params`: (weights [out, in], biases) of the plain MLP.

    Every input column beyond the features feeds a constant (1 for our explicit column,
    ``input_pad_value`` for tcnn's own padding), so their weights are summed into the first bias;
    padded output rows are dropped.
    """
    in_padded = _round_up(in_features + 1, input_align)
    out_padded = _round_up(out_features, output_align)
    dims = [in_padded] + [hidden_features] * (num_layers - 1) + [out_padded]
    expected = sum(dims[i] * dims[i + 1] for i in range(num_layers))
    if params.numel() != expected:
        raise ValueError(
            f"tcnn params have {params.numel()} entries, expected {expected} for a "
            f"{in_features}->{hidden_features}x{num_layers - 1}->{out_features} MLP"
        )
    weights: list[Tensor] = []
    biases: list[Tensor | None] = []
    offset = 0
    for i in range(num_layers):
        n_in, n_out = dims[i], dims[i + 1]
        w = params[offset : offset + n_in * n_out].reshape(n_out, n_in)
        offset += n_in * n_out
        if i == 0:
            bias = w[:, in_features] + input_pad_value * w[:, in_features + 1 :].sum(dim=1)
            w = w[:, :in_features]
            biases.append(bias)
        elif i == num_layers - 1:
            w = w[:out_features]
            biases.append(output_bias if output_bias is not None else w.new_zeros(out_features))
        else:
            biases.append(None)
        weights.append(w)
    return weights, biases


class MLPDecoder(nn.Module):
    """Per-point MLP: features [..., in] -> raw outputs [..., out] (EpiGRAF: 2 layers, 64 hidden).

    ``backend`` picks the implementation at construction (``auto``: tcnn when it loads, the
    decoder fits it and ``device`` is CUDA). The state dict is the torch layout for both backends.
    ``activation`` is the hidden activation: ``leaky_relu`` (slope ``negative_slope``, gain sqrt(2))
    or ``softplus`` (EG3D's, no gain; ``auto`` then always picks torch, ``tcnn`` is an error).

    Example:
        >>> decoder = MLPDecoder(4, 2, hidden_features=8, activation="softplus", backend="torch")
        >>> decoder(torch.zeros(3, 4)).shape
        torch.Size([3, 2])
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        hidden_features: int = 64,
        num_layers: int = 2,
        negative_slope: float = 0.2,
        backend: str = "auto",
        device: torch.device | str | None = None,
        *,
        activation: str = "leaky_relu",
    ) -> None:
        super().__init__()
        _check_backend(backend)
        _check_activation(activation)
        if num_layers < 1:
            raise ValueError(f"num_layers must be >= 1, got {num_layers}")
        self.in_features, self.out_features = in_features, out_features
        self.hidden_features, self.num_layers, self.negative_slope = hidden_features, num_layers, negative_slope
        self.activation = activation
        reason = tcnn_compatible(num_layers, hidden_features, negative_slope, activation)
        self.backend = resolve_backend(backend, device, reason)
        if self.backend == "tcnn" and reason is not None:
            raise ValueError(f"backend='tcnn' cannot run this decoder: {reason}; use backend='torch'")
        dims = [in_features] + [hidden_features] * (num_layers - 1) + [out_features]
        self.dims = dims
        self.layers = nn.ModuleList()
        for i in range(num_layers):
            layer = nn.Module()
            layer.weight = nn.Parameter(torch.randn(dims[i + 1], dims[i], device=device))
            has_bias = i == 0 or i == num_layers - 1
            layer.bias = nn.Parameter(torch.zeros(dims[i + 1], device=device)) if has_bias else None
            self.layers.append(layer)
        self._tcnn = None
        if self.backend == "tcnn":
            self._build_tcnn(device)

    # ----- torch layout <-> plain MLP ---------------------------------------------------------
    def _gain(self, i: int) -> float:
        return 1.0 / math.sqrt(self.dims[i])

    @property
    def activation_gain(self) -> float:
        """Factor after each hidden activation: sqrt(2) for leaky ReLU (StyleGAN2), 1 for softplus (EG3D)."""
        return ACTIVATION_GAIN if self.activation == "leaky_relu" else 1.0

    def plain_weights(self) -> tuple[list[Tensor], list[Tensor | None]]:
        """Effective (W, b) of a plain MLP with this decoder's activations and no gains.

        The activation gain of layer i is folded into layer i + 1 (exact for leaky ReLU, which is
        positively homogeneous; softplus has gain 1, so nothing is folded).
        """
        weights, biases = [], []
        for i, layer in enumerate(self.layers):
            scale = self._gain(i) * (self.activation_gain if i > 0 else 1.0)
            weights.append(layer.weight * scale)
            biases.append(layer.bias)
        return weights, biases

    @torch.no_grad()
    def load_plain_weights(self, weights: list[Tensor], biases: list[Tensor | None]) -> None:
        """Set the torch-layout parameters from a plain MLP (inverse of :meth:`plain_weights`)."""
        for i, layer in enumerate(self.layers):
            scale = self._gain(i) * (self.activation_gain if i > 0 else 1.0)
            layer.weight.copy_(weights[i] / scale)
            if layer.bias is not None:
                layer.bias.copy_(biases[i])
            elif biases[i] is not None and bool((biases[i] != 0).any()):
                raise ValueError(f"layer {i} of this decoder has no bias, got a non-zero one")
        if self._tcnn is not None:
            self._sync_torch_to_tcnn()

    # ----- forward ----------------------------------------------------------------------------
    def forward(self, x: Float[Tensor, "*batch cin"]) -> Float[Tensor, "*batch cout"]:
        if self._tcnn is not None and x.is_cuda:
            return self._forward_tcnn(x)
        return self._forward_torch(x)

    def _forward_torch(self, x: Tensor) -> Tensor:
        for i, layer in enumerate(self.layers):
            x = F.linear(x, layer.weight * self._gain(i), layer.bias)
            if i < self.num_layers - 1:
                if self.activation == "softplus":
                    x = F.softplus(x)
                else:
                    x = F.leaky_relu(x, self.negative_slope) * ACTIVATION_GAIN
        return x

    # ----- tiny-cuda-nn backend (the only place that imports tinycudann) ----------------------
    def _tcnn_config(self) -> dict:
        otype = "FullyFusedMLP" if self.hidden_features in FULLY_FUSED_WIDTHS else "CutlassMLP"
        return {
            "otype": otype,
            "activation": "ReLU" if self.negative_slope == 0.0 else "LeakyReLU",
            "output_activation": "None",
            "n_neurons": self.hidden_features,
            "n_hidden_layers": self.num_layers - 1,
        }

    def _build_tcnn(self, device: torch.device | str | None) -> None:
        import tinycudann

        # One extra input column carries the constant 1 that holds the first layer's bias.
        net = tinycudann.Network(self.in_features + 1, self.out_features, self._tcnn_config())
        # Not a registered child: its flat params are registered here (same Parameter object),
        # while the state dict keeps the torch layout (see _save_to_state_dict).
        object.__setattr__(self, "_tcnn", net)
        self.tcnn_params = net.params
        for layer in self.layers:
            layer.weight.requires_grad_(False)
            if layer.bias is not None:
                layer.bias.requires_grad_(False)
        self.output_bias = nn.Parameter(torch.zeros(self.out_features, device=net.params.device))
        self._sync_torch_to_tcnn()
        # A loaded torch-layout state dict lands in self.layers; push it into the fused network.
        self.register_load_state_dict_post_hook(lambda module, _: module._sync_torch_to_tcnn())

    @torch.no_grad()
    def _sync_torch_to_tcnn(self) -> None:
        weights, biases = self.plain_weights()
        params, out_bias = torch_layout_to_tcnn_params(weights, biases, output_align=self._tcnn_output_align())
        if params.numel() != self.tcnn_params.numel():
            raise ValueError(
                f"tcnn network has {self.tcnn_params.numel()} parameters, the converted layout "
                f"{params.numel()}; the padding assumptions do not match this tinycudann build"
            )
        self.tcnn_params.copy_(params.to(self.tcnn_params))
        self.output_bias.copy_(out_bias)

    @torch.no_grad()
    def _sync_tcnn_to_torch(self) -> None:
        weights, biases = tcnn_params_to_torch_layout(
            self.tcnn_params.detach().float(), self.output_bias.detach(), self.in_features,
            self.hidden_features, self.out_features, self.num_layers,
            output_align=self._tcnn_output_align(),
        )
        # Fold into our own parameters without touching tcnn again.
        for i, layer in enumerate(self.layers):
            scale = self._gain(i) * (self.activation_gain if i > 0 else 1.0)
            layer.weight.copy_(weights[i].to(layer.weight) / scale)
            if layer.bias is not None:
                layer.bias.copy_(biases[i].to(layer.bias))

    def _tcnn_output_align(self) -> int:
        return 16

    def _forward_tcnn(self, x: Tensor) -> Tensor:
        lead = x.shape[:-1]
        flat = x.reshape(-1, self.in_features)
        flat = torch.cat([flat, flat.new_ones(flat.shape[0], 1)], dim=1)
        y = self._tcnn(flat).float() + self.output_bias
        return y.reshape(*lead, self.out_features)

    # ----- state dict: always the torch layout ------------------------------------------------
    def _save_to_state_dict(self, destination, prefix, keep_vars):  # noqa: ANN001
        if self._tcnn is not None:
            self._sync_tcnn_to_torch()
            for i, layer in enumerate(self.layers):
                destination[f"{prefix}layers.{i}.weight"] = layer.weight if keep_vars else layer.weight.detach()
                if layer.bias is not None:
                    destination[f"{prefix}layers.{i}.bias"] = layer.bias if keep_vars else layer.bias.detach()
            return
        super()._save_to_state_dict(destination, prefix, keep_vars)

    def state_dict(self, *args, **kwargs):  # noqa: ANN002, ANN003
        if self._tcnn is None:
            return super().state_dict(*args, **kwargs)
        # Child ModuleList entries would be visited again by nn.Module; the tcnn branch writes them itself.
        destination = kwargs.pop("destination", None)
        prefix = kwargs.pop("prefix", "")
        keep_vars = kwargs.pop("keep_vars", False)
        if destination is None:
            from collections import OrderedDict

            destination = OrderedDict()
        self._save_to_state_dict(destination, prefix, keep_vars)
        return destination

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs):  # noqa: ANN001, E501
        super()._load_from_state_dict(
            state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
        )
        if self._tcnn is not None:
            for key in (f"{prefix}tcnn_params", f"{prefix}output_bias"):
                if key in missing_keys:
                    missing_keys.remove(key)

    def extra_repr(self) -> str:
        activation = "softplus" if self.activation == "softplus" else f"leaky_relu({self.negative_slope})"
        return f"dims={self.dims}, activation={activation}, backend={self.backend}"

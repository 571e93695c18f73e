"""nerfstudio model ``epigraf-sample``: one generated object of a trained generator, frozen, in nerfstudio's scene."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Type

import numpy as np
import torch
from torch import Tensor
from torch.nn import Parameter

from pipelines.nerfstudio.imports import require_nerfstudio

require_nerfstudio()

from pipelines.model import GeneratorModel, latents_from_seeds  # noqa: E402
from pipelines.nerfstudio.field import EpigrafField, LatentKind, mean_ws  # noqa: E402
from pipelines.nerfstudio.field_model import EpigrafFieldModel, EpigrafFieldModelConfig, open_generator  # noqa: E402
from pipelines.nerfstudio.scene_transform import nerfstudio_scene  # noqa: E402

LATENT_FILE_KEYS = ("z", "w", "ws")


@dataclass
class EpigrafSampleModelConfig(EpigrafFieldModelConfig):
    """One object of a trained generator (a seed's latent, or a latent file) in nerfstudio's scene.

    Nothing is fitted: the generator and the latent are frozen. The generator's box ``[-h, h]^3``
    is nerfstudio's scene box ``[-1, 1]^3`` with z up (``pipelines.nerfstudio.scene_transform.nerfstudio_scene``).
    """

    _target: Type = field(default_factory=lambda: EpigrafSampleModel)
    generator: Path = Path("generator")
    """Trained generator of any pipeline: a run folder (its newest checkpoint), a checkpoint, a bundle or an official
    EG3D / EpiGRAF .pkl. An eg3d
    generator's tri-plane field is rendered directly (no super-resolution)."""
    decoder_backend: Literal["auto", "torch", "tcnn"] = "auto"
    """Decoder implementation of the loaded generator."""
    seed: int = 0
    """Seed of the latent z (the same z as ``epigraf-render --seeds N``); unused with ``latent_file``."""
    latent_file: Path | None = None
    """A latent instead of the seed: .npz or .safetensors holding one array named z ([1, z_dim]), w ([1, w_dim]) or
    ws / w ([1, num_ws, w_dim]: one w per layer, as StyleGAN's and EG3D's projectors write projected_w.npz)."""
    truncation_psi: float = 1.0
    """Truncation of a z latent towards the mean w (1: none)."""


def read_latent_file(path: Path, z_dim: int, w_dim: int, num_ws: int) -> tuple[Tensor, LatentKind]:
    """The latent of a .npz / .safetensors file and its kind ('z', 'w' or 'w+'), shaped for :class:`EpigrafField`.

    Example: a file with ``w`` of shape [1, 14, 512] for a generator of 14 ws of 512 is a 'w+' latent.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"--pipeline.model.latent-file {path} does not exist: pass a .npz or .safetensors "
                                f"file holding one of {', '.join(LATENT_FILE_KEYS)}")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        arrays = {k: v.float() for k, v in load_file(str(path)).items()}
    elif path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: torch.from_numpy(np.asarray(data[k], dtype=np.float32)) for k in data.files}
    else:
        raise ValueError(f"--pipeline.model.latent-file {path}: expected a .npz or .safetensors file")
    found = [k for k in LATENT_FILE_KEYS if k in arrays]
    if len(found) != 1:
        raise ValueError(f"--pipeline.model.latent-file {path} holds {sorted(arrays)}; it needs exactly one array "
                         f"named z, w or ws")
    latent = arrays[found[0]].reshape(1, -1) if arrays[found[0]].ndim == 1 else arrays[found[0]]
    shapes = {"z": [(1, z_dim)], "w": [(1, w_dim), (1, num_ws, w_dim)], "ws": [(1, num_ws, w_dim)]}[found[0]]
    if tuple(latent.shape) not in shapes:
        raise ValueError(f"--pipeline.model.latent-file {path}: {found[0]} has shape {list(latent.shape)}, but this "
                         f"generator takes {' or '.join(str(list(s)) for s in shapes)}")
    kind: LatentKind = "z" if found[0] == "z" else ("w" if latent.ndim == 2 else "w+")
    return latent, kind


class EpigrafSampleModel(EpigrafFieldModel):
    """Renders one generated object; a training step renders a batch and fits nothing (its loss is a constant 0).

    The generator comes from the pipeline (``generator`` keyword, opened once for the cameras and
    the model) or is opened from ``config.generator``.
    """

    config: EpigrafSampleModelConfig

    def make_field(self) -> EpigrafField:
        cfg = self.config
        generator: GeneratorModel | None = self.kwargs.get("generator")
        if generator is None:
            generator = open_generator(cfg.generator, "--pipeline.model.generator", cfg.decoder_backend)
        latent, kind = self.initial_latent(generator)
        return EpigrafField(generator, latent, latent_kind=kind, truncation_psi=cfg.truncation_psi,
                            transform=nerfstudio_scene(generator.box_half_size))

    def initial_latent(self, generator: GeneratorModel) -> tuple[Tensor, LatentKind]:
        """The seed's z [1, z_dim], or the latent file's latent."""
        cfg = self.config
        if cfg.latent_file is None:
            return latents_from_seeds([cfg.seed], generator.z_dim).to(generator.device), "z"
        _, num_ws, w_dim = mean_ws(generator).shape
        latent, kind = read_latent_file(cfg.latent_file, generator.z_dim, w_dim, num_ws)
        return latent.to(generator.device), kind

    def get_param_groups(self) -> dict[str, list[Parameter]]:
        return {}

    def get_loss_dict(self, outputs, batch, metrics_dict=None) -> dict[str, Tensor]:
        # nerfstudio's trainer sums the losses and calls backward(): a constant that asks for a gradient.
        return {"nothing_to_fit": torch.zeros((), device=self.device, requires_grad=True)}

    def get_image_metrics_and_images(self, outputs, batch) -> tuple[dict[str, float], dict[str, Tensor]]:
        images = {"img": outputs["rgb"], **self.output_images(outputs)}
        return {"opacity": float(outputs["accumulation"].mean())}, images

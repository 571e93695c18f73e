"""3D-to-2D imitation: the 3D branch's patch learns to look like the same window of the super-resolved image."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import torch
from torch import Tensor

from pipelines.gan.discriminator import Discriminator

ImitationMode = Literal["auto", "lpips", "feature_matching"]
IMITATION_MODES = ("auto", "lpips", "feature_matching")


def discriminator_features(discriminator: Discriminator, images: Tensor) -> list[Tensor]:
    """The output of each residual block of a discriminator without patch conditioning, for images [b, c, r, r]."""
    if discriminator.patch_embedding is not None:
        raise ValueError("feature matching needs the patch discriminator (no patch conditioning)")
    features, x = [], None
    for index, block in enumerate(discriminator.blocks):
        x = block(x, images if index == 0 else None, None)
        features.append(x)
    return features


def feature_matching_loss(discriminator: Discriminator, patches: Tensor, targets: Tensor) -> Tensor:
    """Mimic3D's weight-free imitation [b]: per block, the mean squared difference of the discriminator's
    features normalized to unit length over channels, summed over blocks (its ``feat_match`` option)."""
    total = patches.new_zeros(patches.shape[0])
    for a, b in zip(discriminator_features(discriminator, patches), discriminator_features(discriminator, targets)):
        a = a / (a.square().sum(dim=1, keepdim=True).add(1e-10).sqrt() + 1e-10)
        b = b / (b.square().sum(dim=1, keepdim=True).add(1e-10).sqrt() + 1e-10)
        total = total + (a - b).square().mean(dim=(1, 2, 3))
    return total


def resolve_imitation(mode: ImitationMode, vgg_weights: Path | None, lpips_weights: Path | None) -> tuple[str, str]:
    """The imitation loss to train with and the line that says why.

    ``auto`` picks LPIPS when both of its weight files are found (see pipelines.evaluation.lpips),
    else the weight-free feature matching; ``lpips`` without the files is an error naming them.
    """
    from pipelines.evaluation.lpips import LpipsWeightsNotFoundError, find_lpips_weights

    if mode not in IMITATION_MODES:
        raise ValueError(f"--model.losses.imitation must be one of {IMITATION_MODES}, got {mode!r}")
    if mode == "feature_matching":
        return mode, "imitation: feature matching on the patch discriminator (--model.losses.imitation)"
    try:
        vgg, linear = find_lpips_weights(vgg_weights, lpips_weights)
    except LpipsWeightsNotFoundError as error:
        if mode == "lpips":
            raise
        first = str(error).split(". ", 1)[0]
        return "feature_matching", (
            f"imitation: LPIPS weights not found ({first}); falling back to the weight-free feature matching on "
            "the patch discriminator (recorded as model.losses.imitation in config.json; "
            "pass --model.losses.imitation lpips to require LPIPS)"
        )
    return "lpips", f"imitation: LPIPS (VGG16 {vgg}, heads {linear})"


class Imitation:
    """The imitation loss [b] of 3D patches against their (detached) super-resolved windows, both in [-1, 1]."""

    def __init__(self, mode: str, device: torch.device, vgg_weights: Path | None = None,
                 lpips_weights: Path | None = None) -> None:
        self.mode = mode
        self.lpips = None
        if mode == "lpips":
            from pipelines.evaluation.lpips import load_lpips

            self.lpips = load_lpips(vgg_weights, lpips_weights, device)

    def __call__(self, patches: Tensor, targets: Tensor, discriminator: Discriminator) -> Tensor:
        targets = targets.detach()  # the 2D branch is the teacher: no gradient reaches it (Mimic3D)
        if self.lpips is not None:
            return self.lpips(patches, targets)
        return feature_matching_loss(discriminator, patches, targets)

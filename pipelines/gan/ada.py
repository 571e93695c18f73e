"""Adaptive discriminator augmentation (ADA; Karras et al. 2020, "Training GANs with Limited Data").

Every image the discriminator sees, real or fake, in the generator's and the discriminator's phases
alike (and on the R1 path, whose gradient is taken w.r.t. the un-augmented reals), passes through
one stochastic, differentiable augmentation. Each transform of StyleGAN2-ADA's default set
("bgc": pixel blitting, general geometric, colour; paper Sec. 2.3 and Appendix B) fires
independently per image with probability ``p``:

- geometric, composed into one 3x3 matrix per image in centred pixel coordinates: x-flip,
  90-degree rotations, integer translation (U(-0.125, 0.125) of the image side, rounded to
  pixels), isotropic scaling (lognormal, std 0.2 ln 2), arbitrary rotation (U(-pi, pi), applied
  before and after the anisotropic scaling, each with probability ``1 - sqrt(1 - p)`` so that
  some rotation happens with probability ``p``), anisotropic scaling (lognormal, std 0.2 ln 2),
  fractional translation (N(0, 0.125^2) of the image side);
- colour, composed into one 4x4 matrix per image acting on homogeneous rgb in [-1, 1]:
  brightness (add N(0, 0.2^2)), contrast (lognormal, std 0.5 ln 2), luma flip, hue rotation
  about the luma axis (U(-pi, pi)), saturation (lognormal, std ln 2).

Approximation (not StyleGAN2-ADA's resampler): the geometric matrix is applied with one
``F.affine_grid`` + ``F.grid_sample`` call, bilinear, ``align_corners=False``, reflection padding
(mirrored about the image border, so the first pixel repeats). StyleGAN2-ADA upsamples 2x with a
wavelet filter before resampling and low-pass filters after, which avoids the aliasing bilinear
sampling shows when scaling down and its slight blur at fractional offsets. Both are the same on
reals and fakes, so they cannot leak into the generator; the blits (flips, 90-degree rotations,
integer shifts) land on pixel centres and are exact up to float rounding either way. Images no
transform changed are passed through bit for bit.

``p`` is adjusted by ADA's overfitting heuristic (paper Sec. 3, r_t): every ``ada_interval``
minibatches, ``r_t = E[sign(D(real))]`` over those minibatches (averaged over processes) and
``p += sign(r_t - target) * batch * ada_interval / (ada_kimg * 1000)``, clamped to [0, 1]: p can
go from 0 to 1 in ``ada_kimg`` thousand real images (500 in StyleGAN2-ADA).

Patches (patch-gan): the patch-aware discriminator is told each patch's (scale, offset). We
augment the patch image exactly as ADA augments a whole image and leave the patch parameters as
they are. ADA's non-leaking argument needs only that reals and fakes pass through the same
stochastic transform, independent of the image, with p below about 0.8 (so the un-augmented
distribution can still be told apart and must be matched); here the transform is also independent
of the patch parameters, so for every (scale, offset) the discriminator compares T(real crop) with
T(fake patch) and matching those matches the un-augmented patches of that (scale, offset).
Moving the parameters with the content instead is not possible in general: a rotated or
translated patch with reflected borders is no axis-aligned crop of any image, and translations
would bring in content the generator never rendered. Magnitudes are relative to the patch (a
12.5% shift is 12.5% of the patch side); at scale 1 (early EpiGRAF training, EG3D) the patch is
the whole image and this is plain ADA. EG3D's 6-channel dual images get one geometric and one
colour transform per image, the colour matrix applied to each rgb triple.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from pipelines.engine.distributed import DistributedContext, all_reduce_mean

__all__ = [
    "AugmentConfig", "AdaptiveAugment", "Transform", "GEOMETRIC_TRANSFORMS", "COLOUR_TRANSFORMS",
    "translate_2d", "scale_2d", "rotate_2d", "rotate90_2d", "translate_3d", "scale_3d", "luma_flip_3d",
    "hue_rotate_3d", "saturate_3d", "sample_geometric", "sample_colour", "resample_images",
    "apply_colour_matrix", "augment_images", "ada_adjustment",
]

Transform = Literal[
    "xflip", "rotate90", "xint", "scale", "rotate", "aniso", "xfrac",
    "brightness", "contrast", "lumaflip", "hue", "saturation",
]
GEOMETRIC_TRANSFORMS: tuple[Transform, ...] = ("xflip", "rotate90", "xint", "scale", "rotate", "aniso", "xfrac")
"""StyleGAN2-ADA's pixel blitting and general geometric transforms, in the order they are applied."""
COLOUR_TRANSFORMS: tuple[Transform, ...] = ("brightness", "contrast", "lumaflip", "hue", "saturation")
"""StyleGAN2-ADA's colour transforms, in the order they are applied."""

# Magnitudes of StyleGAN2-ADA's default pipeline (paper, Appendix B).
XINT_MAX = 0.125
"""Integer translation: U(-XINT_MAX, XINT_MAX) of the image side per axis, rounded to pixels."""
SCALE_STD = 0.2 * math.log(2)
"""Isotropic scaling: lognormal with this std of log s."""
ROTATE_MAX = math.pi
"""Arbitrary rotation: U(-ROTATE_MAX, ROTATE_MAX)."""
ANISO_STD = 0.2 * math.log(2)
"""Anisotropic scaling: x by s, y by 1/s, log s ~ N(0, ANISO_STD^2)."""
XFRAC_STD = 0.125
"""Fractional translation: N(0, XFRAC_STD^2) of the image side per axis."""
BRIGHTNESS_STD = 0.2
"""Brightness: add N(0, BRIGHTNESS_STD^2) to rgb in [-1, 1]."""
CONTRAST_STD = 0.5 * math.log(2)
"""Contrast: multiply rgb by a lognormal factor with this std of its log."""
HUE_MAX = math.pi
"""Hue rotation about the luma axis: U(-HUE_MAX, HUE_MAX)."""
SATURATION_STD = 1.0 * math.log(2)
"""Saturation: scale the chroma (rgb minus its luma projection) by a lognormal factor, this std of its log."""


@dataclass
class AugmentConfig:
    """Discriminator augmentation: ADA (StyleGAN2-ADA's "bgc" transforms with an adaptive or fixed p) or none."""

    mode: Literal["none", "ada"] = "none"
    """'ada': every discriminator input (reals and fakes) is augmented, each transform with probability p per image.
    'none': discriminator inputs are left as they are. EpiGRAF trains with ADA (target 0.6), EG3D on AFHQ."""
    p: float = 0.0
    """Augmentation probability at the start (ADA starts at 0); with --model.augment.target None it stays fixed."""
    target: float | None = 0.6
    """ADA's target of r_t = E[sign(D(real))]: p rises while r_t is above it, falls below it (StyleGAN2-ADA: 0.6).
    None: p is not adjusted (a fixed augmentation strength)."""
    ada_kimg: float = 500.0
    """Speed of the adjustment: p can go from 0 to 1 in this many thousand real images (StyleGAN2-ADA: 500)."""
    ada_interval: int = 4
    """Adjust p every this many minibatches (StyleGAN2-ADA: 4)."""
    transforms: tuple[Transform, ...] = GEOMETRIC_TRANSFORMS + COLOUR_TRANSFORMS
    """Which transforms may fire, each independently with probability p per image.
    All of them by default: StyleGAN2-ADA's default 'bgc' set."""
    group_size: int = 1
    """Consecutive images that share one draw of every transform (1: each image its own, as in StyleGAN2-ADA).
    Set to the discriminator's minibatch-std group size, a shared draw keeps the differences between the images
    of a group (what the group statistic measures) while each image's absolute colour or pose is still hidden."""

    @property
    def enabled(self) -> bool:
        return self.mode == "ada"

    @property
    def adaptive(self) -> bool:
        return self.mode == "ada" and self.target is not None

    def problems(self) -> list[str]:
        """What is wrong with the options, one sentence each naming the flag (empty when valid)."""
        flag = "--model.augment"
        problems = []
        if not 0.0 <= self.p <= 1.0:
            problems.append(f"{flag}.p must lie in [0, 1], got {self.p}")
        if self.target is not None and not 0.0 <= self.target <= 1.0:
            problems.append(f"{flag}.target must lie in [0, 1] (or be None for a fixed p), got {self.target}")
        if not self.ada_kimg > 0:
            problems.append(f"{flag}.ada-kimg must be positive, got {self.ada_kimg}")
        if self.ada_interval < 1:
            problems.append(f"{flag}.ada-interval must be at least 1 minibatch, got {self.ada_interval}")
        if isinstance(self.group_size, bool) or not isinstance(self.group_size, int) or self.group_size < 1:
            problems.append(f"{flag}.group-size must be a whole number of images, at least 1, got {self.group_size!r}")
        unknown = [t for t in self.transforms if t not in GEOMETRIC_TRANSFORMS + COLOUR_TRANSFORMS]
        if unknown:
            problems.append(f"{flag}.transforms: unknown {unknown}; choose from "
                            f"{list(GEOMETRIC_TRANSFORMS + COLOUR_TRANSFORMS)}")
        return problems


# ------------------------------------------------------------------------------------------ matrices
def _matrix(rows: list[list[Tensor | float]], like: Tensor) -> Tensor:
    """A batch of matrices [b, n, m] from rows of per-item tensors [b] or constants."""
    def entry(value: Tensor | float) -> Tensor:
        return value.to(like.dtype) if isinstance(value, Tensor) else torch.full_like(like, float(value))
    return torch.stack([torch.stack([entry(v) for v in row], dim=-1) for row in rows], dim=-2)


def translate_2d(tx: Tensor, ty: Tensor) -> Tensor:
    """Homogeneous 2D translations [b, 3, 3] by (tx, ty) [b] each: content at x moves to x + t."""
    return _matrix([[1, 0, tx], [0, 1, ty], [0, 0, 1]], tx)


def scale_2d(sx: Tensor, sy: Tensor) -> Tensor:
    """Homogeneous 2D scalings [b, 3, 3] about the origin (the image centre) by (sx, sy) [b] each."""
    return _matrix([[sx, 0, 0], [0, sy, 0], [0, 0, 1]], sx)


def rotate_2d(theta: Tensor) -> Tensor:
    """Homogeneous 2D rotations [b, 3, 3] by ``theta`` [b] radians about the image centre."""
    c, s = theta.cos(), theta.sin()
    return _matrix([[c, -s, 0], [s, c, 0], [0, 0, 1]], theta)


def rotate90_2d(quarters: Tensor) -> Tensor:
    """Rotations [b, 3, 3] by ``quarters`` [b] (integers) times 90 degrees, with exact 0 / +-1 entries.

    Example: ``rotate90_2d(torch.tensor([1]))[0, :2, :2]`` is ``[[0, -1], [1, 0]]``.
    """
    table = torch.tensor([1.0, 0.0, -1.0, 0.0], device=quarters.device)
    k = quarters.long() % 4
    return rotate_cos_sin(table[k], table[(k - 1) % 4])


def rotate_cos_sin(cos: Tensor, sin: Tensor) -> Tensor:
    """Rotations [b, 3, 3] given their cosines and sines [b]."""
    return _matrix([[cos, -sin, 0], [sin, cos, 0], [0, 0, 1]], cos)


_LUMA_AXIS = (1.0 / math.sqrt(3.0),) * 3
"""Unit vector along the grey diagonal of rgb: ADA's luma axis v (the colour transforms rotate and reflect about it)."""


def _homogeneous_3d(block: Tensor, shift: Tensor | None = None) -> Tensor:
    """[b, 4, 4] from a 3x3 block [b, 3, 3] and an optional translation [b, 3]."""
    b = block.shape[0]
    out = torch.zeros(b, 4, 4, dtype=block.dtype, device=block.device)
    out[:, :3, :3] = block
    out[:, 3, 3] = 1.0
    if shift is not None:
        out[:, :3, 3] = shift
    return out


def _luma_outer(like: Tensor) -> Tensor:
    """v v^T [3, 3] for the luma axis v (every entry 1/3)."""
    v = torch.tensor(_LUMA_AXIS, dtype=like.dtype, device=like.device)
    return v[:, None] * v[None, :]


def translate_3d(shift: Tensor) -> Tensor:
    """Colour matrices [b, 4, 4] adding ``shift`` [b] to every channel (brightness)."""
    eye = torch.eye(3, dtype=shift.dtype, device=shift.device).expand(shift.shape[0], 3, 3)
    return _homogeneous_3d(eye, shift[:, None].expand(-1, 3))


def scale_3d(factor: Tensor) -> Tensor:
    """Colour matrices [b, 4, 4] multiplying every channel by ``factor`` [b] (contrast, about 0 = mid-grey)."""
    eye = torch.eye(3, dtype=factor.dtype, device=factor.device)
    return _homogeneous_3d(factor[:, None, None] * eye)


def luma_flip_3d(flip: Tensor) -> Tensor:
    """Colour matrices [b, 4, 4] ``I - 2 v v^T flip``: with ``flip`` [b] 1, the luma component is negated."""
    eye = torch.eye(3, dtype=flip.dtype, device=flip.device)
    return _homogeneous_3d(eye - 2.0 * flip[:, None, None] * _luma_outer(flip))


def hue_rotate_3d(theta: Tensor) -> Tensor:
    """Colour matrices [b, 4, 4] rotating rgb by ``theta`` [b] radians about the luma axis (Rodrigues' formula)."""
    v = torch.tensor(_LUMA_AXIS, dtype=theta.dtype, device=theta.device)
    cross = torch.zeros(3, 3, dtype=theta.dtype, device=theta.device)
    cross[0, 1], cross[0, 2], cross[1, 2] = -v[2], v[1], -v[0]
    cross = cross - cross.T  # [v]_x, the cross-product matrix of v
    eye = torch.eye(3, dtype=theta.dtype, device=theta.device)
    c, s = theta.cos()[:, None, None], theta.sin()[:, None, None]
    return _homogeneous_3d(c * eye + s * cross + (1.0 - c) * _luma_outer(theta))


def saturate_3d(factor: Tensor) -> Tensor:
    """Colour matrices [b, 4, 4] ``v v^T + (I - v v^T) factor``: chroma scaled by ``factor`` [b], luma kept."""
    # Written as s I + (1 - s) v v^T, equal to the above, so that s = 1 gives the identity exactly.
    s = factor[:, None, None]
    eye = torch.eye(3, dtype=factor.dtype, device=factor.device)
    return _homogeneous_3d(s * eye + (1.0 - s) * _luma_outer(factor))


# ------------------------------------------------------------------------------------------ sampling
def _fires(p: float, batch_size: int, rng: torch.Generator) -> Tensor:
    """Bool [b]: which images a transform of probability ``p`` changes."""
    return torch.rand(batch_size, generator=rng, device=rng.device) < p


def _lognormal(std: float, batch_size: int, rng: torch.Generator) -> Tensor:
    return torch.exp2(torch.randn(batch_size, generator=rng, device=rng.device) * (std / math.log(2)))


def _uniform(low: float, high: float, batch_size: int, rng: torch.Generator) -> Tensor:
    return low + (high - low) * torch.rand(batch_size, generator=rng, device=rng.device)


def sample_geometric(
    transforms: tuple[str, ...], p: float, batch_size: int, height: int, width: int, rng: torch.Generator
) -> Tensor:
    """Random geometric transforms [b, 3, 3] in centred pixel coordinates (x right, y down, origin at the
    image centre), each of ``transforms`` firing per image with probability ``p`` (rotations: see the module).

    Matrices map where content is to where it goes (``out(M x) = in(x)``); :func:`resample_images` applies
    them. Transforms that do not fire contribute the identity, so ``p = 0`` gives identity matrices. The
    draws come from ``rng`` on its device, the same count whatever fires.

    Example: ``sample_geometric(("xflip",), 1.0, 4, 16, 16, rng)`` is ``diag(+-1, 1, 1)`` per image.
    """
    b, device = batch_size, rng.device
    matrix = torch.eye(3, device=device).expand(b, 3, 3)
    zeros, ones = torch.zeros(b, device=device), torch.ones(b, device=device)

    def gate(value: Tensor, identity: Tensor, probability: float = p) -> Tensor:
        return torch.where(_fires(probability, b, rng), value, identity)

    for name in GEOMETRIC_TRANSFORMS:
        if name not in transforms:
            continue
        if name == "xflip":
            flip = torch.randint(0, 2, (b,), generator=rng, device=device).float()
            step = scale_2d(gate(1.0 - 2.0 * flip, ones), ones)
        elif name == "rotate90":
            quarters = torch.randint(0, 4, (b,), generator=rng, device=device)
            step = rotate90_2d(gate(quarters, torch.zeros_like(quarters)))
        elif name == "xint":
            shift = (_uniform(-XINT_MAX, XINT_MAX, 2 * b, rng).view(2, b) * torch.tensor(
                [[width], [height]], device=device)).round()
            fire = _fires(p, b, rng)
            step = translate_2d(torch.where(fire, shift[0], zeros), torch.where(fire, shift[1], zeros))
        elif name == "scale":
            s = gate(_lognormal(SCALE_STD, b, rng), ones)
            step = scale_2d(s, s)
        elif name == "rotate":
            # Two rotations around the anisotropic scaling; each fires with 1 - sqrt(1 - p), so some rotation
            # happens with probability p (StyleGAN2-ADA).
            p_rot = 1.0 - math.sqrt(max(1.0 - p, 0.0))
            step = rotate_2d(gate(_uniform(-ROTATE_MAX, ROTATE_MAX, b, rng), zeros, p_rot))
            matrix = step @ matrix
            if "aniso" in transforms:
                s = gate(_lognormal(ANISO_STD, b, rng), ones)
                matrix = scale_2d(s, 1.0 / s) @ matrix
            step = rotate_2d(gate(_uniform(-ROTATE_MAX, ROTATE_MAX, b, rng), zeros, p_rot))
        elif name == "aniso":
            if "rotate" in transforms:
                continue  # applied between the two rotations above
            s = gate(_lognormal(ANISO_STD, b, rng), ones)
            step = scale_2d(s, 1.0 / s)
        else:  # xfrac
            shift = torch.randn(2, b, generator=rng, device=device) * XFRAC_STD * torch.tensor(
                [[width], [height]], device=device)
            fire = _fires(p, b, rng)
            step = translate_2d(torch.where(fire, shift[0], zeros), torch.where(fire, shift[1], zeros))
        matrix = step @ matrix
    return matrix


def sample_colour(transforms: tuple[str, ...], p: float, batch_size: int, rng: torch.Generator) -> Tensor:
    """Random colour transforms [b, 4, 4] acting on homogeneous rgb in [-1, 1], each of ``transforms``
    firing per image with probability ``p``; :func:`apply_colour_matrix` applies them.

    Example: ``sample_colour(("brightness",), 1.0, 2, rng)[:, :3, 3]`` holds one N(0, 0.2^2) shift per image.
    """
    b, device = batch_size, rng.device
    matrix = torch.eye(4, device=device).expand(b, 4, 4)
    zeros, ones = torch.zeros(b, device=device), torch.ones(b, device=device)

    def gate(value: Tensor, identity: Tensor) -> Tensor:
        return torch.where(_fires(p, b, rng), value, identity)

    for name in COLOUR_TRANSFORMS:
        if name not in transforms:
            continue
        if name == "brightness":
            step = translate_3d(gate(torch.randn(b, generator=rng, device=device) * BRIGHTNESS_STD, zeros))
        elif name == "contrast":
            step = scale_3d(gate(_lognormal(CONTRAST_STD, b, rng), ones))
        elif name == "lumaflip":
            step = luma_flip_3d(gate(torch.randint(0, 2, (b,), generator=rng, device=device).float(), zeros))
        elif name == "hue":
            step = hue_rotate_3d(gate(_uniform(-HUE_MAX, HUE_MAX, b, rng), zeros))
        else:  # saturation
            step = saturate_3d(gate(_lognormal(SATURATION_STD, b, rng), ones))
        matrix = step @ matrix
    return matrix


# ------------------------------------------------------------------------------------------ applying
def _is_identity(matrix: Tensor) -> Tensor:
    """Bool [b]: which matrices [b, n, n] are exactly the identity."""
    eye = torch.eye(matrix.shape[-1], dtype=matrix.dtype, device=matrix.device)
    return (matrix == eye).flatten(1).all(dim=1)


def resample_images(images: Tensor, matrix: Tensor) -> Tensor:
    """Images [b, c, h, w] moved by geometric matrices [b, 3, 3] (centred pixel coordinates, see
    :func:`sample_geometric`): ``out(M x) = in(x)``, bilinear, reflection padding; differentiable w.r.t.
    ``images`` (to second order, for R1). Images whose matrix is the identity are returned bit for bit.

    Example: ``resample_images(x, translate_2d(torch.tensor([2.0]), torch.tensor([0.0])))[..., 2:]``
    equals ``x[..., :-2]``.
    """
    if images.ndim != 4 or matrix.shape != (images.shape[0], 3, 3):
        raise ValueError(f"resample_images: expected images [b, c, h, w] and matrices [b, 3, 3], got "
                         f"{list(images.shape)} and {list(matrix.shape)}")
    b, _, h, w = images.shape
    matrix = matrix.to(device=images.device, dtype=torch.float32)
    inverse, _ = torch.linalg.inv_ex(matrix)  # no error check: no sync (scales are positive, never singular)
    # affine_grid works in normalized coordinates (-1 and 1 at the outer pixel edges): x_n = x_pixel * 2 / w.
    to_normalized = torch.diag(torch.tensor([2.0 / w, 2.0 / h, 1.0], device=images.device))
    to_pixels = torch.diag(torch.tensor([w / 2.0, h / 2.0, 1.0], device=images.device))
    theta = (to_normalized @ inverse @ to_pixels)[:, :2]
    grid = F.affine_grid(theta, [b, 1, h, w], align_corners=False)
    moved = F.grid_sample(images.float(), grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    return torch.where(_is_identity(matrix)[:, None, None, None], images, moved.to(images.dtype))


def apply_colour_matrix(images: Tensor, matrix: Tensor) -> Tensor:
    """Images [b, c, h, w] (c a multiple of 3: each rgb triple alike) times colour matrices [b, 4, 4]
    (homogeneous rgb); differentiable. Images whose matrix is the identity are returned bit for bit.

    Example: ``apply_colour_matrix(x, translate_3d(torch.tensor([0.1])))`` is ``x + 0.1``.
    """
    b, c, h, w = images.shape
    if c % 3 != 0 or matrix.shape != (b, 4, 4):
        raise ValueError(f"apply_colour_matrix: expected images [b, 3k, h, w] and matrices [b, 4, 4], got "
                         f"{list(images.shape)} and {list(matrix.shape)}")
    matrix = matrix.to(device=images.device, dtype=images.dtype)
    rgb = images.reshape(b, c // 3, 3, h * w)
    out = matrix[:, None, :3, :3] @ rgb + matrix[:, None, :3, 3:]
    return torch.where(_is_identity(matrix)[:, None, None, None], images, out.reshape(b, c, h, w))


def augment_images(images: Tensor, transforms: tuple[str, ...], p: float, rng: torch.Generator,
                   group_size: int = 1) -> Tensor:
    """One ADA augmentation of ``images`` [b, 3k, h, w] in [-1, 1]: geometric, then colour, each of
    ``transforms`` firing with probability ``p`` per group of ``group_size`` consecutive images (one draw
    shared by the group; 1: per image). ``p = 0`` returns ``images`` itself (no draws)."""
    if p <= 0.0:
        return images
    b, _, h, w = images.shape
    draws = -(-b // group_size)

    def per_image(matrices: Tensor) -> Tensor:
        return matrices.repeat_interleave(group_size, dim=0)[:b] if group_size > 1 else matrices

    if any(t in GEOMETRIC_TRANSFORMS for t in transforms):
        images = resample_images(images, per_image(sample_geometric(transforms, p, draws, h, w, rng)))
    if any(t in COLOUR_TRANSFORMS for t in transforms):
        images = apply_colour_matrix(images, per_image(sample_colour(transforms, p, draws, rng)))
    return images


# ------------------------------------------------------------------------------------------ adaptation
def ada_adjustment(real_sign: float, target: float, batch_size: int, interval: int, ada_kimg: float) -> float:
    """ADA's step of p: ``sign(r_t - target) * batch_size * interval / (ada_kimg * 1000)`` (Karras et al. 2020).

    ``real_sign`` is r_t = E[sign(D(real))] over the last ``interval`` minibatches of ``batch_size``
    images (all processes). Example: ``ada_adjustment(1.0, 0.6, 64, 4, 500.0) == 256 / 500_000``.
    """
    direction = (real_sign > target) - (real_sign < target)
    return direction * batch_size * interval / (ada_kimg * 1000.0)


class AdaptiveAugment:
    """ADA's state: the probability p and the running sum of sign(D(real)) since its last adjustment.

    The pipeline calls it on every discriminator input, :meth:`accumulate` with each discriminator phase's
    real logits and :meth:`step` after every minibatch; :meth:`state_dict` holds plain numbers.
    """

    def __init__(self, config: AugmentConfig, batch_size: int, context: DistributedContext = DistributedContext(),
                 device: torch.device | str = "cpu") -> None:
        problems = config.problems()
        if problems:
            raise ValueError("; ".join(problems))
        self.config = config
        self.batch_size = batch_size
        """Images per minibatch over all processes."""
        self.context = context
        self.device = torch.device(device)
        self.p = float(config.p) if config.enabled else 0.0
        self.sign_sum = 0.0
        """Sum of sign(D(real)) over this process's reals since the last adjustment."""
        self.count = 0.0
        """How many real logits ``sign_sum`` holds."""

    def __call__(self, images: Tensor, rng: torch.Generator) -> Tensor:
        """``images`` [b, 3k, h, w] augmented at the current p (themselves when off or p is 0)."""
        if not self.config.enabled:
            return images
        return augment_images(images, self.config.transforms, self.p, rng, self.config.group_size)

    def accumulate(self, real_logits: Tensor) -> float:
        """Adds a minibatch's real logits to r_t's running sum; returns this minibatch's mean sign."""
        signs = real_logits.detach().float().sign()
        total = float(signs.sum())
        self.sign_sum += total
        self.count += signs.numel()
        return total / max(signs.numel(), 1)

    def step(self, step: int) -> None:
        """After minibatch ``step`` (from 0): every ``ada_interval`` minibatches, move p by ADA's rule and
        restart the sum. Every process calls it at the same steps (the sum is averaged over processes)."""
        config = self.config
        if not config.adaptive or (step + 1) % config.ada_interval != 0:
            return
        stats = all_reduce_mean(torch.tensor([self.sign_sum, self.count], dtype=torch.float64, device=self.device),
                                self.context)
        total, count = (float(v) for v in stats.cpu())
        self.sign_sum, self.count = 0.0, 0.0
        if count <= 0:
            return
        real_sign = total / count
        adjust = ada_adjustment(real_sign, config.target, self.batch_size, config.ada_interval, config.ada_kimg)
        self.p = min(max(self.p + adjust, 0.0), 1.0)

    def state_dict(self) -> dict[str, Any]:
        return {"p": self.p, "sign_sum": self.sign_sum, "count": self.count}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.p = float(state["p"])
        self.sign_sum = float(state["sign_sum"])
        self.count = float(state["count"])

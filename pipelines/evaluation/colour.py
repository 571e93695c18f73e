"""How many hues an object carries: the circular spread of hue over an image's object pixels.

Real objects of the built-in dataset are made of one material each: shading changes their brightness,
not their hue. A generator early in training paints objects with hue gradients (green into blue into
purple) that SWD barely notices. The hue spread of an image is the circular standard deviation
``sqrt(-2 ln R)`` of the hue angle over its coloured object pixels (saturation above a floor, so
that grey and near-white pixels, whose hue is noise, do not count), ``R`` the length of the mean
unit hue vector: 0 for a single hue, growing as hues spread around the colour wheel.

The reals of one family come in every hue; a generator whose objects of a family all share one hue
(a collapse the discriminator's minibatch statistics miss when its groups mix families) has flat
colours yet no variety. The hue variety is the circular variance ``1 - R`` of the objects' mean hues
within each class (bounded, unlike the standard deviation, which diverges for evenly spread hues),
averaged over the classes.

A generator can also fake that variety with a hue that turns with the camera: painting a colour wheel
around the object, each view shows mostly one side and so one hue, and a set of images taken from
random cameras looks as varied as the reals though no object has a colour of its own. The hue change
across views is the circular variance of an object's mean hue over views of it from around the
object, averaged over the objects: about 0 for the reals, whose material does not depend on the view.
"""

from __future__ import annotations

import math

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor

SATURATION_FLOOR = 0.25
"""Pixels below this HSV saturation have no reliable hue and are left out."""
MIN_PIXELS = 10
"""An image with fewer coloured object pixels has no hue spread (NaN)."""


def hue_and_saturation(images: Float[Tensor, "b 3 h w"]) -> tuple[Float[Tensor, "b h w"], Float[Tensor, "b h w"]]:
    """HSV hue (radians in [0, 2 pi)) and saturation of RGB images in [0, 1].

    Example: pure red has hue 0, green 2 pi / 3, blue 4 pi / 3; all three have saturation 1.
    """
    r, g, b = images.clamp(0, 1).unbind(dim=1)
    high = torch.maximum(torch.maximum(r, g), b)
    low = torch.minimum(torch.minimum(r, g), b)
    chroma = high - low
    saturation = torch.where(high > 0, chroma / high.clamp(min=1e-8), torch.zeros_like(high))
    safe = chroma.clamp(min=1e-8)
    sector = torch.where(high == r, ((g - b) / safe) % 6,
                         torch.where(high == g, (b - r) / safe + 2, (r - g) / safe + 4))
    return sector * (math.pi / 3), saturation


def _mean_hue_vector(images: Tensor, object_mask: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Mean unit hue vector (cos, sin) [b] each over the coloured object pixels, and their count [b]."""
    hue, saturation = hue_and_saturation(images)
    counted = (object_mask & (saturation > SATURATION_FLOOR)).float()
    count = counted.sum(dim=(1, 2))
    cos = (torch.cos(hue) * counted).sum(dim=(1, 2)) / count.clamp(min=1)
    sin = (torch.sin(hue) * counted).sum(dim=(1, 2)) / count.clamp(min=1)
    return cos, sin, count


def _resultant_length(cos: Tensor, sin: Tensor) -> Tensor:
    """The length ``R`` of mean unit vectors (cos, sin), kept in [1e-12, 1] so that ``ln R`` is finite."""
    return torch.sqrt(cos**2 + sin**2).clamp(min=1e-12, max=1.0)


def _circular_variance(angles: Tensor) -> Tensor:
    """``1 - R`` of angles [n] (radians): 0 when they agree, 1 when they cancel out."""
    return 1 - _resultant_length(torch.cos(angles).mean(), torch.sin(angles).mean())


def hue_spread(images: Float[Tensor, "b 3 h w"], object_mask: Bool[Tensor, "b h w"]) -> Float[Tensor, " b"]:
    """Circular standard deviation of hue (radians) over each image's coloured object pixels; NaN where
    fewer than :data:`MIN_PIXELS` object pixels reach :data:`SATURATION_FLOOR`.

    Example: an object in one flat colour, shaded from light to dark, has spread ~0; one half red and
    half green (hues 2 pi / 3 apart) has sqrt(-2 ln 0.5) = 1.18.
    """
    cos, sin, count = _mean_hue_vector(images, object_mask)
    spread = torch.sqrt(-2 * torch.log(_resultant_length(cos, sin)))
    return torch.where(count >= MIN_PIXELS, spread, torch.full_like(spread, float("nan")))


def mean_hue(images: Float[Tensor, "b 3 h w"], object_mask: Bool[Tensor, "b h w"]) -> Float[Tensor, " b"]:
    """Circular mean of hue (radians in (-pi, pi]) over each image's coloured object pixels; NaN where
    :func:`hue_spread` is.

    Example: an object half red (hue 0) and half yellow (hue pi / 3) has mean hue pi / 6.
    """
    cos, sin, count = _mean_hue_vector(images, object_mask)
    angle = torch.atan2(sin, cos)
    return torch.where(count >= MIN_PIXELS, angle, torch.full_like(angle, float("nan")))


def hue_variety(object_hues: Float[Tensor, " b"], classes: Int[Tensor, " b"]) -> float:
    """Circular variance ``1 - R`` of objects' mean hues (:func:`mean_hue`, NaN ones left out) within each class,
    averaged over the classes that have at least two hues; NaN if none has. 0 when every object of a class
    has one hue, 1 for hues evenly around the wheel; uniformly random hues of 16 objects give about 0.78.

    Example: four objects of class 0 at hues 0, pi / 2, pi, 3 pi / 2 and two of class 1 both at hue 1
    give (1 + 0) / 2 = 0.5: a class that varies and a class that collapsed count alike.
    """
    if object_hues.shape != classes.shape:
        raise ValueError(f"hue_variety: {tuple(object_hues.shape)} hues but {tuple(classes.shape)} classes; give one "
                         "class per object")
    known = ~object_hues.isnan()
    variances = []
    for label in classes[known].unique():
        hues = object_hues[known & (classes == label)]
        if len(hues) >= 2:
            variances.append(_circular_variance(hues))
    return float(torch.stack(variances).mean()) if variances else float("nan")


def hue_change_across_views(view_hues: Float[Tensor, "objects views"]) -> float:
    """Circular variance ``1 - R`` of each object's mean hue (:func:`mean_hue`) over its views, NaN views left out,
    averaged over the objects with at least two hues; NaN if none has. 0 when every object keeps its hue from
    every side, 1 for a hue that goes once around the wheel as the camera goes once around the object.

    Example: an object seen at hue 1 from four sides and one seen at 0, pi / 2, pi and 3 pi / 2 give
    (0 + 1) / 2 = 0.5.
    """
    if view_hues.ndim != 2:
        raise ValueError(f"hue_change_across_views: hues of shape {tuple(view_hues.shape)}; give [objects, views]")
    variances = []
    for hues in view_hues:
        hues = hues[~hues.isnan()]
        if len(hues) >= 2:
            variances.append(_circular_variance(hues))
    return float(torch.stack(variances).mean()) if variances else float("nan")


def real_object_mask(images: Float[Tensor, "b 3 h w"], background: float = 1.0,
                     tolerance: float = 0.08) -> Bool[Tensor, "b h w"]:
    """Pixels of images in [0, 1] that differ from a uniform ``background`` by more than ``tolerance`` in some
    channel (the built-in dataset renders its objects on white)."""
    return (images - background).abs().amax(dim=1) > tolerance


def median_hue_spread(images: Float[Tensor, "b 3 h w"], object_mask: Bool[Tensor, "b h w"]) -> float:
    """The median of :func:`hue_spread` over the images that have one (NaN if none has)."""
    spreads = hue_spread(images, object_mask)
    spreads = spreads[~spreads.isnan()]
    return float(spreads.median()) if len(spreads) else float("nan")


def rotate_hue(images: Float[Tensor, "b 3 h w"], angle: Float[Tensor, "b 1 h w"]) -> Float[Tensor, "b 3 h w"]:
    """RGB images in [0, 1] with every pixel's colour turned by ``angle`` (radians, per pixel) about the grey
    axis: brightness and greys stay, hue moves (results clamped to [0, 1]).

    Example: a turn by 2 pi / 3 takes pure red (1, 0, 0) to pure green (0, 1, 0).
    """
    axis = images.new_full((3,), 1 / math.sqrt(3))[None, :, None, None]
    grey = (images * axis).sum(dim=1, keepdim=True) * axis
    chroma = images - grey
    cross = torch.cross(axis.expand_as(chroma), chroma, dim=1)
    return (grey + chroma * torch.cos(angle) + cross * torch.sin(angle)).clamp(0, 1)

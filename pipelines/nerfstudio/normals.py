"""Surface normals of a density field from its gradient, the way nerfstudio's exporters read them."""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor


def density_normals(density_fn: Callable[[Tensor], Tensor], positions: Tensor) -> tuple[Tensor, Tensor]:
    """Density [..., 1] and unit normals [..., 3] at ``positions`` [..., 3]: ``n = -grad(sigma) / |grad(sigma)|``.

    Density grows into an object, so its negative gradient points out of it (Boss et al. 2021,
    NeRD, eq. 7; nerfstudio's ``Field.get_normals``). Where the gradient vanishes (empty space)
    the normal is the zero vector. Gradients are taken with respect to ``positions`` only, whatever
    the caller's grad mode: called under ``torch.no_grad()`` the density comes back detached, and
    anything ``density_fn`` reads (planes, weights) gets no graph beyond what it already had.

    Example: a soft ball ``sigma(p) = sigmoid((0.3 - |p|) / 0.01)`` at ``p = (0, 0, 0.29)`` has the
    normal ``(0, 0, 1)``.
    """
    outer_grad = torch.is_grad_enabled()
    with torch.enable_grad():
        leaf = positions.detach().requires_grad_(True)
        density = density_fn(leaf)
        gradient = None
        if density.requires_grad:
            (gradient,) = torch.autograd.grad(density, leaf, grad_outputs=torch.ones_like(density),
                                              retain_graph=outer_grad, allow_unused=True)
    if gradient is None:  # a density that does not vary with position (or ignores it) has no surface
        gradient = torch.zeros_like(leaf)
    normals = -torch.nn.functional.normalize(gradient, dim=-1)
    return (density if outer_grad else density.detach()), normals


def normals_to_unit_interval(normals: Tensor) -> Tensor:
    """Composited normals in [-1, 1] as the [0, 1] image nerfstudio's viewer and ``ns-export --normal-method
    model_output`` expect (``(n + 1) / 2``; a ray without surface, n = 0, reads 0.5)."""
    return (normals + 1.0) / 2.0

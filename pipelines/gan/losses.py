"""Non-saturating GAN losses, the R1 penalty and StyleGAN2's lazy-regularization optimizer settings."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor


def generator_loss(fake_logits: Tensor) -> Tensor:
    """Non-saturating generator loss ``softplus(-D(G(z)))`` per item (Goodfellow et al. 2014, Sec. 3).

    Example: ``generator_loss(torch.tensor([0.0]))`` is ``[log 2]``.
    """
    return F.softplus(-fake_logits)


def discriminator_real_loss(real_logits: Tensor) -> Tensor:
    """Discriminator loss on real items, ``softplus(-D(x)) = -log sigmoid(D(x))`` per item."""
    return F.softplus(-real_logits)


def discriminator_fake_loss(fake_logits: Tensor) -> Tensor:
    """Discriminator loss on generated items, ``softplus(D(G(z))) = -log(1 - sigmoid(D(G(z))))`` per item."""
    return F.softplus(fake_logits)


def r1_penalty(real_logits: Tensor, *real_inputs: Tensor) -> Tensor:
    """R1 penalty ``||d D(x) / d x||^2`` per item (Mescheder et al. 2018, Eq. 9), shape [b].

    ``real_inputs`` must require grad and be what ``real_logits`` were computed from; with several
    (EG3D's image and its low-resolution raw image) the squared gradients of all are summed. The
    graph is kept (``create_graph``) so the penalty itself can be back-propagated to D's weights.
    Scale by ``gamma / 2`` (see :func:`r1_loss`).
    """
    if not real_inputs or not all(x.requires_grad for x in real_inputs):
        raise ValueError(
            "r1_penalty: real_images does not require grad; call real_images.requires_grad_(True) "
            "before running the discriminator on it"
        )
    grads = torch.autograd.grad(outputs=real_logits.sum(), inputs=real_inputs, create_graph=True)
    return sum(g.square().flatten(1).sum(dim=1) for g in grads)


def r1_loss(penalty: Tensor, gamma: float, interval: int = 1) -> Tensor:
    """Weighted R1 loss per item: ``penalty * gamma / 2``, times the lazy-regularization interval.

    Lazy regularization (Karras et al. 2020, Sec. 3.1) evaluates R1 only every ``interval``
    minibatches, so its weight is multiplied by ``interval`` to keep the same overall strength.
    """
    return penalty * (gamma / 2.0) * interval


def is_regularization_step(step: int, interval: int) -> bool:
    """Whether minibatch ``step`` (counted from 0) runs the lazy regularizer; ``interval`` 0 = never."""
    return interval > 0 and step % interval == 0


def lazy_regularization_adam_params(
    lr: float, betas: tuple[float, float], interval: int
) -> tuple[float, tuple[float, float]]:
    """Adam learning rate and betas compensated for a lazily regularized network.

    With a regularization step every ``interval`` main steps, the optimizer takes ``interval + 1``
    steps per ``interval`` minibatches; StyleGAN2 scales ``lr`` by ``c = interval / (interval + 1)``
    and raises each beta to the power ``c`` (Karras et al. 2020, Sec. 3.1; StyleGAN2-ADA
    ``training_loop``). ``interval`` 0 or 1 (no lazy regularization) leaves them unchanged.

    Example: ``lazy_regularization_adam_params(0.002, (0.0, 0.99), 16)`` gives
    ``(0.002 * 16/17, (0.0, 0.99 ** (16/17)))``.
    """
    if interval < 0:
        raise ValueError(f"interval must be >= 0, got {interval}")
    if interval <= 1:
        return lr, (betas[0], betas[1])
    c = interval / (interval + 1)
    return lr * c, (betas[0] ** c, betas[1] ** c)


@dataclass
class AdamConfig:
    """Adam settings of one network, before the lazy-regularization compensation.

    Defaults are the StyleGAN2 discriminator's in EpiGRAF: lr 0.002, betas (0, 0.99), eps 1e-8,
    R1 every 16 minibatches. EpiGRAF's generator uses lr 0.0025 and no lazy regularization
    (path-length regularization is off, ``reg_interval`` 0).
    """

    lr: float = 0.002
    """Learning rate."""
    beta1: float = 0.0
    """Adam's first-moment decay (StyleGAN2 uses no momentum)."""
    beta2: float = 0.99
    """Adam's second-moment decay."""
    eps: float = 1e-8
    """Adam's epsilon."""
    reg_interval: int = 16
    """Run the regularizer every this many minibatches (0 = never; 1 = every step, no compensation)."""

    def build(self, params, separate_regularization_step: bool = True) -> torch.optim.Adam:
        """An Adam optimizer over ``params``.

        StyleGAN2 runs a lazy regularizer as an extra optimizer step every ``reg_interval`` minibatches
        and lowers lr and betas so that the interval's ``reg_interval + 1`` steps move as far as
        ``reg_interval`` plain ones would. A regularizer added to the main step's loss
        (``separate_regularization_step=False``) takes no extra step, so there is nothing to compensate.
        """
        interval = self.reg_interval if separate_regularization_step else 0
        lr, betas = lazy_regularization_adam_params(self.lr, (self.beta1, self.beta2), interval)
        return torch.optim.Adam(params, lr=lr, betas=betas, eps=self.eps)

    @classmethod
    def epigraf_generator(cls) -> AdamConfig:
        """EpiGRAF's generator optimizer: lr 0.0025, betas (0, 0.99), no lazy regularizer."""
        return cls(lr=0.0025, reg_interval=0)

    @classmethod
    def epigraf_discriminator(cls) -> AdamConfig:
        """EpiGRAF's discriminator optimizer: lr 0.002, betas (0, 0.99), lazy R1 every 16 minibatches."""
        return cls(lr=0.002, reg_interval=16)

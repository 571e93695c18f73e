"""Training schedules in kimg: discriminator input blur, NeRF density noise and the generator EMA."""

from __future__ import annotations


def linear_decay(kimg: float, start: float, duration_kimg: float) -> float:
    """``start`` at kimg 0, falling linearly to 0 at ``duration_kimg`` and staying there.

    Example: ``linear_decay(50.0, start=10.0, duration_kimg=200.0) == 7.5``.
    """
    if duration_kimg <= 0:
        return 0.0
    return start * max(1.0 - kimg / duration_kimg, 0.0) if kimg > 0 else start


def blur_sigma(kimg: float, start_sigma: float = 10.0, fade_kimg: float = 200.0) -> float:
    """Discriminator input blur (in pixels of the full image) at ``kimg``.

    StyleGAN3 / EpiGRAF blur real and fake images alike, starting at sigma 10 and fading
    linearly to 0 over the first 200 kimg, so the early discriminator cannot win on fine detail.
    """
    return linear_decay(kimg, start_sigma, fade_kimg)


def density_noise_std(kimg: float, start: float = 1.0, end_kimg: float = 5000.0) -> float:
    """Std of the Gaussian noise added to raw density ("NeRF noise"), 1.0 fading to 0 over 5,000 kimg
    (EpiGRAF's ``nerf_noise_std_init`` / ``nerf_noise_kimg_growth``)."""
    return linear_decay(kimg, start, end_kimg)


def ema_beta(
    batch_size: int,
    cur_nimg: int,
    ema_kimg: float | None = None,
    rampup: float | None = 0.05,
) -> float:
    """Decay of the generator EMA for one step of ``batch_size`` images (StyleGAN2-ADA).

    The EMA's half-life is ``ema_kimg`` thousand images (default ``10 * batch_size / 32``, i.e.
    EpiGRAF's ``ema_multiplier`` 0.3125); during ramp-up it is at most ``rampup * cur_nimg`` so early
    weights are forgotten quickly. ``beta = 0.5 ** (batch_size / ema_nimg)``.

    Example: ``ema_beta(32, cur_nimg=10**7) == 0.5 ** (32 / 10000)``.
    """
    if batch_size <= 0:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    if ema_kimg is None:
        ema_kimg = 10.0 * batch_size / 32.0
    ema_nimg = ema_kimg * 1000.0
    if rampup is not None:
        ema_nimg = min(ema_nimg, cur_nimg * rampup)
    return 0.5 ** (batch_size / max(ema_nimg, 1e-8))


def pose_swap_probability(kimg: float, final: float, fade_kimg: float) -> float:
    """Probability of conditioning the generator on a random other camera at ``kimg`` (EG3D's GPC swapping).

    EG3D starts by always swapping (1.0) and fades linearly to ``final`` (0.5) over ``fade_kimg``
    (1,000 kimg), so early training cannot tie identity to pose; ``fade_kimg`` 0 uses ``final`` from
    the start. Example: ``pose_swap_probability(500.0, 0.5, 1000.0) == 0.75``.
    """
    if fade_kimg <= 0:
        return final
    alpha = min(max(kimg, 0.0) / fade_kimg, 1.0)
    return 1.0 + (final - 1.0) * alpha

"""What the viewer's GUI controls: the latent, the render quality and what is shown."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

from renderers.volume_renderer import VolumeRendererConfig

OUTPUTS = ("rgb", "depth", "opacity")
VIEW_SAMPLERS = ("stratified", "importance", "occupancy")

SEED_CLASS = "the seed's own"
"""The class control's first choice: each seed in its own class (``class_index`` -1)."""

Output = Literal["rgb", "depth", "opacity"]
Sampler = Literal["stratified", "importance", "occupancy"]


@dataclass(frozen=True)
class ViewSettings:
    """One consistent set of GUI values; the render worker reads a snapshot per frame."""

    seed: int = 0
    """Seed of the first latent z."""
    seed_b: int = 1
    """Seed of the second latent (used when mix > 0)."""
    mix: float = 0.0
    """Interpolation from the first (0) to the second (1) latent, linear in w (StyleGAN)."""
    truncation_psi: float = 1.0
    """Truncation towards the mean w (1: none)."""
    class_index: int = -1
    """Class of a class-conditional generator (-1: each seed in its own class, as in every other command)."""
    resolution: int = 128
    """Rows of the refined frame; a moving camera is shown at preview_fraction of this."""
    samples_per_ray: int = 32
    """Stratified samples per ray (importance: half coarse, half fine; occupancy: march steps over the box diagonal)."""
    sampler: Sampler = "stratified"
    """'stratified', 'importance' or 'occupancy' (skips empty space with a grid built once per latent)."""
    output: Output = "rgb"
    """What the frame shows: colour, depth or opacity."""
    background: tuple[int, int, int] = (255, 255, 255)
    """Background colour (0-255 per channel). A generator rendered with a learned backdrop (renderer
    background 'last_sample') keeps it: every pixel is then opaque (the depth view shows the backdrop
    at the far distance) and this colour is not used."""

    def __post_init__(self) -> None:
        if self.sampler not in VIEW_SAMPLERS:
            raise ValueError(f"sampler must be one of {VIEW_SAMPLERS}, got {self.sampler!r}")
        if self.output not in OUTPUTS:
            raise ValueError(f"output must be one of {OUTPUTS}, got {self.output!r}")
        if self.resolution < 8:
            raise ValueError(f"render resolution must be at least 8 rows, got {self.resolution}")
        if self.samples_per_ray < 2:
            raise ValueError(f"samples per ray must be at least 2, got {self.samples_per_ray}")
        if self.class_index < -1:
            raise ValueError(f"class must be -1 (the seed's own) or a class index, got {self.class_index}")
        if not 0.0 <= self.mix <= 1.0:
            raise ValueError(f"mix must lie in [0, 1], got {self.mix}")
        if len(self.background) != 3 or not all(0 <= int(c) <= 255 for c in self.background):
            raise ValueError(f"background must be three integers in 0..255, got {self.background}")

    def updated(self, **changes: object) -> ViewSettings:
        """A copy with some values changed (validated)."""
        if "background" in changes:
            changes["background"] = tuple(int(round(float(c))) for c in changes["background"])  # type: ignore[union-attr]
        if changes.get("class_index") == SEED_CLASS:
            changes["class_index"] = -1
        for name in ("seed", "seed_b", "resolution", "samples_per_ray", "class_index"):
            if name in changes:
                changes[name] = int(round(float(changes[name])))  # type: ignore[arg-type]
        for name in ("mix", "truncation_psi"):
            if name in changes:
                changes[name] = float(changes[name])  # type: ignore[arg-type]
        return replace(self, **changes)

    @property
    def latent_key(self) -> tuple[int, int, float, float, int]:
        """What the tri-planes depend on."""
        mix = round(self.mix, 6)
        return (self.seed, self.seed_b if mix > 0 else -1, mix, round(self.truncation_psi, 6), self.class_index)

    def renderer_config(self, base: VolumeRendererConfig) -> VolumeRendererConfig:
        """The generator's renderer config with this view's sampler, samples and background.

        A learned backdrop ('last_sample') is part of what the generator draws, so it is kept; any
        other background becomes this view's colour."""
        samples = self.samples_per_ray
        if self.sampler == "importance":
            coarse, fine = max(1, samples // 2), samples - max(1, samples // 2)
        else:
            coarse, fine = samples, 0
        return replace(
            base,
            sampler=self.sampler,
            num_coarse=coarse,
            num_fine=fine,
            march_steps=samples,
            background="last_sample" if base.background == "last_sample" else "color",
            background_color=tuple(c / 255.0 for c in self.background),
        )

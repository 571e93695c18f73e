"""The training loop shared by every pipeline: kimg accounting, ticks, logs, snapshots, checkpoints."""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from pipelines.pipeline import Pipeline, Progress
from pipelines.engine.data_loader import TrainingBatches
from pipelines.engine.checkpoints import (
    MANIFEST_FILE,
    CheckpointError,
    checkpoint_dir,
    list_checkpoints,
    load_training_state,
    save_checkpoint,
    set_aside_newer_checkpoints,
)
from pipelines.engine.distributed import DistributedContext, barrier, broadcast_module
from pipelines.engine.logs import KimgProgress, RunLogger, rewind_run_logs
from pipelines.engine.snapshots import images_to_grid, save_gif, save_grid
from pipelines.evaluation.trajectories import OrbitConfig, turntable_cameras
from pipelines.model import render_rows_by_class
from renderers.cameras import Cameras

if TYPE_CHECKING:
    from pipelines.engine.options import TrainConfig

SNAPSHOT_SEED = 123_456


@dataclass
class TrainerConfig:
    """The training loop's bookkeeping (the same for every pipeline)."""

    tick_kimg: float = 4.0
    """Length of a tick in kimg: progress is logged once per tick."""
    snapshot_ticks: int = 50
    """Save a snapshot grid every this many ticks (0: only at the end)."""
    checkpoint_ticks: int = 50
    """Write a checkpoint every this many ticks (0: only at the end)."""
    keep_checkpoints: int = 3
    """How many of the newest checkpoints to keep."""
    snapshot_grid: tuple[int, int] = (8, 4)
    """Columns and rows of the snapshot grid (fixed seeds and cameras)."""
    turntable_samples: int = 4
    """Samples shown side by side in the final turntable GIF (0: no GIF)."""
    turntable_frames: int = 36
    """Frames of the final turntable GIF."""
    turntable_resolution: int | None = None
    """Pixels per side of each sample in the turntable GIF (None: the training resolution)."""
    turntable_columns: int = 4
    """Samples per row of the turntable GIF."""
    metrics: tuple[str, ...] = ()
    """Metrics computed during training (fid, kid, swd, mv_psnr, geometry) and logged with the tick."""
    metrics_ticks: int = 0
    """Compute the metrics every this many ticks (0: only at the end)."""
    metrics_images: int = 1000
    """Generated (and real) images per metric evaluation."""
    inception_weights: Path | None = None
    """Inception-v3 weights for FID/KID (else $EPIGRAF_INCEPTION_WEIGHTS or the torch hub cache)."""
    tensorboard: bool = True
    """Mirror the JSON-lines log to TensorBoard."""
    progress_bar: bool = True
    """Show a progress bar with kimg, kimg/s and ETA."""


class TrainingDiverged(RuntimeError):
    """A loss became NaN or Inf: training stops and no checkpoint is written over the good ones."""


class Trainer:
    """Runs a :class:`Pipeline` for ``config.kimg`` thousand images; rank 0 writes every file."""

    def __init__(
        self,
        config: TrainConfig,
        pipeline: Pipeline,
        dataset: torch.utils.data.Dataset,
        run_dir: Path,
        device: torch.device,
        context: DistributedContext = DistributedContext(),
    ) -> None:
        self.config = config
        self.pipeline = pipeline
        self.dataset = dataset
        self.run_dir = Path(run_dir)
        self.device = device
        self.context = context
        # Workers start on the first batch(): after resume() has set self.step.
        self.batches = TrainingBatches(dataset, config.batch, config.seed, context.rank, context.world_size,
                                       workers=config.data_workers, device=device,
                                       class_group=pipeline.real_class_group)
        self.nimg = 0
        self.step = 0
        self.tick = 0
        self.last_checkpoint: Path | None = None
        self._metrics_cache = None
        snapshot_rng = torch.Generator().manual_seed(SNAPSHOT_SEED)
        columns, rows = config.trainer.snapshot_grid
        count = columns * rows
        model = pipeline.model()
        self.snapshot_z = torch.randn(count, model.z_dim, generator=snapshot_rng).to(device)
        self.snapshot_cameras = model.cameras.sample(count, snapshot_rng, device)

    @property
    def total_nimg(self) -> int:
        return int(round(self.config.kimg * 1000))

    def resume(self, checkpoint: Path) -> None:
        """Restores pipeline, RNG and progress from a checkpoint directory (verified against its manifest).

        Rank 0 then makes the run folder agree with the resume point: damaged newer checkpoints are
        renamed ``rejected-*`` (the run would overwrite them on reaching their step again), and what
        was logged after this checkpoint is dropped from ``log.jsonl`` and TensorBoard, since the
        resumed run logs those ticks again.
        """
        checkpoint = Path(checkpoint)
        state = load_training_state(checkpoint, map_location=self.device)
        self.pipeline.load_state_dict(state["pipeline"])
        self.nimg, self.step, self.tick = int(state["nimg"]), int(state["step"]), int(state["tick"])
        self.last_checkpoint = checkpoint  # verified and loaded: the "last good checkpoint" _guard may name
        for module in self.pipeline.modules():
            broadcast_module(module, self.context)
        if self.context.is_main:  # after the broadcasts: every rank has read its checkpoint by now
            set_aside_newer_checkpoints(self.run_dir, self.nimg)
            rewind_run_logs(self.run_dir, self.nimg, self.config.trainer.tensorboard)

    def run(self) -> Path | None:
        """Trains to the end and returns the final checkpoint (rank 0; None on other ranks)."""
        trainer_config = self.config.trainer
        tick_nimg = max(int(trainer_config.tick_kimg * 1000), 1)
        logger = RunLogger(self.run_dir, trainer_config.tensorboard) if self.context.is_main else None
        progress_bar = KimgProgress(
            self.total_nimg / 1000, self.nimg / 1000, self.context.is_main and trainer_config.progress_bar
        )
        viewer = self._start_viewer()
        if self.context.is_main and self.nimg == 0:
            self._save_reals()
            self._save_snapshot("init")
        tick_start_nimg, tick_start_time = self.nimg, time.time()
        sums: dict[str, float] = {}
        counts: dict[str, int] = {}
        try:
            while self.nimg < self.total_nimg:
                batch = self.batches.batch(self.step)
                metrics = self.pipeline.train_step(batch, Progress(step=self.step, nimg=self.nimg))
                self._guard(metrics)
                for key, value in metrics.items():
                    sums[key] = sums.get(key, 0.0) + float(value)
                    counts[key] = counts.get(key, 0) + 1
                self.nimg += self.config.batch
                self.step += 1
                progress_bar.update(self.nimg / 1000, **{k: v for k, v in metrics.items() if k.endswith("/loss")})
                done = self.nimg >= self.total_nimg
                if self.nimg - tick_start_nimg < tick_nimg and not done:
                    continue
                self.tick += 1
                elapsed = time.time() - tick_start_time
                record = {
                    "tick": self.tick,
                    "kimg": self.nimg / 1000,
                    "step": self.step,
                    "sec_per_tick": elapsed,
                    "sec_per_kimg": elapsed / max((self.nimg - tick_start_nimg) / 1000, 1e-9),
                    "kimg_per_sec": (self.nimg - tick_start_nimg) / 1000 / max(elapsed, 1e-9),
                    "peak_memory_mb": _peak_memory_mb(self.device),
                    **{key: sums[key] / counts[key] for key in sums},
                }
                if trainer_config.metrics and (self._due(trainer_config.metrics_ticks) or done):
                    record.update({f"metrics/{key}": value for key, value in self._compute_metrics().items()})
                if logger is not None:
                    logger.log(record, self.nimg / 1000)
                if viewer is not None:
                    viewer.update_model(self.pipeline.model())
                sums, counts = {}, {}
                if self._due(trainer_config.snapshot_ticks) or done:
                    if self.context.is_main:
                        self._save_snapshot(f"kimg{self.nimg / 1000:010.3f}")
                if self._due(trainer_config.checkpoint_ticks) or done:
                    self._save_checkpoint()
                tick_start_nimg, tick_start_time = self.nimg, time.time()
        finally:
            self.batches.close()
            if viewer is not None:
                viewer.stop()
            progress_bar.close()
            if logger is not None:
                logger.close()
        if self.context.is_main and trainer_config.turntable_samples > 0:
            self._save_turntable()
        return self.last_checkpoint if self.context.is_main else None

    def _start_viewer(self):
        """The live viewer on the EMA generator (rank 0, with --viewer), refreshed once per tick."""
        if not (self.config.viewer and self.context.is_main):
            return None
        from pipelines.viewer import LiveViewer, LiveViewerConfig  # viser starts a server: only when asked

        viewer = LiveViewer.from_pipeline(
            self.pipeline,
            LiveViewerConfig(host=self.config.viewer_host, port=self.config.viewer_port,
                             output_dir=self.run_dir / "viewer"),
        )
        viewer.start()
        return viewer

    def _compute_metrics(self) -> dict[str, float]:
        """The configured metrics of the EMA generator (every process computes; only rank 0 logs)."""
        from pipelines.evaluation.metrics import MetricsCache, MetricsConfig, compute_metrics

        config = self.config.trainer
        if self._metrics_cache is None:
            self._metrics_cache = MetricsCache()
        metrics_config = MetricsConfig(inception_weights=config.inception_weights)
        rng = torch.Generator().manual_seed(self.config.seed + self.tick)
        return compute_metrics(self.pipeline.model(), self.dataset, config.metrics,
                               config.metrics_images, rng, metrics_config, self._metrics_cache)

    def _due(self, every_ticks: int) -> bool:
        return every_ticks > 0 and self.tick % every_ticks == 0

    def _guard(self, metrics: dict[str, float]) -> None:
        bad = {key: value for key, value in metrics.items() if not math.isfinite(float(value))}
        if bad:
            where = f"at kimg {self.nimg / 1000:.3f} (step {self.step})"
            settings = "model.g_optimizer.lr and model.d_optimizer.lr lower, or model.losses.r1_gamma higher"
            if self.last_checkpoint:
                fix = (f"set {settings} in {self.run_dir / 'config.json'}, then continue from the last good checkpoint "
                       f"with --resume {self.last_checkpoint}")
            else:
                fix = (f"no checkpoint had been written yet: start again with {settings} "
                       "(--model.g-optimizer.lr, --model.d-optimizer.lr, --model.losses.r1-gamma)")
            raise TrainingDiverged(
                f"training diverged {where} in {self.run_dir}: non-finite {', '.join(f'{k}={v}' for k, v in bad.items())}; "
                f"stopped without writing a checkpoint. Fix: {fix}"
            )

    def _save_checkpoint(self) -> None:
        state = {"pipeline": self.pipeline.state_dict(), "nimg": self.nimg, "step": self.step, "tick": self.tick}
        if self.context.is_main:
            self.last_checkpoint = save_checkpoint(
                self.run_dir, self.nimg, state, lambda directory: self.pipeline.model().save(directory),
                self.config.trainer.keep_checkpoints,
            )
        barrier(self.context)

    def _save_reals(self) -> None:
        columns, rows = self.config.trainer.snapshot_grid
        count = min(columns * rows, len(self.dataset))
        # Spread over the dataset: consecutive entries are often views of one object.
        indices = torch.linspace(0, len(self.dataset) - 1, count).round().long().tolist()
        images = torch.stack([self.dataset[i][0] for i in indices])
        save_grid((images + 1) / 2, columns, self.run_dir / "snapshots" / "reals.png")

    def _save_snapshot(self, name: str) -> Path:
        columns, _ = self.config.trainer.snapshot_grid
        images = render_rows_by_class(self.pipeline.model(), self.snapshot_z, self.snapshot_cameras, self.config.resolution,
                                      columns).rgb
        # A pipeline may show more of the same latents (ig-gan: its two renderers side by side).
        extra_grids = getattr(self.pipeline, "snapshot_grids", None)
        if extra_grids is not None:
            grids = extra_grids(self.snapshot_z, self.snapshot_cameras, self.config.resolution, columns)
            for prefix, (extra, extra_columns) in grids.items():
                save_grid(extra, extra_columns, self.run_dir / "snapshots" / f"{prefix}-{name}.png")
        return save_grid(images, columns, self.run_dir / "snapshots" / f"fakes-{name}.png")

    def _save_turntable(self) -> Path:
        """The first snapshot latents turning about +y on the distribution's centre orbit, side by side; a
        class-conditional generator draws latent i in class i mod K."""
        config = self.config.trainer
        model = self.pipeline.model()
        z = self.snapshot_z[: config.turntable_samples]
        orbit = OrbitConfig().resolve(model.cameras)
        frames = []
        path = turntable_cameras(orbit, config.turntable_frames)
        # A pose-conditioned generator keeps one condition (the centre pose) so the subject stays the same.
        condition = Cameras.cat([model.cameras.center_pose()] * len(z))
        for frame in range(len(path)):
            cameras = Cameras.cat([path[frame]] * len(z))
            columns = min(len(z), config.turntable_columns)
            # Latent i in class i mod K (rows of one): with K columns, each column turns one class.
            images = render_rows_by_class(model, z, cameras, config.turntable_resolution or self.config.resolution,
                                          1, condition).rgb
            frames.append(images_to_grid(images, columns))
        return save_gif(frames, self.run_dir / "turntable.gif")


def _peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    try:
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    except ImportError:  # not on every platform
        return float("nan")


def resolve_resume(resume: str, run_dir: Path | None, runs_root: Path, pipeline: str) -> Path:
    """Turns --resume (a checkpoint directory, a run folder, or 'latest') into a usable checkpoint directory.

    ``run_dir`` is --out: with 'latest' it names the run to continue, which must exist (a typo must not
    resume somebody else's run); without it 'latest' is the newest run of ``pipeline`` under
    ``runs_root`` with a usable checkpoint. Damaged checkpoints are skipped with a warning; errors
    (CheckpointError, FileNotFoundError, ValueError) name the path and the fix in one line.
    """
    if resume == "latest":
        if run_dir is not None:
            run_dir = Path(run_dir)
            if not run_dir.exists():
                raise FileNotFoundError(
                    f"--out {run_dir} does not exist: nothing to resume; leave out --resume to start a new run there"
                )
            return _newest_usable_checkpoint(run_dir, f"--resume latest --out {run_dir}")
        runs = sorted(runs_root.glob(f"{pipeline}-*"), key=lambda p: p.stat().st_mtime) if runs_root.is_dir() else []
        for candidate in reversed(runs):
            try:
                return _newest_usable_checkpoint(candidate, f"--resume latest ({candidate})")
            except CheckpointError:
                continue
        raise FileNotFoundError(
            f"--resume latest found no run of pipeline {pipeline!r} with a usable checkpoint under "
            f"{runs_root.resolve()}; leave out --resume to start a new run, or pass --resume RUN_DIR or a "
            "checkpoint directory"
        )
    path = Path(resume)
    if not path.exists():
        raise FileNotFoundError(
            f"--resume {resume} does not exist: pass a run folder, a checkpoint directory "
            "(RUN/checkpoints/step-*) or latest"
        )
    if path.is_file():
        hint = f" ({path.parent} is one: pass that)" if _looks_like_checkpoint(path.parent) else ""
        raise ValueError(
            f"--resume {resume} is a file; a checkpoint is a directory RUN/checkpoints/step-*{hint}: pass a checkpoint "
            "directory, its run folder, or latest"
        )
    if (path / "checkpoints").is_dir():
        checkpoint = _newest_usable_checkpoint(path, f"--resume {resume}")
    elif _looks_like_checkpoint(path):
        problem = _checkpoint_problem(path)
        if problem is not None:
            raise CheckpointError(
                f"--resume {resume}: {problem}; or pass the run folder {path.parent.parent} to use its newest "
                "usable checkpoint"
            )
        checkpoint = path
    else:
        raise ValueError(
            f"--resume {resume} is neither a run folder (with checkpoints/) nor a checkpoint directory "
            "(RUN/checkpoints/step-*): pass one of those, or latest"
        )
    if run_dir is not None and Path(run_dir).resolve() != checkpoint.parent.parent.resolve():
        raise ValueError(
            f"--out {run_dir} and --resume {resume} name different runs (the checkpoint belongs to "
            f"{checkpoint.parent.parent}); a run continues in its own folder: leave out --out"
        )
    return checkpoint


def _looks_like_checkpoint(path: Path) -> bool:
    return path.is_dir() and ((path / MANIFEST_FILE).is_file() or
                              (path.name.startswith("step-") and path.parent.name == "checkpoints"))


def _checkpoint_problem(path: Path) -> str | None:
    """Why a checkpoint directory cannot be resumed from (one line), or None when it can."""
    from pipelines.errors import describe

    try:
        load_training_state(path, map_location="cpu")  # verifies the manifest, then reads plain tensors only
    except (CheckpointError, OSError) as error:
        return " ".join(describe(error).split())
    return None


def _newest_usable_checkpoint(run_dir: Path, named: str) -> Path:
    """The newest checkpoint of ``run_dir`` that verifies and loads; damaged newer ones are skipped with a warning."""
    checkpoints = list_checkpoints(run_dir)
    problems = []
    for info in reversed(checkpoints):
        problem = _checkpoint_problem(info.path)
        if problem is None:
            for skipped in problems:
                print(f"warning: skipping a damaged checkpoint: {skipped}", file=sys.stderr, flush=True)
            return info.path
        problems.append(problem)
    where = checkpoint_dir(run_dir)
    if not Path(run_dir).is_dir() or not where.is_dir():
        reason = f"{run_dir} is not a run folder (it has no checkpoints/)"
    elif not checkpoints:
        reason = f"no checkpoint in {where} (the run stopped before writing its first one)"
    else:
        reason = f"no usable checkpoint in {where}: {len(problems)} damaged, the newest: {problems[0]}"
    raise CheckpointError(f"{named}: {reason}; nothing to resume: leave out --resume to start a new run")

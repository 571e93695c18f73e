"""Two gloo processes train through DistributedDataParallel, stay in lockstep and average like one process."""

import contextlib
import os
from dataclasses import dataclass, replace

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.nn.parallel import DistributedDataParallel

from pipelines.gan.losses import discriminator_fake_loss, discriminator_real_loss, generator_loss, r1_loss, r1_penalty
from pipelines.patch_gan.patch_sampler import sample_patches
from pipelines.pipeline import Progress
from pipelines.engine.data_loader import BatchStream
from pipelines.engine.distributed import DistributedContext, shutdown
from pipelines.eg3d.pipeline import Eg3dPipeline
from pipelines.patch_gan.pipeline import PatchGanPipeline
from renderers.cameras import Cameras
from renderers.patches import Patch
from tests.pipelines.eg3d.tiny import tiny_eg3d_config
from tests.pipelines.tiny import TinyDataset, tiny_train_config
from tests.pipelines.gloo import free_port, join_gloo_group

PIPELINES = {
    "patch-gan": (PatchGanPipeline, lambda: tiny_train_config(batch=4)),
    "eg3d": (Eg3dPipeline, lambda: tiny_eg3d_config(batch=4)),
}


def _flat(modules) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for m in modules for p in m.parameters()])


def _record_local_mean_w(pipeline, local_means: list) -> None:
    """Keeps each generator phase's local batch mean of w, as the phase computes it before averaging."""
    fakes_and_mean_w = pipeline._fakes_and_mean_w

    def recording(*args, **kwargs):
        fake, mean_w = fakes_and_mean_w(*args, **kwargs)
        local_means.append(mean_w.clone())
        return fake, mean_w

    pipeline._fakes_and_mean_w = recording


def _worker(rank: int, world_size: int, port: int, result_dir: str, name: str) -> None:
    context = join_gloo_group(rank, world_size, port)
    pipeline_class, make_config = PIPELINES[name]
    config = make_config()
    dataset = TinyDataset()
    pipeline = pipeline_class(config, torch.device("cpu"), dataset, context)
    stream = BatchStream(dataset, config.batch, config.seed, context.rank, context.world_size)
    before = _flat([pipeline.G])
    local_means = []
    _record_local_mean_w(pipeline, local_means)
    # Step 0 runs the lazy regularizers (R1, and EG3D's density regularization); step 1 does not.
    for step in range(2):
        metrics = pipeline.train_step(stream.batch(step, torch.device("cpu")), Progress(step, step * config.batch))
        if step == 0:
            assert "D/r1_penalty" in metrics
    flat = _flat(pipeline.modules())
    gathered = [torch.zeros_like(flat) for _ in range(world_size)]
    dist.all_gather(gathered, flat)
    w_avg = torch.cat([b.detach().flatten() for n, b in pipeline.G.named_buffers() if n.endswith("w_avg")])
    assert w_avg.numel() > 0
    gathered_w_avg = [torch.zeros_like(w_avg) for _ in range(world_size)]
    dist.all_gather(gathered_w_avg, w_avg)
    wrapped = [isinstance(pipeline.G_phase, DistributedDataParallel),
               isinstance(pipeline.D_phase, DistributedDataParallel)]
    torch.save({"gathered": gathered, "w_avg": gathered_w_avg, "changed": not torch.equal(before, _flat([pipeline.G])),
                "indices": stream.indices(0), "wrapped": wrapped, "metrics": sorted(metrics),
                "local_means": torch.stack(local_means)},
               os.path.join(result_dir, f"rank{rank}.pt"))
    del pipeline
    shutdown(context)


@pytest.mark.parametrize("name", sorted(PIPELINES))
def test_two_gloo_processes_keep_identical_parameters(tmp_path, name):
    mp.spawn(_worker, args=(2, free_port(), str(tmp_path), name), nprocs=2, join=True)
    results = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(2)]
    assert results[0]["wrapped"] == [True, True], "both GAN phases must run through DistributedDataParallel"
    gathered = results[0]["gathered"]
    assert torch.equal(gathered[0], gathered[1]), "parameters differ across ranks after two steps"
    assert torch.equal(results[0]["w_avg"][0], results[0]["w_avg"][1]), "the mapping's w average differs across ranks"
    assert [len(r["local_means"]) for r in results] == [2, 2], "w_avg moves once per step"
    # Equal local batches: the mean of the ranks' means is the whole batch's, which one process would track.
    beta = PIPELINES[name][1]().model.generator.w_avg_beta
    expected = torch.zeros_like(results[0]["w_avg"][0])
    for step in range(2):
        expected = ((results[0]["local_means"][step] + results[1]["local_means"][step]) / 2).lerp(expected, beta)
    torch.testing.assert_close(results[0]["w_avg"][0], expected)
    assert results[0]["changed"] and results[1]["changed"]
    assert set(results[0]["indices"]).isdisjoint(results[1]["indices"]), "ranks must see different real images"


# ------------------------------------------------------------------ gradient averaging scale
GLOBAL_BATCH = 4
"""Two processes of 2: each local batch is one minibatch-std group (tiny group size 2), as in the whole batch."""
KIMG = 0.002
"""Input blur still on (sigma 0.5) and patch scales part-annealed, so both enter the gradients."""
TOLERANCE = 1e-5
"""Largest gradient difference allowed, relative to the largest gradient entry."""


@dataclass
class PhaseInputs:
    """What a GAN phase otherwise draws from the pipeline's per-rank generators, made explicit."""

    z: torch.Tensor
    cameras: Cameras
    fake_patch: Patch
    real_patch: Patch
    images: torch.Tensor
    labels: torch.Tensor

    def rows(self, rows: slice) -> "PhaseInputs":
        return PhaseInputs(
            self.z[rows], self.cameras[rows], Patch(self.fake_patch.scales[rows], self.fake_patch.offsets[rows]),
            Patch(self.real_patch.scales[rows], self.real_patch.offsets[rows]), self.images[rows], self.labels[rows],
        )


def _deterministic_config(name: str):
    """The tiny config of ``name`` at batch 4, computing the same per item at local batch 2 as at 4.

    Generator noise inputs are dropped (their gradient is the noise drawn) and density noise is
    off. The renderer's stratified jitter cannot be split into per-rank slices of one draw (each
    draw is a [b, rays, samples] block, interleaved with the next), so :func:`_build_deterministic`
    sets the pipeline's ``rng`` to None, which renders at the evaluation sample positions. EG3D's
    camera-conditioned mapping is off: its camera embedding rounds differently at batch 2 and 4
    (w differs by 1e-7), and the leaky ReLUs turn that into gradient differences of 2e-4 to 5e-4
    (relative), as large as reordering the batch of one process gives: a tolerance that admitted
    them would measure rounding, not averaging. The camera-conditioned discriminator stays on.
    """
    config = PIPELINES[name][1]()
    model = config.model
    config.model = replace(
        model,
        generator=replace(model.generator, use_noise=False),
        losses=replace(model.losses, density_noise=0.0, pose_conditioning=False),
    )
    return config


def _build_deterministic(name: str, context) -> PatchGanPipeline:
    pipeline_class = PIPELINES[name][0]
    pipeline = pipeline_class(_deterministic_config(name), torch.device("cpu"), TinyDataset(), context)
    pipeline.rng = None  # no stratified jitter: see _deterministic_config
    return pipeline


def _global_inputs(pipeline: PatchGanPipeline) -> PhaseInputs:
    """The same whole batch in every process, from a fixed seed; patches shared within each mbstd group."""
    rng = torch.Generator().manual_seed(2024)
    z = torch.randn(GLOBAL_BATCH, pipeline.z_dim, generator=rng)
    cameras = pipeline.sample_cameras(GLOBAL_BATCH, rng)
    if isinstance(pipeline, Eg3dPipeline):  # EG3D discriminates whole images
        fake_patch = real_patch = Patch.full(GLOBAL_BATCH)
    else:
        group = pipeline.config.discriminator.mbstd_group_size
        fake_patch, real_patch = (sample_patches(pipeline.config.patches, GLOBAL_BATCH, KIMG, rng, group)
                                  for _ in range(2))
    dataset = TinyDataset(size=GLOBAL_BATCH, seed=5)
    return PhaseInputs(z, cameras, fake_patch, real_patch, dataset.images, dataset.labels)


def _discriminator_loss(pipeline: PatchGanPipeline, inputs: PhaseInputs) -> torch.Tensor:
    """``_discriminator_phase``'s loss on a regularization step (logistic losses plus lazy R1), on given inputs."""
    pipeline.G.requires_grad_(False)
    pipeline.D.requires_grad_(True)
    with torch.no_grad():
        fake = pipeline.render_patches(pipeline.G, inputs.z, inputs.cameras, inputs.fake_patch, KIMG)
    real = pipeline._real_inputs(inputs.images, inputs.real_patch, KIMG).detach().requires_grad_(True)
    fake_logits, real_logits = pipeline.D_phase(
        pipeline._discriminate_fake_and_real,
        fake, inputs.fake_patch, pipeline._discriminator_label(inputs.cameras.to_label()),
        real, inputs.real_patch, pipeline._discriminator_label(inputs.labels), KIMG,
    )
    loss = discriminator_fake_loss(fake_logits).mean() + discriminator_real_loss(real_logits).mean()
    penalty = r1_penalty(real_logits, real)
    return loss + r1_loss(penalty, pipeline.config.losses.r1_gamma, pipeline.config.d_optimizer.reg_interval).mean()


def _generator_loss(pipeline: PatchGanPipeline, inputs: PhaseInputs) -> torch.Tensor:
    """``_generator_phase``'s loss on given inputs (w_avg tracking left out: it moves a buffer, no gradient)."""
    pipeline.G.requires_grad_(True)
    pipeline.D.requires_grad_(False)
    patch = inputs.fake_patch
    fake, _ = pipeline.G_phase(pipeline._fakes_and_mean_w, pipeline.G, inputs.z, inputs.cameras, patch, KIMG)
    logits = pipeline._discriminate(fake, patch, pipeline._discriminator_label(inputs.cameras.to_label()), KIMG)
    return generator_loss(logits).mean()


PHASES = {"D": (_discriminator_loss, "D", "D_phase"), "G": (_generator_loss, "G", "G_phase")}


def _phase_gradient(
    pipeline: PatchGanPipeline, phase: str, inputs: PhaseInputs, synchronize: bool = True
) -> torch.Tensor:
    """The flattened gradient of the phase's trained network after one backward of its loss.

    ``synchronize=False`` keeps this process's own gradient (DistributedDataParallel's no_sync).
    """
    loss_of, network_name, runner_name = PHASES[phase]
    network, runner = getattr(pipeline, network_name), getattr(pipeline, runner_name)
    network.zero_grad(set_to_none=True)
    with contextlib.nullcontext() if synchronize else runner.no_sync():
        loss_of(pipeline, inputs).backward()
    missing = [n for n, p in network.named_parameters() if p.grad is None]
    assert not missing, f"the {phase} phase leaves {missing} without gradient"
    return torch.cat([p.grad.flatten() for p in network.parameters()])


def _phase_gradient_worker(rank: int, world_size: int, port: int, result_dir: str, name: str) -> None:
    context = join_gloo_group(rank, world_size, port)
    pipeline = _build_deterministic(name, context)
    assert pipeline.batch_size == GLOBAL_BATCH // world_size
    local = _global_inputs(pipeline).rows(slice(rank * pipeline.batch_size, (rank + 1) * pipeline.batch_size))
    result = {}
    for phase in PHASES:
        result[f"{phase}/local"] = _phase_gradient(pipeline, phase, local, synchronize=False)
        result[f"{phase}/averaged"] = _phase_gradient(pipeline, phase, local)
    torch.save(result, os.path.join(result_dir, f"rank{rank}.pt"))
    del pipeline
    shutdown(context)


@pytest.fixture(scope="module", params=sorted(PIPELINES))
def phase_gradients(request, tmp_path_factory):
    """Per pipeline: each rank's own and averaged gradients from 2 processes, and one process's on the whole batch."""
    name = request.param
    result_dir = tmp_path_factory.mktemp(f"gradients-{name}")
    mp.spawn(_phase_gradient_worker, args=(2, free_port(), str(result_dir), name), nprocs=2, join=True)
    ranks = [torch.load(result_dir / f"rank{r}.pt", weights_only=True) for r in range(2)]
    pipeline = _build_deterministic(name, DistributedContext())
    whole = _global_inputs(pipeline)
    reference = {phase: _phase_gradient(pipeline, phase, whole) for phase in PHASES}
    return ranks, reference


def _relative_error(actual: torch.Tensor, expected: torch.Tensor) -> float:
    return ((actual - expected).abs().max() / expected.abs().max()).item()


@pytest.mark.parametrize("phase", sorted(PHASES))
def test_two_processes_on_half_batches_take_the_whole_batch_gradient(phase_gradients, phase):
    """Each rank's gradient after DistributedDataParallel's all-reduce is one process's on the whole batch.

    Gradients, not parameters after ``opt.step()``: Adam's first step is about lr * sign(g), so a
    gradient off by a constant factor would move the parameters almost the same way.
    """
    ranks, reference = phase_gradients
    expected = reference[phase]
    assert expected.abs().max() > 0
    for rank, result in enumerate(ranks):
        error = _relative_error(result[f"{phase}/averaged"], expected)
        assert error < TOLERANCE, f"rank {rank}'s averaged {phase} gradient is {error:.2e} off one process's"
    own = [result[f"{phase}/local"] for result in ranks]
    assert _relative_error((own[0] + own[1]) / 2, expected) < TOLERANCE
    # What the comparison catches: no all-reduce (a rank's own gradient), or summing instead of averaging.
    assert _relative_error(own[0], expected) > 100 * TOLERANCE, "the half batches should give different gradients"
    assert _relative_error(own[0] + own[1], expected) > 100 * TOLERANCE

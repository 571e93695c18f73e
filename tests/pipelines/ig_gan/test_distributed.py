"""Two gloo processes train ig-gan (pre-training and GAN steps) and keep identical parameters."""

from __future__ import annotations

import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.nn.parallel import DistributedDataParallel

from pipelines.engine.data_loader import BatchStream
from pipelines.engine.distributed import shutdown
from pipelines.pipeline import Progress
from tests.pipelines.ig_gan.tiny import tiny_ig_gan_config
from tests.pipelines.tiny import TinyDataset
from tests.pipelines.gloo import free_port, join_gloo_group

pytest.importorskip("mitsuba", reason="the ig-gan pipeline needs Mitsuba 3 (pip install mitsuba)")


def _worker(rank: int, world_size: int, port: int, result_dir: str, gate: float | None) -> None:
    from pipelines.ig_gan.pipeline import IgGanPipeline

    context = join_gloo_group(rank, world_size, port)
    config = tiny_ig_gan_config(batch=4)
    config.model.losses.d_accuracy_gate = gate
    dataset = TinyDataset(resolution=16)
    pipeline = IgGanPipeline(config, torch.device("cpu"), dataset, context)
    stream = BatchStream(dataset, config.batch, config.seed, context.rank, context.world_size)
    before = torch.cat([p.detach().flatten() for p in pipeline.G.parameters()])
    renders = []
    render = pipeline.R.backend.render
    pipeline.R.backend.render = lambda *args, **kwargs: renders.append(render(*args, **kwargs)) or renders[-1]
    stepped = []
    for step in range(3):  # step 0 pre-trains f, steps 1 and 2 are GAN steps (step 1 without R1, 2 neither)
        metrics = pipeline.train_step(stream.batch(step, torch.device("cpu")), Progress(step, step * config.batch))
        stepped.append(metrics.get("D/stepped", -1.0))
    flat = torch.cat([p.detach().flatten() for m in pipeline.modules() for p in m.parameters()])
    gathered = [torch.zeros_like(flat) for _ in range(world_size)]
    dist.all_gather(gathered, flat)
    wrapped = [isinstance(runner, DistributedDataParallel)
               for runner in (pipeline.G_phase, pipeline.D_phase, pipeline.f_phase)]
    changed = not torch.equal(before, torch.cat([p.detach().flatten() for p in pipeline.G.parameters()]))
    torch.save({"gathered": gathered, "wrapped": wrapped, "changed": changed, "renders": torch.from_numpy(renders[-1]),
                "stepped": torch.tensor(stepped)},
               os.path.join(result_dir, f"rank{rank}.pt"))
    del pipeline
    shutdown(context)


@pytest.mark.slow
@pytest.mark.parametrize("gate", [None, 0.5], ids=["D-every-step", "D-accuracy-gate"])
def test_two_gloo_processes_keep_identical_parameters(tmp_path, gate):
    """With the accuracy gate the ranks decide on their mean accuracy: they skip or step D together."""
    mp.spawn(_worker, args=(2, free_port(), str(tmp_path), gate), nprocs=2, join=True)
    results = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(2)]
    assert results[0]["wrapped"] == [True, True, True], "G, D and f phases must run through DistributedDataParallel"
    gathered = results[0]["gathered"]
    assert torch.equal(gathered[0], gathered[1]), "parameters differ across ranks"
    assert results[0]["changed"] and results[1]["changed"]
    assert torch.equal(results[0]["stepped"], results[1]["stepped"])
    # Each rank renders its own shapes (its own latents and Mitsuba seed): the ranks do not duplicate work.
    assert not torch.equal(results[0]["renders"], results[1]["renders"])

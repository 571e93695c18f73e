"""Two gloo processes train through DistributedDataParallel and stay in lockstep."""

import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.nn.parallel import DistributedDataParallel

from pipelines.pipeline import Progress
from pipelines.engine.data_loader import BatchStream
from pipelines.engine.distributed import init_distributed, shutdown
from pipelines.eg3d.pipeline import Eg3dPipeline
from pipelines.patch_gan.pipeline import PatchGanPipeline
from tests.pipelines.eg3d.tiny import tiny_eg3d_config
from tests.pipelines.tiny import TinyDataset, tiny_train_config

PIPELINES = {
    "patch-gan": (PatchGanPipeline, lambda: tiny_train_config(batch=4)),
    "eg3d": (Eg3dPipeline, lambda: tiny_eg3d_config(batch=4)),
}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


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
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE=str(world_size), LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    context = init_distributed(torch.device("cpu"))
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
    mp.spawn(_worker, args=(2, _free_port(), str(tmp_path), name), nprocs=2, join=True)
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

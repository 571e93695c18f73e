"""Two gloo processes train one iteration and stay in lockstep."""

import os
import socket

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from pipelines.base import Progress
from pipelines.batches import BatchStream
from pipelines.distributed import init_distributed, shutdown
from pipelines.patch_gan.pipeline import PatchGanPipeline
from tests.pipelines.tiny import TinyDataset, tiny_train_config


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _worker(rank: int, world_size: int, port: int, result_dir: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE=str(world_size), LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    context = init_distributed(torch.device("cpu"))
    config = tiny_train_config(batch=4)
    dataset = TinyDataset()
    pipeline = PatchGanPipeline(config, torch.device("cpu"), dataset, context)
    stream = BatchStream(dataset, config.batch, config.seed, context.rank, context.world_size)
    before = torch.cat([p.detach().flatten() for p in pipeline.G.parameters()])
    pipeline.train_step(stream.batch(0, torch.device("cpu")), Progress(0, 0))
    flat = torch.cat([p.detach().flatten() for m in pipeline.modules() for p in m.parameters()])
    gathered = [torch.zeros_like(flat) for _ in range(world_size)]
    dist.all_gather(gathered, flat)
    moved = torch.cat([p.detach().flatten() for p in pipeline.G.parameters()])
    torch.save({"gathered": gathered, "changed": not torch.equal(before, moved), "indices": stream.indices(0)},
               os.path.join(result_dir, f"rank{rank}.pt"))
    shutdown(context)


def test_two_gloo_processes_keep_identical_parameters(tmp_path):
    mp.spawn(_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    results = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(2)]
    gathered = results[0]["gathered"]
    assert torch.equal(gathered[0], gathered[1]), "parameters differ across ranks after one step"
    assert results[0]["changed"] and results[1]["changed"]
    assert set(results[0]["indices"]).isdisjoint(results[1]["indices"]), "ranks must see different real images"

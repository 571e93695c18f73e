"""torch.distributed set-up for torchrun launches, and gradient averaging across processes."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistributedContext:
    """Where this process stands in a (possibly single-process) run."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """Only the main process writes files, logs and shows progress."""
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def init_distributed(device: torch.device) -> DistributedContext:
    """Joins the process group torchrun describes in the environment; a no-op for one process.

    NCCL serves CUDA devices, gloo the CPU.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return DistributedContext()
    rank = int(os.environ["RANK"])
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend, rank=rank, world_size=world_size)
    return DistributedContext(rank=rank, world_size=world_size, local_rank=local_rank)


def average_gradients(params: list[torch.nn.Parameter], context: DistributedContext) -> None:
    """Averages the gradients of ``params`` over all processes, in one flat all-reduce.

    GAN phases run G through D and take R1's double backward, which
    DistributedDataParallel's per-forward reducer does not support; averaging the gradients
    of each phase explicitly gives the same data-parallel update with one collective.
    """
    if not context.enabled:
        return
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.flatten() for g in grads])
    dist.all_reduce(flat)
    flat /= context.world_size
    offset = 0
    for grad in grads:
        grad.copy_(flat[offset : offset + grad.numel()].view_as(grad))
        offset += grad.numel()


def broadcast_module(module: torch.nn.Module, context: DistributedContext) -> None:
    """Copies rank 0's parameters and buffers to every process (start and resume)."""
    if not context.enabled:
        return
    for tensor in list(module.parameters()) + list(module.buffers()):
        dist.broadcast(tensor.data, src=0)


def barrier(context: DistributedContext) -> None:
    if context.enabled:
        dist.barrier()


def shutdown(context: DistributedContext) -> None:
    if context.enabled and dist.is_initialized():
        dist.destroy_process_group()

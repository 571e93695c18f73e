"""torch.distributed set-up for torchrun launches, and DistributedDataParallel for GAN phases."""

from __future__ import annotations

import gc
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

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


class PhaseRunner(torch.nn.Module):
    """Runs GAN phase forwards as the forward of the network those phases train.

    DistributedDataParallel averages the gradients of the module whose ``forward`` it runs. A GAN
    phase's forward calls more than the network it trains (the generator phase renders, then asks
    a frozen discriminator), so the phase's computation is passed in as a function and run as the
    ``forward`` of a module holding just the trained network: that network's gradients are
    all-reduced in buckets during backward, the frozen network stays outside the reducer. One
    runner serves every phase of a network: two reducers over the same parameters interfere.
    """

    def __init__(self, network: torch.nn.Module) -> None:
        super().__init__()
        self.network = network

    def forward(self, phase: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return phase(*args, **kwargs)


def data_parallel(
    network: torch.nn.Module, context: DistributedContext, device: torch.device, find_unused_parameters: bool = False
) -> Callable[..., Any]:
    """A runner ``runner(phase, *args)`` whose backward averages ``network``'s gradients over processes.

    With several processes it is DistributedDataParallel over a :class:`PhaseRunner`; build it
    while ``network`` requires gradients, since the reducer registers the parameters that do.
    Buffers (the mapping's running w average) are broadcast from rank 0 at each forward, so
    replicas stay identical (pipelines track w_avg from :func:`all_reduce_mean`, the same on every
    rank, anyway). Set ``find_unused_parameters`` when some phase reaches only part of
    ``network``. One process gets the plain :class:`PhaseRunner`.
    """
    if not context.enabled:
        return PhaseRunner(network)
    from torch.nn.parallel import DistributedDataParallel

    device_ids = None
    if device.type == "cuda":
        device_ids = [device.index if device.index is not None else torch.cuda.current_device()]
    return DistributedDataParallel(
        PhaseRunner(network), device_ids=device_ids, find_unused_parameters=find_unused_parameters
    )


def broadcast_module(module: torch.nn.Module, context: DistributedContext) -> None:
    """Copies rank 0's parameters and buffers to every process (start and resume)."""
    if not context.enabled:
        return
    for tensor in list(module.parameters()) + list(module.buffers()):
        dist.broadcast(tensor.data, src=0)


def all_reduce_mean(tensor: torch.Tensor, context: DistributedContext) -> torch.Tensor:
    """The mean of ``tensor`` over processes (a new tensor, identical on every rank); itself for one process.

    Example: ranks holding [1., 2.] and [3., 4.] both get [2., 3.]. Every rank must call it.
    """
    if not context.enabled:
        return tensor
    total = tensor.detach().clone()
    dist.all_reduce(total)
    return total / context.world_size


def barrier(context: DistributedContext) -> None:
    if context.enabled:
        dist.barrier()


def shutdown(context: DistributedContext) -> None:
    """Leaves the process group once every rank is done with it.

    Drop the DistributedDataParallel wrappers first: a process group still referenced by a
    wrapper is only freed at interpreter exit, where its threads can abort the process.
    """
    if context.enabled and dist.is_initialized():
        gc.collect()
        dist.barrier()
        dist.destroy_process_group()

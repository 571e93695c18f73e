"""Set-up shared by the tests that train in two gloo processes on the CPU."""

from __future__ import annotations

import os
import socket

import torch

from pipelines.engine.distributed import DistributedContext, init_distributed


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def join_gloo_group(rank: int, world_size: int, port: int) -> DistributedContext:
    """Joins this spawned process to the group as torchrun would (its environment variables), on one thread."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE=str(world_size), LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    return init_distributed(torch.device("cpu"))

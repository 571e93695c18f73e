"""A deterministic, resumable, sharded stream of real minibatches."""

from __future__ import annotations

import torch
from torch.utils.data import Dataset

from pipelines.pipeline import TrainBatch


class BatchStream:
    """Minibatch ``step`` of this process, computed from (seed, step) alone.

    Every epoch is a fresh permutation drawn from ``seed + epoch``; the global batch is laid
    out along it and each process takes its own contiguous share. So a resumed run sees exactly
    the images the uninterrupted run would have seen, with no loader state to save.
    """

    def __init__(self, dataset: Dataset, global_batch: int, seed: int, rank: int = 0, world_size: int = 1) -> None:
        if len(dataset) == 0:
            raise ValueError("the training dataset is empty: check --data (and the validation report)")
        if global_batch % world_size != 0:
            raise ValueError(f"--batch {global_batch} must be divisible by the number of processes ({world_size})")
        self.dataset = dataset
        self.global_batch = global_batch
        self.local_batch = global_batch // world_size
        self.seed = seed
        self.rank = rank
        self._permutations: dict[int, torch.Tensor] = {}

    def _permutation(self, epoch: int) -> torch.Tensor:
        if epoch not in self._permutations:
            if len(self._permutations) > 4:
                self._permutations.clear()
            rng = torch.Generator().manual_seed(self.seed * 100_003 + epoch)
            self._permutations[epoch] = torch.randperm(len(self.dataset), generator=rng)
        return self._permutations[epoch]

    def indices(self, step: int) -> list[int]:
        size = len(self.dataset)
        first = step * self.global_batch + self.rank * self.local_batch
        return [int(self._permutation(i // size)[i % size]) for i in range(first, first + self.local_batch)]

    def batch(self, step: int, device: torch.device) -> TrainBatch:
        items = [self.dataset[i] for i in self.indices(step)]
        images = torch.stack([image for image, _ in items]).to(device, non_blocking=True)
        labels = torch.stack([label for _, label in items]).to(device, non_blocking=True)
        return TrainBatch(images=images, labels=labels)

"""The real-image stream is a pure function of (seed, step) and shards across processes."""

import pytest
import torch

from pipelines.engine.data_loader import BatchStream


class _Numbers(torch.utils.data.Dataset):
    def __init__(self, size: int) -> None:
        self.size = size

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index: int):
        return torch.full((3, 2, 2), float(index)), torch.full((25,), float(index))


def test_same_seed_same_batches_and_epochs_cover_the_data():
    stream = BatchStream(_Numbers(10), global_batch=5, seed=3)
    again = BatchStream(_Numbers(10), global_batch=5, seed=3)
    assert stream.indices(7) == again.indices(7)
    assert sorted(stream.indices(0) + stream.indices(1)) == list(range(10))
    assert stream.indices(0) != BatchStream(_Numbers(10), 5, seed=4).indices(0)


def test_ranks_take_disjoint_shares_of_the_global_batch():
    single = BatchStream(_Numbers(12), global_batch=4, seed=0)
    rank0 = BatchStream(_Numbers(12), global_batch=4, seed=0, rank=0, world_size=2)
    rank1 = BatchStream(_Numbers(12), global_batch=4, seed=0, rank=1, world_size=2)
    for step in range(5):
        assert rank0.indices(step) + rank1.indices(step) == single.indices(step)


def test_batch_tensors():
    batch = BatchStream(_Numbers(6), global_batch=3, seed=0).batch(0, torch.device("cpu"))
    assert batch.images.shape == (3, 3, 2, 2) and batch.labels.shape == (3, 25)


def test_bad_batch_sizes():
    with pytest.raises(ValueError, match="divisible"):
        BatchStream(_Numbers(6), global_batch=3, seed=0, world_size=2)
    with pytest.raises(ValueError, match="empty"):
        BatchStream(_Numbers(0), global_batch=2, seed=0)

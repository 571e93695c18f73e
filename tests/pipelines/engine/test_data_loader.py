"""The real-image stream is a pure function of (seed, step), shards across processes, and the
worker-process loader delivers exactly the scheduled items."""

import pytest
import torch

from pipelines.engine import data_loader
from pipelines.engine.data_loader import (
    BatchStream,
    IndexSchedule,
    StepBatchSampler,
    TrainingBatches,
    collate_train_batch,
    default_data_workers,
)
from pipelines.engine.options import TrainConfig, validate_train_config
from pipelines.pipeline import TrainBatch


class _Numbers(torch.utils.data.Dataset):
    def __init__(self, size: int) -> None:
        self.size = size

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index: int):
        return torch.full((3, 2, 2), float(index)), torch.full((25,), float(index))


class _RandomImages(torch.utils.data.Dataset):
    """Fixed random images [3, 8, 8] in [-1, 1] and labels [25], made once (module level: picklable)."""

    def __init__(self, size: int) -> None:
        rng = torch.Generator().manual_seed(5)
        self.images = torch.rand(size, 3, 8, 8, generator=rng) * 2 - 1
        self.labels = torch.rand(size, 25, generator=rng)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int):
        return self.images[index].clone(), self.labels[index].clone()


def _expected(dataset, schedule: IndexSchedule, step: int) -> TrainBatch:
    indices = schedule.indices(step)
    return TrainBatch(images=dataset.images[indices], labels=dataset.labels[indices])


def test_same_seed_same_batches_and_epochs_cover_the_data():
    stream = BatchStream(_Numbers(10), global_batch=5, seed=3)
    again = BatchStream(_Numbers(10), global_batch=5, seed=3)
    assert stream.indices(7) == again.indices(7)
    assert sorted(stream.indices(0) + stream.indices(1)) == list(range(10))
    assert stream.indices(0) != BatchStream(_Numbers(10), 5, seed=4).indices(0)


def test_schedule_is_the_seeded_permutation_of_each_epoch():
    schedule = IndexSchedule(6, global_batch=4, seed=2)
    order = [schedule.indices(step) for step in range(3)]
    flat = [i for indices in order for i in indices]
    for epoch in range(2):
        permutation = torch.randperm(6, generator=torch.Generator().manual_seed(2 * 100_003 + epoch)).tolist()
        assert flat[6 * epoch: 6 * epoch + 6] == permutation


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


def test_sampler_yields_the_steps_from_start_to_stop():
    schedule = IndexSchedule(7, global_batch=3, seed=1)
    assert list(StepBatchSampler(schedule, start_step=4, stop_step=7)) == [schedule.indices(s) for s in (4, 5, 6)]


def test_collate_stacks_items_into_a_train_batch():
    dataset = _RandomImages(5)
    batch = collate_train_batch([dataset[i] for i in (3, 1)])
    assert isinstance(batch, TrainBatch)
    assert torch.equal(batch.images, dataset.images[[3, 1]]) and torch.equal(batch.labels, dataset.labels[[3, 1]])


@pytest.mark.parametrize("workers", [0, 2])
def test_loader_returns_the_scheduled_items(workers):
    dataset = _RandomImages(10)
    with TrainingBatches(dataset, global_batch=4, seed=7, workers=workers, device="cpu") as batches:
        for step in range(6):  # more than two epochs
            batch = batches.next_batch()
            expected = _expected(dataset, batches.schedule, step)
            assert batch.images.shape == (4, 3, 8, 8) and batch.labels.shape == (4, 25)
            assert torch.equal(batch.images, expected.images) and torch.equal(batch.labels, expected.labels)


@pytest.mark.parametrize("workers", [0, 2])
def test_starting_at_step_s_continues_the_run_from_step_0(workers):
    dataset = _RandomImages(10)
    with TrainingBatches(dataset, global_batch=4, seed=7, workers=0) as from_zero:
        reference = [from_zero.next_batch() for _ in range(7)]
    with TrainingBatches(dataset, global_batch=4, seed=7, workers=workers, start_step=4) as resumed:
        for step in range(4, 7):
            batch = resumed.next_batch()
            assert torch.equal(batch.images, reference[step].images)
            assert torch.equal(batch.labels, reference[step].labels)


def test_batch_of_a_step_out_of_sequence_restarts_there():
    dataset = _RandomImages(10)
    with TrainingBatches(dataset, global_batch=2, seed=0, workers=0) as batches:
        batches.batch(0)
        batch = batches.batch(5)
        assert batches.next_step == 6
        assert torch.equal(batch.images, _expected(dataset, batches.schedule, 5).images)


def test_bounded_loader_stops_at_stop_step():
    with TrainingBatches(_RandomImages(6), global_batch=2, seed=0, workers=0, start_step=1, stop_step=3) as batches:
        assert len(list(batches)) == 2


def test_two_ranks_split_the_global_batch():
    dataset = _RandomImages(12)
    single = IndexSchedule(len(dataset), global_batch=4, seed=3)
    ranks = [TrainingBatches(dataset, global_batch=4, seed=3, rank=rank, world_size=2, workers=0) for rank in (0, 1)]
    for step in range(4):
        shares = [r.schedule.indices(step) for r in ranks]
        assert not set(shares[0]) & set(shares[1])
        assert sorted(shares[0] + shares[1]) == sorted(single.indices(step))
        images = torch.cat([r.next_batch().images for r in ranks])
        assert torch.equal(images, dataset.images[single.indices(step)])


def test_workers_do_not_touch_the_global_generator():
    state = torch.get_rng_state()
    with TrainingBatches(_RandomImages(6), global_batch=2, seed=0, workers=1) as batches:
        batches.next_batch()
    assert torch.equal(torch.get_rng_state(), state)


def test_close_stops_the_worker_processes():
    batches = TrainingBatches(_RandomImages(6), global_batch=2, seed=0, workers=2)
    batches.next_batch()
    processes = list(batches._iterator._workers)
    assert all(p.is_alive() for p in processes)
    batches.close()
    assert not any(p.is_alive() for p in processes)


def test_no_pinned_memory_on_cpu():
    batches = TrainingBatches(_RandomImages(6), global_batch=2, seed=0, workers=0, device="cpu")
    assert not batches.pin_memory and not batches.make_loader(0).pin_memory
    assert not batches.next_batch().images.is_pinned()


def test_default_workers_leave_a_core_to_training(monkeypatch):
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    monkeypatch.setattr(data_loader, "available_cpus", lambda: 2)
    monkeypatch.setattr(data_loader, "available_cpus", lambda: 2)
    assert default_data_workers(torch.device("cpu")) == 0  # two cores: the step needs both
    assert TrainingBatches(_RandomImages(4), global_batch=2, seed=0, device="cpu").workers == 0
    monkeypatch.setattr(data_loader, "available_cpus", lambda: 16)
    assert default_data_workers(torch.device("cpu")) == 1
    assert default_data_workers(torch.device("cuda")) == 4
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "8")  # 8 processes share 16 cores
    assert default_data_workers(torch.device("cuda")) == 1
    monkeypatch.setattr(data_loader, "available_cpus", lambda: 1)
    assert default_data_workers(torch.device("cpu")) == 0 and default_data_workers(torch.device("cuda")) == 0


def test_negative_data_workers_are_rejected():
    with pytest.raises(ValueError, match="--data-workers"):
        validate_train_config(TrainConfig(data_workers=-1))
    with pytest.raises(ValueError, match="--data-workers"):
        TrainingBatches(_RandomImages(4), global_batch=2, seed=0, workers=-1)
    validate_train_config(TrainConfig(data_workers=0))


def _tiny_trainer(run_dir, data_workers: int):
    from pipelines.engine.trainer import Trainer
    from pipelines.patch_gan.pipeline import PatchGanPipeline
    from tests.pipelines.tiny import TinyDataset, tiny_train_config

    config = tiny_train_config(out=run_dir, kimg=0.006, data_workers=data_workers)
    config.trainer.turntable_samples = 0
    dataset = TinyDataset(size=5)
    return Trainer(config, PatchGanPipeline(config, torch.device("cpu"), dataset), dataset, run_dir, torch.device("cpu"))


def test_trainer_trains_on_the_scheduled_batches_and_stops_its_workers(tmp_path):
    trainer = _tiny_trainer(tmp_path, data_workers=2)
    seen, original = [], trainer.pipeline.train_step

    def recording(batch, progress):
        seen.append((progress.step, batch.images.clone()))
        if progress.step == 1:
            workers.extend(trainer.batches._iterator._workers)
        return original(batch, progress)

    workers = []
    trainer.pipeline.train_step = recording
    trainer.run()
    reference = BatchStream(trainer.dataset, 2, seed=trainer.config.seed)
    assert [step for step, _ in seen] == [0, 1, 2]
    assert all(torch.equal(images, reference.batch(step, torch.device("cpu")).images) for step, images in seen)
    assert len(workers) == 2 and not any(p.is_alive() for p in workers)


def test_trainer_stops_its_workers_when_a_step_fails(tmp_path):
    trainer = _tiny_trainer(tmp_path, data_workers=1)
    workers = []

    def failing(batch, progress):
        workers.extend(trainer.batches._iterator._workers)
        raise RuntimeError("step failed")

    trainer.pipeline.train_step = failing
    with pytest.raises(RuntimeError, match="step failed"):
        trainer.run()
    assert workers and not any(p.is_alive() for p in workers)


def test_class_grouped_schedule_keeps_each_group_in_one_class_and_covers_every_item():
    class_labels = torch.tensor([0, 1, 1, 2, 0, 1, 2, 2, 0, 1, 1])  # 3, 5 and 3 items: 2, 3 and 2 groups of two
    schedule = IndexSchedule(11, global_batch=4, seed=5, class_labels=class_labels, class_group=2)
    assert schedule.epoch_size == 14
    for epoch in range(3):
        order = schedule.permutation(epoch)
        assert len(order) == 14 and set(order) == set(range(11))
        pairs = class_labels[torch.tensor(order)].reshape(-1, 2)
        assert torch.equal(pairs[:, 0], pairs[:, 1])
    assert schedule.permutation(0) != schedule.permutation(1)
    again = IndexSchedule(11, global_batch=4, seed=5, class_labels=class_labels, class_group=2)
    assert [again.indices(s) for s in range(9)] == [schedule.indices(s) for s in range(9)]  # resumable
    # Steps run along the grouped epochs end to end: 7 steps of 4 are exactly two epochs.
    assert sum((schedule.indices(s) for s in range(7)), []) == schedule.permutation(0) + schedule.permutation(1)
    # Two processes each take whole groups.
    rank1 = IndexSchedule(11, global_batch=4, seed=5, rank=1, world_size=2, class_labels=class_labels, class_group=2)
    assert rank1.indices(0) == schedule.indices(0)[2:]
    # Without classes, or with groups of one, the plain permutation.
    assert IndexSchedule(11, 4, 5, class_group=2).permutation(0) == IndexSchedule(11, 4, 5).permutation(0)
    assert IndexSchedule(11, 4, 5, class_labels=class_labels).permutation(0) == IndexSchedule(11, 4, 5).permutation(0)


def test_class_grouped_schedule_rejects_a_batch_that_splits_a_group():
    labels = torch.zeros(8, dtype=torch.long)
    with pytest.raises(ValueError, match="not a multiple of the class group of 4"):
        IndexSchedule(8, global_batch=6, seed=0, class_labels=labels, class_group=4)
    with pytest.raises(ValueError, match="class_labels has 7 entries"):
        IndexSchedule(8, global_batch=4, seed=0, class_labels=labels[:7], class_group=4)


def test_class_grouped_schedule_repeats_a_class_smaller_than_a_group():
    class_labels = torch.tensor([0, 1, 1, 1, 1])  # class 0 has one item for groups of 4
    schedule = IndexSchedule(5, global_batch=4, seed=0, class_labels=class_labels, class_group=4)
    order = schedule.permutation(0)
    assert schedule.epoch_size == len(order) == 8 and sorted(order) == [0, 0, 0, 0, 1, 2, 3, 4]

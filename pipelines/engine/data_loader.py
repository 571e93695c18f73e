"""Real minibatches for training: a (seed, step) index schedule fed to a prefetching DataLoader."""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import replace

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Sampler

from pipelines.pipeline import TrainBatch

PERMUTATION_SEED_STRIDE = 100_003
"""Epoch ``e`` of seed ``s`` is the permutation drawn from ``s * PERMUTATION_SEED_STRIDE + e``."""

MAX_DEFAULT_WORKERS = 4
"""Most worker processes the default picks per training process (more rarely helps one GPU)."""


class IndexSchedule:
    """Which dataset items minibatch ``step`` of this process holds, computed from (seed, step) alone.

    Every epoch is a fresh permutation of the dataset drawn from ``seed * 100_003 + epoch``; the
    global batches are laid end to end along the concatenated permutations and each process takes
    its own contiguous share of a global batch. So a resumed run sees exactly the images the
    uninterrupted run would have seen, with no loader state to save.

    Example: with 10 items and a global batch of 5, steps 0 and 1 together cover every item once;
    with ``world_size=2`` and a global batch of 4, rank 0 takes the first 2 indices of each global
    batch and rank 1 the last 2.

    With ``class_labels`` and ``class_group`` > 1, each run of ``class_group`` consecutive items is of
    one class (see :func:`class_grouped_permutation`); the groups never straddle two processes.
    """

    def __init__(
        self,
        dataset_size: int,
        global_batch: int,
        seed: int,
        rank: int = 0,
        world_size: int = 1,
        class_labels: Tensor | None = None,
        class_group: int = 1,
    ) -> None:
        if dataset_size == 0:
            raise ValueError("the training dataset is empty: check --data (and the validation report)")
        if global_batch < 1:
            raise ValueError(f"--batch must be at least 1, got {global_batch}")
        if global_batch % world_size != 0:
            raise ValueError(f"--batch {global_batch} must be divisible by the number of processes ({world_size})")
        if not 0 <= rank < world_size:
            raise ValueError(f"process rank {rank} is outside 0..{world_size - 1}: check the torchrun environment")
        if class_group < 1:
            raise ValueError(f"class_group must be at least 1 item, got {class_group}")
        grouped = class_group > 1 and class_labels is not None
        if grouped and (global_batch // world_size) % class_group != 0:
            raise ValueError(
                f"--batch {global_batch} over {world_size} process(es) gives {global_batch // world_size} images each, "
                f"not a multiple of the class group of {class_group} (the discriminator's mbstd_group_size): "
                "pick a --batch that is, or leave out --model.losses.class-grouped-batches"
            )
        if grouped and len(class_labels) != dataset_size:
            raise ValueError(f"class_labels has {len(class_labels)} entries for a dataset of {dataset_size} items")
        self.class_members = class_members(class_labels) if grouped else None
        """Dataset indices of each class, when consecutive groups of ``class_group`` items share a class."""
        self.class_group = class_group if grouped else 1
        self.epoch_size = dataset_size if self.class_members is None else sum(
            -(-len(members) // class_group) * class_group for members in self.class_members
        )
        """Items per epoch: the dataset, each class padded up to whole groups when they share a class."""
        self.dataset_size = dataset_size
        self.global_batch = global_batch
        self.local_batch = global_batch // world_size
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self._permutations: OrderedDict[int, list[int]] = OrderedDict()

    def permutation(self, epoch: int) -> list[int]:
        """The order of the dataset in ``epoch`` (the last few epochs are kept)."""
        if epoch in self._permutations:
            self._permutations.move_to_end(epoch)
            return self._permutations[epoch]
        rng = torch.Generator().manual_seed(self.seed * PERMUTATION_SEED_STRIDE + epoch)
        if self.class_members is None:
            order = torch.randperm(self.dataset_size, generator=rng).tolist()
        else:
            order = class_grouped_permutation(self.class_members, self.class_group, rng)
        self._permutations[epoch] = order
        if len(self._permutations) > 4:
            self._permutations.popitem(last=False)
        return order

    def indices(self, step: int) -> list[int]:
        """Dataset indices of this process's share of minibatch ``step`` (``local_batch`` of them)."""
        size = self.epoch_size
        first = step * self.global_batch + self.rank * self.local_batch
        return [self.permutation(i // size)[i % size] for i in range(first, first + self.local_batch)]


def class_members(class_labels: Tensor) -> list[Tensor]:
    """Dataset indices [n_k] of each class ``k`` that occurs (classes with no item are left out).

    Example: class_labels ``[2, 0, 2]`` give ``[tensor([1]), tensor([0, 2])]``.
    """
    labels = torch.as_tensor(class_labels).long().cpu()
    return [torch.nonzero(labels == k).flatten() for k in labels.unique().tolist()]


def class_grouped_permutation(members: list[Tensor], group: int, rng: torch.Generator) -> list[int]:
    """One epoch in which every run of ``group`` consecutive items is of one class, the groups in random order.

    Each class is shuffled and padded up to whole groups with its own first items, so every item
    occurs at least once and the epoch's length depends only on the class counts. A discriminator's
    minibatch-std layer then compares images of one class, as it does the fakes of one drawn class.
    Example: classes ``{0, 1, 2}`` and ``{3, 4}`` with ``group=2`` give 3 groups of two, such as ``[4, 3, 0, 2, 1, 0]``.
    """
    groups = []
    for indices in members:
        shuffled = indices[torch.randperm(len(indices), generator=rng)]
        length = -(-len(shuffled) // group) * group
        shuffled = shuffled.repeat(-(-length // len(shuffled)))[:length]  # a class smaller than a group repeats
        groups.extend(shuffled.reshape(-1, group))
    order = torch.randperm(len(groups), generator=rng)
    return torch.stack([groups[i] for i in order.tolist()]).flatten().tolist()


class StepBatchSampler(Sampler[list[int]]):
    """Yields ``schedule.indices(step)`` for ``step = start_step, start_step + 1, ...``.

    It stops before ``stop_step`` when one is given, else runs forever (the trainer stops asking).
    """

    def __init__(self, schedule: IndexSchedule, start_step: int = 0, stop_step: int | None = None) -> None:
        if start_step < 0:
            raise ValueError(f"start_step must be >= 0, got {start_step}")
        self.schedule = schedule
        self.start_step = start_step
        self.stop_step = stop_step

    def __iter__(self) -> Iterator[list[int]]:
        step = self.start_step
        while self.stop_step is None or step < self.stop_step:
            yield self.schedule.indices(step)
            step += 1


class _PinnableBatch(TrainBatch):
    """A :class:`TrainBatch` the DataLoader's pin-memory thread knows how to pin (it calls ``pin_memory()``)."""

    def pin_memory(self) -> _PinnableBatch:
        classes = None if self.classes is None else self.classes.pin_memory()
        return _PinnableBatch(images=self.images.pin_memory(), labels=self.labels.pin_memory(), classes=classes)


def collate_train_batch(items: list[tuple[Tensor, Tensor]]) -> TrainBatch:
    """Stacks dataset items ``(image float [3, R, R] in [-1, 1], label float [25])`` into a batch.

    Example: 4 items of a 64^2 dataset give images [4, 3, 64, 64] and labels [4, 25].
    """
    images = torch.stack([image for image, _ in items])
    labels = torch.stack([label for _, label in items])
    return _PinnableBatch(images=images, labels=labels)


def attach_classes(batch: TrainBatch, dataset: Dataset, indices: list[int]) -> TrainBatch:
    """``batch`` with the classes [b] of its dataset ``indices`` from ``dataset.class_labels`` (when it has them).

    Classes are looked up here, by index, rather than returned by ``dataset[i]``: every dataset keeps
    its ``(image, label)`` items. Example: class_labels ``[2, 0, 1]`` and indices ``[1, 2]`` give ``[0, 1]``.
    """
    class_labels = getattr(dataset, "class_labels", None)
    if class_labels is None:
        return batch
    return replace(batch, classes=class_labels[torch.as_tensor(indices, dtype=torch.long)])


def move_batch(batch: TrainBatch, device: torch.device) -> TrainBatch:
    """``batch`` on ``device``; the copy overlaps compute when the batch sits in pinned memory."""
    classes = None if batch.classes is None else batch.classes.to(device, non_blocking=True)
    return TrainBatch(images=batch.images.to(device, non_blocking=True),
                      labels=batch.labels.to(device, non_blocking=True), classes=classes)


def available_cpus() -> int:
    """CPU cores this process may run on (its affinity mask where the platform has one)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def default_data_workers(device: torch.device) -> int:
    """Loader worker processes for ``--data-workers`` left unset.

    Each training process counts ``available_cpus() / LOCAL_WORLD_SIZE`` cores (torchrun's
    processes share the machine). With CUDA it takes ``min(MAX_DEFAULT_WORKERS, cores - 1)``:
    decoding must keep up with the GPU. On a CPU the training step already keeps every core busy:
    one worker from 4 cores up, none below. ``benchmarks/data.py`` on a quiet 2-core machine: the
    CPU-preset step fed by the loader ran at 36.1 img/s with no worker and 26.3 with one at 64^2,
    38.2 and 35.0 at 256^2 (a worker's decoding and transfer compete with the step's threads),
    while the loader alone delivers 600-4300 img/s.
    """
    processes = max(int(os.environ.get("LOCAL_WORLD_SIZE", "1")), 1)
    cores = available_cpus() // processes
    if torch.device(device).type == "cuda":
        return max(0, min(MAX_DEFAULT_WORKERS, cores - 1))
    return 1 if cores >= 4 else 0


class TrainingBatches:
    """This process's real minibatches of steps ``start_step, start_step + 1, ...``, on ``device``.

    Indices come from an :class:`IndexSchedule`, so the stream is a pure function of (seed, step)
    and a run resumed at step S continues with exactly the batches of the uninterrupted run. Items
    are decoded by ``workers`` DataLoader worker processes (0: on the calling thread) that keep
    ``prefetch_factor`` batches each in flight; on CUDA the batches are pinned and copied without
    blocking. The DataLoader iterator starts on the first request, so a trainer can construct this
    before it knows the step it resumes at, and :meth:`batch` restarts it when asked for a step out
    of sequence. Call :meth:`close` (or use ``with``) to stop the worker processes.

    The dataset must be picklable when ``workers > 0`` and must not draw random numbers (workers
    are seeded from a private generator, never from the global one, but nothing should need it).
    """

    def __init__(
        self,
        dataset: Dataset,
        global_batch: int,
        seed: int,
        rank: int = 0,
        world_size: int = 1,
        workers: int | None = None,
        device: torch.device | str = "cpu",
        start_step: int = 0,
        stop_step: int | None = None,
        prefetch_factor: int = 2,
        class_group: int = 1,
    ) -> None:
        self.device = torch.device(device)
        self.workers = default_data_workers(self.device) if workers is None else workers
        if self.workers < 0:
            raise ValueError(f"--data-workers must be >= 0 (0 decodes on the training thread), got {self.workers}")
        if prefetch_factor < 1:
            raise ValueError(f"prefetch_factor must be at least 1 batch per worker, got {prefetch_factor}")
        self.dataset = dataset
        self.schedule = IndexSchedule(len(dataset), global_batch, seed, rank, world_size,
                                      getattr(dataset, "class_labels", None), class_group)
        self.prefetch_factor = prefetch_factor
        self.stop_step = stop_step
        self._next_step = start_step
        self._iterator: Iterator[TrainBatch] | None = None

    @property
    def pin_memory(self) -> bool:
        """Pinned host memory only helps (and only exists) when batches go to a CUDA device."""
        return self.device.type == "cuda"

    @property
    def next_step(self) -> int:
        """The step whose batch :meth:`next_batch` returns."""
        return self._next_step

    def make_loader(self, start_step: int) -> DataLoader:
        """A DataLoader over the batches of steps ``start_step, ...`` (up to ``stop_step``)."""
        parallel = {}
        if self.workers > 0:
            parallel = dict(prefetch_factor=self.prefetch_factor, persistent_workers=True)
        return DataLoader(
            self.dataset,
            batch_sampler=StepBatchSampler(self.schedule, start_step, self.stop_step),
            num_workers=self.workers,
            collate_fn=collate_train_batch,
            pin_memory=self.pin_memory,
            # The loader draws its workers' base seed from this, not from the global generator.
            generator=torch.Generator().manual_seed(self.schedule.seed),
            **parallel,
        )

    def next_batch(self) -> TrainBatch:
        """The batch of :attr:`next_step` on the device; raises StopIteration at ``stop_step``."""
        if self._iterator is None:
            self._iterator = iter(self.make_loader(self._next_step))
        batch = next(self._iterator)
        # The indices are a pure function of the step, so the classes need not travel through the workers.
        batch = attach_classes(batch, self.dataset, self.schedule.indices(self._next_step))
        self._next_step += 1
        return move_batch(batch, self.device)

    def batch(self, step: int) -> TrainBatch:
        """The batch of ``step``: streamed when it is :attr:`next_step`, else the loader restarts there."""
        if step != self._next_step:
            self.restart(step)
        return self.next_batch()

    def restart(self, step: int) -> None:
        """Continue at ``step`` (the workers stop now and start again on the next request)."""
        self.close()
        self._next_step = step

    def close(self) -> None:
        """Stops the worker processes (if any); the next request starts new ones."""
        iterator, self._iterator = self._iterator, None
        # Dropping the last reference would also stop them, but a traceback that holds one (an
        # exception during training) would keep the processes alive until it is collected.
        shutdown = getattr(iterator, "_shutdown_workers", None)
        if shutdown is not None:
            shutdown()

    def __iter__(self) -> TrainingBatches:
        return self

    def __next__(self) -> TrainBatch:
        return self.next_batch()

    def __enter__(self) -> TrainingBatches:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class BatchStream:
    """Minibatch ``step`` of an :class:`IndexSchedule`, decoded on the calling thread.

    For tests and one-off tools that want a single batch; training uses :class:`TrainingBatches`,
    which returns the same batches with worker processes and prefetching.
    """

    def __init__(self, dataset: Dataset, global_batch: int, seed: int, rank: int = 0, world_size: int = 1,
                 class_group: int = 1) -> None:
        self.dataset = dataset
        self.schedule = IndexSchedule(len(dataset), global_batch, seed, rank, world_size,
                                      getattr(dataset, "class_labels", None), class_group)

    def indices(self, step: int) -> list[int]:
        return self.schedule.indices(step)

    def batch(self, step: int, device: torch.device) -> TrainBatch:
        indices = self.indices(step)
        batch = collate_train_batch([self.dataset[i] for i in indices])
        return move_batch(attach_classes(batch, self.dataset, indices), device)

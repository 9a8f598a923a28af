"""Resumable, distributed data order.

The batch of every training step is a pure function of ``(seed, step, rank, world_size)``.

Each epoch's order is the permutation :class:`torch.utils.data.DistributedSampler` draws for
that epoch (``torch.randperm`` seeded with ``seed + epoch``, then the rank's slice), so a
run restarted at step ``s`` (``--resume``) sees exactly the batches an uninterrupted run
sees from step ``s`` on, and the ranks of a ``torchrun`` job together see the same global
batches as one process would.

Items are requested as ``(index, epoch)`` pairs through :class:`EpochItems`, which calls
``dataset.set_epoch(epoch)`` (seeded augmentation of :class:`varseg.data.VOCSegmentation`)
before reading, so augmentation is also a pure function of ``(seed, epoch, index)``, with
or without worker processes.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch.utils.data import Dataset, DistributedSampler, Sampler

__all__ = ["IndexStream", "StepBatchSampler", "EpochItems", "collate_train"]


class IndexStream:
    """Endless per-rank stream of item indices, reshuffled every epoch.

    Parameters
    ----------
    indices : sequence of int
        The items of the stream (e.g. all items, or only the labelled ones).
    seed : int
        Base seed; epoch ``e`` uses ``DistributedSampler(seed=seed).set_epoch(e)``.
    rank, world_size : int
        This process and the number of processes.
    shuffle : bool
        Shuffle (training) or keep the order.
    groups : sequence of int, optional
        Case id of every item of ``indices`` (slices of one scan, ``dataset.item_cases`` of
        LiTS / BraTS). The epoch order then shuffles the cases and the slices inside each case
        (:class:`varseg.data.GroupedShuffleSampler`, seeded with ``(seed, epoch)``) so that the
        one-volume cache of the volume datasets is hit; the ranks take every
        ``world_size``-th item of it, as :class:`~torch.utils.data.DistributedSampler` does.

    Notes
    -----
    ``DistributedSampler`` runs with ``drop_last=True`` (the tail that does not divide among
    the ranks is dropped each epoch, a different tail every epoch), except when there are
    fewer items than ranks, where it pads by repetition.
    """

    def __init__(
        self,
        indices,
        *,
        seed: int,
        rank: int = 0,
        world_size: int = 1,
        shuffle: bool = True,
        groups=None,
    ):
        self.indices = np.asarray(indices, dtype=np.int64).reshape(-1)
        if self.indices.size == 0:
            raise ValueError("IndexStream needs at least one item")
        n = int(self.indices.size)
        self.sampler = DistributedSampler(
            range(n),
            num_replicas=world_size,
            rank=rank,
            shuffle=shuffle,
            seed=int(seed),
            drop_last=n >= world_size,
        )
        self.per_epoch = len(self.sampler)
        self.rank, self.world_size = int(rank), int(world_size)
        self.grouped = None
        if groups is not None and shuffle:
            from varseg.data import GroupedShuffleSampler

            groups = np.asarray(groups).reshape(-1)
            if groups.size != n:
                raise ValueError(f"groups has {groups.size} entries for {n} items")
            self.grouped = GroupedShuffleSampler(groups, seed=int(seed))
        self._cache: dict[int, np.ndarray] = {}

    def _positions(self, epoch: int) -> np.ndarray:
        if self.grouped is None:
            self.sampler.set_epoch(int(epoch))
            return np.fromiter(iter(self.sampler), dtype=np.int64, count=self.per_epoch)
        self.grouped.set_epoch(int(epoch))
        order = np.fromiter(iter(self.grouped), dtype=np.int64, count=len(self.grouped))
        total = self.per_epoch * self.world_size
        order = np.resize(order, total)  # trims (or, with < world_size items, repeats)
        return order[self.rank :: self.world_size]

    def order(self, epoch: int) -> np.ndarray:
        """Item indices of this rank for ``epoch``."""
        if epoch not in self._cache:
            if len(self._cache) > 2:
                self._cache.clear()
            self._cache[epoch] = self.indices[self._positions(epoch)]
        return self._cache[epoch]

    def take(self, start: int, n: int) -> list[tuple[int, int]]:
        """``n`` consecutive ``(index, epoch)`` pairs from stream position ``start``."""
        out = []
        pos = int(start)
        while len(out) < n:
            epoch, offset = divmod(pos, self.per_epoch)
            chunk = self.order(epoch)[offset : offset + n - len(out)]
            out.extend((int(i), epoch) for i in chunk)
            pos += len(chunk)
        return out


class StepBatchSampler(Sampler):
    """Batches of ``(index, epoch)`` pairs for steps ``start_step`` to ``end_step - 1``.

    Parameters
    ----------
    main : IndexStream
        The stream that defines epochs.
    batch_size : int
        Items of ``main`` per step and rank.
    start_step, end_step : int
        Step range to yield (a resumed run starts in the middle).
    aligned : bool
        ``True``: batches never straddle an epoch (``per_epoch // batch_size`` steps per
        epoch, the usual ``drop_last`` loader). ``False``: the stream is read continuously
        (AdvSemi's endless iterators), every batch is full.
    extra : IndexStream, optional
        A second stream read continuously, ``extra_batch`` items per step appended to each
        batch (the unlabelled images of AdvSemi / paired semi-supervised training).
    extra_batch : int
        Items of ``extra`` per step and rank.
    """

    def __init__(
        self,
        main: IndexStream,
        batch_size: int,
        start_step: int,
        end_step: int,
        *,
        aligned: bool = True,
        extra: IndexStream | None = None,
        extra_batch: int = 0,
    ):
        self.main = main
        self.batch_size = int(batch_size)
        self.start_step = int(start_step)
        self.end_step = int(end_step)
        self.aligned = bool(aligned)
        self.extra = extra
        self.extra_batch = int(extra_batch) if extra is not None else 0

    @property
    def steps_per_epoch(self) -> float:
        """Steps per epoch of the main stream (a float for continuous reading)."""
        return steps_per_epoch(self.main.per_epoch, self.batch_size, self.aligned)

    def epoch_of(self, step: int) -> int:
        """Epoch (of the main stream) that step ``step`` belongs to."""
        return epoch_of(step, self.main.per_epoch, self.batch_size, self.aligned)

    def batch(self, step: int) -> list[tuple[int, int]]:
        """Return the ``(index, epoch)`` pairs of step ``step`` on this rank."""
        b = self.batch_size
        if self.aligned:
            spe = int(self.steps_per_epoch)
            epoch, j = divmod(step, spe)
            order = self.main.order(epoch)
            items = [(int(i), epoch) for i in order[j * b : (j + 1) * b]]
        else:
            items = self.main.take(step * b, b)
        if self.extra is not None and self.extra_batch:
            items += self.extra.take(step * self.extra_batch, self.extra_batch)
        return items

    def __iter__(self):
        for step in range(self.start_step, self.end_step):
            yield self.batch(step)

    def __len__(self) -> int:
        return max(0, self.end_step - self.start_step)


def steps_per_epoch(per_epoch: int, batch_size: int, aligned: bool) -> float:
    """Return the steps in one epoch of a stream with ``per_epoch`` items per rank."""
    if aligned:
        return float(max(1, per_epoch // batch_size))
    return per_epoch / batch_size


def epoch_of(step: int, per_epoch: int, batch_size: int, aligned: bool) -> int:
    """Epoch index of ``step`` (see :class:`StepBatchSampler`)."""
    if aligned:
        return int(step // int(steps_per_epoch(per_epoch, batch_size, True)))
    return int(step * batch_size // per_epoch)


def steps_for_epochs(epochs: int, per_epoch: int, batch_size: int, aligned: bool) -> int:
    """Return the number of steps that make ``epochs`` epochs."""
    if aligned:
        return int(epochs * steps_per_epoch(per_epoch, batch_size, True))
    return int(math.ceil(epochs * per_epoch / batch_size))


class EpochItems(Dataset):
    """Read ``(index, epoch)`` requests.

    Sets the dataset's epoch (if it has ``set_epoch``), then returns ``dataset[index]``.
    """

    def __init__(self, dataset):
        self.dataset = dataset
        self._set_epoch = getattr(dataset, "set_epoch", None)
        self._epoch = None

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key):
        index, epoch = key
        if self._set_epoch is not None and epoch != self._epoch:
            self._set_epoch(epoch)
            self._epoch = epoch
        return self.dataset[index]


def collate_train(items: list[dict], ignore_index: int = -100) -> dict:
    """Stack the training keys of dataset items: ``image``, ``label``, ``labeled``, ``index``.

    Items without ``"label"`` (image-only BSDS500) get a label map full of ``ignore_index``
    and ``labeled=False``.
    """
    images = torch.stack([it["image"] for it in items])
    labels, flags = [], []
    for it in items:
        lab = it.get("label")
        if lab is None:
            labels.append(
                torch.full(tuple(it["image"].shape[-2:]), ignore_index, dtype=torch.int64)
            )
            flags.append(False)
        else:
            labels.append(lab.long())
            flags.append(bool(it.get("labeled", True)))
    return {
        "image": images,
        "label": torch.stack(labels),
        "labeled": torch.tensor(flags, dtype=torch.bool),
        "index": torch.tensor([int(it.get("index", -1)) for it in items]),
    }

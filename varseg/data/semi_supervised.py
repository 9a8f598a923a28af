"""Semi-supervised data.

Labelled subsets, the label-hiding wrapper, split files, and a case-grouped sampler for
volume data.

Kim & Ye, "Mumford–Shah Loss Functional for Image Segmentation with Deep Learning",
IEEE TIP 2019, Sec. III-C1 (Eq. 16: cross-entropy on labelled items, Mumford–Shah loss on
all), Sec. V-A (VOC with 1/8, 1/4, 1/2 labelled images, as in AdvSemi, Hung et al.,
BMVC 2018) and Sec. V-B (LiTS with 1/23, 1/10, 1/3 of the training *scans*, BraTS with
1/4 of the scans labelled).
"""

from __future__ import annotations

import json
import math
import os
from fractions import Fraction
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from .._atomic import atomic_write_text
from .._json import json_default
from .._validation import check_int
from ._checks import check_index

__all__ = [
    "parse_fraction",
    "labeled_subset",
    "labeled_subset_by_case",
    "SemiSupervisedDataset",
    "GroupedShuffleSampler",
    "save_split",
    "load_split",
]


def parse_fraction(fraction: float | str | Fraction) -> float:
    """Parse a labelled fraction: ``0.125``, ``"1/8"``, ``"0.125"``, ``"12.5%"``, ``Fraction``.

    Returns
    -------
    float
        In ``(0, 1]``.

    Raises
    ------
    ValueError
        For unparsable strings or values outside ``(0, 1]``.
    """
    value: float
    if isinstance(fraction, str):
        text = fraction.strip()
        try:
            if text.endswith("%"):
                value = float(text[:-1]) / 100.0
            else:
                value = float(Fraction(text))
        except (ValueError, ZeroDivisionError) as exc:
            raise ValueError(
                f"cannot parse labelled fraction {fraction!r}: expected e.g. "
                "'1/8', '0.125' or '12.5%'"
            ) from exc
    else:
        value = float(fraction)
    if not 0.0 < value <= 1.0 or math.isnan(value):
        raise ValueError(f"labelled fraction must be in (0, 1], got {fraction!r}")
    return value


def _n_labeled(n_items: int, fraction) -> int:
    f = parse_fraction(fraction)
    return min(n_items, max(1, int(math.floor(n_items * f + 1e-9))))


def labeled_subset(n_items: int, fraction: float | str = 1.0, seed: int = 0) -> np.ndarray:
    """Return the indices of the labelled items for a semi-supervised run.

    ``k = max(1, floor(n_items * fraction))`` items (AdvSemi's ``int(fraction * n)``, at
    least one) are the first ``k`` of ``np.random.default_rng(seed).permutation(n_items)``.
    The subsets are therefore reproducible and nested: for the same seed, the 1/8 subset
    is contained in the 1/4 subset, which is contained in the 1/2 subset.

    Parameters
    ----------
    n_items : int
        Dataset size (e.g. 10,582 VOC ``train_aug`` images).
    fraction : float or str
        Labelled fraction, e.g. ``1/8``, ``"1/4"``, ``"1/23"``, ``1.0``
        (see :func:`parse_fraction`).
    seed : int
        Seed of the permutation.

    Returns
    -------
    numpy.ndarray
        Sorted int64 indices.
    """
    n_items = check_int(n_items, "n_items")
    k = _n_labeled(n_items, fraction)
    perm = np.random.default_rng(seed).permutation(n_items)
    return np.sort(perm[:k]).astype(np.int64)


def labeled_subset_by_case(
    item_cases: Sequence[int] | np.ndarray, fraction: float | str = 1.0, seed: int = 0
) -> np.ndarray:
    """Labelled *item* indices when whole scans are labelled (LiTS / BraTS).

    The paper labels a fraction of the training scans (Kim & Ye, IEEE TIP 2019, Sec. V-B:
    1/23, 1/10, 1/3 of LiTS scans, 1/4 of BraTS scans), not of the slices. The scans are
    chosen with :func:`labeled_subset` over the distinct case ids, and every slice of a
    chosen scan is labelled.

    Parameters
    ----------
    item_cases : array of int
        Case id of every dataset item (``LiTS.item_cases`` / ``BraTS.item_cases``).
    fraction, seed
        As in :func:`labeled_subset` (applied to the number of cases).

    Returns
    -------
    numpy.ndarray
        Sorted int64 item indices.
    """
    item_cases = np.asarray(item_cases)
    cases = np.unique(item_cases)
    chosen = cases[labeled_subset(len(cases), fraction, seed)]
    return np.flatnonzero(np.isin(item_cases, chosen)).astype(np.int64)


class SemiSupervisedDataset(Dataset):
    """Wrap a dataset so that only ``labeled_indices`` keep their labels.

    For an unlabelled item, ``"labeled"`` is ``False`` and ``"label"`` is filled with the
    dataset's ``ignore_index`` (same shape as the label, or as the image's spatial size if
    the item has none), so labelled and unlabelled items collate in one batch and the
    cross-entropy of Kim & Ye, IEEE TIP 2019, Eq. 16 ignores them while the Mumford–Shah
    loss sees every image.

    Parameters
    ----------
    dataset : torch.utils.data.Dataset
        A ``varseg.data`` dataset (items are dicts with ``"image"`` and ``"label"``).
    labeled_indices : sequence of int
        Items keeping their labels (e.g. from :func:`labeled_subset`).
    ignore_index : int or None
        Fill value; default ``dataset.ignore_index`` (or -100).

    Notes
    -----
    Other attributes (``num_classes``, ``in_channels``, ...) are forwarded to ``dataset``.
    """

    def __init__(self, dataset, labeled_indices, ignore_index: int | None = None):
        self.dataset = dataset
        idx = np.unique(np.asarray(labeled_indices, dtype=np.int64))
        n = len(dataset)
        if idx.size and (idx[0] < 0 or idx[-1] >= n):
            raise IndexError(f"labeled_indices must lie in [0, {n}), got {idx[0]}..{idx[-1]}")
        self.labeled_indices = idx
        self._labeled = np.zeros(n, dtype=bool)
        self._labeled[idx] = True
        if ignore_index is None:
            ignore_index = getattr(dataset, "ignore_index", -100)
        self.ignore_index = int(ignore_index)

    @property
    def unlabeled_indices(self) -> np.ndarray:
        """Sorted indices of the items whose labels are hidden."""
        return np.flatnonzero(~self._labeled).astype(np.int64)

    def is_labeled(self, index: int) -> bool:
        """Whether item ``index`` keeps its label."""
        return bool(self._labeled[check_index(index, len(self), "SemiSupervisedDataset")])

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict:
        index = check_index(index, len(self), "SemiSupervisedDataset")
        item = dict(self.dataset[index])
        if self._labeled[index]:
            item["labeled"] = torch.tensor(bool(item.get("label") is not None))
            return item
        label = item.get("label")
        shape = tuple(label.shape) if label is not None else tuple(item["image"].shape[-2:])
        item["label"] = torch.full(shape, self.ignore_index, dtype=torch.int64)
        item["labeled"] = torch.tensor(False)
        return item

    def __getattr__(self, name: str) -> Any:
        if name == "dataset":  # not yet set (e.g. during unpickling)
            raise AttributeError(name)
        return getattr(self.dataset, name)


class GroupedShuffleSampler(Sampler[int]):
    """Shuffle the cases, then the slices inside each case, keeping a case's slices together.

    With a one-volume cache (:class:`varseg.data.LiTS`, :class:`varseg.data.BraTS`)
    and a single-process loader, each volume is read once per epoch while the order of
    cases and of slices still changes from epoch to epoch (call :meth:`set_epoch`). Meant
    for the slice-wise LiTS / BraTS training of Kim & Ye, IEEE TIP 2019, Sec. IV-B2.

    Parameters
    ----------
    item_cases : array of int
        Case id of every item (``dataset.item_cases``).
    seed : int
        Base seed; the order of epoch ``e`` is drawn from ``default_rng([seed, e])``.
    """

    def __init__(self, item_cases, seed: int = 0):
        self.item_cases = np.asarray(item_cases)
        self.seed = int(seed)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the permutation of ``epoch``."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.item_cases)

    def __iter__(self) -> Iterator[int]:
        rng = np.random.default_rng([self.seed, self.epoch])
        cases = np.unique(self.item_cases)
        order = []
        for c in rng.permutation(cases):
            members = np.flatnonzero(self.item_cases == c)
            order.extend(rng.permutation(members).tolist())
        return iter(order)


def save_split(path: str | os.PathLike, indices, meta: dict | None = None) -> Path:
    """Save the labelled indices of a run as JSON ``{"labeled_indices": [...], "meta": {...}}``.

    ``meta`` should say how the indices were made (dataset, split, fraction, seed,
    number of items) so that a semi-supervised run (Kim & Ye, IEEE TIP 2019, Sec. V-A/B)
    can be reproduced; numpy scalars and arrays in it are converted.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    idx = [int(i) for i in np.asarray(indices).reshape(-1)]
    payload = {
        "version": 1,
        "n_labeled": len(idx),
        "labeled_indices": idx,
        "meta": dict(meta or {}),
    }
    atomic_write_text(path, json.dumps(payload, indent=1, default=json_default))
    return path


def load_split(path: str | os.PathLike) -> tuple[np.ndarray, dict]:
    """Load a file written by :func:`save_split`.

    Returns
    -------
    indices : numpy.ndarray
        int64 labelled indices.
    meta : dict
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"split file {path} does not exist: expected a JSON file "
            "written by varseg.data.save_split"
        )
    with open(path) as f:
        payload = json.load(f)
    if not isinstance(payload, dict) or "labeled_indices" not in payload:
        raise ValueError(
            f"split file {path} has no 'labeled_indices' list: expected a JSON "
            "file written by varseg.data.save_split"
        )
    return np.asarray(payload["labeled_indices"], dtype=np.int64), payload.get("meta", {})

"""Argument and data checks shared by the dataset loaders of :mod:`varseg.data`.

Every check raises a one-line error that names the bad argument or the bad file and says
what was expected, so that a wrong dataset is refused instead of silently giving wrong
items (Kim & Ye, "Mumford–Shah Loss Functional for Image Segmentation with Deep
Learning", IEEE TIP 2019, Sec. IV-A, train and evaluate on these loaders).
"""

from __future__ import annotations

import operator
import os
from collections import abc

import numpy as np

from varseg._validation import renamed_argument  # noqa: F401 - re-exported for the loaders
from varseg.io import check_positive_labels, reading  # noqa: F401 - re-exported

from .._validation import check_int, check_positive

__all__ = [
    "check_index",
    "check_size",
    "check_scale_range",
    "check_finite_volume",
    "check_positive_labels",
    "reading",
    "renamed_argument",
]


def check_index(index, length: int, dataset: str) -> int:
    """Return ``index`` as an int in ``[0, length)``, Python's rule for negative indices.

    Parameters
    ----------
    index : int
        Item index; ``-length <= index < length`` (``-1`` is the last item).
    length : int
        Dataset length.
    dataset : str
        Dataset name for the message.

    Returns
    -------
    int
        The non-negative index.

    Raises
    ------
    TypeError
        If ``index`` is not an integer (booleans are refused).
    IndexError
        If ``index`` is outside ``[-length, length)``.
    """
    if isinstance(index, bool):
        raise TypeError(f"{dataset} index must be an integer; got {index!r}")
    try:
        i = operator.index(index)
    except TypeError:
        raise TypeError(f"{dataset} index must be an integer; got {index!r}") from None
    if not -length <= i < length:
        raise IndexError(
            f"{dataset} index {i} is out of range for {length} items: expected "
            f"{-length} <= index < {length}"
        )
    return i + length if i < 0 else i


def check_size(size, name: str) -> tuple[int, int] | None:
    """Return ``size`` (``None``, an int or ``(H, W)``) as ``None`` or a ``(H, W)`` tuple.

    Parameters
    ----------
    size : None, int or sequence of two int
        A crop / resize / pad size in pixels; each side must be a positive integer.
    name : str
        Argument name for the message (``"crop_size"``, ``"image_size"``, ...).

    Returns
    -------
    tuple of int or None

    Raises
    ------
    ValueError
        If a side is not a positive integer or the sequence does not have two entries.
    """
    if size is None:
        return None
    if isinstance(size, (int, np.integer)) and not isinstance(size, bool):
        side = check_int(size, name)
        return side, side
    if isinstance(size, (str, bytes)) or not isinstance(size, (abc.Sequence, np.ndarray)):
        raise ValueError(f"{name} must be a positive int or (H, W); got {size!r}")
    sides = tuple(size)
    if len(sides) != 2:
        raise ValueError(f"{name} must be a positive int or (H, W); got {size!r}")
    return tuple(check_int(s, name) for s in sides)


def check_scale_range(scale_range, name: str = "scale_range") -> tuple[float, float] | None:
    """Return ``scale_range`` as ``None`` or ``(low, high)`` with ``0 < low <= high``.

    The random scale factor of the VOC training augmentation is drawn uniformly from this
    range (Kim & Ye, IEEE TIP 2019, Sec. IV-B1, "randomly scaled and cropped").

    Raises
    ------
    ValueError
        If it is not a pair of finite positive numbers with ``low <= high``.
    """
    if scale_range is None:
        return None
    if isinstance(scale_range, (str, bytes)) or not isinstance(
        scale_range, (abc.Sequence, np.ndarray)
    ):
        raise ValueError(f"{name} must be (low, high) with 0 < low <= high; got {scale_range!r}")
    pair = tuple(scale_range)
    if len(pair) != 2:
        raise ValueError(f"{name} must be (low, high) with 0 < low <= high; got {scale_range!r}")
    low, high = (check_positive(v, name) for v in pair)
    if low > high:
        raise ValueError(f"{name} must be (low, high) with 0 < low <= high; got {scale_range!r}")
    return low, high


def check_finite_volume(volume: np.ndarray, path: str | os.PathLike, what: str) -> None:
    """Raise ValueError naming ``path`` if ``volume`` holds NaN or Inf voxels.

    A NaN intensity would pass through z-scoring or HU windowing into every loss and
    metric; the file is refused instead of guessing a replacement value.
    """
    arr = np.asarray(volume)
    if not np.issubdtype(arr.dtype, np.floating):
        return
    finite = np.isfinite(arr)
    if not finite.all():
        n_bad = int(arr.size - np.count_nonzero(finite))
        raise ValueError(
            f"{what} {path} has {n_bad} NaN or Inf voxel(s) of {arr.size}: "
            "expected finite intensities"
        )

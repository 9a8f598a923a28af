"""Deprecated module name: use :mod:`varseg.data.semi_supervised`.

The labelled subsets, :class:`~varseg.data.SemiSupervisedDataset`, the split files and
:class:`~varseg.data.GroupedShuffleSampler` moved to :mod:`varseg.data.semi_supervised`
(the name ``sampling`` clashed with :mod:`varseg.train.sampling`). This module re-exports
them for one release.
"""

from __future__ import annotations

import warnings

from .semi_supervised import (
    GroupedShuffleSampler,
    SemiSupervisedDataset,
    labeled_subset,
    labeled_subset_by_case,
    load_split,
    parse_fraction,
    save_split,
)

__all__ = [
    "parse_fraction",
    "labeled_subset",
    "labeled_subset_by_case",
    "SemiSupervisedDataset",
    "GroupedShuffleSampler",
    "save_split",
    "load_split",
]

warnings.warn(
    "varseg.data.sampling is deprecated, import from varseg.data (or varseg.data.semi_supervised)",
    DeprecationWarning,
    stacklevel=2,
)

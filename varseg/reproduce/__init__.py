"""Reproductions of the paper's experiments on real data (Kim & Ye, IEEE TIP 2019).

:func:`reproduce_bsds500` runs Table VI (BSDS500 unsupervised segmentation) with the
benchmark's protocol; :mod:`~varseg.reproduce.presets` holds the methods and their settings,
:mod:`~varseg.reproduce.search` how the level-set preset was chosen on the train split.
"""

from .bsds import (
    bsds_ids,
    find_bsds500,
    read_label_png,
    reproduce_bsds500,
    score_labels,
    write_label_png,
)
from .presets import LEVEL_SET_PRESET, METHODS, NEURAL_PRESETS, PAPER_TABLE_VI, bsds_features
from .search import load_level_set_search, search_level_set

__all__ = [
    "reproduce_bsds500",
    "bsds_ids",
    "find_bsds500",
    "score_labels",
    "write_label_png",
    "read_label_png",
    "LEVEL_SET_PRESET",
    "NEURAL_PRESETS",
    "PAPER_TABLE_VI",
    "METHODS",
    "bsds_features",
    "search_level_set",
    "load_level_set_search",
]

"""Run segmentation methods side by side and score them with one ruler.

:func:`compare` runs classical and neural methods on one image and returns a
:class:`ComparisonTable`; :func:`compare_dataset` does the same over many images (in parallel
worker processes, or sharded over the ranks of a ``torchrun`` launch) and aggregates.

The package holds four topics, one module each: :mod:`~varseg.compare.scoring` (the shared
ruler: the energy of Kim & Ye Eq. 1 on the [0, 1]-scaled image with one λ, scores against
ground truth, aggregation), :mod:`~varseg.compare.table` (:class:`ComparisonTable` and its
exports), :mod:`~varseg.compare.run` (running methods as their :class:`varseg.methods.
MethodSpec` declares them) and :mod:`~varseg.compare.dataset` (data sets, shards, merge).
"""

from ..energy import DEFAULT_LAM, normalise_image
from .dataset import (
    compare_dataset,
    init_worker,
    iter_folder,
    merge_shards,
    read_ground_truth,
    shard_info,
)
from .run import (
    DEFAULT_METHODS,
    TorchWorker,
    available_cpus,
    compare,
    has_spare_cpu,
    resolve_methods,
)
from .scoring import aggregate_rows, label_scores, shared_energy
from .table import DISPLAY_COLUMNS, ComparisonTable

__all__ = [
    "compare",
    "compare_dataset",
    "merge_shards",
    "ComparisonTable",
    "normalise_image",
    "shared_energy",
    "label_scores",
    "DEFAULT_METHODS",
    "DEFAULT_LAM",
    "DISPLAY_COLUMNS",
    "shard_info",
    "iter_folder",
    "read_ground_truth",
    "aggregate_rows",
    "resolve_methods",
    "init_worker",
    "TorchWorker",
    "available_cpus",
    "has_spare_cpu",
]

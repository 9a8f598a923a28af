"""Segmentation metrics: one ruler for classical and deep segmentation.

* :mod:`~varseg.metrics.overlap` — confusion matrix, IoU / mIoU (PASCAL VOC), Dice,
  precision, recall, pixel accuracy, and the streaming :class:`ConfusionMatrix` (Kim & Ye
  TIP 2019, Tables I-V).
* :mod:`~varseg.metrics.bsds` — BSDS500 region benchmark: segmentation covering (RC),
  probabilistic Rand index (PRI), variation of information (VI, bits), per image and pooled
  over a data set as the Berkeley code does (Table VI).
* :mod:`~varseg.metrics.matching` — Hungarian matching of unsupervised clusters to classes.

All functions take NumPy arrays or torch tensors of integer labels and return NumPy values;
see each module's docstring for the conventions (empty masks, absent classes, label 0).
"""

from .bsds import (
    bsds_region_scores,
    covering_counts,
    probabilistic_rand_index,
    rand_index,
    region_scores,
    segmentation_covering,
    variation_of_information,
)
from .matching import hungarian_dice, match_labels
from .overlap import (
    ConfusionMatrix,
    confusion_matrix,
    dice,
    iou,
    mean_iou,
    pixel_accuracy,
    precision,
    recall,
)

__all__ = [
    "ConfusionMatrix",
    "confusion_matrix",
    "iou",
    "mean_iou",
    "dice",
    "precision",
    "recall",
    "pixel_accuracy",
    "rand_index",
    "probabilistic_rand_index",
    "variation_of_information",
    "segmentation_covering",
    "covering_counts",
    "region_scores",
    "bsds_region_scores",
    "match_labels",
    "hungarian_dice",
]

"""Dataset loaders for the experiments of Kim & Ye, IEEE TIP 2019 (Sec. IV-A).

B. Kim and J. C. Ye, "Mumford–Shah Loss Functional for Image Segmentation with Deep
Learning", IEEE Trans. Image Process. 29, 2019: PASCAL VOC 2012 (+SBD), LiTS 2017,
BraTS 2015 and BSDS500, plus procedural :class:`SyntheticShapes`.

Item format
-----------
Every dataset is a :class:`torch.utils.data.Dataset` whose ``__getitem__`` returns a dict:

``"image"``
    float32 tensor ``(C, H, W)``; ``C == dataset.in_channels``.
``"label"``
    int64 tensor ``(H, W)``; absent for image-only data (``BSDS500(labels=False)``);
    ``dataset.ignore_index`` marks pixels without supervision (VOC void 255, padding, or
    all pixels of an unlabelled item in :class:`SemiSupervisedDataset`).
``"labeled"``
    0-d bool tensor: whether ``"label"`` carries supervision.
``"index"``
    int, the item index; ``"name"``: str, an identifier (image id, ``"volume-N:kkk"``).

Some datasets add keys (``"case"``/``"slice"`` for volumes, ``"bias"`` for synthetic,
``"orig_size"``/``"ground_truths"`` for BSDS500). Items of one dataset with a fixed
``crop_size``/``image_size`` collate with the default collate function; for full-size or
list-valued items use :func:`collate_keep_lists` (or batch size 1).

Every dataset has the attributes ``num_classes``, ``in_channels`` and ``ignore_index``.
"""
from __future__ import annotations

from ._io import collate_keep_lists
from .brats import BraTS
from .bsds import BSDS500, load_bsds_ground_truth
from .lits import LiTS
from .sampling import (
    GroupedShuffleSampler,
    SemiSupervisedDataset,
    labeled_subset,
    labeled_subset_by_case,
    load_split,
    parse_fraction,
    save_split,
)
from .synthetic import SyntheticShapes, make_synthetic_image
from .voc import VOCSegmentation, convert_sbd

__all__ = [
    "VOCSegmentation",
    "LiTS",
    "BraTS",
    "BSDS500",
    "SyntheticShapes",
    "make_synthetic_image",
    "load_bsds_ground_truth",
    "convert_sbd",
    "labeled_subset",
    "labeled_subset_by_case",
    "parse_fraction",
    "SemiSupervisedDataset",
    "GroupedShuffleSampler",
    "save_split",
    "load_split",
    "collate_keep_lists",
    "DATASET_NAMES",
    "build_dataset",
]

#: Canonical dataset names accepted by :func:`build_dataset`.
DATASET_NAMES = ("voc", "lits", "brats", "bsds500", "synthetic")

_REGISTRY = {
    "voc": VOCSegmentation,
    "lits": LiTS,
    "brats": BraTS,
    "bsds500": BSDS500,
    "synthetic": SyntheticShapes,
}
_ALIASES = {
    "voc2012": "voc", "pascal_voc": "voc", "pascal-voc": "voc", "vocsegmentation": "voc",
    "lits2017": "lits", "lits17": "lits",
    "brats2015": "brats", "brats15": "brats",
    "bsds": "bsds500", "bsd500": "bsds500",
    "syntheticshapes": "synthetic", "shapes": "synthetic",
}


def build_dataset(name: str, root=None, split: str = "train", **kw):
    """Build a dataset by name.

    Parameters
    ----------
    name : str
        One of :data:`DATASET_NAMES` (``"voc"``, ``"lits"``, ``"brats"``, ``"bsds500"``,
        ``"synthetic"``) or an alias (``"voc2012"``, ``"bsds"``, ``"brats2015"``, ...);
        case-insensitive. These are the datasets of Kim & Ye, IEEE TIP 2019, Sec. IV-A.
    root : path or None
        Dataset root; required except for ``"synthetic"`` (where it is ignored).
    split : str
        Split name passed to the dataset.
    **kw
        Further keyword arguments of the dataset class.

    Returns
    -------
    torch.utils.data.Dataset

    Raises
    ------
    ValueError
        Unknown name, or no ``root`` for a dataset that needs one.
    """
    key = name.lower().strip()
    key = _ALIASES.get(key, key)
    if key not in _REGISTRY:
        raise ValueError(f"unknown dataset {name!r}: expected one of {DATASET_NAMES}")
    cls = _REGISTRY[key]
    if key == "synthetic":
        return cls(split=split, **kw)
    if root is None:
        raise ValueError(f"dataset {key!r} needs root=<folder>")
    return cls(root, split=split, **kw)

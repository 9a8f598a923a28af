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

Look a dataset up by name with :func:`dataset_class` (aliases resolved by
:func:`canonical_dataset_name`) or build one with :func:`build_dataset`.

Bad data is refused
-------------------
Indices follow Python's rule (``-len(ds) <= index < len(ds)``, otherwise IndexError);
sizes (``crop_size``, ``image_size``, ``eval_pad_to``) must be positive integers and
``scale_range`` must satisfy ``0 < low <= high`` (ValueError naming the argument). Label
values outside a dataset's set (checked on the file's own dtype), BSDS500 region labels
below 1, NaN/Inf voxels, empty split lists and damaged files (truncated JPEG, ``.mat``,
``.nii.gz``, ``.mha``) raise a one-line ValueError naming the file.
"""

from __future__ import annotations

from types import MappingProxyType

from ._io import collate_keep_lists
from .brats import BraTS
from .bsds import BSDS500, load_bsds_ground_truth
from .lits import LiTS
from .semi_supervised import (
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
    "DATASET_ALIASES",
    "canonical_dataset_name",
    "dataset_class",
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
    "voc2012": "voc",
    "pascal_voc": "voc",
    "pascal-voc": "voc",
    "vocsegmentation": "voc",
    "lits2017": "lits",
    "lits17": "lits",
    "brats2015": "brats",
    "brats15": "brats",
    "bsds": "bsds500",
    "bsd500": "bsds500",
    "syntheticshapes": "synthetic",
    "shapes": "synthetic",
}
#: Other accepted spellings of the :data:`DATASET_NAMES` (read-only alias → name map).
DATASET_ALIASES = MappingProxyType(_ALIASES)


def canonical_dataset_name(name: str) -> str:
    """Resolve a dataset name or alias to its canonical :data:`DATASET_NAMES` entry.

    Parameters
    ----------
    name : str
        ``"voc"``, ``"lits"``, ``"brats"``, ``"bsds500"``, ``"synthetic"`` or an alias
        from :data:`DATASET_ALIASES` (``"VOC2012"``, ``"bsds"``, ``"brats2015"``, ...);
        case and surrounding spaces are ignored. These are the datasets of Kim & Ye,
        IEEE TIP 2019, Sec. IV-A (plus the procedural synthetic shapes).

    Returns
    -------
    str
        The canonical name.

    Raises
    ------
    TypeError
        If ``name`` is not a string.
    ValueError
        If it names no dataset (the message lists the accepted names).

    Examples
    --------
    >>> canonical_dataset_name(" VOC2012 ")
    'voc'
    """
    if not isinstance(name, str):
        raise TypeError(f"dataset name must be a string; got {name!r}")
    key = name.strip().lower()
    key = _ALIASES.get(key, key)
    if key not in _REGISTRY:
        raise ValueError(
            f"unknown dataset {name!r}: expected one of {', '.join(DATASET_NAMES)} "
            "(or an alias such as 'voc2012', 'bsds', 'brats2015')"
        )
    return key


def dataset_class(name: str) -> type:
    """Return the dataset class registered under ``name`` (a name or alias, case-insensitive).

    The public way to look up a loader (instead of reading the private registry), e.g.
    to check which keyword arguments a dataset takes before building it.

    Parameters
    ----------
    name : str
        See :func:`canonical_dataset_name`.

    Returns
    -------
    type
        :class:`VOCSegmentation`, :class:`LiTS`, :class:`BraTS`, :class:`BSDS500` or
        :class:`SyntheticShapes`.

    Raises
    ------
    TypeError, ValueError
        As :func:`canonical_dataset_name`.

    Examples
    --------
    >>> dataset_class("bsds").__name__
    'BSDS500'
    """
    return _REGISTRY[canonical_dataset_name(name)]


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
    key = canonical_dataset_name(name)
    cls = _REGISTRY[key]
    if key == "synthetic":
        return cls(split=split, **kw)
    if root is None:
        raise ValueError(f"dataset {key!r} needs root=<folder>")
    return cls(root, split=split, **kw)

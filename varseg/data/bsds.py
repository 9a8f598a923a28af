"""Berkeley Segmentation Data Set BSDS500 images and human segmentations.

Kim & Ye, "Mumford–Shah Loss Functional for Image Segmentation with Deep Learning",
IEEE TIP 2019, Sec. IV-A4 (200/100/200 train/val/test RGB images, training images
resized) and Sec. IV-C / V-C (unsupervised training: no labels are used; the human
segmentations serve only for the PRI / VI / covering evaluation).

Dataset paper: P. Arbeláez, M. Maire, C. Fowlkes and J. Malik, "Contour Detection and
Hierarchical Image Segmentation", IEEE TPAMI 33(5), 2011.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from .._validation import check_int
from ..io import load_bsds_ground_truth
from ._checks import check_index, renamed_argument
from ._io import check_root, read_rgb
from .transforms import as_size, normalise_rgb, resize_image, resize_label

__all__ = ["BSDS500", "load_bsds_ground_truth"]

_EXPECTED = "<root>/data/images/{train,val,test}/*.jpg and <root>/data/groundTruth/{split}/*.mat"


def _resolve_bsds_root(root, split: str) -> Path:
    root = check_root(root, "BSDS500", _EXPECTED)
    cands = [root, root / "BSDS500", root / "BSR" / "BSDS500"]
    for c in cands:
        if (c / "data" / "images" / split).is_dir():
            return c / "data"
    if (root / "images" / split).is_dir():  # root = .../data
        return root
    raise FileNotFoundError(f"BSDS500 root {root} has no data/images/{split}: expected {_EXPECTED}")


class BSDS500(Dataset):
    """BSDS500 images (RGB), with the human segmentations for evaluation.

    Used for the unsupervised experiments of Kim & Ye, IEEE TIP 2019, Sec. IV-A4 / V-C.

    Parameters
    ----------
    root : path
        Folder holding ``data/images/{train,val,test}/*.jpg`` and
        ``data/groundTruth/{train,val,test}/*.mat``; ``BSR`` or ``BSR/BSDS500`` (or the
        ``data`` folder itself) are accepted too. Only ``*.jpg`` are listed (stray
        ``Thumbs.db`` files are ignored).
    split : {"train", "val", "test"}
    image_size : int or (H, W) or None
        Resize images (bilinear) and ``label`` (nearest) for training, e.g. ``(256, 256)``;
        ``None`` keeps 481 × 321 / 321 × 481.
    return_all_ground_truths : bool
        Add ``"ground_truths"``: the list of all human segmentations (int64 tensors at the
        *original* resolution, labels from 1). Use batch size 1 or
        :func:`varseg.data.collate_keep_lists`.
    labels : bool
        Read the ground truth. ``False`` gives an image-only dataset (``"label"`` absent,
        ``"labeled"`` False), which is all the unsupervised training of the paper uses;
        the ``groundTruth`` folder may then be missing.
    normalise : {"none", "imagenet", "caffe"} or (mean, std)
        Default ``"none"``: RGB in [0, 1], the intensities the Mumford–Shah data term is
        computed on. See :func:`varseg.data.transforms.normalise_rgb`.
    num_classes : int or None
        Number of output segments a model should use (BSDS labels are regions, not
        classes); stored as the ``num_classes`` attribute.
    transform : callable or None
        Applied last to the item dict (``item = transform(item)``); must return a dict.
    normalize : optional
        Deprecated spelling of ``normalise`` (DeprecationWarning).

    Raises
    ------
    ValueError
        Unknown split, ``image_size`` not positive integers; when an item is read, a
        damaged image or ``.mat`` file, or human labels below 1 (naming the file).

    Notes
    -----
    ``__getitem__`` returns ``"image"`` float32 ``(3, H, W)``; ``"label"`` int64
    ``(H, W)``: the **first** human segmentation (labels from 1, resized with
    ``image_size``); ``"labeled"``; ``"index"``; ``"name"`` (image id);
    ``"orig_size"`` (H, W) before resizing; and ``"ground_truths"`` when requested.
    """

    in_channels = 3
    ignore_index = -100

    def __init__(
        self,
        root,
        split: str = "train",
        *,
        image_size: int | Sequence[int] | None = None,
        return_all_ground_truths: bool = False,
        labels: bool = True,
        normalise="none",
        num_classes: int | None = None,
        transform=None,
        normalize=None,
    ):
        if split not in ("train", "val", "test"):
            raise ValueError(f"BSDS500 split must be 'train', 'val' or 'test', got {split!r}")
        self.data_dir = _resolve_bsds_root(root, split)
        self.root = Path(root)
        self.split = split
        self.image_size = as_size(image_size, "image_size")
        self.return_all_ground_truths = bool(return_all_ground_truths)
        self.labels = bool(labels)
        self.normalise = renamed_argument(
            normalise, normalize, new="normalise", old="normalize", default="none"
        )
        self.num_classes = (
            None if num_classes is None else check_int(num_classes, "num_classes", minimum=2)
        )
        self.transform = transform
        img_dir = self.data_dir / "images" / split
        self.images = sorted(p for p in img_dir.glob("*.jpg") if p.is_file())
        if not self.images:
            raise FileNotFoundError(
                f"BSDS500 folder {img_dir} has no *.jpg images: expected {_EXPECTED}"
            )
        self.ids = [p.stem for p in self.images]
        gt_dir = self.data_dir / "groundTruth" / split
        self.ground_truth_files = [gt_dir / f"{i}.mat" for i in self.ids]
        if self.labels or self.return_all_ground_truths:
            missing = [p for p in self.ground_truth_files if not p.is_file()]
            if missing:
                raise FileNotFoundError(
                    f"BSDS500 ground truth {missing[0]} does not exist ({len(missing)} missing "
                    f"in {gt_dir}): expected one <id>.mat per image; pass labels=False for "
                    "image-only (unsupervised) use"
                )

    @property
    def normalize(self):
        """Deprecated spelling of :attr:`normalise` (DeprecationWarning)."""
        warnings.warn(
            "the normalize attribute is deprecated, use normalise", DeprecationWarning, stacklevel=2
        )
        return self.normalise

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> dict:
        index = check_index(index, len(self), "BSDS500")
        img = read_rgb(self.images[index], "BSDS500 image")
        h, w = img.shape[:2]
        image = normalise_rgb(img, self.normalise)
        if self.image_size is not None:
            image = resize_image(image, self.image_size)
        item = {
            "image": image.contiguous(),
            "labeled": torch.tensor(self.labels),
            "index": int(index),
            "name": self.ids[index],
            "orig_size": torch.tensor([h, w]),
        }
        if self.labels or self.return_all_ground_truths:
            gts = load_bsds_ground_truth(self.ground_truth_files[index])
            for g in gts:
                if g.shape != (h, w):
                    raise ValueError(
                        f"BSDS500 ground truth {self.ground_truth_files[index]} "
                        f"has a {g.shape} map, image is {(h, w)}: expected equal"
                    )
            gts_t = [torch.from_numpy(g.astype(np.int64)) for g in gts]
            if self.labels:
                label = gts_t[0]
                if self.image_size is not None:
                    label = resize_label(label, self.image_size)
                item["label"] = label
            if self.return_all_ground_truths:
                item["ground_truths"] = gts_t
        return item if self.transform is None else self.transform(item)

    def __repr__(self) -> str:
        return (
            f"BSDS500(root={str(self.data_dir)!r}, split={self.split!r}, n={len(self)}, "
            f"image_size={self.image_size})"
        )

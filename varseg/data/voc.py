"""PASCAL VOC 2012 semantic segmentation, optionally augmented with SBD (``train_aug``).

Kim & Ye, "Mumford–Shah Loss Functional for Image Segmentation with Deep Learning",
IEEE TIP 2019, Sec. IV-A1: VOC 2012 (20 object classes + background) with the extra
annotations of the Semantic Boundaries Dataset (SBD, Hariharan et al., ICCV 2011), giving
10,582 training images, evaluated on the 1,449 ``val`` images; training images are
"randomly scaled and cropped" (Sec. IV-B1, crop 321 × 321 as in AdvSemi).

Dataset paper: M. Everingham et al., "The PASCAL Visual Object Classes (VOC) Challenge",
IJCV 88(2), 2010.
"""

from __future__ import annotations

import os
import shutil
import warnings
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from .._atomic import atomic_write_text
from ._checks import (
    check_index,
    check_scale_range,
    reading,
    renamed_argument,
)
from ._io import (
    check_label_values,
    check_root,
    item_rng,
    read_index_png,
    read_rgb,
    write_index_png,
)
from .transforms import IMAGENET_MEAN, as_size, normalise_rgb, pad_to, random_scale_crop_flip

__all__ = ["VOCSegmentation", "convert_sbd", "read_voc_mask", "read_sbd_mat", "VOC_CLASSES"]

VOC_CLASSES = (
    "background",
    "aeroplane",
    "bicycle",
    "bird",
    "boat",
    "bottle",
    "bus",
    "car",
    "cat",
    "chair",
    "cow",
    "diningtable",
    "dog",
    "horse",
    "motorbike",
    "person",
    "pottedplant",
    "sheep",
    "sofa",
    "train",
    "tvmonitor",
)
_ALLOWED = tuple(range(21)) + (255,)
_EXPECTED = (
    "<root>/{JPEGImages/*.jpg, SegmentationClass/*.png or SegmentationClassAug/*.png, "
    "ImageSets/Segmentation/{train,val,train_aug}.txt} (root = VOCdevkit/VOC2012)"
)


def _resolve_voc_root(root) -> Path:
    root = check_root(root, "VOC 2012", _EXPECTED)
    for cand in (root, root / "VOC2012", root / "VOCdevkit" / "VOC2012"):
        if (cand / "JPEGImages").is_dir():
            return cand
    raise FileNotFoundError(f"VOC 2012 root {root} has no JPEGImages folder: expected {_EXPECTED}")


def _read_list(path: Path, what: str) -> list[str]:
    if not path.is_file():
        raise FileNotFoundError(f"{what} {path} does not exist")
    with open(path) as f:
        ids = [ln.split()[0] for ln in f if ln.strip()]
    if not ids:
        raise ValueError(f"{what} {path} is empty: expected one image id per line")
    return ids


def read_voc_mask(path: str | os.PathLike) -> np.ndarray:
    """Read a VOC label mask as an ``(H, W)`` uint8 class map, checking its values.

    The values must be VOC classes 0-20 or the void label 255 (Everingham et al., IJCV
    2010). They are checked on the file's own dtype, so a 16-bit PNG holding 276 or 256
    is refused rather than wrapped to class 20 or 0 by the cast to ``uint8``.

    Parameters
    ----------
    path : path
        ``SegmentationClass/<id>.png`` or ``SegmentationClassAug/<id>.png``.

    Returns
    -------
    numpy.ndarray
        ``(H, W)`` uint8 labels in {0-20, 255}.

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    ValueError
        Naming the file: a colour PNG, a damaged file or values outside {0-20, 255}.
    """
    lab = read_index_png(path, "VOC label mask")
    check_label_values(lab, _ALLOWED, path, "VOC")
    return lab


def _resolve_sbd_root(sbd_root) -> Path:
    expected = (
        "<sbd_root>/{img/*.jpg, cls/*.mat, train.txt, val.txt} "
        "(sbd_root = benchmark_RELEASE/dataset)"
    )
    sbd_root = check_root(sbd_root, "SBD", expected)
    for cand in (sbd_root, sbd_root / "dataset", sbd_root / "benchmark_RELEASE" / "dataset"):
        if (cand / "cls").is_dir():
            return cand
    raise FileNotFoundError(f"SBD root {sbd_root} has no cls folder: expected {expected}")


def read_sbd_mat(path: str | os.PathLike) -> np.ndarray:
    """Read an SBD class annotation ``cls/<id>.mat`` as an ``(H, W)`` uint8 map (0-20).

    ``loadmat(p)['GTcls'][0]['Segmentation'][0]`` (Hariharan et al., "Semantic contours
    from inverse detectors", ICCV 2011); SBD has no void (255) label.

    Parameters
    ----------
    path : path
        ``cls/<id>.mat`` of the SBD release.

    Returns
    -------
    numpy.ndarray
        ``(H, W)`` uint8 class map, values 0-20.

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    ValueError
        Naming the file: damaged, no ``GTcls`` struct, or values outside {0-20, 255}.
    """
    from scipy.io import loadmat

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"SBD annotation {path} does not exist")
    with reading(path, "SBD annotation"):
        mat = loadmat(str(path))
    if "GTcls" not in mat:
        raise ValueError(
            f"SBD annotation {path} has no 'GTcls' struct (keys: "
            f"{sorted(k for k in mat if not k.startswith('__'))})"
        )
    with reading(path, "SBD annotation"):
        seg = np.asarray(mat["GTcls"][0]["Segmentation"][0])
    check_label_values(seg, _ALLOWED, path, "SBD")
    return seg.astype(np.uint8)


def convert_sbd(
    sbd_root: str | os.PathLike,
    voc_root: str | os.PathLike,
    *,
    prefer_voc: bool = True,
    overwrite: bool = False,
) -> Path:
    """Build ``SegmentationClassAug/`` and ``ImageSets/Segmentation/train_aug.txt`` from SBD.

    The augmented training list of Kim & Ye, IEEE TIP 2019, Sec. IV-A1 (10,582 images for
    the full data) is ``(SBD train ∪ SBD val ∪ VOC train) − VOC val``. For every id of that
    list and of VOC ``val`` an index PNG (VOC palette) is written to
    ``<voc_root>/SegmentationClassAug/<id>.png``: the VOC ``SegmentationClass`` mask when
    one exists and ``prefer_voc`` (it has the 255 void boundaries), otherwise the SBD
    ``cls/<id>.mat`` annotation (``GTcls.Segmentation``, 0-20). SBD images missing from
    ``JPEGImages`` are copied there from ``<sbd_root>/img``.

    The folder is written under a temporary name and renamed at the end, so an interrupted
    conversion is not mistaken for a complete one.

    Parameters
    ----------
    sbd_root : path
        ``benchmark_RELEASE/dataset`` (or ``benchmark_RELEASE``) with ``cls/``, ``img/``,
        ``train.txt``, ``val.txt``.
    voc_root : path
        ``VOCdevkit/VOC2012`` with ``ImageSets/Segmentation/{train,val}.txt``.
    prefer_voc : bool
        Use the VOC mask for ids annotated in both datasets.
    overwrite : bool
        Rebuild even if ``SegmentationClassAug`` and ``train_aug.txt`` exist.

    Returns
    -------
    pathlib.Path
        Path of the written ``train_aug.txt``.
    """
    sbd = _resolve_sbd_root(sbd_root)
    voc = _resolve_voc_root(voc_root)
    sets = voc / "ImageSets" / "Segmentation"
    aug_dir = voc / "SegmentationClassAug"
    aug_list = sets / "train_aug.txt"
    if aug_dir.is_dir() and aug_list.is_file() and not overwrite:
        return aug_list
    sbd_train = _read_list(sbd / "train.txt", "SBD split file")
    sbd_val = _read_list(sbd / "val.txt", "SBD split file")
    voc_train = _read_list(sets / "train.txt", "VOC split file")
    voc_val = _read_list(sets / "val.txt", "VOC split file")
    train_aug = sorted((set(sbd_train) | set(sbd_val) | set(voc_train)) - set(voc_val))

    tmp = voc / f"SegmentationClassAug.tmp-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    missing = []
    try:
        for id_ in sorted(set(train_aug) | set(voc_val)):
            voc_png = voc / "SegmentationClass" / f"{id_}.png"
            sbd_mat = sbd / "cls" / f"{id_}.mat"
            if voc_png.is_file() and (prefer_voc or not sbd_mat.is_file()):
                lab = read_voc_mask(voc_png)
            elif sbd_mat.is_file():
                lab = read_sbd_mat(sbd_mat)
            else:
                missing.append(id_)
                continue
            write_index_png(tmp / f"{id_}.png", lab)
            jpg = voc / "JPEGImages" / f"{id_}.jpg"
            if not jpg.is_file():
                src = sbd / "img" / f"{id_}.jpg"
                if not src.is_file():
                    missing.append(id_)
                    continue
                shutil.copy2(src, jpg)
        if missing:
            raise FileNotFoundError(
                f"SBD conversion: {len(missing)} id(s) have no mask or image, e.g. "
                f"{missing[:5]}: expected {voc}/SegmentationClass/<id>.png or "
                f"{sbd}/cls/<id>.mat, and {voc}/JPEGImages/<id>.jpg or {sbd}/img/<id>.jpg"
            )
        if aug_dir.exists():
            shutil.rmtree(aug_dir)
        tmp.rename(aug_dir)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    sets.mkdir(parents=True, exist_ok=True)
    atomic_write_text(aug_list, "".join(f"{i}\n" for i in train_aug))
    return aug_list


class VOCSegmentation(Dataset):
    """PASCAL VOC 2012 segmentation (optionally SBD-augmented ``train_aug``).

    Used in Kim & Ye, "Mumford–Shah Loss Functional for Image Segmentation with Deep
    Learning", IEEE TIP 2019, Sec. IV-A1 / IV-B1 (semi-supervised AdvSemi/SSGAN with 1/8,
    1/4, 1/2 labelled images); see :func:`varseg.data.labeled_subset`.

    Parameters
    ----------
    root : path
        ``VOCdevkit/VOC2012`` (the parent ``VOCdevkit`` is also accepted) holding
        ``JPEGImages/``, ``SegmentationClass/`` and/or ``SegmentationClassAug/`` and
        ``ImageSets/Segmentation/{train,val,train_aug}.txt``.
    split : str
        ``"train"``, ``"val"``, ``"trainval"``, ``"train_aug"`` or any list name in
        ``ImageSets/Segmentation``. If the whole ``ImageSets/Segmentation`` folder is missing
        (e.g. the 6-image sample), every JPEG that has a mask is used, whatever the split,
        with a warning. A missing list file inside an existing folder is an error.
    crop_size : int or (H, W) or None
        Training crop (321 as in AdvSemi / the paper). ``None`` keeps the scaled size.
    scale_range : (float, float) or None
        Random scale factor range for training.
    flip : bool
        Random horizontal flip for training.
    augment : bool or None
        Apply scale/crop/flip. Default: ``True`` for splits starting with ``"train"``.
    use_sbd : bool or None
        ``split="train"`` means the SBD-augmented ``train_aug`` list (10,582 images).
        ``None`` (default): use it when ``SegmentationClassAug`` + ``train_aug.txt`` exist
        or ``sbd_root`` is given, otherwise plain VOC ``train`` (1,464). ``True``: require
        it. ``False``: never.
    sbd_root : path or None
        ``benchmark_RELEASE/dataset``; when given and the augmented files are missing they
        are built once with :func:`convert_sbd`.
    normalise : {"imagenet", "none", "caffe"} or (mean, std)
        See :func:`varseg.data.transforms.normalise_rgb`. Default: ImageNet mean/std on
        RGB in [0, 1]. Padding fills the image with the mean (0 after normalisation).
    eval_pad_to : int or (H, W) or None
        Without augmentation, pad image (with the mean) and label (with 255) at the
        bottom/right to this size so that evaluation batches collate (VOC images are at most
        500 × 500). ``None``: full-size images, use batch size 1 or
        :func:`varseg.data.collate_keep_lists`.
    seed : int or None
        ``None``: augmentation drawn from torch's RNG (seeded per DataLoader worker).
        An int makes it a function of ``(seed, epoch, index)``; call :meth:`set_epoch`.
    check_files : bool
        Check at construction that every listed image and mask exists.
    transform : callable or None
        Applied last to the item dict (``item = transform(item)``); must return a dict.
    normalize : optional
        Deprecated spelling of ``normalise`` (DeprecationWarning).

    Raises
    ------
    ValueError
        ``crop_size`` / ``eval_pad_to`` not positive integers, ``scale_range`` not
        ``0 < low <= high``, or an empty split list (the message names the file).
    FileNotFoundError
        Missing root, folders, split list or listed files.

    Notes
    -----
    ``__getitem__`` returns a dict:

    - ``"image"``: float32 ``(3, H, W)``, normalised RGB;
    - ``"label"``: int64 ``(H, W)``, 0-20 and 255 (void / padding, ``ignore_index``);
    - ``"labeled"``: bool tensor (True);
    - ``"index"``: int; ``"name"``: the VOC image id.

    Masks are read with PIL as palette indices. Values outside {0..20, 255} (checked on the
    file's own dtype, see :func:`read_voc_mask`) raise ValueError naming the file. Indices
    follow Python's rule: ``-len(ds) <= index < len(ds)``, otherwise IndexError.
    """

    num_classes = 21
    in_channels = 3
    ignore_index = 255
    classes = VOC_CLASSES

    def __init__(
        self,
        root,
        split: str = "train",
        *,
        crop_size: int | Sequence[int] | None = 321,
        scale_range: Sequence[float] | None = (0.5, 1.5),
        flip: bool = True,
        augment: bool | None = None,
        use_sbd: bool | None = None,
        sbd_root=None,
        normalise="imagenet",
        eval_pad_to: int | Sequence[int] | None = None,
        seed: int | None = None,
        check_files: bool = True,
        transform=None,
        normalize=None,
    ):
        self.root = _resolve_voc_root(root)
        self.requested_split = split
        self.crop_size = as_size(crop_size, "crop_size")
        self.scale_range = check_scale_range(scale_range)
        self.flip = bool(flip)
        self.augment = split.startswith("train") if augment is None else bool(augment)
        self.normalise = renamed_argument(
            normalise, normalize, new="normalise", old="normalize", default="imagenet"
        )
        self.eval_pad_to = as_size(eval_pad_to, "eval_pad_to")
        self.seed = seed
        self.epoch = 0
        self.transform = transform
        self.split, self.mask_dir = self._resolve_split(split, use_sbd, sbd_root)
        self.ids = self._list_ids(split)
        self.images = [self.root / "JPEGImages" / f"{i}.jpg" for i in self.ids]
        self.masks = [self.mask_dir / f"{i}.png" for i in self.ids]
        if check_files:
            self._check_files()

    def _resolve_split(self, split: str, use_sbd, sbd_root) -> tuple[str, Path]:
        """Return the list name actually read and the mask folder (building SBD files if asked)."""
        sets = self.root / "ImageSets" / "Segmentation"
        aug_dir = self.root / "SegmentationClassAug"
        aug_list = sets / "train_aug.txt"
        aug_ready = aug_dir.is_dir() and aug_list.is_file()
        if split == "train" and use_sbd is None:
            use_sbd = aug_ready or sbd_root is not None
        want_aug = split == "train_aug" or (split == "train" and bool(use_sbd))
        if want_aug and not aug_ready:
            if sbd_root is None:
                raise FileNotFoundError(
                    f"VOC 2012 root {self.root} has no {aug_dir.name}/ + {aug_list}: expected "
                    "the SBD-augmented masks and list; pass sbd_root=<benchmark_RELEASE/dataset>"
                    " to build them, or use_sbd=False"
                )
            convert_sbd(sbd_root, self.root)
        if want_aug:
            return "train_aug", aug_dir
        if (self.root / "SegmentationClass").is_dir():
            return split, self.root / "SegmentationClass"
        if aug_dir.is_dir():
            return split, aug_dir
        raise FileNotFoundError(
            f"VOC 2012 root {self.root} has no SegmentationClass or SegmentationClassAug "
            f"folder: expected {_EXPECTED}"
        )

    def _list_ids(self, requested: str) -> list[str]:
        """Image ids of the split list, or of every JPEG with a mask without ``ImageSets``."""
        sets = self.root / "ImageSets" / "Segmentation"
        if sets.is_dir():
            list_file = sets / f"{self.split}.txt"
            if not list_file.is_file():
                avail = sorted(p.stem for p in sets.glob("*.txt"))
                raise FileNotFoundError(
                    f"VOC 2012 split file {list_file} does not exist: expected "
                    f"<root>/ImageSets/Segmentation/{self.split}.txt (available: {avail})"
                )
            return _read_list(list_file, "VOC split file")
        ids = sorted(
            p.stem
            for p in self.mask_dir.glob("*.png")
            if (self.root / "JPEGImages" / f"{p.stem}.jpg").is_file()
        )
        if not ids:
            raise FileNotFoundError(
                f"VOC 2012 root {self.root}: no JPEGImages/<id>.jpg with a "
                f"{self.mask_dir.name}/<id>.png found: expected {_EXPECTED}"
            )
        warnings.warn(
            f"VOC 2012 root {self.root} has no ImageSets/Segmentation: using all "
            f"{len(ids)} JPEGImages with a mask in {self.mask_dir.name} for split "
            f"{requested!r}",
            stacklevel=3,
        )
        return ids

    def _check_files(self) -> None:
        for kind, paths in (("image", self.images), ("mask", self.masks)):
            missing = [p for p in paths if not p.is_file()]
            if missing:
                raise FileNotFoundError(
                    f"VOC 2012 split {self.split!r}: {len(missing)} {kind} file(s) missing, "
                    f"e.g. {missing[0]}: expected one per id of the split list"
                )

    @property
    def normalize(self):
        """Deprecated spelling of :attr:`normalise` (DeprecationWarning)."""
        warnings.warn(
            "the normalize attribute is deprecated, use normalise", DeprecationWarning, stacklevel=2
        )
        return self.normalise

    # ------------------------------------------------------------------
    def set_epoch(self, epoch: int) -> None:
        """Set the epoch used with an integer ``seed`` to draw fresh augmentations."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.ids)

    def _fill(self):
        if isinstance(self.normalise, str) and self.normalise == "none":
            return IMAGENET_MEAN
        return 0.0

    def load(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Raw ``(H, W, 3)`` uint8 image and ``(H, W)`` uint8 mask of item ``index``."""
        index = check_index(index, len(self), "VOCSegmentation")
        img = read_rgb(self.images[index], "VOC image")
        lab = read_voc_mask(self.masks[index])
        if img.shape[:2] != lab.shape:
            raise ValueError(
                f"VOC mask {self.masks[index]} has shape {lab.shape}, its image "
                f"{self.images[index]} has {img.shape[:2]}: expected equal sizes"
            )
        return img, lab

    def __getitem__(self, index: int) -> dict:
        index = check_index(index, len(self), "VOCSegmentation")
        img, lab = self.load(index)
        image = normalise_rgb(img, self.normalise)
        label = torch.from_numpy(lab.astype(np.int64))
        if self.augment:
            image, label = random_scale_crop_flip(
                image,
                label,
                item_rng(self.seed, index, self.epoch),
                crop_size=self.crop_size,
                scale_range=self.scale_range,
                flip=self.flip,
                image_fill=self._fill(),
                label_fill=self.ignore_index,
            )
        elif self.eval_pad_to is not None:
            image, label = pad_to(
                image,
                label,
                self.eval_pad_to,
                image_fill=self._fill(),
                label_fill=self.ignore_index,
            )
        item = {
            "image": image.contiguous(),
            "label": label.contiguous(),
            "labeled": torch.tensor(True),
            "index": int(index),
            "name": self.ids[index],
        }
        return item if self.transform is None else self.transform(item)

    def __repr__(self) -> str:
        return (
            f"VOCSegmentation(root={str(self.root)!r}, split={self.split!r}, n={len(self)}, "
            f"augment={self.augment}, masks={self.mask_dir.name})"
        )

"""Tensor transforms shared by the dataset loaders.

Images are float32 tensors ``(C, H, W)``; label maps are int64 tensors ``(H, W)``.
Resizing uses :func:`torch.nn.functional.interpolate`: bilinear for images and
``nearest-exact`` for labels (label values are never interpolated).

The training augmentation for PASCAL VOC, "randomly scaled and cropped" (Kim & Ye,
"Mumford–Shah Loss Functional for Image Segmentation with Deep Learning", IEEE TIP 2019,
Sec. IV-B1), follows the AdvSemi / DeepLab-v2 recipe the paper builds on (Hung et al.,
BMVC 2018): random scale, pad (image with the mean, i.e. 0 after normalisation; label
with the ignore value 255), random crop and horizontal flip.
"""

from __future__ import annotations

import warnings
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ._checks import check_scale_range, check_size

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "CAFFE_BGR_MEAN",
    "as_size",
    "resize_image",
    "resize_label",
    "normalise_rgb",
    "normalize_rgb",
    "pad_to",
    "random_scale_crop_flip",
]

#: ImageNet statistics of RGB images in [0, 1] (torchvision convention).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
#: Caffe DeepLab-v2 / AdvSemi mean in BGR order on the 0-255 scale (no std division).
CAFFE_BGR_MEAN = (104.00698793, 116.66876762, 122.67891434)


def as_size(size: int | Sequence[int] | None, name: str = "size") -> tuple[int, int] | None:
    """Normalise ``size`` (``int`` or ``(H, W)``) to a ``(H, W)`` tuple (``None`` passes).

    Used for the crop / resize sizes of Kim & Ye, IEEE TIP 2019, Sec. IV-A/B (e.g. 321 for
    VOC crops, square resizing of LiTS and BSDS500 images).

    Parameters
    ----------
    size : None, int or (H, W)
        Each side a positive integer.
    name : str
        Argument name used in the error message (e.g. ``"crop_size"``).

    Returns
    -------
    tuple of int or None
        ``(H, W)``, or ``None`` when ``size`` is ``None``.

    Raises
    ------
    ValueError
        Naming ``name`` if a side is not a positive integer or there are not two sides.
    """
    return check_size(size, name)


def resize_image(
    image: torch.Tensor, size: int | Sequence[int], *, antialias: bool = True
) -> torch.Tensor:
    """Bilinear resize of a ``(C, H, W)`` (or ``(H, W)``) float image to ``size``.

    ``antialias=True`` low-pass filters when downsampling (e.g. LiTS 512² → 256²); it has
    no effect when upsampling. ``align_corners=False``. Used for the image downsampling
    of Kim & Ye, IEEE TIP 2019, Sec. IV-A2 (LiTS) and IV-A4 (BSDS500) and the random
    scaling of Sec. IV-B1 (VOC, without antialiasing as in the cv2-based AdvSemi code).
    """
    size = as_size(size)
    if tuple(image.shape[-2:]) == size:
        return image
    squeeze = image.ndim == 2
    x = image[None, None] if squeeze else image[None]
    x = F.interpolate(
        x.float(), size=size, mode="bilinear", align_corners=False, antialias=antialias
    )
    return x[0, 0] if squeeze else x[0]


def resize_label(label: torch.Tensor, size: int | Sequence[int]) -> torch.Tensor:
    """Nearest-neighbour (``nearest-exact``) resize of an ``(H, W)`` integer label map.

    Label maps are resized together with their images (Kim & Ye, IEEE TIP 2019,
    Sec. IV-A2 / IV-B1); nearest sampling never creates new label values.
    """
    size = as_size(size)
    if tuple(label.shape[-2:]) == size:
        return label
    x = F.interpolate(label[None, None].double(), size=size, mode="nearest-exact")
    return x[0, 0].round().to(label.dtype)


def normalise_rgb(image_uint8: np.ndarray, mode="imagenet") -> torch.Tensor:
    """Convert an ``(H, W, 3)`` uint8 RGB array to a normalised ``(3, H, W)`` float32 tensor.

    Parameters
    ----------
    image_uint8 : numpy.ndarray
        RGB image, values 0-255.
    mode : {"imagenet", "none", "caffe"} or (mean, std)
        ``"imagenet"`` (default): ``(x / 255 - IMAGENET_MEAN) / IMAGENET_STD`` per channel,
        the convention of torchvision's ImageNet-pretrained backbones.
        ``"none"``: ``x / 255`` in [0, 1] (what the Mumford–Shah data term sees if no
        backbone normalisation is wanted).
        ``"caffe"``: BGR channel order, 0-255 scale minus :data:`CAFFE_BGR_MEAN`, as in
        the Caffe-converted DeepLab-v2 weights used by AdvSemi.
        ``(mean, std)``: custom per-channel statistics for ``x / 255``.

    Returns
    -------
    torch.Tensor
        Float32 ``(3, H, W)``.

    Notes
    -----
    Kim & Ye, IEEE TIP 2019, Sec. IV-B1 uses DeepLab-v2 backbones for VOC, whose
    pretrained weights expect one of these normalisations; the Mumford–Shah data term is
    computed on whatever the network receives.
    """
    x = torch.from_numpy(np.ascontiguousarray(image_uint8)).permute(2, 0, 1).float()
    if isinstance(mode, str):
        if mode == "imagenet":
            mean, std = IMAGENET_MEAN, IMAGENET_STD
        elif mode == "none":
            return x / 255.0
        elif mode == "caffe":
            x = x.flip(0)
            return x - torch.tensor(CAFFE_BGR_MEAN, dtype=torch.float32)[:, None, None]
        else:
            raise ValueError(
                f"unknown normalisation {mode!r}: 'imagenet', 'none', 'caffe' or a (mean, std) pair"
            )
    else:
        mean, std = mode
    mean_t = torch.as_tensor(mean, dtype=torch.float32)[:, None, None]
    std_t = torch.as_tensor(std, dtype=torch.float32)[:, None, None]
    return (x / 255.0 - mean_t) / std_t


def normalize_rgb(image_uint8: np.ndarray, mode="imagenet") -> torch.Tensor:
    """Normalise like :func:`normalise_rgb` (deprecated spelling; same arguments and result).

    .. deprecated:: 0.2
        Use :func:`normalise_rgb`; this alias will be removed in the next release.

    Parameters
    ----------
    image_uint8 : numpy.ndarray
        RGB image, values 0-255.
    mode : {"imagenet", "none", "caffe"} or (mean, std)
        As in :func:`normalise_rgb`.

    Returns
    -------
    torch.Tensor
        Float32 ``(3, H, W)``.
    """
    warnings.warn(
        "normalize_rgb is deprecated, use normalise_rgb", DeprecationWarning, stacklevel=2
    )
    return normalise_rgb(image_uint8, mode)


def pad_to(
    image: torch.Tensor,
    label: torch.Tensor | None,
    size: Sequence[int],
    *,
    image_fill: float | Sequence[float] = 0.0,
    label_fill: int = 255,
):
    """Pad ``image`` (C, H, W) and ``label`` (H, W) at the bottom/right to at least ``size``.

    The image is padded with ``image_fill`` (a scalar or one value per channel; 0 is the
    mean after mean/std normalisation) and the label with ``label_fill`` (the ignore
    index), so padded pixels carry no supervision (the DeepLab-v2 / AdvSemi padding
    behind the 321 × 321 crops of Kim & Ye, IEEE TIP 2019, Sec. IV-B1).
    """
    h, w = image.shape[-2:]
    th, tw = as_size(size)
    ph, pw = max(th - h, 0), max(tw - w, 0)
    if ph == 0 and pw == 0:
        return image, label
    if isinstance(image_fill, (int, float)):
        image = F.pad(image, (0, pw, 0, ph), value=float(image_fill))
    else:
        fill = torch.as_tensor(image_fill, dtype=image.dtype)[:, None, None]
        image = F.pad(image - fill, (0, pw, 0, ph), value=0.0) + fill
    if label is not None:
        label = F.pad(label, (0, pw, 0, ph), value=int(label_fill))
    return image, label


def random_scale_crop_flip(
    image: torch.Tensor,
    label: torch.Tensor,
    rng: np.random.Generator,
    *,
    crop_size: int | Sequence[int] | None,
    scale_range: Sequence[float] | None = (0.5, 1.5),
    flip: bool = True,
    image_fill: float | Sequence[float] = 0.0,
    label_fill: int = 255,
):
    """Training augmentation: random scale, pad, random crop, random horizontal flip.

    The scale factor is uniform in ``scale_range`` (image bilinear, label nearest); if the
    scaled image is smaller than ``crop_size`` it is padded (image with ``image_fill``,
    label with ``label_fill``), then a ``crop_size`` window is cut at a uniformly random
    position, and the pair is mirrored left-right with probability 1/2. This is the
    DeepLab-v2 / AdvSemi (Hung et al., BMVC 2018) recipe behind "randomly scaled and
    cropped" in Kim & Ye, IEEE TIP 2019, Sec. IV-B1.

    Parameters
    ----------
    image : torch.Tensor
        ``(C, H, W)`` float image.
    label : torch.Tensor
        ``(H, W)`` int64 labels.
    rng : numpy.random.Generator
        Source of randomness (see :func:`varseg.data._io.item_rng`).
    crop_size : int or (H, W) or None
        Output size; ``None`` skips padding and cropping.
    scale_range : (float, float) or None
        ``None`` (or ``(1, 1)``) disables scaling.
    flip : bool
        Random horizontal flip.
    """
    scale_range = check_scale_range(scale_range)
    if scale_range is not None and scale_range != (1.0, 1.0):
        s = float(rng.uniform(scale_range[0], scale_range[1]))
        h, w = image.shape[-2:]
        size = (max(1, int(round(h * s))), max(1, int(round(w * s))))
        image = resize_image(image, size, antialias=False)
        label = resize_label(label, size)
    if crop_size is not None:
        ch, cw = as_size(crop_size, "crop_size")
        image, label = pad_to(image, label, (ch, cw), image_fill=image_fill, label_fill=label_fill)
        h, w = image.shape[-2:]
        top = int(rng.integers(0, h - ch + 1))
        left = int(rng.integers(0, w - cw + 1))
        image = image[:, top : top + ch, left : left + cw]
        label = label[top : top + ch, left : left + cw]
    if flip and rng.random() < 0.5:
        image = image.flip(-1)
        label = label.flip(-1)
    return image.contiguous(), label.contiguous()

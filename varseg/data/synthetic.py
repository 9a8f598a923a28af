"""Procedural piecewise-constant images with known labels (and optional bias field).

The images follow the piecewise-constant Mumford–Shah / Chan–Vese model that the loss of
Kim & Ye, "Mumford–Shah Loss Functional for Image Segmentation with Deep Learning",
IEEE TIP 2019, Sec. II-A / III (Eq. 1-4, 12) is built on, and the multiplicative-bias
model ``I = b · J + noise`` of its Eq. 5-6 and Sec. III-C2 (Eq. 19-20, after Li et al.,
IEEE TIP 20(7), 2011). Useful for tests of classical solvers and for quick training
without any download.
"""

from __future__ import annotations

import zlib
from typing import Sequence

import numpy as np
import torch
from scipy import ndimage
from torch.utils.data import Dataset

from .._validation import check_int
from ._checks import check_index
from .transforms import as_size

__all__ = ["SyntheticShapes", "make_synthetic_image", "class_levels"]


def class_levels(n_classes: int, channels: int = 1) -> np.ndarray:
    """Intensity of each class in each channel, shape ``(channels, n_classes)``.

    Channel 0 spreads the classes evenly in [0, 1]: ``(k + 0.5) / K`` for class ``k``
    (background 0 is darkest). Channel ``c`` uses the same levels cyclically shifted by
    ``c``, so every channel separates all classes.
    """
    if n_classes < 2:
        raise ValueError(f"n_classes must be >= 2, got {n_classes}")
    base = (np.arange(n_classes) + 0.5) / n_classes
    return np.stack([np.roll(base, -c) for c in range(channels)]).astype(np.float32)


def _shape_mask(rng: np.random.Generator, h: int, w: int, kind: str) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    s = min(h, w)
    cy, cx = rng.uniform(0.15, 0.85) * h, rng.uniform(0.15, 0.85) * w
    if kind == "ellipse":
        ry, rx = rng.uniform(0.08, 0.3, size=2) * s
        t = rng.uniform(0, np.pi)
        dy, dx = yy - cy, xx - cx
        u = dx * np.cos(t) + dy * np.sin(t)
        v = -dx * np.sin(t) + dy * np.cos(t)
        return (u / rx) ** 2 + (v / ry) ** 2 <= 1.0
    if kind == "rectangle":
        hh, hw = rng.uniform(0.08, 0.3, size=2) * s
        return (np.abs(yy - cy) <= hh) & (np.abs(xx - cx) <= hw)
    # convex-ish polygon: star-shaped with sorted random angles
    from skimage.draw import polygon

    n = int(rng.integers(3, 8))
    ang = np.sort(rng.uniform(0, 2 * np.pi, size=n))
    rad = rng.uniform(0.1, 0.3, size=n) * s
    mask = np.zeros((h, w), dtype=bool)
    rr, cc = polygon(cy + rad * np.sin(ang), cx + rad * np.cos(ang), shape=(h, w))
    mask[rr, cc] = True
    return mask


def _smooth_field(rng: np.random.Generator, h: int, w: int, kind: str) -> np.ndarray:
    """Return a smooth random field scaled to [-1, 1]."""
    yy, xx = np.meshgrid(np.linspace(-1, 1, h), np.linspace(-1, 1, w), indexing="ij")
    if kind == "polynomial":
        terms = [xx, yy, xx * yy, xx**2, yy**2]
        f = sum(rng.normal() * t for t in terms)
    elif kind == "random":
        f = ndimage.gaussian_filter(rng.normal(size=(h, w)), sigma=max(h, w) / 6, mode="reflect")
    else:
        raise ValueError(f"bias kind must be 'polynomial' or 'random', got {kind!r}")
    f = f - f.mean()
    m = np.abs(f).max()
    return (f / m if m > 0 else f).astype(np.float32)


def make_synthetic_image(
    seed: int | np.random.Generator | Sequence[int] = 0,
    *,
    image_size: int | Sequence[int] = 64,
    n_classes: int = 3,
    noise: float = 0.1,
    bias_field: float = 0.0,
    texture: float = 0.0,
    channels: int = 1,
    n_shapes: int | None = None,
    bias_kind: str = "polynomial",
):
    """Draw one piecewise-constant test image.

    ``image = bias * J + texture_term + N(0, noise²)``, where ``J`` is the clean
    piecewise-constant image (class ``k`` has intensity ``class_levels(K)[c, k]``), the
    shapes (ellipses, rectangles, polygons) of classes 1..K-1 are painted over background
    0, and ``bias = 1 + bias_field * f`` with ``f`` a smooth field in [-1, 1] (the
    multiplicative bias of Kim & Ye, IEEE TIP 2019, Eq. 5 / Li et al. 2011).

    Parameters
    ----------
    seed : int, sequence of int or numpy.random.Generator
        Randomness; the output is a pure function of an int / sequence seed.
    image_size : int or (H, W)
    n_classes : int
        Number of classes including background (>= 2).
    noise : float
        Standard deviation of additive Gaussian noise.
    bias_field : float
        Strength of the multiplicative bias, ``bias`` ranges in ``1 ± bias_field``
        (``0`` → all ones). Must be < 1 to keep the bias positive.
    texture : float
        Amplitude of a mild sinusoidal texture, a different random grating per class.
    channels : int
        Number of image channels; class levels are cyclically shifted per channel.
    n_shapes : int or None
        Number of shapes (default: random in [max(2, K-1), K+3]). The first K-1 shapes get
        classes 1..K-1 so every class appears (unless covered by a later shape).
    bias_kind : {"polynomial", "random"}
        Quadratic polynomial or a Gaussian-smoothed random field.

    Returns
    -------
    image : numpy.ndarray
        float32 ``(H, W)`` if ``channels == 1`` else ``(C, H, W)``; not clipped.
    labels : numpy.ndarray
        int64 ``(H, W)`` in ``0 .. n_classes-1``.
    bias : numpy.ndarray
        float32 ``(H, W)`` multiplicative bias field.
    """
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    h, w = as_size(image_size, "image_size")
    if not 0 <= bias_field < 1:
        raise ValueError(f"bias_field must be in [0, 1), got {bias_field}")
    k = int(n_classes)
    levels = class_levels(k, channels)
    if n_shapes is None:
        n_shapes = int(rng.integers(max(2, k - 1), k + 4))
    labels = np.zeros((h, w), dtype=np.int64)
    kinds = ("ellipse", "rectangle", "polygon")
    for i in range(n_shapes):
        cls = i + 1 if i < k - 1 else int(rng.integers(1, k))
        mask = _shape_mask(rng, h, w, kinds[int(rng.integers(0, 3))])
        labels[mask] = cls
    clean = levels[:, labels]  # (C, H, W)
    if texture > 0:
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        tex = np.zeros((h, w), dtype=np.float32)
        for c in range(k):
            f = rng.uniform(0.15, 0.5)
            t = rng.uniform(0, np.pi)
            ph = rng.uniform(0, 2 * np.pi)
            g = np.sin(f * (xx * np.cos(t) + yy * np.sin(t)) + ph)
            tex[labels == c] = g[labels == c]
        clean = clean + texture * tex[None]
    if bias_field > 0:
        bias = 1.0 + bias_field * _smooth_field(rng, h, w, bias_kind)
    else:
        bias = np.ones((h, w), dtype=np.float32)
    image = bias[None] * clean
    if noise > 0:
        image = image + rng.normal(0.0, noise, size=image.shape)
    image = image.astype(np.float32)
    return (image[0] if channels == 1 else image), labels, bias.astype(np.float32)


class SyntheticShapes(Dataset):
    """A reproducible dataset of :func:`make_synthetic_image` samples.

    Piecewise-constant images in the spirit of the Mumford–Shah model of Kim & Ye, IEEE
    TIP 2019, Sec. III, optionally with the bias field of Sec. III-C2; no download needed.

    Parameters
    ----------
    n_images : int
        Dataset length.
    image_size, n_classes, noise, bias_field, texture, channels
        See :func:`make_synthetic_image`.
    seed : int
        Item ``i`` of split ``s`` is drawn from ``np.random.default_rng([seed,
        crc32(s), i])``, so it is identical across runs and processes and differs between
        splits.
    split : str
        ``"train"``, ``"val"``, ``"test"`` (any string works).
    bias_kind : {"polynomial", "random"}
    root : ignored
        Accepted so that :func:`varseg.data.build_dataset` can treat all datasets alike.
    transform : callable or None
        Applied last to the item dict (``item = transform(item)``); must return a dict.

    Notes
    -----
    ``__getitem__`` returns ``"image"`` float32 ``(channels, H, W)``, ``"label"`` int64
    ``(H, W)`` in ``0..n_classes-1``, ``"bias"`` float32 ``(H, W)``, ``"labeled"`` (True),
    ``"index"`` and ``"name"`` (``"synthetic-<split>-<index>"``).
    """

    ignore_index = -100

    def __init__(
        self,
        n_images: int = 64,
        *,
        image_size: int | Sequence[int] = 64,
        n_classes: int = 3,
        noise: float = 0.1,
        bias_field: float = 0.0,
        texture: float = 0.0,
        channels: int = 1,
        seed: int = 0,
        split: str = "train",
        bias_kind: str = "polynomial",
        root=None,
        transform=None,
    ):
        self.n_images = check_int(n_images, "n_images", minimum=0)
        as_size(image_size, "image_size")  # validates; kept as given
        self.image_size = image_size
        self.num_classes = int(n_classes)
        self.in_channels = int(channels)
        self.noise = float(noise)
        self.bias_field = float(bias_field)
        self.texture = float(texture)
        self.seed = int(seed)
        self.split = split
        self.bias_kind = bias_kind
        self.transform = transform
        class_levels(self.num_classes)  # validates n_classes

    def __len__(self) -> int:
        return self.n_images

    def rng_seed(self, index: int) -> list[int]:
        """Return the ``default_rng`` seed of item ``index``."""
        return [self.seed & 0xFFFFFFFF, zlib.crc32(self.split.encode()) & 0xFFFFFFFF, int(index)]

    def __getitem__(self, index: int) -> dict:
        index = check_index(index, len(self), "SyntheticShapes")
        image, labels, bias = make_synthetic_image(
            self.rng_seed(index),
            image_size=self.image_size,
            n_classes=self.num_classes,
            noise=self.noise,
            bias_field=self.bias_field,
            texture=self.texture,
            channels=self.in_channels,
            bias_kind=self.bias_kind,
        )
        if image.ndim == 2:
            image = image[None]
        item = {
            "image": torch.from_numpy(image),
            "label": torch.from_numpy(labels),
            "bias": torch.from_numpy(bias),
            "labeled": torch.tensor(True),
            "index": int(index),
            "name": f"synthetic-{self.split}-{index:05d}",
        }
        return item if self.transform is None else self.transform(item)

    def __repr__(self) -> str:
        return (
            f"SyntheticShapes(n_images={self.n_images}, image_size={self.image_size}, "
            f"n_classes={self.num_classes}, split={self.split!r}, seed={self.seed})"
        )

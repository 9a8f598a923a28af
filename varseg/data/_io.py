"""Shared readers, lazy optional imports, error helpers and collate functions.

Everything here is private plumbing for the dataset modules of :mod:`varseg.data`; the
one public helper is :func:`collate_keep_lists` (re-exported by :mod:`varseg.data`).

The readers follow the facts collected for the datasets used in Kim & Ye, "Mumford–Shah
Loss Functional for Image Segmentation with Deep Learning", IEEE TIP 2019, Sec. IV-A:
palette PNGs are read with PIL as indices (not colours), NIfTI with nibabel and MetaImage
(``.mha``) with SimpleITK.
"""

from __future__ import annotations

import os
import zlib
from collections import OrderedDict
from pathlib import Path
from typing import Any, Callable, Hashable, Iterable, Sequence

import numpy as np
import torch

# One reader per format lives in :mod:`varseg.io` (also used by ``varseg segment`` and
# ``varseg compare``); the functions below keep the loaders' call signatures.
from varseg.io import (
    read_nifti_raw,
    read_picture,
    read_sitk,
    require_nibabel,
    require_simpleitk,
)

__all__ = [
    "collate_keep_lists",
    "require_nibabel",
    "require_simpleitk",
    "read_rgb",
    "read_index_png",
    "write_index_png",
    "read_nifti",
    "read_mha",
    "check_label_values",
    "check_root",
    "split_cases",
    "item_rng",
    "LRUCache",
    "VOC_PALETTE",
]


# --------------------------------------------------------------------------------------
# readers / writers
# --------------------------------------------------------------------------------------
def read_rgb(path: str | os.PathLike, what: str = "image") -> np.ndarray:
    """Read an image file as an ``(H, W, 3)`` uint8 RGB array (greyscale is replicated).

    :func:`varseg.io.read_picture` with ``mode="RGB"``: a missing file raises
    FileNotFoundError, a corrupt or truncated one a one-line ValueError naming it.
    """
    return read_picture(_check_file(Path(path), what), mode="RGB", what=what)


def read_index_png(path: str | os.PathLike, what: str = "label mask") -> np.ndarray:
    """Read a palette (``P``) or single-channel (``L``) PNG as an ``(H, W)`` uint8 index map.

    PASCAL VOC masks are palette PNGs: PIL returns the palette *indices* (0-20, 255 void),
    which are the class labels. Reading them with a colour decoder (cv2, ``convert("RGB")``)
    would give colours, which is wrong, so RGB masks are rejected. 16-bit masks are accepted
    only when every value fits 0-255 (a value such as 276 is never wrapped to 20).

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    ValueError
        If the PNG is a colour (RGB/RGBA) image instead of an index image, holds values
        outside 0-255, or is corrupt / truncated.
    """
    from PIL import Image

    path = _check_file(Path(path), what)
    try:
        with Image.open(path) as im:
            mode = im.mode
    except OSError as err:  # PIL.UnidentifiedImageError is an OSError
        raise ValueError(f"could not read {what} {path}: {err}") from None
    if mode not in ("P", "L", "I", "I;16", "I;16B", "I;16L"):
        raise ValueError(
            f"{what} {path} has PIL mode {mode!r}: expected a palette ('P') or "
            "single-channel ('L') PNG whose pixel values are class indices"
        )
    arr = read_picture(path, mode="P" if mode == "P" else None, what=what)
    if arr.dtype != np.uint8:
        lo, hi = (int(arr.min()), int(arr.max())) if arr.size else (0, 0)
        if lo < 0 or hi > 255:
            raise ValueError(f"{what} {path} holds values {lo}..{hi}: expected class indices 0-255")
    return arr.astype(np.uint8, copy=True)


def _voc_palette() -> list[int]:
    """The standard PASCAL VOC colour map (bit-interleaved), 256 RGB triples."""
    pal = []
    for i in range(256):
        r = g = b = 0
        c = i
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        pal.extend((r, g, b))
    return pal


VOC_PALETTE: list[int] = _voc_palette()


def write_index_png(
    path: str | os.PathLike, labels: np.ndarray, palette: Sequence[int] | None = VOC_PALETTE
) -> None:
    """Write an ``(H, W)`` uint8 index map as a palette PNG (VOC colours by default)."""
    from PIL import Image

    arr = np.asarray(labels)
    if arr.ndim != 2:
        raise ValueError(f"index map for {path} must be 2-D, got shape {arr.shape}")
    arr = np.ascontiguousarray(arr, dtype=np.uint8)
    size = (arr.shape[1], arr.shape[0])
    if palette is None:
        im = Image.frombytes("L", size, arr.tobytes())
    else:
        im = Image.frombytes("P", size, arr.tobytes())
        im.putpalette(list(palette))
    im.save(Path(path))


def read_nifti(
    path: str | os.PathLike,
    *,
    labels: bool = False,
    what: str = "NIfTI file",
    reorient: bool = False,
):
    """Read a NIfTI volume with nibabel (:func:`varseg.io.read_nifti_raw`).

    Images are read with ``get_fdata(dtype=np.float32)`` (scaling applied, e.g. CT in HU);
    label maps return the raw scaled data object (``np.asarray(img.dataobj)``) so that the
    caller can validate the values *before* casting to an integer type. A corrupt or
    truncated file raises a one-line ValueError naming it.

    Returns
    -------
    data : numpy.ndarray
        The voxel array in NIfTI (i, j, k) index order.
    img : nibabel.Nifti1Image
        The image (header / affine) object.
    """
    return read_nifti_raw(path, labels=labels, reorient=reorient, what=what)


def nifti_shape(path: str | os.PathLike, reorient: bool = False) -> tuple[int, ...]:
    """Shape of a NIfTI volume from its header only (no voxel data is read).

    With ``reorient=True`` the shape after :func:`nibabel.as_closest_canonical` (axes
    permuted to RAS order) is returned.
    """
    nib = require_nibabel()
    path = _check_file(Path(path), "NIfTI file")
    try:
        img = nib.load(str(path))
    except Exception as err:  # noqa: BLE001 - nibabel raises many types for bad headers
        raise ValueError(f"could not read NIfTI file {path}: {err}") from None
    shape = tuple(int(s) for s in img.shape)
    if reorient and len(shape) >= 3:
        ornt = nib.orientations.io_orientation(img.affine)
        new = list(shape)
        for i in range(3):
            new[int(ornt[i, 0])] = shape[i]
        shape = tuple(new)
    return shape


def read_mha(path: str | os.PathLike, what: str = "MetaImage file") -> np.ndarray:
    """Read an ``.mha`` / ``.mhd`` volume with SimpleITK as a ``(z, y, x)`` array.

    ``sitk.GetArrayFromImage(sitk.ReadImage(p))`` gives (155, 240, 240) for BraTS 2015,
    i.e. axial slices along axis 0 (:func:`varseg.io.read_sitk`).
    """
    path = _check_file(Path(path), what)
    return read_sitk(path, what=what)[0]


def _check_file(path: Path, what: str) -> Path:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} {path} does not exist")
    return path


# --------------------------------------------------------------------------------------
# checks / errors
# --------------------------------------------------------------------------------------
def check_root(root: str | os.PathLike | None, dataset: str, expected: str) -> Path:
    """Return ``Path(root)`` or raise a FileNotFoundError naming the expected layout."""
    if root is None:
        raise ValueError(f"{dataset} needs a root folder: expected {expected}")
    root = Path(root).expanduser()
    if not root.exists():
        raise FileNotFoundError(f"{dataset} root {root} does not exist: expected {expected}")
    if not root.is_dir():
        raise NotADirectoryError(f"{dataset} root {root} is not a folder: expected {expected}")
    return root


def check_label_values(
    labels: np.ndarray, allowed: Iterable[int], path: str | os.PathLike, dataset: str = ""
) -> None:
    """Raise ValueError naming ``path`` and the offending values if ``labels`` has values
    outside ``allowed`` (or non-integer values)."""
    arr = np.asarray(labels)
    allowed = np.asarray(sorted(set(int(a) for a in allowed)))
    if arr.size == 0:
        return
    lo, hi = arr.min(), arr.max()
    ok_range = lo >= allowed.min() and hi <= allowed.max()
    contiguous = allowed.size == allowed.max() - allowed.min() + 1
    integral = not np.issubdtype(arr.dtype, np.floating) or bool(np.all(arr == np.round(arr)))
    if ok_range and contiguous and integral:
        return
    vals = np.unique(arr)
    bad = vals[~np.isin(vals, allowed)]
    if bad.size == 0:
        return
    shown = ", ".join(
        f"{v:g}" if isinstance(v, (float, np.floating)) else str(v) for v in bad[:10].tolist()
    )
    more = f" (+{bad.size - 10} more)" if bad.size > 10 else ""
    prefix = f"{dataset} " if dataset else ""
    raise ValueError(
        f"{prefix}label file {path} has values {shown}{more} outside the expected set "
        f"{_fmt_allowed(allowed)}"
    )


def _fmt_allowed(allowed: np.ndarray) -> str:
    vals = allowed.tolist()
    runs, start = [], vals[0]
    for a, b in zip(vals, vals[1:] + [None], strict=True):
        if b is None or b != a + 1:
            runs.append(str(start) if start == a else f"{start}-{a}")
            start = b
    return "{" + ", ".join(runs) + "}"


# --------------------------------------------------------------------------------------
# splits and randomness
# --------------------------------------------------------------------------------------
def split_cases(
    keys: Sequence[Hashable], *, val_cases: int | float, n_reference: int, seed: int
) -> tuple[list, list]:
    """Patient/scan-level train/val split, reproducible from ``seed``.

    With ``n >= n_reference`` cases, ``val_cases`` (an int) cases go to validation (e.g.
    LiTS 131 → 118/13, BraTS 2015 274 → 249/25 as in Kim & Ye TIP 2019, Sec. IV-A2/3).
    With fewer cases the validation count is scaled proportionally,
    ``round(n * val_cases / n_reference)``, with at least one validation case whenever
    ``n >= 2`` and at least one training case. A float ``0 < val_cases < 1`` is read as a
    fraction of ``n``.

    Keys are sorted before the seeded permutation, so the split does not depend on file
    system listing order.

    Returns
    -------
    train, val : list
        Sorted keys.
    """
    keys = sorted(keys)
    n = len(keys)
    if isinstance(val_cases, float) and 0 < val_cases < 1:
        n_val = int(round(n * val_cases))
    else:
        val_cases = int(val_cases)
        if val_cases < 0:
            raise ValueError(f"val_cases must be >= 0, got {val_cases}")
        n_val = val_cases if n >= n_reference else int(round(n * val_cases / n_reference))
    if n >= 2 and val_cases:
        n_val = min(max(n_val, 1), n - 1)
    else:
        n_val = 0 if n < 2 else min(n_val, n - 1)
    perm = np.random.default_rng(seed).permutation(n)
    val_idx = set(perm[:n_val].tolist())
    train = [k for i, k in enumerate(keys) if i not in val_idx]
    val = [k for i, k in enumerate(keys) if i in val_idx]
    return train, val


def select_split(
    keys: Sequence[Hashable],
    split: str,
    *,
    val_cases,
    n_reference: int,
    seed: int,
    dataset: str,
    root: Path,
) -> list:
    """Pick the cases of ``split`` ("train", "val" or "all") and fail clearly when empty."""
    if split not in ("train", "val", "all"):
        raise ValueError(f"{dataset} split must be 'train', 'val' or 'all', got {split!r}")
    if split == "all":
        chosen = sorted(keys)
    else:
        train, val = split_cases(keys, val_cases=val_cases, n_reference=n_reference, seed=seed)
        chosen = train if split == "train" else val
    if not chosen:
        raise ValueError(
            f"{dataset} split {split!r} under {root} is empty: {len(keys)} case(s) found, "
            f"val_cases={val_cases!r}; use split='all' or more cases"
        )
    return chosen


def stable_hash(text: str) -> int:
    """A process-independent 32-bit hash of a string (``zlib.crc32``)."""
    return zlib.crc32(text.encode("utf-8")) & 0xFFFFFFFF


def item_rng(seed: int | None, index: int, epoch: int = 0) -> np.random.Generator:
    """Random generator for the augmentation of one item.

    ``seed=None`` draws a fresh seed from torch's global generator, which
    :class:`torch.utils.data.DataLoader` seeds differently in every worker and epoch (and
    reproducibly after :func:`torch.manual_seed`). An integer ``seed`` makes the draw a pure
    function of ``(seed, epoch, index)``, independent of workers.
    """
    if seed is None:
        return np.random.default_rng(int(torch.randint(0, 2**62, (1,)).item()))
    return np.random.default_rng([int(seed) & 0xFFFFFFFF, int(epoch), int(index)])


# --------------------------------------------------------------------------------------
# caching
# --------------------------------------------------------------------------------------
class LRUCache:
    """A tiny least-recently-used cache (default one entry) for loaded volumes.

    Not shared between DataLoader workers: pickling a dataset drops the cached arrays.
    """

    def __init__(self, maxsize: int = 1):
        self.maxsize = max(int(maxsize), 0)
        self._data: OrderedDict = OrderedDict()
        self.misses = 0

    def get(self, key: Hashable, loader: Callable[[], Any]) -> Any:
        if key in self._data:
            self._data.move_to_end(key)
            return self._data[key]
        self.misses += 1
        value = loader()
        if self.maxsize:
            self._data[key] = value
            while len(self._data) > self.maxsize:
                self._data.popitem(last=False)
        return value

    def clear(self) -> None:
        self._data.clear()

    def __len__(self) -> int:
        return len(self._data)

    def __getstate__(self):
        return {"maxsize": self.maxsize, "_data": OrderedDict(), "misses": 0}


# --------------------------------------------------------------------------------------
# collation
# --------------------------------------------------------------------------------------
def collate_keep_lists(batch: list[dict]) -> dict:
    """Collate dataset dicts, stacking tensors of equal shape and keeping the rest as lists.

    :func:`torch.utils.data.default_collate` fails on the list-valued ``ground_truths`` key
    of :class:`~varseg.data.BSDS500` (a variable number of human segmentations per image),
    on ``None`` labels and on images of different sizes (full-size evaluation). This collate
    function stacks a key only when every item has a tensor of the same shape there (or a
    number / bool); otherwise the key holds a plain list with one entry per item.

    Parameters
    ----------
    batch : list of dict
        Items returned by a ``varseg.data`` dataset.

    Used for the full-resolution BSDS500 evaluation against all human segmentations
    (Kim & Ye, IEEE TIP 2019, Sec. V-C3) and full-size VOC validation (Sec. IV-A1).

    Returns
    -------
    dict
        Same keys; tensors stacked along a new first axis where possible, lists otherwise.
        Keys missing from some items are collected as lists with ``None`` holes.

    Examples
    --------
    >>> from torch.utils.data import DataLoader
    >>> loader = DataLoader(dataset, batch_size=2, collate_fn=collate_keep_lists)  # doctest: +SKIP
    """
    keys: list = []
    for item in batch:
        for k in item:
            if k not in keys:
                keys.append(k)
    out = {}
    for k in keys:
        vals = [item.get(k) for item in batch]
        tensors = all(isinstance(v, torch.Tensor) for v in vals)
        if tensors and len({tuple(v.shape) for v in vals}) == 1:
            out[k] = torch.stack(vals)
        elif all(isinstance(v, bool) for v in vals):
            out[k] = torch.tensor(vals, dtype=torch.bool)
        elif all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in vals):
            out[k] = torch.tensor([int(v) for v in vals], dtype=torch.int64)
        elif all(isinstance(v, (float, np.floating)) for v in vals):
            out[k] = torch.tensor([float(v) for v in vals], dtype=torch.float64)
        else:
            out[k] = vals
    return out

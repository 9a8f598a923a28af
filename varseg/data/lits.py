"""LiTS 2017 liver / liver-tumour CT, as 2-D slices with adjacent-slice context.

Kim & Ye, "Mumford–Shah Loss Functional for Image Segmentation with Deep Learning",
IEEE TIP 2019, Sec. IV-A2: the 131 labelled scans, 118 for training and 13 for
validation; intensities clipped to [-124, 276] HU and divided by the maximum; slices
downsampled (to 256 × 256 here by default); Sec. IV-B2: "three adjacent slices ... as an
input", target = the centre slice; Sec. V-B: 1/23, 1/10, 1/3 of the training *scans*
labelled (see :func:`varseg.data.labeled_subset_by_case`).

Dataset paper: P. Bilic et al., "The Liver Tumor Segmentation Benchmark (LiTS)",
Medical Image Analysis 84, 2023 (challenge: P. Christ, LiTS 2017, CodaLab 17094).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from .._validation import check_int
from ._checks import check_finite_volume, check_index, reading
from ._io import LRUCache, check_label_values, check_root, nifti_shape, read_nifti, select_split
from .transforms import as_size, resize_image, resize_label

__all__ = ["LiTS", "find_lits_scans", "window_hu"]

_EXPECTED = (
    "<root>/**/volume-<N>.nii[.gz] with <root>/**/segmentation-<N>.nii[.gz] "
    "(e.g. 'Training Batch 1/volume-0.nii')"
)
_VOL_RE = re.compile(r"^volume-(\d+)\.nii(\.gz)?$")
_SEG_RE = re.compile(r"^segmentation-(\d+)\.nii(\.gz)?$")
N_SCANS = 131  # labelled LiTS 2017 training scans


def window_hu(volume: np.ndarray, hu_window: Sequence[float] = (-124.0, 276.0)) -> np.ndarray:
    """Clip CT intensities to ``hu_window`` and map them linearly to [0, 1].

    ``(clip(HU, lo, hi) - lo) / (hi - lo)``: with the default window this is
    ``clip(HU + 124, 0, 400) / 400``, the windowing of Kim & Ye, IEEE TIP 2019,
    Sec. IV-A2 ("clipped the intensity values to the range [-124, 276] HU ... normalized
    ... by dividing by the maximum value"), the maximum being the window width 400.
    """
    lo, hi = float(hu_window[0]), float(hu_window[1])
    if not hi > lo:
        raise ValueError(f"hu_window must be (low, high) with high > low, got {hu_window!r}")
    out = np.clip(volume.astype(np.float32, copy=False), lo, hi)
    out -= lo
    out /= hi - lo
    return out


def _check_window(hu_window) -> tuple[float, float]:
    """``hu_window`` as ``(low, high)`` finite floats with ``high > low``."""
    try:
        lo, hi = (float(v) for v in hu_window)
    except (TypeError, ValueError):
        raise ValueError(f"hu_window must be (low, high) numbers, got {hu_window!r}") from None
    if not (np.isfinite(lo) and np.isfinite(hi) and hi > lo):
        raise ValueError(f"hu_window must be finite (low, high) with high > low, got {hu_window!r}")
    return lo, hi


def find_lits_scans(root) -> dict[int, tuple[Path, Path]]:
    """Map scan number ``N`` to ``(volume-N, segmentation-N)`` paths, searching recursively.

    Both ``.nii`` and ``.nii.gz`` are accepted (``.nii`` is preferred if both exist);
    ``test-volume-*`` files are not matched.

    Raises
    ------
    FileNotFoundError
        If the root is missing, holds no volumes, or a volume has no segmentation.
    """
    root = check_root(root, "LiTS", _EXPECTED)
    vols: dict[int, Path] = {}
    segs: dict[int, Path] = {}
    for p in sorted(root.rglob("*.nii*")):
        for regex, table in ((_VOL_RE, vols), (_SEG_RE, segs)):
            m = regex.match(p.name)
            if m:
                n = int(m.group(1))
                if n not in table or (table[n].name.endswith(".gz") and not m.group(2)):
                    table[n] = p
    if not vols:
        raise FileNotFoundError(
            f"LiTS root {root} has no volume-<N>.nii files: expected {_EXPECTED}"
        )
    missing = sorted(set(vols) - set(segs))
    if missing:
        n = missing[0]
        raise FileNotFoundError(
            f"LiTS volume {vols[n]} has no segmentation: expected "
            f"segmentation-{n}.nii[.gz] somewhere under {root} ({len(missing)} scan(s) lack one)"
        )
    return {n: (vols[n], segs[n]) for n in sorted(vols)}


class LiTS(Dataset):
    """LiTS 2017 CT slices with ``2 * context + 1`` adjacent slices as channels.

    Implements the preprocessing of Kim & Ye, IEEE TIP 2019, Sec. IV-A2 and IV-B2.

    Parameters
    ----------
    root : path
        Folder searched recursively for ``volume-N.nii[.gz]`` / ``segmentation-N.nii[.gz]``
        (the official "Training Batch 1/2" folders can stay as they are).
    split : {"train", "val", "all"}
        Scan-level split. Default sizes 118/13 for the 131 scans; with fewer scans the
        validation count is ``round(n * val_cases / 131)``, at least 1 when ``n >= 2``.
    val_cases : int or float
        Validation scans for the full data (or a fraction of ``n`` when a float < 1).
    seed : int
        Seed of the scan permutation (the split is reproducible from it).
    image_size : int or (H, W) or None
        Slices are resized to this size: bilinear (with antialiasing when downsampling) for
        images, nearest for labels. ``None`` keeps 512 × 512.
    hu_window : (float, float)
        HU clipping window; intensities become ``(clip(HU, lo, hi) - lo) / (hi - lo)``,
        i.e. shifted to [0, 400] and divided by the maximum 400 for the default.
    context : int
        Slices on each side of the centre slice (1 → 3 channels); indices are clamped at
        the first/last slice (the edge slice is repeated).
    only_liver_slices : bool
        Keep only slices whose mask contains liver or tumour (reads every mask once at
        construction).
    cache_size : int
        Volumes kept in memory (LRU); iterating slices in order loads each scan once. With
        random shuffling use :class:`varseg.data.GroupedShuffleSampler`.
    reorient : bool
        Reorient volume and mask to the closest canonical (RAS) frame before slicing.
    transform : callable or None
        Applied last to the item dict (``item = transform(item)``); must return a dict.

    Notes
    -----
    Axis convention: nibabel returns the array in NIfTI voxel order ``(i, j, k)``; slices
    are taken along the **last** axis ``k`` (axial for LiTS) and each slice is returned
    transposed, ``slice[r, c] = array[c, r, k]``, i.e. in the ``(y, x)`` raster order that
    SimpleITK's ``GetArrayFromImage`` gives for the same file. No reorientation to a
    canonical frame is done (``reorient=True`` applies :func:`nibabel.as_closest_canonical`
    to both volume and mask first).

    ``__getitem__`` returns a dict with ``"image"`` float32 ``(2*context+1, H, W)`` in
    [0, 1], ``"label"`` int64 ``(H, W)`` (0 background, 1 liver, 2 tumour),
    ``"labeled"`` (True), ``"index"``, ``"name"`` (``"volume-N:kkk"``), ``"case"`` (scan
    number N) and ``"slice"`` (k). NaN/Inf intensities, labels outside 0-2 and damaged
    files raise ValueError naming the file; indices follow Python's rule,
    ``-len(ds) <= index < len(ds)``, otherwise IndexError.
    """

    num_classes = 3
    ignore_index = -100
    classes = ("background", "liver", "tumour")

    def __init__(
        self,
        root,
        split: str = "train",
        *,
        val_cases: int | float = 13,
        seed: int = 0,
        image_size: int | Sequence[int] | None = 256,
        hu_window: Sequence[float] = (-124.0, 276.0),
        context: int = 1,
        only_liver_slices: bool = False,
        cache_size: int = 1,
        reorient: bool = False,
        transform=None,
    ):
        scans = find_lits_scans(root)
        self.root = Path(root)
        self.split = split
        self.seed = seed
        self.image_size = as_size(image_size, "image_size")
        self.hu_window = _check_window(hu_window)
        self.context = check_int(context, "context", minimum=0)
        self.in_channels = 2 * self.context + 1
        self.reorient = bool(reorient)
        self.transform = transform
        self.cases = select_split(
            list(scans),
            split,
            val_cases=val_cases,
            n_reference=N_SCANS,
            seed=seed,
            dataset="LiTS",
            root=self.root,
        )
        self.files = {n: scans[n] for n in self.cases}
        self._cache = LRUCache(check_int(cache_size, "cache_size", minimum=0))

        items: list[tuple[int, int]] = []
        self.n_slices: dict[int, int] = {}
        for n in self.cases:
            vol_p, seg_p = self.files[n]
            with reading(vol_p, "LiTS volume"):
                shape = nifti_shape(vol_p, self.reorient)
            with reading(seg_p, "LiTS segmentation"):
                seg_shape = nifti_shape(seg_p, self.reorient)
            if len(shape) != 3:
                raise ValueError(f"LiTS volume {vol_p} has shape {shape}: expected 3-D")
            if seg_shape != shape:
                raise ValueError(
                    f"LiTS segmentation {seg_p} has shape {seg_shape}, "
                    f"its volume {vol_p} has {shape}: expected equal shapes"
                )
            self.n_slices[n] = shape[2]
            if only_liver_slices:
                mask = self._read_mask(n)
                keep = np.flatnonzero(mask.reshape(-1, mask.shape[2]).any(axis=0))
                items.extend((n, int(k)) for k in keep)
            else:
                items.extend((n, k) for k in range(shape[2]))
        self.items = items
        pos = {n: i for i, n in enumerate(self.cases)}
        self.item_cases = np.array([pos[n] for n, _ in items], dtype=np.int64)

    # ------------------------------------------------------------------
    def _load_nifti(self, path: Path, labels: bool):
        with reading(path, "LiTS file"):
            return read_nifti(path, labels=labels, what="LiTS file", reorient=self.reorient)[0]

    def _read_mask(self, n: int) -> np.ndarray:
        seg_p = self.files[n][1]
        raw = self._load_nifti(seg_p, labels=True)
        check_label_values(raw, (0, 1, 2), seg_p, "LiTS")
        return np.asarray(raw, dtype=np.uint8)

    def _load_case(self, n: int):
        raw = self._load_nifti(self.files[n][0], labels=False)
        check_finite_volume(raw, self.files[n][0], "LiTS volume")
        return window_hu(raw, self.hu_window), self._read_mask(n)

    def volume(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """Windowed ``(i, j, k)`` float32 volume in [0, 1] and uint8 mask of scan ``n``."""
        return self._cache.get(n, lambda: self._load_case(n))

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict:
        index = check_index(index, len(self), "LiTS")
        n, k = self.items[index]
        vol, mask = self.volume(n)
        depth = vol.shape[2]
        ks = np.clip(np.arange(k - self.context, k + self.context + 1), 0, depth - 1)
        image = torch.from_numpy(np.ascontiguousarray(vol[:, :, ks].transpose(2, 1, 0)))
        label = torch.from_numpy(np.ascontiguousarray(mask[:, :, k].T).astype(np.int64))
        if self.image_size is not None:
            image = resize_image(image, self.image_size)
            label = resize_label(label, self.image_size)
        item = {
            "image": image.float().contiguous(),
            "label": label.contiguous(),
            "labeled": torch.tensor(True),
            "index": int(index),
            "name": f"volume-{n}:{k:03d}",
            "case": int(n),
            "slice": int(k),
        }
        return item if self.transform is None else self.transform(item)

    def __repr__(self) -> str:
        return (
            f"LiTS(root={str(self.root)!r}, split={self.split!r}, scans={len(self.cases)}, "
            f"slices={len(self)}, image_size={self.image_size})"
        )

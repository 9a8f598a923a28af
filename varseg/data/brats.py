"""BraTS 2015 multimodal brain-tumour MRI, as 2-D slices with adjacent-slice context.

Kim & Ye, "Mumford–Shah Loss Functional for Image Segmentation with Deep Learning",
IEEE TIP 2019, Sec. IV-A3: 274 scans with four sequences (T1, T1c, T2, FLAIR), complete
tumour segmentation, 249 training / 25 test patients; Sec. V-B: "all three adjacent
slices for each MR sequences ... as an input", 1/4 of the training scans labelled (see
:func:`varseg.data.labeled_subset_by_case`).

Dataset paper: B. H. Menze et al., "The Multimodal Brain Tumor Image Segmentation
Benchmark (BRATS)", IEEE Trans. Med. Imag. 34(10), 2015.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from .._validation import check_int
from ._checks import check_finite_volume, check_index, reading, renamed_argument
from ._io import (
    LRUCache,
    check_label_values,
    check_root,
    nifti_shape,
    read_mha,
    read_nifti,
    require_simpleitk,
    select_split,
)
from .transforms import as_size, resize_image, resize_label

__all__ = ["BraTS", "find_brats_cases", "MODALITIES", "TARGETS", "zscore_in_mask"]

#: Canonical sequence names, in the default channel order.
MODALITIES = ("T1", "T1c", "T2", "Flair")
#: Label sets of the BraTS tumour regions (labels 1 necrosis, 2 oedema, 3 non-enhancing,
#: 4 enhancing tumour; Menze et al. 2015).
TARGETS = {"complete": (1, 2, 3, 4), "core": (1, 3, 4), "enhancing": (4,), "multiclass": None}
N_CASES = 274

_EXPECTED = (
    "<root>/{HGG,LGG}/<case>/VSD.Brain.XX.O.MR_{Flair,T1,T1c,T2}.<id>/*.mha + "
    "VSD.Brain_3more.XX.O.OT.<id>/*.mha (root = BRATS2015_Training or its parent), or "
    "preprocessed NIfTI <root>/<case>/{Flair,T1,T1c,T2}*.nii[.gz] + OT*.nii[.gz]"
)
_MHA_MOD_RE = re.compile(r"(?:^|\.)MR_(Flair|T1c|T1|T2)(?:\.|$)", re.IGNORECASE)
_MHA_OT_RE = re.compile(r"(?:^|\.)OT(?:\.|$)")
_NII_MOD_RE = re.compile(r"^(Flair|T1c|T1|T2)(?:[_.\-]|$)", re.IGNORECASE)
_CANON = {m.lower(): m for m in MODALITIES}


def zscore_in_mask(volume: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """Z-score ``volume`` using the voxels of ``mask`` (default: nonzero voxels).

    Voxels outside the mask are set to 0. This is the per-volume normalisation applied to
    the raw ``.mha`` sequences (skull-stripped, zero background); the preprocessed
    ``*_subtrMeanDivStd`` NIfTI files are already normalised this way (DeepMedic
    preprocessing, Kamnitsas et al., MedIA 2017).
    """
    vol = volume.astype(np.float32, copy=False)
    mask = vol != 0 if mask is None else np.asarray(mask).astype(bool)
    out = np.zeros_like(vol, dtype=np.float32)
    if mask.any():
        vals = vol[mask]
        mean = float(vals.mean())
        std = float(vals.std())
        out[mask] = (vals - mean) / (std if std > 0 else 1.0)
    return out


def _classify_mha(path: Path) -> str | None:
    for name in (path.name, path.parent.name):
        m = _MHA_MOD_RE.search(name)
        if m:
            return _CANON[m.group(1).lower()]
        if _MHA_OT_RE.search(name):
            return "OT"
    return None


def _classify_nii(path: Path) -> str | None:
    name = path.name
    m = _NII_MOD_RE.match(name)
    if m:
        return _CANON[m.group(1).lower()]
    if name.startswith("OT"):
        return "OT"
    if name.lower().startswith("brainmask"):
        return "mask"
    return None


def find_brats_cases(root) -> tuple[str, dict[tuple[str, str], dict[str, Path]]]:
    """Find BraTS cases and their files in either supported layout.

    Returns
    -------
    layout : {"mha", "nifti"}
    cases : dict
        ``(grade, case) -> {"dir": case folder, "T1": path, ..., "OT": path[, "mask":
        path]}``; ``grade`` is ``"HGG"``/``"LGG"`` (``""`` for NIfTI cases not under such a
        folder). Case names repeat between HGG and LGG, hence the pair key.

    Raises
    ------
    FileNotFoundError
        Missing root, no case found, or a case without a label (OT) file.
    """
    root = check_root(root, "BraTS", _EXPECTED)
    cases: dict[tuple[str, str], dict[str, Path]] = {}
    bases = [root, root / "BRATS2015_Training", root / "BRATS2015_Training" / "BRATS2015_Training"]
    grade_dirs = [b / g for b in bases for g in ("HGG", "LGG") if (b / g).is_dir()]
    if grade_dirs:
        layout = "mha"
        for gdir in grade_dirs:
            for cdir in sorted(p for p in gdir.iterdir() if p.is_dir()):
                files: dict[str, Path] = {}
                for f in sorted(cdir.rglob("*.mha")):
                    kind = _classify_mha(f)
                    if kind and kind not in files:
                        files[kind] = f
                files["dir"] = cdir
                cases[(gdir.name, cdir.name)] = files
    else:
        layout = "nifti"
        for f in sorted(root.rglob("*.nii*")):
            kind = _classify_nii(f)
            if kind is None:
                continue
            cdir = f.parent
            grade = cdir.parent.name if cdir.parent.name in ("HGG", "LGG") else ""
            files = cases.setdefault((grade, cdir.name), {"dir": cdir})
            files.setdefault(kind, f)
    if not cases:
        raise FileNotFoundError(f"BraTS root {root} has no cases: expected {_EXPECTED}")
    for files in cases.values():
        if "OT" not in files:
            raise FileNotFoundError(
                f"BraTS case {files['dir']} has no label file: expected "
                "VSD.Brain_3more.XX.O.OT.<id>/*.mha (official layout) or OT*.nii[.gz] "
                f"(NIfTI layout); found {sorted(k for k in files if k != 'dir') or 'no images'}"
            )
    return layout, cases


def _mha_depth(path: Path) -> int:
    sitk = require_simpleitk()
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    reader.ReadImageInformation()
    size = reader.GetSize()
    if len(size) != 3:
        raise ValueError(f"BraTS file {path} has size {size}: expected a 3-D volume")
    return int(size[2])


class BraTS(Dataset):
    """BraTS 2015 slices: ``len(modalities) * (2 * context + 1)`` channels, tumour target.

    Implements the input of Kim & Ye, IEEE TIP 2019, Sec. IV-A3 / V-B (three adjacent
    slices of each of T1, T1c, T2, FLAIR; complete-tumour target; 249/25 patient split).

    Parameters
    ----------
    root : path
        Official layout ``BRATS2015_Training/{HGG,LGG}/<case>/VSD...MR_<seq>.<id>/*.mha``
        (root = ``BRATS2015_Training`` or its parent), read with SimpleITK; or the
        preprocessed NIfTI layout ``<root>/<case>/{Flair,T1c,...}_*.nii.gz`` +
        ``OTMultiClass.nii.gz`` (+ ``brainmask.nii.gz``), read with nibabel.
    split : {"train", "val", "all"}
        Patient-level split: 249/25 for the 274 cases; with fewer cases the validation count
        is ``round(n * val_cases / 274)``, at least 1 when ``n >= 2``.
    val_cases : int or float
        Validation patients for the full data (a fraction of ``n`` when a float < 1).
    seed : int
        Seed of the patient permutation.
    image_size : int or (H, W) or None
        Resize slices (bilinear images, nearest labels); ``None`` keeps 240 × 240.
    context : int
        Adjacent slices on each side (1 → 3 per sequence); clamped at the ends.
    target : {"complete", "core", "enhancing", "multiclass"}
        ``complete``: {1,2,3,4} → 1; ``core``: {1,3,4} → 1; ``enhancing``: {4} → 1 (all
        2 classes); ``multiclass``: labels 0-4 (5 classes).
    modalities : sequence of str or "available"
        Sequences stacked as channels, in this order (default ``("T1", "T1c", "T2",
        "Flair")``). ``"available"`` uses the sequences present in every case (the NIfTI
        sample has only FLAIR and T1c). A requested sequence missing from a case raises a
        FileNotFoundError listing the available ones.
    normalise : {"auto", "zscore", "none"}
        ``"auto"``: z-score each volume inside its brain mask (nonzero voxels, or
        ``brainmask.nii*`` when present) unless the file name says it is already normalised
        (``*subtrMeanDivStd*``, as the DeepMedic-preprocessed NIfTI sample). ``"zscore"``:
        always; ``"none"``: never.
    only_tumour_slices : bool
        Keep only slices containing a label > 0 (reads every label volume at construction).
    cache_size : int
        Cases kept in memory (LRU).
    transform : callable or None
        Applied last to the item dict (``item = transform(item)``); must return a dict.
    normalize : optional
        Deprecated spelling of ``normalise`` (DeprecationWarning).

    Raises
    ------
    ValueError
        Bad ``target``, ``normalise``, ``context``, ``cache_size`` or ``image_size``; a
        damaged file, NaN/Inf voxels or labels outside 0-4 (the message names the file).
    FileNotFoundError
        Missing root, case files or sequences.

    Notes
    -----
    Axis convention: volumes are held as ``(z, y, x)``, SimpleITK's ``GetArrayFromImage``
    order ((155, 240, 240) for BraTS 2015); NIfTI arrays (nibabel ``(i, j, k)`` order) are
    transposed to ``(k, j, i)`` so both layouts give the same slices. Slices run along
    ``z``.

    ``__getitem__`` returns ``"image"`` float32 ``(M * (2*context+1), H, W)`` ordered
    sequence-major (``[T1_{k-1}, T1_k, T1_{k+1}, T1c_{k-1}, ...]``), ``"label"`` int64
    ``(H, W)`` per ``target``, ``"labeled"`` (True), ``"index"``, ``"name"``
    (``"HGG/<case>:kkk"``), ``"case"`` and ``"slice"``.
    Labels outside 0-4 raise ValueError naming the file.
    """

    ignore_index = -100

    def __init__(
        self,
        root,
        split: str = "train",
        *,
        val_cases: int | float = 25,
        seed: int = 0,
        image_size: int | Sequence[int] | None = None,
        context: int = 1,
        target: str = "complete",
        modalities: Sequence[str] | str = MODALITIES,
        normalise: str = "auto",
        only_tumour_slices: bool = False,
        cache_size: int = 1,
        transform=None,
        normalize: str | None = None,
    ):
        self.layout, all_cases = find_brats_cases(root)
        self.root = Path(root)
        if target not in TARGETS:
            raise ValueError(f"target must be one of {sorted(TARGETS)}, got {target!r}")
        normalise = renamed_argument(
            normalise, normalize, new="normalise", old="normalize", default="auto"
        )
        if normalise not in ("auto", "zscore", "none"):
            raise ValueError(f"normalise must be 'auto', 'zscore' or 'none', got {normalise!r}")
        self.target = target
        self.num_classes = 5 if target == "multiclass" else 2
        self.normalise = normalise
        self.context = check_int(context, "context", minimum=0)
        self.image_size = as_size(image_size, "image_size")
        self.split = split
        self.seed = seed
        self.transform = transform
        self.modalities = self._resolve_modalities(modalities, all_cases)
        self.in_channels = len(self.modalities) * (2 * self.context + 1)
        self.cases = select_split(
            list(all_cases),
            split,
            val_cases=val_cases,
            n_reference=N_CASES,
            seed=seed,
            dataset="BraTS",
            root=self.root,
        )
        self.files = {key: all_cases[key] for key in self.cases}
        self._cache = LRUCache(check_int(cache_size, "cache_size", minimum=0))

        items: list[tuple[tuple[str, str], int]] = []
        for key in self.cases:
            if only_tumour_slices:
                lab = self._read_label(key)
                keep = np.flatnonzero(lab.reshape(lab.shape[0], -1).any(axis=1))
                items.extend((key, int(k)) for k in keep)
            else:
                items.extend((key, k) for k in range(self._depth(self.files[key]["OT"])))
        self.items = items
        pos = {key: i for i, key in enumerate(self.cases)}
        self.item_cases = np.array([pos[key] for key, _ in items], dtype=np.int64)

    # ------------------------------------------------------------------
    @staticmethod
    def _resolve_modalities(modalities, cases) -> tuple[str, ...]:
        if isinstance(modalities, str):
            if modalities != "available":
                modalities = (modalities,)
            else:
                common = [m for m in MODALITIES if all(m in f for f in cases.values())]
                if not common:
                    raise FileNotFoundError(
                        "BraTS: no sequence is present in every case "
                        f"(expected some of {MODALITIES})"
                    )
                return tuple(common)
        mods = []
        for m in modalities:
            if m.lower() not in _CANON:
                raise ValueError(f"unknown BraTS sequence {m!r}: expected one of {MODALITIES}")
            mods.append(_CANON[m.lower()])
        for files in cases.values():
            missing = [m for m in mods if m not in files]
            if missing:
                avail = [m for m in MODALITIES if m in files]
                raise FileNotFoundError(
                    f"BraTS case {files['dir']} has no {', '.join(missing)} file(s) (available: "
                    f"{', '.join(avail) or 'none'}): pass modalities={tuple(avail)!r} or "
                    "modalities='available'"
                )
        return tuple(mods)

    @property
    def normalize(self):
        """Deprecated spelling of :attr:`normalise` (DeprecationWarning)."""
        warnings.warn(
            "the normalize attribute is deprecated, use normalise", DeprecationWarning, stacklevel=2
        )
        return self.normalise

    def _depth(self, path: Path) -> int:
        if self.layout == "mha":
            with reading(path, "BraTS file"):
                return _mha_depth(path)
        with reading(path, "BraTS file"):
            shape = nifti_shape(path)
        if len(shape) != 3:
            raise ValueError(f"BraTS file {path} has shape {shape}: expected a 3-D volume")
        return shape[2]

    def _read(self, path: Path, labels: bool) -> np.ndarray:
        """Read a volume as a ``(z, y, x)`` array; a damaged file is a ValueError naming it."""
        with reading(path, "BraTS file"):
            if self.layout == "mha":
                return read_mha(path, "BraTS file")
            data = read_nifti(path, labels=labels, what="BraTS file")[0]
            return np.ascontiguousarray(data.transpose(2, 1, 0))

    def _read_label(self, key) -> np.ndarray:
        path = self.files[key]["OT"]
        raw = self._read(path, labels=True)
        check_label_values(raw, range(5), path, "BraTS")
        return np.asarray(raw).astype(np.uint8)

    def _load_case(self, key):
        files = self.files[key]
        label = self._read_label(key)
        brain = None
        if "mask" in files:
            brain = self._read(files["mask"], labels=True) > 0.5
        vols = []
        for m in self.modalities:
            v = self._read(files[m], labels=False).astype(np.float32, copy=False)
            if v.shape != label.shape:
                raise ValueError(
                    f"BraTS file {files[m]} has shape {v.shape}, the label "
                    f"{files['OT']} has {label.shape}: expected equal shapes"
                )
            check_finite_volume(v, files[m], "BraTS file")
            done = "subtrmeandivstd" in files[m].name.lower()
            if self.normalise == "zscore" or (self.normalise == "auto" and not done):
                v = zscore_in_mask(v, brain)
            vols.append(v)
        return np.stack(vols), label

    def volume(self, key) -> tuple[np.ndarray, np.ndarray]:
        """``(M, z, y, x)`` float32 sequences and ``(z, y, x)`` uint8 labels (0-4) of a case."""
        return self._cache.get(key, lambda: self._load_case(key))

    def map_target(self, labels: np.ndarray) -> np.ndarray:
        """Map BraTS labels 0-4 to the ``target`` classes (see the class docstring)."""
        sel = TARGETS[self.target]
        if sel is None:
            return labels.astype(np.int64)
        return np.isin(labels, sel).astype(np.int64)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict:
        index = check_index(index, len(self), "BraTS")
        key, k = self.items[index]
        vols, labels = self.volume(key)
        depth = vols.shape[1]
        ks = np.clip(np.arange(k - self.context, k + self.context + 1), 0, depth - 1)
        image = torch.from_numpy(
            np.ascontiguousarray(vols[:, ks].reshape(-1, vols.shape[2], vols.shape[3]))
        )
        label = torch.from_numpy(self.map_target(labels[k]))
        if self.image_size is not None:
            image = resize_image(image, self.image_size)
            label = resize_label(label, self.image_size)
        case = "/".join(p for p in key if p)
        item = {
            "image": image.float().contiguous(),
            "label": label.contiguous(),
            "labeled": torch.tensor(True),
            "index": int(index),
            "name": f"{case}:{k:03d}",
            "case": case,
            "slice": int(k),
        }
        return item if self.transform is None else self.transform(item)

    def __repr__(self) -> str:
        return (
            f"BraTS(root={str(self.root)!r}, layout={self.layout!r}, split={self.split!r}, "
            f"cases={len(self.cases)}, slices={len(self)}, modalities={self.modalities}, "
            f"target={self.target!r})"
        )

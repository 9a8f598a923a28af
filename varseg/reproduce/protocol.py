"""The BSDS500 benchmark protocol shared by the reproduction and the preset search.

Image ids, loading, 1-based label PNGs, region scores in both conventions, summaries.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from varseg._atomic import atomic_path
from varseg.compare.dataset import init_worker as _compare_worker_init

from .presets import PAPER_TABLE_VI

__all__ = [
    "bsds_ids",
    "data_dir",
    "write_label_png",
    "read_label_png",
    "score_labels",
    "summarise",
    "load_gt",
    "load_image",
    "init_worker",
]

_SCORE_KEYS = ("covering_num", "covering_den", "PRI", "VI")


def bsds_ids(root, split):
    """Return the sorted image ids of ``<root>/data/images/<split>/*.jpg``.

    ``root`` may also be the ``BSR/BSDS500`` folder or its ``data`` folder.

    Raises
    ------
    FileNotFoundError
        The split's image folder or its ground-truth folder does not exist, or is empty.
    """
    base = data_dir(root)
    img_dir = base / "images" / split
    gt_dir = base / "groundTruth" / split
    for d in (img_dir, gt_dir):
        if not d.is_dir():
            raise FileNotFoundError(
                f"BSDS500 folder {d} does not exist (expected "
                f"<root>/data/{{images,groundTruth}}/{split}/)"
            )
    ids = sorted(p.stem for p in img_dir.glob("*.jpg"))
    if not ids:
        raise FileNotFoundError(f"no .jpg image in {img_dir}")
    return ids


def data_dir(root):
    """Return the BSDS500 ``data`` folder under ``root``.

    It may be ``root``, ``root/BSDS500`` or ``root/BSR/…``.
    """
    root = Path(root)
    for cand in (root / "data", root / "BSDS500" / "data", root / "BSR" / "BSDS500" / "data", root):
        if (cand / "images").is_dir():
            return cand
    raise FileNotFoundError(f"no BSDS500 layout under {root}: expected <root>/data/images/")


def write_label_png(path, labels):
    """Write a 0-based label map as a 1-based index PNG, atomically.

    The PNG is uint8, or uint16 above 254 labels.
    """
    from PIL import Image

    lab = np.asarray(labels, dtype=np.int64) + 1
    if lab.min() < 1:
        raise ValueError(f"labels must be >= 0; got min {lab.min() - 1}")
    arr = lab.astype(np.uint8 if lab.max() <= 255 else np.uint16)
    with atomic_path(path) as tmp:
        Image.fromarray(arr).save(tmp, format="PNG")


def read_label_png(path):
    """Read a label PNG written by :func:`write_label_png` (values as stored, 1-based)."""
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im).astype(np.int64)


def score_labels(labels, ground_truths):
    """Compute the region scores of one label map in both conventions.

    With regions = label values and with regions = connected components (4-connectivity).

    Returns
    -------
    dict
        ``covering_num, covering_den, PRI, VI`` and the same four prefixed ``cc_``.
    """
    from skimage.measure import label as connected

    from varseg.metrics import region_scores

    lab = np.asarray(labels)
    values = region_scores(lab, ground_truths)
    cc = connected(lab, connectivity=1, background=-1)
    components = region_scores(cc, ground_truths)
    out = {k: values[k] for k in _SCORE_KEYS}
    out.update({f"cc_{k}": components[k] for k in _SCORE_KEYS})
    out["n_regions"] = int(len(np.unique(lab)))
    out["n_components"] = int(cc.max())
    return out


def summarise(method, records):
    """One row of the results table from the per-image records of a method."""

    def pooled(prefix):
        num = sum(r[f"{prefix}covering_num"] for r in records)
        den = sum(r[f"{prefix}covering_den"] for r in records)
        return num / den

    def mean(k):
        return float(np.mean([r[k] for r in records]))

    paper = PAPER_TABLE_VI.get(method)
    row = {
        "method": method,
        "n_images": len(records),
        "covering": pooled(""),
        "pri": mean("PRI"),
        "vi": mean("VI"),
        "cc_covering": pooled("cc_"),
        "cc_pri": mean("cc_PRI"),
        "cc_vi": mean("cc_VI"),
        "seconds_per_image": mean("seconds"),
        "converged": mean("converged"),
        "regions_per_image": mean("n_regions"),
        "components_per_image": mean("n_components"),
        "paper_covering": None if paper is None else paper["covering"],
        "paper_pri": None if paper is None else paper["pri"],
        "paper_vi": None if paper is None else paper["vi"],
    }
    if paper is not None:
        row["meets_paper"] = bool(
            row["covering"] >= paper["covering"]
            and row["pri"] >= paper["pri"]
            and row["vi"] <= paper["vi"]
        )
    return row


def load_gt(base, split, iid):
    """Load the human segmentations of image ``iid`` (list of 0-based label maps)."""
    from varseg.data.bsds import load_bsds_ground_truth

    return load_bsds_ground_truth(base / "groundTruth" / split / f"{iid}.mat")


def load_image(base, split, iid):
    """Image ``iid`` of ``split`` as float RGB in [0, 1]."""
    from varseg.data._io import read_rgb

    return read_rgb(base / "images" / split / f"{iid}.jpg", "BSDS500 image")


def init_worker():
    """Worker initialiser: one thread per process, warnings silenced (they are per image)."""
    _compare_worker_init(1)
    warnings.filterwarnings("ignore")

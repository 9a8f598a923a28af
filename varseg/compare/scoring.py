r"""The shared ruler: one energy, one set of scores, one aggregation for every method.

Every method minimises its own functional (Chan–Vese's :math:`\mu|\Gamma| + \sum \lambda_s
D_s`, Li's local clustering energy, the softmax relaxation of Eq. 12, …). To compare them the
harness scores every **final hard partition** with the same piecewise-constant Mumford–Shah
energy (Eq. 1 of Kim & Ye 2019, :func:`varseg.energy.energy_from_labels`, isotropic TV,
``reduction="sum"``)

.. math:: E(\chi) = \sum_n \sum_r \|\hat x(r) - c_n\|^2 \chi_n(r)
          + \lambda \sum_n \mathrm{TV}(\chi_n)

on the image normalised to [0, 1] by its global min and max,
:math:`\hat x = (x - \min x) / (\max x - \min x)` (:func:`varseg.energy.normalise_image`),
with **one** λ for all methods (:data:`varseg.energy.DEFAULT_LAM` = 0.125 by default).

Against ground truth:

* one label map (classes): clusters are matched to classes by the Hungarian algorithm
  (:func:`varseg.metrics.match_labels`); then the mean over the ground-truth classes of Dice
  and IoU (:math:`\mathrm{IoU}_c = D_c / (2 - D_c)`) and the pixel accuracy;
* a list (or stack) of human segmentations (BSDS500): segmentation covering, probabilistic
  Rand index and variation of information (:func:`varseg.metrics.region_scores`); over a
  data set, covering is pooled (Σ numerators / Σ denominators) and PRI, VI averaged.
"""

from __future__ import annotations

import numpy as np

from ..energy import DEFAULT_LAM, energy_from_labels, normalise_image

__all__ = [
    "shared_energy",
    "label_scores",
    "is_label_list",
    "score_result",
    "nan_scores",
    "aggregate_rows",
    "spatial_shape",
]

_REGION_KEYS = ("covering", "PRI", "VI", "covering_num", "covering_den")
_CLASS_KEYS = ("dice", "iou", "pixel_accuracy")


def spatial_shape(shape, channel_axis):
    """The spatial part of an image shape (``shape`` without ``channel_axis``)."""
    shape = tuple(shape)
    if channel_axis is None:
        return shape
    ax = channel_axis % len(shape)
    return shape[:ax] + shape[ax + 1 :]


def shared_energy(
    image, labels, lam=DEFAULT_LAM, *, channel_axis=None, n_phases=None, normalise=True
):
    """The shared Mumford–Shah energy (Kim & Ye Eq. 1) of a hard partition.

    Parameters
    ----------
    image : array_like
        The image in scikit-image conventions (``channel_axis`` for colour).
    labels : ndarray of int
        Label map with the image's spatial shape, values in ``0 .. K-1``.
    lam : float
        λ of the length term.
    channel_axis : int, optional
        Channel axis of a colour image.
    n_phases : int, optional
        K (default: ``labels.max() + 1``); empty phases contribute nothing.
    normalise : bool
        Evaluate on the [0, 1] min/max-normalised image.

    Returns
    -------
    varseg.energy.MumfordShahTerms
        ``total``, ``data``, ``length`` (without λ) and ``means``.

    Examples
    --------
    >>> import numpy as np
    >>> img = np.zeros((4, 4)); img[:, 2:] = 1
    >>> float(shared_energy(img, (img > 0.5).astype(int), 0.5).total)  # 2 edges × 4 rows
    4.0
    """
    x = normalise_image(image) if normalise else np.asarray(image, dtype=np.float64)
    if channel_axis is not None:
        x = np.moveaxis(x, channel_axis, 0)
    lab = np.asarray(labels)
    if not np.issubdtype(lab.dtype, np.integer):
        raise ValueError(f"labels must be integers; got dtype {lab.dtype}")
    if lab.size and lab.min() < 0:
        raise ValueError("labels must be non-negative")
    k = int(lab.max()) + 1 if n_phases is None else max(int(n_phases), int(lab.max()) + 1)
    return energy_from_labels(x, lab, float(lam), n_phases=k)


def is_label_list(ground_truth, spatial):
    """True for a list/tuple of label maps or a stack ``(K,) + spatial``."""
    if isinstance(ground_truth, (list, tuple)):
        return True
    gt = np.asarray(ground_truth)
    return gt.ndim == len(spatial) + 1 and gt.shape[1:] == tuple(spatial)


def label_scores(labels, ground_truth, *, ignore_index=None):
    """Scores of one label map against ground truth, as reported in the table.

    Parameters
    ----------
    labels : ndarray of int
        Machine segmentation (cluster ids, any values).
    ground_truth : ndarray of int, or list / stack of label maps
        One class map (→ Hungarian-matched ``dice``, ``iou`` — means over the ground-truth
        classes — and ``pixel_accuracy``) or several human segmentations (→ BSDS
        ``covering``, ``PRI``, ``VI``, plus ``covering_num``/``covering_den`` for pooling).
    ignore_index : int, optional
        Ground-truth value excluded from matching and scoring (class maps only).

    Returns
    -------
    dict of float
    """
    from ..metrics import hungarian_dice, match_labels, pixel_accuracy, region_scores

    lab = np.asarray(labels)
    if is_label_list(ground_truth, lab.shape):
        gts = (
            list(ground_truth)
            if isinstance(ground_truth, (list, tuple))
            else np.asarray(ground_truth)
        )
        r = region_scores(lab, gts)
        return {k: float(r[k]) for k in _REGION_KEYS}
    gt = np.asarray(ground_truth)
    if gt.shape != lab.shape:
        raise ValueError(
            f"ground_truth must have the labels' shape {lab.shape} (or be a list "
            f"of such maps); got shape {gt.shape}"
        )
    per_class = hungarian_dice(lab, gt, ignore_index=ignore_index)
    if not per_class:
        return dict.fromkeys(_CLASS_KEYS, float("nan"))
    d = np.array(list(per_class.values()), dtype=np.float64)
    relab = match_labels(lab, gt, ignore_index=ignore_index)
    return {
        "dice": float(d.mean()),
        "iou": float(np.mean(d / (2.0 - d))),
        "pixel_accuracy": float(pixel_accuracy(relab, gt, ignore_index=ignore_index)),
    }


def score_result(res, image_n, channel_axis, lam, ground_truth, ignore_index, n_phases):
    """Table columns of one :class:`varseg.Segmentation`: the shared energy on the
    normalised image ``image_n`` and, with ground truth, :func:`label_scores`."""
    lab = np.asarray(res.labels)
    spatial = spatial_shape(image_n.shape, channel_axis)
    if lab.shape != spatial:
        raise ValueError(
            f"labels of shape {lab.shape} do not match the image's spatial shape {spatial}"
        )
    terms = shared_energy(
        image_n, lab, lam, channel_axis=channel_axis, n_phases=n_phases, normalise=False
    )
    row = {
        "energy": float(terms.total),
        "data": float(terms.data),
        "length": float(terms.length),
        "lam": float(lam),
        "recorded_energy": float(res.final_energy),
    }
    if ground_truth is not None:
        row.update(label_scores(lab, ground_truth, ignore_index=ignore_index))
    return row


def nan_scores(ground_truth, spatial):
    """The score columns of a failed method, all NaN."""
    row = dict.fromkeys(("energy", "data", "length", "recorded_energy"), float("nan"))
    if ground_truth is not None:
        keys = _REGION_KEYS if is_label_list(ground_truth, spatial) else _CLASS_KEYS
        row.update(dict.fromkeys(keys, float("nan")))
    return row


_AGG_SKIP = {"method", "image", "error", "index", "covering_num", "covering_den"}


def _aggregate_column(key, vals):
    if key == "device":
        return ",".join(sorted({str(v) for v in vals if v}))
    if key == "converged":
        return float(np.mean([bool(v) for v in vals]))
    if key in ("n_phases", "lam"):
        uniq = {v for v in vals if v is not None}
        return uniq.pop() if len(uniq) == 1 else None
    num = np.array(
        [v for v in vals if isinstance(v, (int, float, np.number)) and not isinstance(v, bool)],
        dtype=np.float64,
    )
    num = num[np.isfinite(num)]
    return float(num.mean()) if num.size else float("nan")


def _pooled_covering(rs):
    n = np.array([r.get("covering_num", np.nan) for r in rs], dtype=np.float64)
    d = np.array([r.get("covering_den", np.nan) for r in rs], dtype=np.float64)
    ok = np.isfinite(n) & np.isfinite(d)
    return {
        "covering": float(n[ok].sum() / d[ok].sum()) if ok.any() else float("nan"),
        "covering_num": float(n[ok].sum()),
        "covering_den": float(d[ok].sum()),
    }


def aggregate_rows(rows):
    """Aggregate per-image rows to one row per method.

    Numeric columns are averaged over the images where they are finite (NaN-aware mean);
    ``converged`` becomes the fraction of images that converged; ``covering`` is pooled,
    ``Σ covering_num / Σ covering_den`` (BSDS benchmark); ``time`` is the mean per image
    and ``total_time`` the sum; ``device`` the distinct devices; ``n_images`` the count and
    ``n_failed`` the number of images where the method failed.
    """
    by = {}
    for r in rows:
        by.setdefault(r["method"], []).append(r)
    out = []
    for method, rs in by.items():
        agg = {"method": method, "n_images": len(rs)}
        for k in dict.fromkeys(k for r in rs for k in r):
            if k not in _AGG_SKIP:
                agg[k] = _aggregate_column(k, [r.get(k) for r in rs])
        if any("covering_num" in r for r in rs):
            agg.update(_pooled_covering(rs))
        if "time" in agg:
            agg["total_time"] = float(sum(r.get("time", 0.0) or 0.0 for r in rs))
        agg["n_failed"] = sum(1 for r in rs if r.get("error"))
        out.append(agg)
    return out

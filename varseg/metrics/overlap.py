"""Overlap metrics for semantic / binary segmentation: IoU, Dice, precision, recall, accuracy.

Everything is computed from counts (true positives, false positives, false negatives), either
of one ``positive`` label (binary mode: the LiTS/BraTS numbers of Kim & Ye, TIP 2019, Tables
IV-V) or of every class through a ``num_classes × num_classes`` confusion matrix (the PASCAL
VOC numbers: Everingham et al., IJCV 2010; Kim & Ye, Tables I-III).

Inputs
------
``pred`` and ``target`` are *hard* label maps: NumPy arrays or torch tensors (any device, any
shape, e.g. ``(H, W)``, ``(D, H, W)`` or batched ``(B, H, W)``) of integers or booleans, or of
floats that hold integer values. Logits/probabilities are refused: pass ``logits.argmax(1)``.
Both must have exactly the same shape. Results are NumPy values (``float`` or ``ndarray``).
NaN, infinite or non-integer values and shape mismatches raise :class:`ValueError` naming the
argument.

Pooling
-------
By default every pixel of the inputs is pooled into one set of counts (the whole batch is one
sample, as in the VOC protocol, where counts are pooled over the data set). With
``per_sample=True`` the leading axis is the batch axis and one score per sample is returned.

Conventions for undefined ratios (zero denominators)
----------------------------------------------------
*Binary mode* (``num_classes=None``; P = pixels with ``pred == positive``, T = pixels with
``target == positive``):

==========  ===========================  ================================  =====================
metric      formula                      both P and T empty                only one empty, 0/0
==========  ===========================  ================================  =====================
Dice        2|P∩T| / (|P| + |T|)         ``empty_score`` (default 1.0)     never 0/0 (gives 0)
IoU         |P∩T| / |P∪T|                ``empty_score`` (default 1.0)     never 0/0 (gives 0)
precision   |P∩T| / |P|                  ``empty_score`` (default 1.0)     P empty, T not: 0.0
recall      |P∩T| / |T|                  ``empty_score`` (default 1.0)     T empty, P not: 0.0
==========  ===========================  ================================  =====================

Two empty masks agree perfectly, hence 1.0 (pass ``empty_score=np.nan`` to drop such slices
from a later ``np.nanmean``). A missed structure (empty prediction) has precision 0 and a
hallucinated one (empty target) has recall 0, as in MedPy.

*Multi-class mode* (``num_classes=K``): per-class values come from the confusion matrix and
a zero denominator gives NaN ("undefined"), which is excluded from ``average="macro"``:

* IoU/Dice of a class absent from both pred and target → NaN (excluded from the mean);
* a class present in target but never predicted → IoU 0, Dice 0, recall 0 (it *counts*; we do
  not copy the AdvSemi evaluation habit of skipping classes without true positives, which
  inflates the mean);
* precision of a class never predicted → NaN; recall of a class absent from target → NaN
  (the usual "mean class accuracy" of FCN/VOC code).

References
----------
- M. Everingham, L. Van Gool, C. K. I. Williams, J. Winn and A. Zisserman, "The PASCAL
  Visual Object Classes (VOC) Challenge", IJCV 88(2):303-338, 2010.
- B. Kim and J. C. Ye, "Mumford-Shah Loss Functional for Image Segmentation with Deep
  Learning", IEEE Trans. Image Process. 29:1856-1866, 2019 (Tables I-V).
"""

from __future__ import annotations

import numpy as np

from .._validation import check_int
from ._inputs import label_pair

__all__ = [
    "confusion_matrix",
    "ConfusionMatrix",
    "iou",
    "mean_iou",
    "dice",
    "precision",
    "recall",
    "pixel_accuracy",
    "scores_from_confusion",
]

_METRICS = ("iou", "dice", "precision", "recall")


def _nanmean(x, axis=None):
    """``np.nanmean`` without the all-NaN RuntimeWarning (all-NaN → NaN)."""
    x = np.asarray(x, dtype=np.float64)
    ok = ~np.isnan(x)
    n = ok.sum(axis=axis)
    s = np.where(ok, x, 0.0).sum(axis=axis)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(n > 0, s / np.maximum(n, 1), np.nan)
    return float(out) if np.ndim(out) == 0 else out


def _split_samples(p, t, per_sample):
    """Reshape to ``(n_samples, n_pixels)``."""
    if not per_sample:
        return p.reshape(1, -1), t.reshape(1, -1)
    if p.ndim < 1:
        raise ValueError("per_sample=True needs a leading batch axis; got 0-d inputs")
    return p.reshape(p.shape[0], -1), t.reshape(t.shape[0], -1)


# --------------------------------------------------------------------------------------------
# confusion matrix
# --------------------------------------------------------------------------------------------
def _confusion(p, t, k, ignore_index):
    """Confusion matrix of flat int64 arrays (rows = target, cols = pred)."""
    if ignore_index is not None:
        keep = t != ignore_index
        p, t = p[keep], t[keep]
    for arr, name in ((t, "target"), (p, "pred")):
        if arr.size:
            lo, hi = int(arr.min()), int(arr.max())
            if lo < 0 or hi >= k:
                bad = lo if lo < 0 else hi
                extra = " and is not ignore_index" if name == "target" else ""
                raise ValueError(
                    f"{name} contains label {bad}, outside [0, num_classes={k}){extra}"
                )
    return np.bincount(t * k + p, minlength=k * k).reshape(k, k).astype(np.int64)


def confusion_matrix(pred, target, num_classes, ignore_index=None):
    r"""Confusion matrix of two label maps, by one ``np.bincount``.

    .. math:: C_{ij} = \#\{x : \mathrm{target}(x) = i,\ \mathrm{pred}(x) = j\}

    Parameters
    ----------
    pred, target : array_like or torch.Tensor of int
        Label maps of identical shape (any number of dimensions, batched or not); all pixels
        are pooled.
    num_classes : int
        K; every non-ignored label must lie in ``[0, K)``.
    ignore_index : int, optional
        Pixels where ``target == ignore_index`` are dropped (e.g. 255 in PASCAL VOC). The
        prediction at those pixels is not looked at.

    Returns
    -------
    ndarray of int64, shape (K, K)
        Rows index the target class, columns the predicted class.

    Raises
    ------
    ValueError
        Shape mismatch, NaN/non-integer labels, labels outside ``[0, K)``.

    References
    ----------
    M. Everingham et al., "The PASCAL Visual Object Classes (VOC) Challenge", IJCV 2010.
    """
    k = check_int(num_classes, "num_classes", minimum=1)
    ignore_index = check_int(ignore_index, "ignore_index", minimum=None, allow_none=True)
    p, t = label_pair(pred, target)
    return _confusion(p.ravel(), t.ravel(), k, ignore_index)


def _ratio(num, den):
    num = np.asarray(num, dtype=np.float64)
    den = np.asarray(den, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


def _per_class(cm, metric):
    """Per-class metric from a (…, K, K) confusion matrix; zero denominator → NaN."""
    tp = np.diagonal(cm, axis1=-2, axis2=-1).astype(np.float64)
    n_target = cm.sum(axis=-1)
    n_pred = cm.sum(axis=-2)
    if metric == "iou":
        return _ratio(tp, n_target + n_pred - tp)
    if metric == "dice":
        return _ratio(2.0 * tp, n_target + n_pred)
    if metric == "precision":
        return _ratio(tp, n_pred)
    if metric == "recall":
        return _ratio(tp, n_target)
    raise AssertionError(metric)


# --------------------------------------------------------------------------------------------
# generic driver for iou / dice / precision / recall
# --------------------------------------------------------------------------------------------
def _binary_scores(p, t, metric, positive, ignore_index, empty_score):
    valid = np.ones(t.shape, bool) if ignore_index is None else t != ignore_index
    P = (p == positive) & valid
    T = (t == positive) & valid
    tp = (P & T).sum(axis=1).astype(np.float64)
    n_p = P.sum(axis=1).astype(np.float64)
    n_t = T.sum(axis=1).astype(np.float64)
    both_empty = (n_p == 0) & (n_t == 0)
    if metric == "iou":
        score = _ratio(tp, n_p + n_t - tp)
    elif metric == "dice":
        score = _ratio(2.0 * tp, n_p + n_t)
    elif metric == "precision":
        score = _ratio(tp, n_p)
    else:
        score = _ratio(tp, n_t)
    score = np.where(np.isnan(score), 0.0, score)  # one-sided 0/0 (precision/recall) → 0
    return np.where(both_empty, float(empty_score), score)


def scores_from_confusion(cm, c, *, empty_score=1.0):
    r"""Dice, precision, recall and IoU of class ``c`` from a confusion matrix.

    With :math:`TP = M_{cc}`, :math:`FP = \sum_i M_{ic} - TP`, :math:`FN = \sum_j M_{cj} - TP`
    (rows: target, columns: prediction, as :func:`confusion_matrix`):

    .. math::

        \mathrm{Dice} = \frac{2TP}{2TP + FP + FN}, \quad
        \mathrm{precision} = \frac{TP}{TP + FP}, \quad
        \mathrm{recall} = \frac{TP}{TP + FN}, \quad
        \mathrm{IoU} = \frac{TP}{TP + FP + FN}

    with the conventions of :func:`dice` and friends: both masks empty gives
    ``empty_score``; one empty side (precision or recall 0/0) gives 0. The counts may be
    pooled over a whole data set (Kim & Ye 2019, Tables IV-V).

    Parameters
    ----------
    cm : array_like, shape (K, K)
        Confusion counts.
    c : int
        Class index in ``0 .. K-1``.
    empty_score : float
        Score when class ``c`` is absent from both prediction and target.

    Returns
    -------
    dict
        ``dice``, ``precision``, ``recall``, ``iou`` (floats).

    Raises
    ------
    ValueError
        ``cm`` not square, or ``c`` out of range.

    Examples
    --------
    >>> scores_from_confusion([[5, 1], [2, 2]], 1)["dice"]
    0.5714285714285714
    """
    cm = np.asarray(cm, dtype=np.float64)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1]:
        raise ValueError(f"cm must be a square (K, K) matrix; got shape {cm.shape}")
    c = check_int(c, "c", minimum=0)
    if c >= cm.shape[0]:
        raise ValueError(f"c must be in 0..{cm.shape[0] - 1}; got {c}")
    tp = cm[c, c]
    n_pred, n_true = cm[:, c].sum(), cm[c, :].sum()
    if n_pred == 0 and n_true == 0:
        e = float(empty_score)
        return {"dice": e, "precision": e, "recall": e, "iou": e}

    def ratio(num, den):
        return float(num / den) if den > 0 else 0.0

    return {
        "dice": ratio(2 * tp, n_pred + n_true),
        "precision": ratio(tp, n_pred),
        "recall": ratio(tp, n_true),
        "iou": ratio(tp, n_pred + n_true - tp),
    }


def _score(
    metric, pred, target, num_classes, positive, ignore_index, average, per_sample, empty_score
):
    if average not in (None, "macro"):
        raise ValueError(f"average must be None or 'macro'; got {average!r}")
    ignore_index = check_int(ignore_index, "ignore_index", minimum=None, allow_none=True)
    p, t = label_pair(pred, target)
    p2, t2 = _split_samples(p, t, per_sample)
    if num_classes is None:
        if average is not None:
            raise ValueError(
                "average='macro' needs num_classes (multi-class mode); binary "
                "mode (num_classes=None) already returns one score"
            )
        positive = check_int(positive, "positive", minimum=None)
        out = _binary_scores(p2, t2, metric, positive, ignore_index, empty_score)
        return out if per_sample else float(out[0])
    k = check_int(num_classes, "num_classes", minimum=1)
    cms = [_confusion(a, b, k, ignore_index) for a, b in zip(p2, t2, strict=True)]
    cms = np.stack(cms) if cms else np.zeros((0, k, k), np.int64)
    vals = _per_class(cms, metric)  # (S, K)
    if average == "macro":
        vals = _nanmean(vals, axis=-1)
        return np.atleast_1d(vals) if per_sample else float(np.atleast_1d(vals)[0])
    return vals if per_sample else vals[0]


_PARAMS_DOC = """
    Parameters
    ----------
    pred, target : array_like or torch.Tensor of int or bool
        Hard label maps of identical shape, batched or not.
    num_classes : int, optional
        None (default): binary mode, scoring the ``positive`` label against all others.
        An integer K: multi-class mode, one value per class from the K × K confusion matrix
        (labels must lie in ``[0, K)`` outside ignored pixels).
    positive : int, default 1
        Foreground label in binary mode (ignored in multi-class mode).
    ignore_index : int, optional
        Pixels where ``target == ignore_index`` are excluded from all counts.
    average : {None, "macro"}
        Multi-class mode only: None returns the per-class array; "macro" returns the mean
        over classes, NaN classes (undefined: see the module's conventions) excluded.
    per_sample : bool, default False
        False pools every pixel; True treats axis 0 as the batch axis and returns one score
        (binary/macro) or one row of per-class scores per sample.
    empty_score : float, default 1.0
        Binary mode: value returned when pred and target both have no ``positive`` pixel.

    Returns
    -------
    float or ndarray
        Binary mode: a float (``(B,)`` array with ``per_sample``). Multi-class mode: ``(K,)``
        per-class array (``(B, K)`` with ``per_sample``) or a float/``(B,)`` with
        ``average="macro"``.

    Raises
    ------
    ValueError
        Shape mismatch, NaN/non-integer labels, out-of-range labels, bad ``average``.
"""


def iou(
    pred,
    target,
    num_classes=None,
    *,
    positive=1,
    ignore_index=None,
    average=None,
    per_sample=False,
    empty_score=1.0,
):
    r"""Intersection over union (Jaccard index), binary or per class.

    .. math:: \mathrm{IoU} = \frac{|P \cap T|}{|P \cup T|}
              = \frac{TP}{TP + FP + FN}

    A class absent from both pred and target gives NaN in multi-class mode (excluded from
    ``average="macro"``); a target class that is never predicted gives 0.
    {params}

    References
    ----------
    M. Everingham et al., "The PASCAL Visual Object Classes (VOC) Challenge", IJCV 2010;
    B. Kim and J. C. Ye, IEEE TIP 2019, Tables I-V (IoU).
    """
    return _score(
        "iou", pred, target, num_classes, positive, ignore_index, average, per_sample, empty_score
    )


def dice(
    pred,
    target,
    num_classes=None,
    *,
    positive=1,
    ignore_index=None,
    average=None,
    per_sample=False,
    empty_score=1.0,
):
    r"""Dice coefficient (F1 score of the pixel classification), binary or per class.

    .. math:: \mathrm{Dice} = \frac{2 |P \cap T|}{|P| + |T|} = \frac{2TP}{2TP + FP + FN}

    Two empty masks have Dice ``empty_score`` = 1.0 in binary mode (perfect agreement);
    in multi-class mode a class absent from both gives NaN.
    {params}

    References
    ----------
    L. R. Dice, "Measures of the amount of ecologic association between species", Ecology
    1945; B. Kim and J. C. Ye, IEEE TIP 2019, Tables IV-V (LiTS/BraTS Dice).
    """
    return _score(
        "dice", pred, target, num_classes, positive, ignore_index, average, per_sample, empty_score
    )


def precision(
    pred,
    target,
    num_classes=None,
    *,
    positive=1,
    ignore_index=None,
    average=None,
    per_sample=False,
    empty_score=1.0,
):
    r"""Precision (positive predictive value), binary or per class.

    .. math:: \mathrm{precision} = \frac{|P \cap T|}{|P|} = \frac{TP}{TP + FP}

    Binary mode: empty prediction with a non-empty target → 0.0; both empty →
    ``empty_score``. Multi-class mode: a never-predicted class → NaN.
    {params}

    References
    ----------
    B. Kim and J. C. Ye, IEEE TIP 2019, Tables IV-V (LiTS/BraTS precision).
    """
    return _score(
        "precision",
        pred,
        target,
        num_classes,
        positive,
        ignore_index,
        average,
        per_sample,
        empty_score,
    )


def recall(
    pred,
    target,
    num_classes=None,
    *,
    positive=1,
    ignore_index=None,
    average=None,
    per_sample=False,
    empty_score=1.0,
):
    r"""Recall (sensitivity; per-class accuracy in VOC tables), binary or per class.

    .. math:: \mathrm{recall} = \frac{|P \cap T|}{|T|} = \frac{TP}{TP + FN}

    Binary mode: empty target with a non-empty prediction → 0.0; both empty →
    ``empty_score``. Multi-class mode: a class absent from target → NaN, so
    ``average="macro"`` is the usual mean class accuracy.
    {params}

    References
    ----------
    M. Everingham et al., IJCV 2010; B. Kim and J. C. Ye, IEEE TIP 2019, Tables II, IV, V.
    """
    return _score(
        "recall",
        pred,
        target,
        num_classes,
        positive,
        ignore_index,
        average,
        per_sample,
        empty_score,
    )


for _f in (iou, dice, precision, recall):
    if _f.__doc__:  # None under python -OO
        _f.__doc__ = _f.__doc__.replace("    {params}\n", _PARAMS_DOC + "\n")
del _f


def _infer_num_classes(p, t, ignore_index):
    tv = t if ignore_index is None else t[t != ignore_index]
    hi = max(int(p.max()) if p.size else -1, int(tv.max()) if tv.size else -1)
    return max(hi + 1, 1)


def mean_iou(pred, target, num_classes=None, *, ignore_index=None):
    r"""Mean intersection over union over classes (PASCAL VOC mIoU).

    .. math:: \mathrm{mIoU} = \frac{1}{|\mathcal{K}|} \sum_{c \in \mathcal{K}}
              \frac{C_{cc}}{\sum_j C_{cj} + \sum_i C_{ic} - C_{cc}}

    where C is the confusion matrix and :math:`\mathcal{K}` the classes present in target
    or pred. Classes absent from both are excluded (their IoU is NaN); a class present in
    the target but never predicted counts with IoU 0. (AdvSemi's evaluation skips classes
    without true positives, which inflates the mean — deliberately not reproduced.) All
    pixels of the inputs are pooled; for a data set use :class:`ConfusionMatrix`, which pools
    the counts over images as the VOC protocol does.

    Parameters
    ----------
    pred, target : array_like or torch.Tensor of int
        Label maps of identical shape.
    num_classes : int, optional
        K. None infers ``max(label) + 1`` over pred and non-ignored target (this drops
        trailing classes absent from both, which does not change the mean).
    ignore_index : int, optional
        Target value excluded from the counts (255 for VOC).

    Returns
    -------
    float
        The mean IoU (NaN when no class is present at all).

    References
    ----------
    M. Everingham et al., "The PASCAL Visual Object Classes (VOC) Challenge", IJCV 2010;
    B. Kim and J. C. Ye, IEEE TIP 2019, Tables I-III.
    """
    ignore_index = check_int(ignore_index, "ignore_index", minimum=None, allow_none=True)
    p, t = label_pair(pred, target)
    k = (
        _infer_num_classes(p, t, ignore_index)
        if num_classes is None
        else check_int(num_classes, "num_classes", minimum=1)
    )
    cm = _confusion(p.ravel(), t.ravel(), k, ignore_index)
    return _nanmean(_per_class(cm, "iou"))


def pixel_accuracy(pred, target, *, ignore_index=None, per_sample=False):
    r"""Pixel accuracy: the fraction of (non-ignored) pixels whose label is right.

    .. math:: \mathrm{acc} = \frac{\sum_c C_{cc}}{\sum_{ij} C_{ij}}
              = \frac{\#\{x : \mathrm{pred}(x) = \mathrm{target}(x)\}}{N}

    Parameters
    ----------
    pred, target : array_like or torch.Tensor of int
        Label maps of identical shape (labels of any value; no range needed).
    ignore_index : int, optional
        Pixels where ``target == ignore_index`` are not counted.
    per_sample : bool, default False
        True: axis 0 is the batch axis; one accuracy per sample.

    Returns
    -------
    float or ndarray of shape (B,)
        NaN when no pixel is counted.

    References
    ----------
    J. Long, E. Shelhamer and T. Darrell, "Fully convolutional networks for semantic
    segmentation", CVPR 2015 (pixel accuracy); B. Kim and J. C. Ye, IEEE TIP 2019, Table II.
    """
    ignore_index = check_int(ignore_index, "ignore_index", minimum=None, allow_none=True)
    p, t = label_pair(pred, target)
    p2, t2 = _split_samples(p, t, per_sample)
    valid = np.ones(t2.shape, bool) if ignore_index is None else t2 != ignore_index
    acc = _ratio(((p2 == t2) & valid).sum(axis=1), valid.sum(axis=1))
    return acc if per_sample else float(acc[0])


# --------------------------------------------------------------------------------------------
# streaming accumulator
# --------------------------------------------------------------------------------------------
class ConfusionMatrix:
    """Streaming confusion-matrix accumulator for data-set evaluation (VOC protocol).

    Counts are pooled over all images, then the per-class scores are computed once — this is
    how PASCAL VOC mIoU is defined (not the mean of per-image mIoUs).

    Parameters
    ----------
    num_classes : int
        K; labels must lie in ``[0, K)`` outside ignored pixels.
    ignore_index : int, optional
        Target value excluded from the counts (255 for VOC).
    class_names : sequence of str, optional
        K names, copied into the result of :meth:`compute`.

    Examples
    --------
    >>> cm = ConfusionMatrix(21, ignore_index=255)
    >>> for logits, target in loader:                        # doctest: +SKIP
    ...     cm.update(logits.argmax(1), target)
    >>> cm.compute()["mIoU"]                                 # doctest: +SKIP

    References
    ----------
    M. Everingham et al., "The PASCAL Visual Object Classes (VOC) Challenge", IJCV 2010;
    B. Kim and J. C. Ye, IEEE TIP 2019, Tables I-II (IoU, accuracy, recall).
    """

    def __init__(self, num_classes, *, ignore_index=None, class_names=None):
        self.num_classes = check_int(num_classes, "num_classes", minimum=1)
        self.ignore_index = check_int(ignore_index, "ignore_index", minimum=None, allow_none=True)
        if class_names is not None:
            class_names = [str(c) for c in class_names]
            if len(class_names) != self.num_classes:
                raise ValueError(
                    f"class_names must have num_classes={self.num_classes} "
                    f"entries; got {len(class_names)}"
                )
        self.class_names = class_names
        self._cm = np.zeros((self.num_classes, self.num_classes), np.int64)

    def update(self, pred, target):
        """Add the counts of one (batched) prediction/target pair; returns ``self``."""
        self._cm += confusion_matrix(pred, target, self.num_classes, self.ignore_index)
        return self

    def merge(self, other):
        """Add the counts of another accumulator (e.g. from another worker); returns self."""
        if not isinstance(other, ConfusionMatrix) or other.num_classes != self.num_classes:
            raise ValueError("other must be a ConfusionMatrix with the same num_classes")
        self._cm += other._cm
        return self

    def reset(self):
        """Zero the counts."""
        self._cm[...] = 0

    @property
    def matrix(self):
        """Copy of the accumulated (K, K) matrix, rows = target, cols = pred."""
        return self._cm.copy()

    @property
    def n_pixels(self):
        """Number of counted (non-ignored) pixels."""
        return int(self._cm.sum())

    def compute(self):
        """Scores of the pooled counts.

        Returns
        -------
        dict
            ``"mIoU"`` (float, classes absent from both excluded), ``"accuracy"`` (pixel
            accuracy), ``"mean_recall"`` (mean class accuracy over classes present in the
            target), ``"mean_dice"``, per-class ``(K,)`` arrays ``"iou"``, ``"recall"``,
            ``"precision"``, ``"dice"`` (NaN where undefined), ``"confusion_matrix"``,
            ``"n_pixels"`` and ``"class_names"`` (or None).
        """
        cm = self._cm
        per = {m: _per_class(cm, m) for m in _METRICS}
        total = cm.sum()
        return {
            "mIoU": _nanmean(per["iou"]),
            "accuracy": float(np.trace(cm) / total) if total else float("nan"),
            "mean_recall": _nanmean(per["recall"]),
            "mean_dice": _nanmean(per["dice"]),
            "iou": per["iou"],
            "recall": per["recall"],
            "precision": per["precision"],
            "dice": per["dice"],
            "confusion_matrix": cm.copy(),
            "n_pixels": int(total),
            "class_names": None if self.class_names is None else list(self.class_names),
        }

    def __repr__(self):
        return (
            f"ConfusionMatrix(num_classes={self.num_classes}, "
            f"ignore_index={self.ignore_index}, n_pixels={self.n_pixels})"
        )

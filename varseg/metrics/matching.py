"""Label matching for unsupervised / clustering outputs (cluster ids are arbitrary).

An unsupervised segmentation (Kanezaki's Backprop, the Mumford-Shah-loss U-Net of Kim & Ye)
outputs cluster ids with no fixed meaning; before IoU/Dice can be computed against class
labels, each cluster must be assigned a class. :func:`match_labels` does this with the
Hungarian algorithm (``scipy.optimize.linear_sum_assignment``), maximising the total number
of overlapping pixels under a one-to-one assignment. The assignment is computed once over
all pixels of the inputs: call it per image for per-image matching, or on the stacked data
set for one global matching.

References
----------
- H. W. Kuhn, "The Hungarian method for the assignment problem", Naval Research
  Logistics Quarterly 2:83-97, 1955.
- B. Kim and J. C. Ye, "Mumford-Shah Loss Functional for Image Segmentation with Deep
  Learning", IEEE Trans. Image Process. 29, 2019 (unsupervised experiments, Tables VI-VII).
"""

from __future__ import annotations

import numpy as np

from .._validation import check_int
from ._inputs import label_pair

__all__ = ["match_labels", "hungarian_dice"]


def match_labels(pred, target, *, ignore_index=None, unmatched="new", return_mapping=False):
    r"""Relabel predicted clusters with ground-truth classes by Hungarian matching.

    Solves

    .. math:: \max_{\pi} \sum_{c} |\{x : \mathrm{pred}(x) = c\} \cap
              \{x : \mathrm{target}(x) = \pi(c)\}|

    over one-to-one assignments π of predicted clusters to target classes (rectangular
    ``linear_sum_assignment`` on the overlap table, ``maximize=True``). With more clusters
    than classes, ``min(#clusters, #classes)`` clusters are matched and the rest are handled
    by ``unmatched``; with fewer clusters, some classes get no cluster (they are then simply
    never predicted). A pair the solver assigns with zero overlap (e.g. a cluster lying only on
    ignored pixels) is not kept: that cluster counts as left over, since mapping it to a class
    it never touches would only add false positives.

    Parameters
    ----------
    pred : array_like or torch.Tensor of int
        Cluster map (any integer ids, any shape; batched inputs are matched jointly).
    target : array_like or torch.Tensor of int
        Ground-truth class map of the same shape.
    ignore_index : int, optional
        Target pixels with this value do not count as overlap (and ``ignore_index`` is never
        used as an output label).
    unmatched : {"new", "best"}
        What happens to clusters left over by the one-to-one matching. "new" (default,
        strict): each gets a fresh id ``max(target classes) + 1, + 2, …`` (skipping
        ``ignore_index``), so it is never credited to a class. "best": each joins the target
        class it overlaps most (many-to-one; a leftover cluster with no valid overlap at all
        still gets a fresh id).
    return_mapping : bool, default False
        Also return the ``{cluster id: output label}`` dict.

    Returns
    -------
    relabelled : ndarray of int64, same shape as ``pred``
        NumPy array even for torch input.
    mapping : dict, only with ``return_mapping=True``

    Raises
    ------
    ValueError
        Shape mismatch, NaN/non-integer labels, unknown ``unmatched``.

    References
    ----------
    H. W. Kuhn, "The Hungarian method for the assignment problem", 1955; B. Kim and J. C.
    Ye, IEEE TIP 2019.
    """
    if unmatched not in ("new", "best"):
        raise ValueError(f"unmatched must be 'new' or 'best'; got {unmatched!r}")
    ignore_index = check_int(ignore_index, "ignore_index", minimum=None, allow_none=True)
    p, t = label_pair(pred, target)
    pf, tf = p.ravel(), t.ravel()
    clusters, p_idx = np.unique(pf, return_inverse=True)
    p_idx = p_idx.ravel()
    valid = np.ones(tf.shape, bool) if ignore_index is None else tf != ignore_index
    classes, t_idx = np.unique(tf[valid], return_inverse=True)
    t_idx = t_idx.ravel()
    n_p, n_t = clusters.size, classes.size
    overlap = np.bincount(p_idx[valid] * n_t + t_idx, minlength=n_p * n_t).reshape(n_p, n_t)

    mapping = {}
    if n_p and n_t:
        from scipy.optimize import linear_sum_assignment  # lazy: scipy.optimize is slow

        rows, cols = linear_sum_assignment(overlap, maximize=True)
        for r, c in zip(rows, cols, strict=True):
            if overlap[r, c] > 0:  # a zero-overlap "match" would only add false positives
                mapping[int(clusters[r])] = int(classes[c])

    next_id = int(classes.max()) + 1 if n_t else 0
    for r in range(n_p):
        cid = int(clusters[r])
        if cid in mapping:
            continue
        if unmatched == "best" and n_t and overlap[r].max() > 0:
            mapping[cid] = int(classes[np.argmax(overlap[r])])
            continue
        if ignore_index is not None and next_id == ignore_index:
            next_id += 1
        mapping[cid] = next_id
        next_id += 1

    lut = np.array([mapping[int(c)] for c in clusters], dtype=np.int64)
    out = lut[p_idx].reshape(p.shape) if n_p else np.zeros(p.shape, np.int64)
    return (out, mapping) if return_mapping else out


def hungarian_dice(pred, target, *, ignore_index=None, unmatched="new"):
    r"""Per-class Dice after Hungarian matching of clusters to classes.

    :func:`match_labels` relabels ``pred``, then for every class c present in the
    (non-ignored) target

    .. math:: \mathrm{Dice}_c = \frac{2|\hat P_c \cap T_c|}{|\hat P_c| + |T_c|}

    over the non-ignored pixels, :math:`\hat P_c` being the pixels relabelled c.

    Parameters
    ----------
    pred, target : array_like or torch.Tensor of int
        Cluster map and ground-truth class map of identical shape.
    ignore_index : int, optional
        Target value excluded from matching and scoring.
    unmatched : {"new", "best"}
        Passed to :func:`match_labels` ("new": leftover clusters are never credited).

    Returns
    -------
    dict
        ``{class label: Dice}`` for each target class present; average it yourself (e.g.
        ``np.mean(list(d.values()))``). Empty when the target has no non-ignored pixel.

    References
    ----------
    L. R. Dice, Ecology 1945; H. W. Kuhn, 1955; B. Kim and J. C. Ye, IEEE TIP 2019.
    """
    ignore_index = check_int(ignore_index, "ignore_index", minimum=None, allow_none=True)
    p, t = label_pair(pred, target)
    relab = match_labels(p, t, ignore_index=ignore_index, unmatched=unmatched)
    valid = np.ones(t.shape, bool) if ignore_index is None else t != ignore_index
    r, tv = relab[valid], t[valid]
    out = {}
    for c in np.unique(tv):
        P = r == c
        T = tv == c
        out[int(c)] = float(2.0 * np.sum(P & T) / (P.sum() + T.sum()))  # |T| > 0
    return out

r"""BSDS500 region benchmark: the RC / PRI / VI columns of Kim & Ye, TIP 2019, Table VI.

Segmentation covering, probabilistic Rand index, variation of information.

Definitions follow the Berkeley benchmark code (``match_segmentations.m``,
``match_segmentations2.m``, ``evaluation_reg_image.m``, ``collect_eval_reg.m``) of
Arbeláez et al., TPAMI 2011. For one image with machine segmentation S and K human
segmentations G_1 … G_K, all over the same N pixels, with contingency table
:math:`n_{uv} = |S_u \cap G_v|`, row sums :math:`n_u = |S_u|` and column sums
:math:`n_v = |G_v|`:

* Rand index of one pair (exact count over the :math:`\binom{N}{2}` unordered pixel pairs)

  .. math:: \mathrm{RI}(S, G) = 1 - \frac{\tfrac12 \left(\sum_u n_u^2 + \sum_v n_v^2
            \right) - \sum_{uv} n_{uv}^2}{\binom{N}{2}}

  (the numerator is exactly the number of pairs on which S and G disagree); the
  probabilistic Rand index (Unnikrishnan et al., TPAMI 2007) is
  :math:`\mathrm{PRI} = \frac1K \sum_k \mathrm{RI}(S, G_k)`.
* Variation of information (Meilă, JMVA 2007), in **bits** (log base 2, as
  ``match_segmentations2.m`` and ``skimage.metrics.variation_of_information``)

  .. math:: \mathrm{VI}(S, G) = H(S) + H(G) - 2 I(S; G) = H(S|G) + H(G|S),

  reported as :math:`\frac1K \sum_k \mathrm{VI}(S, G_k)` (lower is better).
* Segmentation covering of the human segmentations by S (the "GT covering" / RC):

  .. math:: \mathrm{C}(G_k \to S) = \frac1N \sum_{R \in G_k} |R| \max_{R' \in S}
            \frac{|R \cap R'|}{|R \cup R'|}, \qquad
            \mathrm{C} = \frac{\sum_k N\,\mathrm{C}(G_k \to S)}{\sum_k N}

  i.e. a pixel-weighted pooling over the K human segmentations (``cntR / sumR`` of
  ``evaluation_reg_image.m``; equal to the mean over k because all G_k have N pixels).
  Covering is not symmetric: C(G → S) rewards S for containing each human region, not the
  reverse.

Over a data set (``collect_eval_reg.m`` with one segmentation per image): PRI and VI are the
means of the per-image values; covering is pooled, Σ numerators / Σ denominators over all
images, so larger images weigh more (see :func:`bsds_region_scores`, :func:`covering_counts`).

Label conventions (read this before comparing with published numbers)
---------------------------------------------------------------------
* **Labels are region ids, taken as given.** No connected-component relabelling is done: a
  label split into several disconnected pieces is *one* region (as ``regionprops`` on a label
  matrix in the MATLAB code). If your method's regions should be connected components, run
  ``skimage.measure.label(seg, connectivity=1, background=-1)`` (or similar) first.
* **Label 0 is a region like any other**, in S and in G. The MATLAB code assumes 1-based
  labels: ``match_segmentations.m`` drops row/column 0 of its table (so pixels of S labelled
  0 can never cover a human region, silently lowering covering) and ``regionprops`` ignores
  label 0; ``match_segmentations2.m`` cannot index label 0 at all. A 0-based label map (e.g.
  an ``argmax`` output) fed to the MATLAB code is therefore scored wrongly. We avoid the
  pitfall by treating labels purely as region identifiers (any integers, negative included):
  our scores equal the MATLAB scores of ``seg + 1`` / 1-based human maps (BSDS500 human maps
  are already 1-based). Labels need not be contiguous.
* Everything is computed from the *sparse* contingency table (``np.unique`` of combined
  region ids), so superpixel maps with thousands of labels cost O(N log N), not O(K_S K_G).

References
----------
- D. Martin, C. Fowlkes, D. Tal and J. Malik, "A database of human segmented natural
  images and its application to evaluating segmentation algorithms and measuring ecological
  statistics", ICCV 2001.
- P. Arbeláez, M. Maire, C. Fowlkes and J. Malik, "Contour detection and hierarchical
  image segmentation", IEEE TPAMI 33(5):898-916, 2011.
- R. Unnikrishnan, C. Pantofaru and M. Hebert, "Toward objective evaluation of image
  segmentation algorithms", IEEE TPAMI 29(6):929-944, 2007.
- M. Meilă, "Comparing clusterings — an information based distance", J. Multivariate
  Analysis 98(5):873-895, 2007.
- B. Kim and J. C. Ye, "Mumford-Shah Loss Functional for Image Segmentation with Deep
  Learning", IEEE Trans. Image Process. 29, 2019, Table VI.
"""

from __future__ import annotations

import numpy as np

from ._inputs import as_labels, to_numpy

__all__ = [
    "rand_index",
    "probabilistic_rand_index",
    "variation_of_information",
    "segmentation_covering",
    "covering_counts",
    "region_scores",
    "bsds_region_scores",
]


# --------------------------------------------------------------------------------------------
# contingency tables
# --------------------------------------------------------------------------------------------
class _Compact:
    """Region ids of a flat label map compacted to 0..n-1, with region sizes."""

    __slots__ = ("index", "sizes")

    def __init__(self, flat):
        _, inv = np.unique(flat, return_inverse=True)
        self.index = inv.reshape(-1).astype(np.int64, copy=False)
        self.sizes = np.bincount(self.index)


def _table(a: _Compact, b: _Compact):
    """Sparse contingency table: (rows, cols, counts) of the non-zero cells."""
    nb = b.sizes.size
    cells, counts = np.unique(a.index * nb + b.index, return_counts=True)
    return cells // nb, cells % nb, counts.astype(np.int64)


def _ri(a, b, counts, n):
    if n < 2:
        return 1.0  # no pixel pair: nothing to disagree on
    # exact integer arithmetic (Python ints: no overflow for any realistic N)
    sum_u = int((a.sizes**2).sum())
    sum_v = int((b.sizes**2).sum())
    sum_uv = int((counts**2).sum())
    disagree2 = sum_u + sum_v - 2 * sum_uv  # twice the number of disagreeing pairs
    return 1.0 - (disagree2 / 2) / (n * (n - 1) / 2)


def _vi(a, b, rows, cols, counts, n):
    p = counts / n
    pa = a.sizes[rows] / n
    pb = b.sizes[cols] / n
    # VI = H(S|G) + H(G|S) = -sum p_uv [log2(p_uv / p_v) + log2(p_uv / p_u)]
    vi = -float(np.sum(p * (np.log2(p / pb) + np.log2(p / pa))))
    return max(vi, 0.0)


def _cover_num(a, b, rows, cols, counts):
    """sum_{R in b} |R| max_{R' in a} IoU(R, R')  (b is covered by a)."""
    union = a.sizes[rows] + b.sizes[cols] - counts
    ious = counts / union
    best = np.zeros(b.sizes.size)
    np.maximum.at(best, cols, ious)
    return float(np.sum(b.sizes * best))


# --------------------------------------------------------------------------------------------
# input handling
# --------------------------------------------------------------------------------------------
def _ground_truth_list(ground_truths, shape, name="ground_truths"):
    """One label map, a stacked (K, *shape) array/tensor, or a list of label maps."""
    if isinstance(ground_truths, (list, tuple)):
        items = list(ground_truths)
        names = [f"{name}[{k}]" for k in range(len(items))]
    else:
        arr = to_numpy(ground_truths)
        if arr.shape == shape:
            items, names = [arr], [name]
        elif arr.ndim == len(shape) + 1 and arr.shape[1:] == shape:
            items = list(arr)
            names = [f"{name}[{k}]" for k in range(len(items))]
        else:
            raise ValueError(
                f"{name} must be a label map of the shape of seg {shape}, a "
                f"stack of them or a list; got shape {arr.shape}"
            )
    if not items:
        raise ValueError(f"{name} is empty: at least one ground-truth segmentation is needed")
    out = []
    for item, nm in zip(items, names, strict=True):
        g = as_labels(item, nm, allow_empty=False)
        if g.shape != shape:
            raise ValueError(f"{nm} must have the shape of seg {shape}; got {g.shape}")
        out.append(g)
    return out


def _prepare(seg, ground_truths):
    s = as_labels(seg, "seg", allow_empty=False)
    gts = _ground_truth_list(ground_truths, s.shape)
    return _Compact(s.ravel()), [_Compact(g.ravel()) for g in gts], s.size


def _image_scores(seg, ground_truths, which=("ri", "vi", "cover")):
    a, gts, n = _prepare(seg, ground_truths)
    ri, vi, num = [], [], 0.0
    for b in gts:
        rows, cols, counts = _table(a, b)
        if "ri" in which:
            ri.append(_ri(a, b, counts, n))
        if "vi" in which:
            vi.append(_vi(a, b, rows, cols, counts, n))
        if "cover" in which:
            num += _cover_num(a, b, rows, cols, counts)
    return {"ri": ri, "vi": vi, "num": num, "den": float(n * len(gts))}


# --------------------------------------------------------------------------------------------
# public API
# --------------------------------------------------------------------------------------------
def rand_index(seg, ground_truth):
    r"""Rand index of two segmentations, by exact pixel-pair counting.

    .. math:: \mathrm{RI}(S, G) = 1 - \frac{\tfrac12\left(\sum_u n_u^2 +
              \sum_v n_v^2\right) - \sum_{uv} n_{uv}^2}{N(N-1)/2}

    the fraction of the :math:`\binom{N}{2}` unordered pixel pairs on which S and G agree
    (same region in both, or different regions in both) — the ``rand_index`` of
    ``match_segmentations2.m``. Labels are region ids taken as given (label 0 included,
    no connected-component relabelling).

    Parameters
    ----------
    seg, ground_truth : array_like or torch.Tensor of int
        Label maps of identical shape.

    Returns
    -------
    float
        In [0, 1]; 1.0 when N < 2.

    References
    ----------
    W. M. Rand, "Objective criteria for the evaluation of clustering methods", JASA 1971;
    R. Unnikrishnan et al., IEEE TPAMI 2007.
    """
    s = as_labels(seg, "seg", allow_empty=False)
    g = as_labels(ground_truth, "ground_truth", allow_empty=False)
    if g.shape != s.shape:
        raise ValueError(
            f"seg and ground_truth must have the same shape; got {s.shape} and {g.shape}"
        )
    a, b = _Compact(s.ravel()), _Compact(g.ravel())
    _, _, counts = _table(a, b)
    return _ri(a, b, counts, s.size)


def probabilistic_rand_index(seg, ground_truths):
    r"""Probabilistic Rand index of a segmentation against K human segmentations (BSDS).

    .. math:: \mathrm{PRI}(S, \{G_k\}) = \frac1K \sum_{k=1}^K \mathrm{RI}(S, G_k),\quad
              \mathrm{RI} = 1 - \frac{\tfrac12(\sum_u n_u^2 + \sum_v n_v^2)
              - \sum_{uv} n_{uv}^2}{\binom N2}

    (``match_segmentations2.m``: the mean over the K human maps of the exact pair-count
    Rand index). Labels are region ids taken as given: label 0 is an ordinary region and no
    connected-component relabelling is done (see the module docstring). Higher is better.

    Parameters
    ----------
    seg : array_like or torch.Tensor of int
        Machine segmentation (label map, any shape).
    ground_truths : label map, stack ``(K, *seg.shape)`` or list of K label maps
        Human segmentations of the same image.

    Returns
    -------
    float
        PRI in [0, 1], averaged over the K human segmentations.

    References
    ----------
    R. Unnikrishnan, C. Pantofaru and M. Hebert, "Toward objective evaluation of image
    segmentation algorithms", IEEE TPAMI 2007; P. Arbeláez et al., "Contour detection and
    hierarchical image segmentation", IEEE TPAMI 2011; B. Kim and J. C. Ye, IEEE TIP 2019,
    Table VI.
    """
    return float(np.mean(_image_scores(seg, ground_truths, ("ri",))["ri"]))


def variation_of_information(seg, ground_truths):
    r"""Variation of information between a segmentation and K human segmentations, in bits.

    .. math:: \mathrm{VI}(S, \{G_k\}) = \frac1K \sum_k \left[H(S) + H(G_k)
              - 2 I(S; G_k)\right],\quad H(S) = -\sum_u \tfrac{n_u}{N}\log_2\tfrac{n_u}{N}

    (``match_segmentations2.m``, which uses ``log2``; equals the sum of the two conditional
    entropies returned by ``skimage.metrics.variation_of_information``). Labels are region ids
    taken as given (label 0 included, no connected-component relabelling). Lower is better;
    0 for identical partitions (up to renaming).

    Parameters
    ----------
    seg : array_like or torch.Tensor of int
        Machine segmentation.
    ground_truths : label map, stack ``(K, *seg.shape)`` or list of K label maps
        Human segmentations of the same image.

    Returns
    -------
    float
        Mean VI over the K human segmentations, in bits (≥ 0).

    References
    ----------
    M. Meilă, "Comparing clusterings — an information based distance", J. Multivariate
    Analysis 2007; P. Arbeláez et al., IEEE TPAMI 2011; B. Kim and J. C. Ye, IEEE TIP 2019,
    Table VI.
    """
    return float(np.mean(_image_scores(seg, ground_truths, ("vi",))["vi"]))


def covering_counts(seg, ground_truths):
    r"""Numerator and denominator of the segmentation covering of the humans by ``seg``.

    .. math:: \mathrm{num} = \sum_{k=1}^K \sum_{R \in G_k} |R| \max_{R' \in S}
              \frac{|R \cap R'|}{|R \cup R'|}, \qquad \mathrm{den} = K N

    (``cntR`` and ``sumR`` of ``evaluation_reg_image.m`` for one segmentation). Pool them over
    a data set as Σ num / Σ den (``collect_eval_reg.m``). Labels are region ids taken as
    given; label 0 is a region (the MATLAB code would drop it from S, see module docstring).

    Parameters
    ----------
    seg : array_like or torch.Tensor of int
        Machine segmentation S.
    ground_truths : label map, stack ``(K, *seg.shape)`` or list of K label maps
        Human segmentations G_k (the ones being covered).

    Returns
    -------
    numerator : float
    denominator : float

    References
    ----------
    P. Arbeláez, M. Maire, C. Fowlkes and J. Malik, "Contour detection and hierarchical image
    segmentation", IEEE TPAMI 2011 (Sec. 3.2, segmentation covering).
    """
    r = _image_scores(seg, ground_truths, ("cover",))
    return r["num"], r["den"]


def segmentation_covering(seg, ground_truths):
    r"""Segmentation covering of the human segmentations by ``seg`` (BSDS "GT covering", RC).

    .. math:: \mathrm{C} = \frac{\sum_k \sum_{R \in G_k} |R| \max_{R' \in S}
              \mathrm{IoU}(R, R')}{\sum_k N}

    Each human region is matched to its best-overlapping region of ``seg`` and weighted by
    its area; the K human segmentations are pooled pixel-weighted (= their mean, since all
    have N pixels). Not symmetric: for ``seg = [0, 0, 0, 1]`` and the single human map
    ``[0, 0, 0, 0]``, C(G → S) = 4·(3/4)/4 = 0.75 but, swapping the roles,
    C(S → G) = (3·(3/4) + 1·(1/4))/4 = 0.625. Labels are region ids taken as given: label 0
    is a region and no connected-component relabelling is done.

    Parameters
    ----------
    seg : array_like or torch.Tensor of int
        Machine segmentation S.
    ground_truths : label map, stack ``(K, *seg.shape)`` or list of K label maps
        Human segmentations G_k.

    Returns
    -------
    float
        Covering in (0, 1]; 1 iff S reproduces every G_k exactly.

    References
    ----------
    P. Arbeláez et al., IEEE TPAMI 2011; M. Everingham et al., IJCV 2010 (overlap measure);
    B. Kim and J. C. Ye, IEEE TIP 2019, Table VI (RC).
    """
    num, den = covering_counts(seg, ground_truths)
    return num / den


def region_scores(seg, ground_truths):
    """All three BSDS region scores of one image, sharing the contingency tables.

    Parameters
    ----------
    seg : array_like or torch.Tensor of int
        Machine segmentation.
    ground_truths : label map, stack ``(K, *seg.shape)`` or list of K label maps
        Human segmentations of the same image.

    Returns
    -------
    dict
        ``"covering"`` (:func:`segmentation_covering`), ``"PRI"``
        (:func:`probabilistic_rand_index`), ``"VI"`` (:func:`variation_of_information`,
        bits), and ``"covering_num"``, ``"covering_den"`` (:func:`covering_counts`).

    References
    ----------
    P. Arbeláez et al., IEEE TPAMI 2011; R. Unnikrishnan et al., IEEE TPAMI 2007; M. Meilă,
    JMVA 2007.
    """
    r = _image_scores(seg, ground_truths)
    return {
        "covering": r["num"] / r["den"],
        "PRI": float(np.mean(r["ri"])),
        "VI": float(np.mean(r["vi"])),
        "covering_num": r["num"],
        "covering_den": r["den"],
    }


def bsds_region_scores(segs, ground_truth_lists):
    r"""Data-set region scores, aggregated as the BSDS benchmark does.

    .. math:: \mathrm{C} = \frac{\sum_i \mathrm{num}_i}{\sum_i \mathrm{den}_i},\qquad
              \mathrm{PRI} = \frac1M\sum_i \mathrm{PRI}_i,\qquad
              \mathrm{VI} = \frac1M\sum_i \mathrm{VI}_i

    over M images (``collect_eval_reg.m`` with one segmentation per image, where ODS and OIS
    coincide): covering is pooled over images (pixel-weighted), PRI and VI are plain means of
    the per-image scores (each itself a mean over that image's human segmentations).

    Parameters
    ----------
    segs : sequence of label maps
        One machine segmentation per image (images may differ in size).
    ground_truth_lists : sequence of (list of label maps)
        For each image, its human segmentations (anything :func:`region_scores` accepts).

    Returns
    -------
    dict
        ``"covering"``, ``"PRI"``, ``"VI"`` (floats), ``"n_images"`` and ``"per_image"``: a
        dict of arrays ``"covering"``, ``"PRI"``, ``"VI"``, ``"covering_num"``,
        ``"covering_den"`` with one entry per image.

    Raises
    ------
    ValueError
        Different numbers of segmentations and ground-truth lists, no image, or any per-image
        input error (naming the image index).

    References
    ----------
    D. Martin et al., ICCV 2001; P. Arbeláez et al., IEEE TPAMI 2011; B. Kim and J. C. Ye,
    IEEE TIP 2019, Table VI.
    """
    segs = list(segs)
    gls = list(ground_truth_lists)
    if len(segs) != len(gls):
        raise ValueError(
            f"segs and ground_truth_lists must have the same length; got {len(segs)} and {len(gls)}"
        )
    if not segs:
        raise ValueError("segs is empty: no image to score")
    keys = ("covering", "PRI", "VI", "covering_num", "covering_den")
    per = {k: [] for k in keys}
    for i, (s, g) in enumerate(zip(segs, gls, strict=True)):
        try:
            r = region_scores(s, g)
        except ValueError as err:
            raise ValueError(f"image {i}: {err}") from err
        for k in keys:
            per[k].append(r[k])
    per = {k: np.asarray(v, dtype=np.float64) for k, v in per.items()}
    return {
        "covering": float(per["covering_num"].sum() / per["covering_den"].sum()),
        "PRI": float(per["PRI"].mean()),
        "VI": float(per["VI"].mean()),
        "n_images": len(segs),
        "per_image": per,
    }

r"""Non-variational baselines: k-means clustering and multi-level Otsu thresholding.

Both ignore geometry (no length term is minimised), which is exactly why they are useful
references: on a clean piecewise-constant image they already reach the minimum of the data
term of Eq. 1-2 of Kim & Ye 2019, and the gap between their Mumford–Shah energy and a
level-set method's energy is the price of their ragged boundaries.

Both return :class:`varseg.Segmentation` like every other method, with

* ``labels`` sorted by mean intensity (label 0 the darkest class; for colour images, by the
  mean over channels of the class means), so that a K-level image is recovered with the
  labels ``0 .. K-1`` in intensity order;
* hard one-hot ``memberships`` (the characteristic functions χ_n of Eq. 3);
* one record of the shared energy (:func:`varseg.energy.energy_from_labels`, Eq. 1), computed
  on the image scaled to [0, 1] by its global min and max
  (:func:`varseg.energy.normalise_image`, as :func:`varseg.chan_vese` does), with weight
  ``lam`` of the length term; ``params["lam"]`` holds that λ and ``params["normalised"]`` is
  True. The recorded energy is therefore the shared energy of the comparison harness
  (:func:`varseg.compare.shared_energy`) whatever the scale of the input (the same number
  for an image and 255 times it). ``means`` are on that normalised scale too;
  ``extras["image_min"]`` and ``extras["image_scale"]`` map them back
  (``x = image_min + image_scale * y``). The default ``lam = 0.125`` is the λ of Chan–Vese's
  default ``mu = 0.25`` (:math:`\lambda = \mu/2`).

The clustering itself also runs on the normalised image: k-means and Otsu are invariant to
an affine change of intensity, and the normalisation keeps them finite at any scale
(1e-300 .. 1e300).
"""

from __future__ import annotations

import inspect
import time
import warnings

import numpy as np

from ._validation import (
    as_channels_first,
    check_int,
    check_labels,
    check_n_phases,
    check_nonnegative,
)
from .energy import energy_from_labels, normalise_image
from .result import Segmentation

__all__ = [
    "kmeans_segment",
    "otsu_segment",
    "DEFAULT_LAM",
    "sort_labels_by_intensity",
    "OTSU_MAX_PHASES",
]

#: Default λ of the recorded energy: Chan–Vese's default μ = 0.25 halved (images in [0, 1]).
DEFAULT_LAM = 0.125

#: Largest K of :func:`otsu_segment`: the exhaustive multi-Otsu search costs
#: :math:`\binom{\mathrm{nbins}}{K-1}` (measured on 32²: 0.06 s at K = 4, 6.7 s at K = 5 with
#: 256 bins; K = 6 runs for minutes).
OTSU_MAX_PHASES = 5

#: Default histogram bins of :func:`otsu_segment` for K = 5 (256 for smaller K).
_OTSU_BINS_K5 = 64

#: Rec. 601 luma weights used to reduce an RGB image to one channel for Otsu.
_LUMA = np.array([0.299, 0.587, 0.114])


def sort_labels_by_intensity(x, labels, n_phases):
    """Relabel so that class means increase with the label (empty classes last).

    Parameters
    ----------
    x : ndarray, shape (C,) + S
        Channels-first image.
    labels : ndarray of int, shape S
        Labels in ``0 .. n_phases - 1``.
    n_phases : int

    Returns
    -------
    ndarray of int64, shape S

    Raises
    ------
    TypeError, ValueError
        Labels that are not integers or not in ``0 .. n_phases - 1``
        (:func:`varseg._validation.check_labels`).
    """
    lab, n_phases = check_labels(labels, n_phases)
    flat = lab.ravel()
    counts = np.bincount(flat, minlength=n_phases).astype(np.float64)
    level = x.reshape(x.shape[0], -1).mean(axis=0)
    sums = np.bincount(flat, weights=level, minlength=n_phases)
    means = np.where(counts > 0, sums / np.maximum(counts, 1), np.inf)
    order = np.argsort(means, kind="stable")  # order[new] = old
    lut = np.empty(n_phases, dtype=np.int64)
    lut[order] = np.arange(n_phases)
    return lut[lab]


def _check_lam(lam):
    return DEFAULT_LAM if lam is None else check_nonnegative(lam, "lam")


def _prepare(image, channel_axis, n_phases, lam):
    """Validate the inputs of a baseline.

    Return the channels-first image scaled to [0, 1], whether it was gray, K, λ and
    ``(image_min, image_scale)``.
    """
    x, gray = as_channels_first(image, channel_axis)
    k = check_n_phases(n_phases)
    lam = _check_lam(lam)
    x, xmin, scale = normalise_image(x, return_scale=True)
    return x, gray, k, lam, {"image_min": xmin, "image_scale": scale}


def _result(x, gray, labels, n_phases, lam, method, params, n_iter, converged, t0, extras):
    """``x`` is the normalised channels-first image: the recorded energy is the shared one."""
    energy = energy_from_labels(x, labels, lam, n_phases=n_phases)
    elapsed = time.perf_counter() - t0
    memberships = (
        labels[None] == np.arange(n_phases).reshape((n_phases,) + (1,) * labels.ndim)
    ).astype(np.float64)
    means = np.asarray(energy.means)
    if gray:
        means = means[:, 0]
    return Segmentation(
        labels=labels,
        memberships=memberships,
        means=means,
        energy=np.array([energy.total], dtype=np.float64),
        n_iter=int(n_iter),
        converged=bool(converged),
        elapsed=float(elapsed),
        method=method,
        params=dict(params, lam=lam, normalised=True),
        times=np.array([elapsed], dtype=np.float64),
        extras=dict(extras),
    )


def _kmeans2(data, init, max_iter, seed):
    from scipy.cluster.vq import kmeans2

    kw = {}
    if seed is not None:
        rng = np.random.default_rng(seed)
        kw = {"rng": rng} if "rng" in inspect.signature(kmeans2).parameters else {"seed": rng}
    minit = "++" if isinstance(init, int) else "matrix"
    with warnings.catch_warnings():  # an empty cluster keeps its centroid: not an error here
        warnings.simplefilter("ignore", UserWarning)
        return kmeans2(data, init, iter=max_iter, minit=minit, missing="warn", **kw)


def _lloyd(data, k, max_iter, seed, chunk=5):
    """kmeans2 in chunks of ``chunk`` iterations until the labels stop changing."""
    centroids, lab = _kmeans2(data, k, min(chunk, max_iter), seed)
    n_iter = min(chunk, max_iter)
    converged = False
    while n_iter < max_iter:
        step = min(chunk, max_iter - n_iter)
        new_c, new_lab = _kmeans2(data, centroids, step, None)
        n_iter += step
        same = np.array_equal(new_lab, lab)
        centroids, lab = new_c, new_lab
        if same:
            converged = True
            break
    return centroids, lab, n_iter, converged


def kmeans_segment(image, n_phases=2, *, channel_axis=None, seed=None, max_iter=100, lam=None):
    r"""Segment by k-means clustering of the pixel intensities (or colours).

    Lloyd's algorithm (:func:`scipy.cluster.vq.kmeans2`, k-means++ initialisation from a
    generator seeded with ``seed``) on the N pixel vectors :math:`x(r) \in \mathbb{R}^C`. It
    minimises the data term of the piecewise-constant Mumford–Shah energy (Eq. 1-2 with
    λ = 0): :math:`\sum_n \sum_{r \in \Omega_n} \|x(r) - c_n\|^2`, with the means of Eq. 4.

    Parameters
    ----------
    image : array_like, shape (H, W) or (D, H, W), or with a channel axis
    n_phases : int
        Number of clusters K (≥ 2).
    channel_axis : int or None
        Axis of the colour channels (scikit-image convention); None for gray.
    seed : int or numpy.random.Generator, optional
        Seed of the k-means++ initialisation (same seed, same result).
    max_iter : int
        Lloyd iterations (``iter`` of :func:`~scipy.cluster.vq.kmeans2`).
    lam : float, optional
        λ of the recorded shared energy (Eq. 1), default :data:`DEFAULT_LAM` = 0.125.

    Returns
    -------
    Segmentation
        ``method="kmeans"``; labels sorted by mean intensity; one record of the shared energy
        on the [0, 1]-normalised image (module docstring), means on that scale.
        :func:`~scipy.cluster.vq.kmeans2` is run in chunks of 5 iterations, restarted from
        the previous centroids, until a chunk leaves the labels unchanged (``converged``
        True) or ``max_iter`` iterations were run; ``n_iter`` counts them. An image with at
        most K distinct pixel values gets one cluster per value (the exact minimiser, some
        classes empty) with ``n_iter = 0``.

    Raises
    ------
    TypeError
        Image of a non-numeric type.
    ValueError
        Bad image (empty, NaN/Inf, wrong dimensions), ``n_phases`` < 2 or more clusters than
        pixels, ``max_iter`` < 1, negative or non-finite ``lam``.
    """
    t0 = time.perf_counter()
    x, gray, k, lam, extras = _prepare(image, channel_axis, n_phases, lam)
    max_iter = check_int(max_iter, "max_iter")
    spatial = x.shape[1:]
    data = x.reshape(x.shape[0], -1).T  # (N, C)
    if data.shape[0] < k:
        raise ValueError(f"n_phases={k} exceeds the number of pixels {data.shape[0]}")
    uniq, inverse = np.unique(data, axis=0, return_inverse=True)
    if len(uniq) <= k:  # at most K distinct colours: one cluster each is the exact minimiser
        lab, n_iter, converged = inverse.reshape(-1), 0, True
    else:
        _, lab, n_iter, converged = _lloyd(data, k, max_iter, seed)
    labels = sort_labels_by_intensity(x, lab.reshape(spatial), k)
    params = {
        "n_phases": k,
        "seed": seed if isinstance(seed, (int, type(None))) else None,
        "max_iter": max_iter,
        "channel_axis": channel_axis,
    }
    return _result(x, gray, labels, k, lam, "kmeans", params, n_iter, converged, t0, extras)


def otsu_segment(image, n_phases=2, *, channel_axis=None, lam=None, nbins=None):
    r"""Segment by multi-level Otsu thresholding (:func:`skimage.filters.threshold_multiotsu`).

    The K − 1 thresholds maximise the between-class variance of the intensity histogram,
    i.e. minimise the within-class variance — the data term of Eq. 1-2 restricted to
    partitions by intensity thresholds. Colour images are thresholded on their **luminance**
    :math:`0.299 R + 0.587 G + 0.114 B` (Rec. 601; for other channel counts, the mean over
    channels); the recorded energy still uses all channels.

    Parameters
    ----------
    image : array_like, shape (H, W) or (D, H, W), or with a channel axis
    n_phases : int
        Number of classes K, 2 ≤ K ≤ :data:`OTSU_MAX_PHASES` = 5 (K − 1 thresholds; the
        exhaustive search is combinatorial in K, use :func:`kmeans_segment` for more).
    channel_axis : int or None
        Axis of the colour channels (scikit-image convention); None for gray.
    lam : float, optional
        λ of the recorded shared energy (Eq. 1), default :data:`DEFAULT_LAM` = 0.125.
    nbins : int, optional
        Histogram bins of the threshold search; default 256, and 64 for K = 5 (0.01 s instead
        of 7 s on a 32² image).

    Returns
    -------
    Segmentation
        ``method="otsu"``; label n is the n-th intensity band (sorted by intensity);
        ``extras["thresholds"]`` the thresholds on the [0, 1]-normalised image (on its
        luminance for colour images); one record of the shared energy on the normalised image
        (module docstring); ``n_iter = 1``, ``converged = True``.

    Raises
    ------
    TypeError
        Image of a non-numeric type.
    ValueError
        Bad image, ``n_phases`` outside 2..5, ``nbins`` < 2, negative ``lam``, or an image
        with fewer distinct values than needed.
    """
    from skimage.filters import threshold_multiotsu

    t0 = time.perf_counter()
    x, gray, k, lam, extras = _prepare(image, channel_axis, n_phases, lam)
    if k > OTSU_MAX_PHASES:
        raise ValueError(
            f"n_phases must be at most {OTSU_MAX_PHASES} for otsu_segment (the "
            f"multi-Otsu search is combinatorial in K); got {k}. Use "
            f"kmeans_segment for more classes"
        )
    if nbins is None:
        nbins = _OTSU_BINS_K5 if k == OTSU_MAX_PHASES else 256
    nbins = check_int(nbins, "nbins", minimum=2)
    if x.shape[0] == 1:
        lum = x[0]
    elif x.shape[0] == 3:
        lum = np.tensordot(_LUMA, x, axes=(0, 0))
    else:
        lum = x.mean(axis=0)
    try:
        with warnings.catch_warnings():  # lum is one channel: a (D, H, 3) volume is no RGB
            warnings.filterwarnings("ignore", message=".*looks like that of an RGB image")
            thresholds = threshold_multiotsu(lum, classes=k, nbins=nbins)
    except ValueError as err:
        raise ValueError(
            f"otsu_segment: cannot find {k - 1} thresholds for this image ({err})"
        ) from err
    labels = np.digitize(lum, bins=thresholds).astype(np.int64)
    labels = sort_labels_by_intensity(x, labels, k)
    params = {"n_phases": k, "channel_axis": channel_axis, "nbins": nbins}
    res = _result(x, gray, labels, k, lam, "otsu", params, 1, True, t0, extras)
    res.extras["thresholds"] = np.asarray(thresholds, dtype=np.float64)
    return res

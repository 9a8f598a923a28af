r"""Initial level-set functions for the (multiphase) Chan–Vese solver.

:func:`initial_level_sets` builds the :math:`m` initial level sets
:math:`\phi_1, \dots, \phi_m` (shape ``(m,) + S``) of :func:`varseg.levelset.chan_vese`.
For :math:`m = 1` and a 2D shape every named initialisation is exactly the one of
``skimage.segmentation.chan_vese`` (same formula, computed in float64), so the two solvers start
from the same level set:

``"checkerboard"``
    :math:`\phi(y, x) = \sin(\pi y / 5)\,\sin(\pi x / 5)` (Getreuer 2012: fast convergence);
    3D: :math:`\sin(\pi z/5)\sin(\pi y/5)\sin(\pi x/5)`. For :math:`m > 1` level set
    :math:`j \ge 1` is the same checkerboard shifted by half a square (2.5 pixels) along spatial
    axis :math:`-j` (the last axis for :math:`j = 1`, the one before for :math:`j = 2`). The sign
    pattern of :math:`\phi_1` is :math:`s(x)t(y)`, of :math:`\phi_2` :math:`s'(x)t(y)` and of
    :math:`\phi_3` :math:`s(x)t'(y)` with :math:`(s, s')` and :math:`(t, t')` running through all
    four sign pairs, so every one of the :math:`2^m` phases is present from the start (a plain
    copy of the checkerboard would only produce the two phases "inside all" and "outside all").
``"disk"``
    :math:`(r - d)/r` with :math:`d` the Euclidean distance to the centre pixel
    ``int((n - 1) / 2)`` of each axis and :math:`r` the smallest centre coordinate (the disk
    touches the image border along the smallest dimension).
``"small disk"``
    :math:`(r - d)/(3r)` with half that radius.

    For :math:`m > 1` the disks of the level sets are moved apart by :math:`\pm r/2` (level set
    1 to the left, 2 to the right, 3 down) so that they overlap like a Venn diagram and all
    :math:`2^m` phases are present.
``"random"``
    Independent Gaussian white noise per level set, smoothed by a Gaussian of standard deviation
    2 pixels and scaled to a maximum absolute value of 1; reproducible with ``seed``.
``"kmeans"`` (needs the image)
    Data-driven start for the multiphase model: the pixels (gray values, or their projection on
    the first principal axis of the colours) are split into :math:`2^m` clusters by *optimal*
    1D k-means on a 256-bin histogram (dynamic programming, deterministic); the clusters,
    ordered along that axis, get the phase codes of a Gray code (rank ``r`` → ``r ^ (r >> 1)``)
    so that clusters adjacent in intensity differ in one level set only, and
    :math:`\phi_j` is the signed distance (in pixels, divided by 2) to the boundary of the
    pixels whose code has bit j = 0 (positive there). A signed distance, not :math:`\pm 1`:
    on a flat :math:`\phi` the curvature coefficients :math:`(\eta + |\nabla\phi|^2)^{-1/2}`
    are huge and freeze the level set whatever the data term. The Vese–Chan flow
    only moves a pixel between phases that differ in one level set at a time, and the
    checkerboard's straight zero lines are stationary under the curvature term, so from a
    checkerboard a level set can stay a checkerboard wherever the data term does not
    separate its two sides; ``"kmeans"`` avoids both traps.
``"lloyd"`` (needs the image)
    As ``"kmeans"``, but the clusters are those of Lloyd's k-means on the full colour vectors
    (:func:`lloyd_partition`, k-means++ start from ``rng``), ranked along the first
    principal axis: for colour images whose regions differ in hue more than in brightness.

An array is accepted as well: shape ``S`` (only for :math:`m = 1`) or ``(m,) + S``.
"""

from __future__ import annotations

import numpy as np

__all__ = ["initial_level_sets", "kmeans_partition", "lloyd_partition", "INIT_NAMES"]

INIT_NAMES = ("checkerboard", "disk", "small disk", "random", "kmeans", "lloyd")

_SQUARE = 5.0  # checkerboard square size in pixels (scikit-image's value)


def _checkerboard(shape, shifts, out=None):
    """Product of ``sin(pi/5 (x_a + shift_a))`` over the axes (scikit-image's formula and
    order), written into ``out`` when given; broadcast axis by axis so that only the last
    product touches the whole array."""
    sf = np.pi / _SQUARE
    nd = len(shape)
    acc = np.ones((1,) * nd)
    for a, n in enumerate(shape):
        v = np.arange(n, dtype=np.float64)
        if shifts[a]:
            v = v + shifts[a]
        v = np.sin(v * sf).reshape((1,) * a + (n,) + (1,) * (nd - a - 1))
        if a == nd - 1 and out is not None:
            return np.multiply(acc, v, out=out)
        acc = acc * v
    return acc


def _disk(shape, small, offset):
    from scipy.ndimage import distance_transform_edt

    centre = [int((n - 1) / 2) for n in shape]
    radius = float(min(centre))
    if small:
        radius /= 2.0
    if radius <= 0:  # degenerate (an axis of length <= 2): avoid a division by zero
        radius = 1.0
    pos = tuple(
        int(np.clip(round(c + o * radius), 0, n - 1))
        for c, o, n in zip(centre, offset, shape, strict=True)
    )
    res = np.ones(shape)
    res[pos] = 0.0
    d = distance_transform_edt(res)
    return (radius - d) / (radius * 3.0 if small else radius)


def _disk_offsets(j, nd, m):
    """Offset (in radii) of the centre of level set j's disk: a Venn arrangement for m > 1."""
    off = [0.0] * nd
    if m == 1:
        return off
    if j == 0:
        off[-1] = -0.5
    elif j == 1:
        off[-1] = 0.5
    else:
        off[-2] = 0.5
    return off


def _signed_distance(inside, scale=2.0):
    """Return a signed distance: ``(d - 1/2) / scale`` inside, ``-(d - 1/2) / scale`` outside.

    d is the Euclidean distance to the nearest pixel of the other side (so neighbours across
    the boundary get +-1/4); +-1 when one side is empty.
    """
    from scipy.ndimage import distance_transform_edt

    if inside.all() or not inside.any():
        return np.where(inside, 1.0, -1.0)
    din = distance_transform_edt(inside)
    dout = distance_transform_edt(~inside)
    return np.where(inside, din - 0.5, -(dout - 0.5)) / scale


def _random(shape, m, rng):
    from scipy.ndimage import gaussian_filter

    out = np.empty((m,) + tuple(shape))
    for j in range(m):
        g = gaussian_filter(rng.standard_normal(shape), 2.0, mode="nearest")
        s = np.abs(g).max()
        out[j] = g / s if s > 0 else g
    return out


def kmeans_partition(image, K, bins=256):
    r"""Optimal 1D k-means partition of an image into K intensity ranks (deterministic).

    The pixels' values :math:`t(r)` (gray, or the projection of the colours on their first
    principal axis, oriented along the mean intensity) are binned into ``bins`` bins and split
    into K contiguous clusters minimising the within-cluster sum of squares
    :math:`\sum_k \sum_{r \in \Omega_k} (t(r) - \bar t_k)^2` (the data term of Eq. 1 with
    λ = 0) exactly, by dynamic programming over the bins (Wang & Song 2011). Used to start
    the multiphase Chan–Vese flow (``init="kmeans"``) and the per-image network
    (:func:`varseg.neural_segment`), both of which otherwise fall into merged-region
    local minima.

    Parameters
    ----------
    image : ndarray, shape (C,) + S
        Channels-first image.
    K : int
        Number of clusters.
    bins : int
        Histogram resolution.

    Returns
    -------
    ndarray of int64, shape S
        Rank 0..K-1 of every pixel's cluster, ordered along the intensity axis (all 0 for a
        constant image).

    References
    ----------
    .. [1] H. Wang and M. Song, "Ckmeans.1d.dp: optimal k-means clustering in one dimension
           by dynamic programming", The R Journal 3(2), 29-33, 2011.
    """
    x = np.asarray(image, dtype=np.float64)
    C = x.shape[0]
    v = x.reshape(C, -1)
    if C == 1:
        t = v[0]
    else:  # first principal axis, oriented along the mean intensity
        vc = v - v.mean(axis=1, keepdims=True)
        _, vecs = np.linalg.eigh(vc @ vc.T)
        a = vecs[:, -1]
        if a.sum() < 0:
            a = -a
        t = a @ vc
    lo, hi = float(t.min()), float(t.max())
    if hi <= lo:
        return np.zeros(x.shape[1:], dtype=np.int64)
    idx = np.minimum(((t - lo) / (hi - lo) * bins).astype(np.int64), bins - 1)
    n = np.bincount(idx, minlength=bins).astype(np.float64)
    s1 = np.bincount(idx, weights=t, minlength=bins)
    s2 = np.bincount(idx, weights=t * t, minlength=bins)
    p0, p1, p2 = (np.concatenate([[0.0], np.cumsum(a)]) for a in (n, s1, s2))
    # cost[i, j]: within-cluster sum of squares of bins i .. j-1 (i < j)
    cn = p0[None, :] - p0[:, None]
    cs = p1[None, :] - p1[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        cost = (p2[None, :] - p2[:, None]) - np.where(cn > 0, cs * cs / cn, 0.0)
    cost = np.maximum(cost, 0.0)
    cost[np.tril_indices(bins + 1)] = np.inf
    best = cost[0].copy()  # best[j]: one cluster over bins 0 .. j-1
    arg = []
    for _ in range(1, K):
        tot = best[:, None] + cost
        arg.append(np.argmin(tot, axis=0))
        best = tot[arg[-1], np.arange(bins + 1)]
    cuts = []
    j = bins
    for a in reversed(arg):
        j = int(a[j])
        cuts.append(j)
    cuts = np.array(sorted(cuts))
    return np.searchsorted(cuts, idx, side="right").reshape(x.shape[1:]).astype(np.int64)


def lloyd_partition(image, K, rng=None, max_iter=30):
    r"""Partition the pixel vectors into K clusters with k-means (Lloyd).

    The clusters are ranked along the first principal axis of the data.

    Unlike :func:`kmeans_partition`, which clusters a 1D projection, this clusters the full
    C-dimensional colours, so two colours of equal brightness (a blue sky and a green meadow)
    can fall into different clusters. Lloyd's algorithm (:func:`scipy.cluster.vq.kmeans2`,
    k-means++ start from ``rng``) minimises the data term of Eq. 1 with λ = 0 locally.

    Parameters
    ----------
    image : ndarray, shape (C,) + S
    K : int
    rng : numpy.random.Generator, optional
        Seed of the k-means++ start (default: a fixed generator, seed 0).
    max_iter : int
        Lloyd iterations.

    Returns
    -------
    ndarray of int64, shape S
        Cluster ranks 0..K-1, ordered by the projection of the cluster means on the first
        principal axis (oriented along the mean intensity).

    References
    ----------
    .. [1] S. P. Lloyd, "Least squares quantization in PCM", IEEE Trans. Inf. Theory 28(2),
           1982; D. Arthur and S. Vassilvitskii, "k-means++", SODA 2007.
    """
    import warnings

    from scipy.cluster.vq import kmeans2

    x = np.asarray(image, dtype=np.float64)
    d = x.reshape(x.shape[0], -1).T
    if np.ptp(d, axis=0).max() == 0:
        return np.zeros(x.shape[1:], dtype=np.int64)
    rng = np.random.default_rng(0) if rng is None else rng
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # an empty cluster is reported there
        cent, lab = kmeans2(d, K, iter=max_iter, minit="++", seed=rng)
    vc = d - d.mean(0)
    _, vecs = np.linalg.eigh(vc.T @ vc)
    a = vecs[:, -1]
    if a.sum() < 0:
        a = -a
    order = np.argsort(np.argsort(cent @ a))
    return order[lab].reshape(x.shape[1:]).astype(np.int64)


def _gray_code_phases(image, K, bins=256):
    """Return the phase of every pixel: the Gray code of its :func:`kmeans_partition` rank.

    See the module docstring.
    """
    rank = kmeans_partition(image, K, bins)
    return rank ^ (rank >> 1)


def check_regions(n_regions, m, init="kmeans"):
    """Validate the number of regions of a clustering start for ``m`` level sets.

    Returns ``2**m`` for None, else the integer; refused outside ``1..2**m`` or with an
    ``init`` that is not a clustering (``"kmeans"``, ``"lloyd"``).
    """
    if n_regions is None:
        return 2**m
    if not (isinstance(init, str) and init in ("kmeans", "lloyd")):
        what = f"init={init!r}" if isinstance(init, str) else "an init array"
        raise ValueError(f'init_regions={n_regions!r} needs init="kmeans" or "lloyd"; got {what}')
    if isinstance(n_regions, bool) or int(n_regions) != n_regions or not 1 <= n_regions <= 2**m:
        raise ValueError(
            f"init_regions must be an integer in 1..{2**m} (m={m} level sets give "
            f"{2**m} phases); got {n_regions!r}"
        )
    return int(n_regions)


def initial_level_sets(
    shape, m, init="checkerboard", rng=None, image=None, n_regions=None, dtype=np.float64
):
    """Build initial level sets ``(m,) + shape`` (float64) for the Chan–Vese solver.

    Parameters
    ----------
    shape : tuple of int
        Spatial shape S, ``(H, W)`` or ``(D, H, W)``.
    m : int
        Number of level sets (``log2`` of the number of phases), 1 to 3.
    init : {"checkerboard", "disk", "small disk", "random", "kmeans"} or ndarray
        Named initialisation (module docstring) or an array of shape S (``m = 1``) or
        ``(m,) + S``.
    rng : numpy.random.Generator, optional
        Random generator for ``"random"`` (a fresh default generator when None).
    image : ndarray, shape (C,) + S, optional
        The (normalised, channels-first) image, needed by ``"kmeans"``.
    n_regions : int, optional
        Number of clusters of a ``"kmeans"`` / ``"lloyd"`` start, 1 to :math:`2^m` (default
        :math:`2^m`). With fewer clusters than phases, the ranks ``0..n_regions-1`` take the
        first Gray codes and the other phases start empty: the usual way to run Vese–Chan
        with a number of regions that is not a power of two (an empty phase has mean 0, as
        in scikit-image, and gains pixels only where that lowers the energy).
    dtype : {numpy.float64, numpy.float32}
        Type of the result: the float64 level sets rounded to it (the checkerboard is
        computed in float64 and written rounded, without a float64 copy).

    Returns
    -------
    ndarray of ``dtype`` (float64 by default), shape (m,) + S

    Raises
    ------
    ValueError
        Unknown name, wrong array shape, non-finite array values, ``n_regions`` out of range
        or given with a start that is not a clustering.
    """
    dtype = np.dtype(dtype)
    if isinstance(init, str) and init == "checkerboard":
        check_regions(n_regions, m, init)
        return _checkerboards(tuple(int(n) for n in shape), m, dtype)
    phi = _named_or_array(shape, m, init, rng, image, n_regions)
    return phi if dtype == np.float64 else phi.astype(dtype)


def _checkerboards(shape, m, dtype):
    """The m shifted checkerboards of ``initial_level_sets`` (module docstring), in ``dtype``."""
    nd = len(shape)
    out = np.empty((m,) + shape, dtype=dtype)
    for j in range(m):
        shifts = [0.0] * nd
        if j >= 1:
            shifts[-j] = _SQUARE / 2.0
        _checkerboard(shape, shifts, out[j])
    return out


def _named_or_array(shape, m, init, rng, image, n_regions):
    """:func:`initial_level_sets` (float64) for every start but the checkerboard."""
    shape = tuple(int(n) for n in shape)
    nd = len(shape)
    k = check_regions(n_regions, m, init)
    if isinstance(init, str):
        if init in ("disk", "small disk"):
            return np.stack(
                [_disk(shape, init == "small disk", _disk_offsets(j, nd, m)) for j in range(m)]
            )
        if init == "random":
            if rng is None:
                rng = np.random.default_rng()
            return _random(shape, m, rng)
        if init in ("kmeans", "lloyd"):
            if image is None:
                raise ValueError(f'init="{init}" needs the image')
            if init == "kmeans":
                code = _gray_code_phases(image, k)
            else:
                rank = lloyd_partition(image, k, rng)
                code = rank ^ (rank >> 1)
            return np.stack([_signed_distance(((code >> j) & 1) == 0) for j in range(m)])
        raise ValueError(
            f"unknown init {init!r}; expected one of {list(INIT_NAMES)} or an "
            f"array of shape {(m,) + shape}"
        )
    arr = np.asarray(init)
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise ValueError(f"init must be a name or a numeric array; got dtype {arr.dtype}")
    expected = (m,) + shape
    if m == 1 and arr.shape == shape:
        arr = arr[None]
    if arr.shape != expected:
        alt = f" or {shape}" if m == 1 else ""
        raise ValueError(
            f"init array has the wrong shape: expected {expected}{alt} "
            f"(m={m} level sets), got {arr.shape}"
        )
    arr = np.array(arr, dtype=np.float64)
    if not np.isfinite(arr).all():
        raise ValueError("init array contains NaN or Inf values")
    return arr

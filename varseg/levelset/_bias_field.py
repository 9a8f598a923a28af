r"""Bias-field level set of Li et al. 2011 (local intensity clustering, LIC).

Image model (Eq. 5 of Kim & Ye 2019; Li Eq. 1): :math:`x(r) = b(r)\,t(r) +
\text{noise}` with a smooth, positive bias field :math:`b` and a piecewise-constant true
image :math:`t = c_i` on region :math:`\Omega_i`. :func:`bias_field_levelset` minimises Li's
energy

.. math::

    F(\phi, c, b) = \underbrace{\sum_{i=1}^K \int e_i(r)\, M_i(\phi(r))\,dr}_{E_{LIC}
    \text{ (Eq. 6)}} + \nu \sum_j \int \delta_\varepsilon(\phi_j)|\nabla\phi_j|\,dr
    + \mu \sum_j \int \tfrac12(|\nabla\phi_j| - 1)^2\,dr

by alternating (Li et al. 2011, Section III-C / IV) a few gradient-descent steps of the level sets
:math:`\phi`, then the closed-form centres :math:`c`, then the closed-form bias :math:`b`.
"""

from __future__ import annotations

import logging
import time
import warnings
from functools import partial

import numpy as np

from .._jit import ensure_compiled
from .._threads import solver_threads, team
from .._validation import (
    as_channels_first,
    check_choice,
    check_int,
    check_n_phases,
    check_positive,
    renamed_argument,
    resolve_rng,
)
from ..energy import energy_from_labels, gaussian_kernel, normalise_image
from ..result import Segmentation
from . import _lic_kernels
from ._init import kmeans_partition

__all__ = ["bias_field_levelset"]

logger = logging.getLogger(__name__)

_TRUNCATE = 2.0  # Li's kernel: a (2*round(2σ)+1)-wide window
_INTERNAL_MAX = 255.0  # internal intensity scale [0, 255], the scale Li's ν is tuned for
_NU_DEFAULT = 0.001 * _INTERNAL_MAX**2  # Li's ν = 0.001·255²
_LAM_DEFAULT = 0.125  # λ of the recorded shared energy: Chan–Vese's default μ/2
_INITS = ("regions", "kmeans", "otsu", "random")
_DEPRECATED_INITS = {"checkerboard": "regions"}
_BLOCK = 8  # block width (pixels) of the "regions" and "random" initialisations
_C0 = 2.0  # initial level sets are binary steps ±_C0·ε
_BIAS_FLOOR = 1e-6  # the returned bias is clipped below here so that image / bias is finite
_COMPILE_S = 30  # cold-cache compile of the kernels: 61 s measured at load 5 on 2 cores
_FFT_TAPS = 41  # kernels longer than this (sigma > 10) are applied by FFT


# --------------------------------------------------------------------------------------
# Closed-form updates (NumPy / SciPy; the level-set loop is in _lic_kernels)
# --------------------------------------------------------------------------------------
def _smooth(u, k1):
    """:math:`K * u` with the separable kernel ``k1`` (1D factor of :func:`gaussian_kernel`).

    Zero padding outside the image (``mode="constant"``), as Li's ``conv2(·, K, 'same')``
    and :func:`varseg.energy.lic_energy`; the nD kernel of :func:`gaussian_kernel` is the
    outer product of its normalised 1D factor, so this equals the full nD correlation.
    """
    out = np.asarray(u, dtype=np.float64)
    if out.ndim == 2 and k1.size <= _FFT_TAPS and min(out.shape) >= k1.size:
        res = np.empty_like(out)
        _lic_kernels.smooth_2d(out, k1, np.empty_like(out), res)
        return res
    if k1.size > _FFT_TAPS:  # wide kernel: FFT per axis (O(n log n) instead of O(n r))
        from scipy import signal  # imported here: scipy.signal costs seconds to import

        for ax in range(out.ndim):
            shape = [1] * out.ndim
            shape[ax] = k1.size
            out = signal.fftconvolve(out, k1.reshape(shape), mode="same", axes=ax)
        return out
    from scipy import ndimage

    for ax in range(out.ndim):
        out = ndimage.correlate1d(out, k1, axis=ax, mode="constant", cval=0.0)
    return out


def _smooth_pair(pair, k1, threads=1):
    """:math:`K * u` of both arrays of ``pair`` (shape (2,) + S, float64, C order): one
    kernel call for the two (:func:`_lic_kernels.smooth_stack`) in 2D, or one per thread of
    :func:`varseg._threads.team` when ``threads > 1``, else :func:`_smooth` of each. Returns
    the two smoothed arrays."""
    if pair.ndim == 3 and k1.size <= _FFT_TAPS and min(pair.shape[1:]) >= k1.size:
        res = np.empty_like(pair)
        tmp = np.empty_like(pair)
        if threads > 1:  # one array per thread (the same arithmetic as one call for both)
            team(1).run(
                [
                    partial(
                        _lic_kernels.smooth_stack,
                        pair[c : c + 1],
                        k1,
                        tmp[c : c + 1],
                        res[c : c + 1],
                    )
                    for c in (0, 1)
                ]
            )
        else:
            _lic_kernels.smooth_stack(pair, k1, tmp, res)
        return res[0], res[1]
    return _smooth(pair[0], k1), _smooth(pair[1], k1)


class _Data:
    r"""Fixed data of one solve.

    Internal image ``x`` (C,) + S on [0, 255] (0 outside the mask), mask ``inside`` (bool S)
    and its weights ``w``, 1D kernel ``k1``, ``k1w = K * w`` (``K * 1`` without a mask) and
    ``sx2`` = :math:`\sum_{ch} x^2`.
    """

    def __init__(self, x, inside, sigma):
        self.x, self.inside = x, inside
        self.masked = not bool(inside.all())
        self.w = inside.astype(np.float64)
        self.k1 = gaussian_kernel(sigma, 1, _TRUNCATE)
        self.k1w = _smooth(self.w, self.k1)
        self.sx2 = np.einsum("c...,c...->...", x, x)

    def moments(self, b, threads=1):
        """:math:`K * (w b)` and :math:`K * (w b^2)` (one smoothing call for both, on
        ``threads`` threads: :func:`_smooth_pair`)."""
        pair = np.empty((2,) + self.w.shape)
        np.multiply(self.w, b, out=pair[0])
        np.multiply(pair[0], b, out=pair[1])
        return _smooth_pair(pair, self.k1, threads)


def _memberships_labels(phi, eps, n_phases):
    r"""Soft memberships :math:`M_i(\phi)` of Li 2011 (Section IV), shape (K,) + S, and
    their argmax (first maximum), shape S, in one kernel
    (:func:`_lic_kernels.memberships_labels`).

    K = 2: :math:`(H_1, 1 - H_1)`; K = 3: :math:`(H_1 H_2, H_1(1 - H_2), 1 - H_1)`;
    K = 4: :math:`(H_1 H_2, H_1(1 - H_2), (1 - H_1)H_2, (1 - H_1)(1 - H_2))`, with
    :math:`H_j = H_\varepsilon(\phi_j)`.
    """
    phi = np.ascontiguousarray(phi, dtype=np.float64)
    shape = phi.shape[1:]
    memb = np.empty((n_phases,) + shape)
    labels = np.empty(shape, dtype=np.int64)
    _lic_kernels.memberships_labels(
        phi.reshape(phi.shape[0], -1), float(eps), memb.reshape(n_phases, -1), labels.reshape(-1)
    )
    return memb, labels


def _memberships(phi, eps, n_phases):
    """The soft memberships of :func:`_memberships_labels`, shape (K,) + S."""
    return _memberships_labels(phi, eps, n_phases)[0]


def _level_sets_from_labels(labels, n_phases, c0):
    """Binary level sets ±c0 whose sign pattern gives ``labels`` (inverse of the memberships)."""
    lab = np.asarray(labels)
    if n_phases == 2:
        return np.where(lab == 0, c0, -c0)[None].astype(np.float64)
    p1 = np.where(lab <= 1, c0, -c0)  # phases 0, 1 inside level set 1
    if n_phases == 3:
        p2 = np.where(lab == 1, -c0, c0)  # phase 0 inside, phase 1 outside level set 2
    else:
        p2 = np.where((lab == 0) | (lab == 2), c0, -c0)
    return np.stack([p1, p2]).astype(np.float64)


def _update_means(data, memb, kb, kb2):
    r"""Centres :math:`c_i` minimising :math:`E_{LIC}` for fixed :math:`M, b` (Li Eq. 21/34).

    .. math:: c_i = \frac{\int_\Omega (K * wb)\, x\, M_i\,dr}{\int_\Omega (K * wb^2)\, M_i\,dr}

    over the mask :math:`\Omega` (weights ``w``), per channel; a class with zero denominator
    gets :math:`c_i = 0` (as :func:`varseg.energy.lic_energy`). Returns (K, C).
    """
    x = data.x
    n_ch, n_k = x.shape[0], memb.shape[0]
    mf = (memb * data.w).reshape(n_k, -1)
    # einsum, not a BLAS product (see the energy record in _iterate); its sums run in another
    # order than BLAS's, which can move the iteration where the stopping rule ends a solve
    num = np.einsum("kn,cn->kc", mf, (x * kb).reshape(n_ch, -1))  # (K, C)
    den = np.einsum("kn,n->k", mf, kb2.reshape(-1))  # (K,)
    pos = den > 0
    return np.where(pos[:, None], num / np.where(pos, den, 1.0)[:, None], 0.0)


def _update_bias(data, memb, c, threads=1):
    r"""Bias :math:`b` minimising :math:`E_{LIC}` for fixed :math:`M, c` (Li Eq. 22/35).

    .. math:: b = \frac{K * (w\, x \cdot J^{(1)})}{K * (w J^{(2)})}, \quad
              J^{(1)} = \sum_i c_i M_i, \quad J^{(2)} = \sum_i |c_i|^2 M_i

    (one bias for all channels), then the gauge :math:`(b, c) \to (b/\alpha, \alpha c)` with
    :math:`\alpha` the mean of :math:`b` over the mask (every energy term is unchanged), so
    the bias has unit mean inside the mask. :math:`b = 1` outside the mask and where the
    denominator vanishes (there :math:`b` does not enter the energy). Returns ``(b, c)``;
    ``threads``: of the smoothing (:func:`_smooth_pair`).
    """
    shape, n = memb.shape[1:], data.w.size
    pair = np.empty((2,) + shape)
    num, den = pair[0], pair[1]
    _lic_kernels.bias_sources(
        data.x.reshape(-1, n),
        np.ascontiguousarray(c),
        memb.reshape(-1, n),
        data.w.reshape(-1),
        num.reshape(-1),
        den.reshape(-1),
    )
    num, den = _smooth_pair(pair, data.k1, threads)
    ok = den > 1e-12 * float(den.max())
    if data.masked:
        ok &= data.inside
    b = np.where(ok, num / np.where(ok, den, 1.0), 1.0)
    alpha = float(b[data.inside].mean()) if data.masked else float(b.mean())
    if alpha > 0:
        if data.masked:
            b[data.inside] /= alpha
        else:
            b /= alpha
        c = c * alpha
    return b, c


def _residuals(data, c, kb, kb2):
    r"""Local clustering residuals :math:`e_i` (Li Eq. 17; the data force), (K,) + S.

    .. math:: e_i = w\,\big(x^2 (K * w) - 2 c_i x (K * wb) + c_i^2 (K * wb^2)\big)

    summed over channels; zero outside the mask, so the background exerts no force.
    """
    n = data.w.size
    e = np.empty((c.shape[0],) + kb.shape)
    _lic_kernels.residuals(
        data.x.reshape(-1, n),
        np.ascontiguousarray(c),
        data.sx2.reshape(-1),
        data.k1w.reshape(-1),
        kb.reshape(-1),
        kb2.reshape(-1),
        data.w.reshape(-1),
        e.reshape(c.shape[0], -1),
    )
    return e


def _hard_labels(data, labels, c):
    """The argmax ``labels`` of the memberships (changed in place) inside the mask; outside,
    the nearest centre (b = 1 there)."""
    if data.masked:
        out = ~data.inside
        d2 = ((data.x[:, out][None] - c[:, :, None]) ** 2).sum(1)  # (K, n_out)
        labels[out] = np.argmin(d2, axis=0)
    return labels


# --------------------------------------------------------------------------------------
# Checks, initialisation, warm-up
# --------------------------------------------------------------------------------------
def _check_mask(mask, shape):
    """Boolean mask of shape S (None: every pixel), with at least 2 pixels inside."""
    if mask is None:
        return np.ones(shape, dtype=bool)
    arr = np.asarray(mask)
    if arr.shape != shape:
        raise ValueError(f"mask must have the image's spatial shape {shape}; got {arr.shape}")
    if not (arr.dtype == bool or np.issubdtype(arr.dtype, np.integer)):
        raise ValueError(f"mask must be boolean (or integer 0/1); got dtype {arr.dtype}")
    inside = arr != 0
    if np.count_nonzero(inside) < 2:
        raise ValueError(f"mask must select at least 2 pixels; got {np.count_nonzero(inside)}")
    return inside


def _check_sigma_dt(sigma, dt, mu, shape):
    """Kernel no wider than the image; explicit-scheme bound mu*dt <= 1/(2d) (Li et al. 2010)."""
    width = 2 * max(1, int(round(_TRUNCATE * sigma))) + 1
    if width > max(shape):
        raise ValueError(
            f"sigma={sigma!r} gives a kernel {width} px wide (2*round(2*sigma)+1), "
            f"wider than the image (largest side {max(shape)} px)"
        )
    ndim = sum(s > 1 for s in shape)
    bound = 1.0 / (2 * ndim)
    if mu * dt > bound:
        raise ValueError(
            f"dt must satisfy mu*dt <= 1/(2*ndim) = {bound:g} (stability of the "
            f"explicit scheme); got dt={dt!r} with mu={mu!r}"
        )


def _resolve_init(init):
    if isinstance(init, str) and init in _DEPRECATED_INITS:
        new = _DEPRECATED_INITS[init]
        warnings.warn(
            f"bias_field_levelset: init={init!r} is deprecated, use init={new!r} "
            "(in chan_vese 'checkerboard' is a sin·sin level set)",
            DeprecationWarning,
            stacklevel=3,
        )
        return new
    return init


def _label_init(init, data, n_phases, rng):
    """Label map (int S) of the named initialisations."""
    check_choice(init, _INITS, "init")
    shape, inside = data.inside.shape, data.inside
    if init in ("kmeans", "otsu"):
        vals = data.x[:, inside]  # (C, n): the mask's pixels only
        lab = np.zeros(shape, dtype=np.int64)
        if init == "kmeans":
            lab[inside] = kmeans_partition(vals, n_phases)
        else:
            from skimage.filters import threshold_multiotsu

            g = vals.mean(0)
            try:
                thresholds = threshold_multiotsu(g, n_phases)
            except ValueError:  # fewer distinct values than classes
                thresholds = np.quantile(g, np.arange(1, n_phases) / n_phases)
            lab[inside] = np.digitize(g, thresholds)
        return lab
    blocks = np.meshgrid(*[np.arange(s) // _BLOCK for s in shape], indexing="ij")
    if init == "random":
        nb = [int(b.max()) + 1 for b in blocks]
        return rng.integers(0, n_phases, size=nb)[tuple(blocks)]
    parity = sum(blocks) % 2  # "regions": blocks in a checkerboard / 2x2 sign pattern
    if n_phases == 2:
        return parity
    return np.minimum(parity + 2 * ((blocks[-1] // 2) % 2), n_phases - 1)


def _array_init(arr, shape, n_phases, c0):
    """Level sets (m,) + S from a user label map or level-set array."""
    m = 1 if n_phases == 2 else 2
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise ValueError(
            f"init must be one of {list(_INITS)} or a numeric array; got dtype {arr.dtype}"
        )
    if (np.issubdtype(arr.dtype, np.integer) or arr.dtype == bool) and arr.shape == shape:
        arr = arr.astype(np.int64)
        if arr.min() < 0 or arr.max() >= n_phases:
            raise ValueError(
                f"init label map must have values in 0..{n_phases - 1}; got "
                f"range {arr.min()}..{arr.max()}"
            )
        return _level_sets_from_labels(arr, n_phases, c0)
    if m == 1 and arr.shape == shape:
        arr = arr[None]
    if arr.shape != (m,) + shape:
        raise ValueError(
            f"init array must be level sets of shape {(m,) + shape}"
            + (f" (or {shape})" if m == 1 else "")
            + f", or an integer label map of shape {shape}, for n_phases={n_phases}; got "
            f"shape {arr.shape}"
        )
    arr = np.array(arr, dtype=np.float64)
    if not np.isfinite(arr).all():
        raise ValueError("init level sets contain NaN or Inf values")
    return arr


def _initial_level_sets(init, data, n_phases, eps, rng):
    """Return initial level sets (m,) + S for the named initialisations or a user array."""
    c0 = _C0 * eps
    if isinstance(init, str):
        return _level_sets_from_labels(_label_init(init, data, n_phases, rng), n_phases, c0)
    return _array_init(np.asarray(init), data.inside.shape, n_phases, c0)


def _run_tiny():
    """Run every kernel of the solver once on tiny inputs (compilation or cache load)."""
    for m, k in ((1, 2), (2, 4)):
        phi = np.ones((m, 1, 6, 6))
        _lic_kernels.evolve(phi, np.zeros((k, 1, 6, 6)), 1.0, 1.0, 0.1, 1.0, 1)
        # the kernels of the threaded steps (the same signatures as on a large image)
        _lic_kernels.evolve_threads(phi, np.zeros((k, 1, 6, 6)), 1.0, 1.0, 0.1, 1.0, 1, 2)
    data = _Data(np.ones((1, 6, 6)), np.ones((6, 6), bool), 0.5)  # smooth_2d
    memb = _memberships(np.ones((1, 6, 6)), 1.0, 2)
    kb, kb2 = data.moments(np.ones((6, 6)))
    _update_bias(data, memb, _update_means(data, memb, kb, kb2))
    _residuals(data, np.ones((2, 1)), kb, kb2)
    # the shared-energy records: the serial kernel and, from 2^17 pixels on, the parallel one
    for n in (6, 1 << 17):
        energy_from_labels(np.zeros((1, n)), np.zeros((1, n), np.int64), 0.1, n_phases=2)


def warm_kernels():
    """Compile (or load from Numba's cache) the kernels once per process, before any clock.

    Goes through :func:`varseg._jit.ensure_compiled` (key ``("lic",)``): a real compilation
    logs one ``INFO`` line, a load from Numba's on-disk cache none.

    Returns
    -------
    float
        Seconds spent now (0.0 when the kernels were already run in this process).
    """
    return ensure_compiled(
        ("lic",), _run_tiny, estimate=_COMPILE_S, child=(__name__, "_run_tiny", ())
    )


# --------------------------------------------------------------------------------------
# Image scaling and the iteration
# --------------------------------------------------------------------------------------
def _internal_image(x_in, inside):
    r"""``(y, x0, span)``: ``y = 255 (x - x0) / span`` inside the mask, 0 outside.

    :math:`x_0 = \min(0, \min_\Omega x)` (a non-negative image is only divided, which keeps
    the model :math:`x = b\,c` intact), ``span`` the largest :math:`x - x_0` in the mask;
    ``span = 0`` for an image constant in the mask (every channel).
    """
    vals = x_in[:, inside]
    x0 = min(0.0, float(vals.min()))
    with np.errstate(over="ignore", invalid="ignore"):
        span = float((vals - x0).max())
        if not np.isfinite(span):
            raise ValueError(
                "image range overflows float64 (max - min is not finite); rescale the image"
            )
        if span == 0 or not np.ptp(vals, axis=1).any():  # constant in the mask
            return np.zeros_like(x_in), x0, 0.0
        y = np.where(inside[None], (x_in - x0) / span, 0.0) * _INTERNAL_MAX
    return y, x0, span


def _iterate(data, phi, cfg, xn):
    """Run the alternating minimisation (Li Section III-C): level sets, centres, bias."""
    k, eps, shape = cfg["n_phases"], cfg["eps"], data.inside.shape
    m = phi.shape[0]
    phi4 = np.ascontiguousarray(phi.reshape((m,) + (1,) * (4 - phi.ndim) + shape))
    # one level set per thread in the inner steps, and the smoothing of each array of a pair
    # on as many threads (with one level set, 2 phases, both stay serial)
    work = _lic_kernels.EvolveWork(phi4.shape, solver_threads(phi4.size))
    threads = work.threads
    b = np.ones(shape)
    kb, kb2 = data.moments(b, threads)
    memb, argmax = _memberships_labels(phi, eps, k)
    # initial centres: those of the initial hard partition (the soft memberships of the
    # ±2ε steps mix every class into every centre: H_ε(2ε) = 0.85)
    hard = _memberships(np.where(phi >= 0, np.inf, -np.inf), eps, k)
    c = _update_means(data, hard, kb, kb2)
    labels = _hard_labels(data, argmax, c)
    e = _residuals(data, c, kb, kb2)
    hist = {"energy": [], "lic": [], "change": [], "times": []}
    n_in, converged, it = max(1, int(np.count_nonzero(data.inside))), False, 0
    for it in range(1, cfg["max_iter"] + 1):
        # 1. level sets: n_inner steps with c, b (hence e_i) fixed (Li Eq. 20 / 33)
        _lic_kernels.evolve_threads(
            phi4,
            e.reshape((k,) + phi4.shape[1:]),
            cfg["nu"],
            cfg["mu"],
            cfg["dt"],
            eps,
            cfg["n_inner"],
            threads,
            work,
        )
        if not np.isfinite(phi4.sum()):  # NaN or Inf anywhere (|phi| never nears 1e308)
            raise ValueError(
                f"level sets became NaN/Inf at iteration {it}: reduce dt (dt={cfg['dt']!r})"
            )
        phi = phi4.reshape((m,) + shape)
        memb, argmax = _memberships_labels(phi, eps, k)
        c = _update_means(data, memb, kb, kb2)  # 2. centres (Li Eq. 21 / 34)
        b, c = _update_bias(data, memb, c, threads)  # 3. bias (Li Eq. 22 / 35), unit mean in mask
        kb, kb2 = data.moments(b, threads)
        e = _residuals(data, c, kb, kb2)  # data force of the next iteration
        new = _hard_labels(data, argmax, c)
        change = float(np.count_nonzero((new != labels) & data.inside)) / n_in
        labels = new
        hist["energy"].append(energy_from_labels(xn, labels, cfg["lam"], n_phases=k).total)
        # not np.vdot: a BLAS call wakes OpenBLAS's threads, which then spin on the core
        # that the level-set steps' second thread needs
        hist["lic"].append(float(np.einsum("i,i->", e.ravel(), memb.ravel())) / _INTERNAL_MAX**2)
        hist["change"].append(change)
        hist["times"].append(time.perf_counter() - cfg["t0"])
        if change <= cfg["tol"]:
            converged = True
            break
    return phi, memb, labels, c, b, hist, it, converged


def _constant_solution(data, x_in, phi_shape, cfg, xn):
    """Return the trivial minimiser of an image constant in the mask: one phase, unit bias."""
    k, eps = cfg["n_phases"], cfg["eps"]
    phi = np.full(phi_shape, _C0 * eps)
    memb = _memberships(phi, eps, k)
    labels = np.zeros(data.inside.shape, dtype=np.int64)
    c = None  # the centres are the constant itself (see _result)
    e_ms = energy_from_labels(xn, labels, cfg["lam"], n_phases=k).total
    hist = {
        "energy": [e_ms],
        "lic": [0.0],
        "change": [0.0],
        "times": [time.perf_counter() - cfg["t0"]],
    }
    return phi, memb, labels, c, np.ones(data.inside.shape), hist, 0, True


def _result(out, data, x_in, gray, x0, span, cfg, channel_axis, ndim_in):
    """Package the solver state as a :class:`Segmentation` in the input's units."""
    phi, memb, labels, c, b, hist, n_iter, converged = out
    bias = np.maximum(b, _BIAS_FLOOR)
    corrected = x0 + (x_in - x0) / bias[None]
    if c is None:  # constant image: every centre is the constant
        means = np.repeat(x_in[:, data.inside][:, :1].T, memb.shape[0], axis=0)
    else:  # centres of the corrected image, input units
        means = x0 + c * (span / _INTERNAL_MAX)
    if data.masked:  # one-hot memberships of the nearest-centre labels outside the mask
        out_mask = ~data.inside
        memb = memb.copy()
        memb[:, out_mask] = labels[out_mask][None] == np.arange(memb.shape[0])[:, None]
    if gray:
        corrected, means = corrected[0], means[:, 0]
    else:
        corrected = np.moveaxis(corrected, 0, channel_axis % ndim_in)
    extras = {
        "corrected": corrected,
        "lic_energy": np.asarray(hist["lic"], dtype=np.float64),
        "label_change": np.asarray(hist["change"], dtype=np.float64),
        "scale": _INTERNAL_MAX / span if span > 0 else 1.0,
        "offset": float(x0),
    }
    params = {key: v for key, v in cfg.items() if key != "t0"}
    return Segmentation(
        labels=labels,
        memberships=memb.astype(np.float32),
        means=np.asarray(means, dtype=np.float64),
        energy=np.asarray(hist["energy"], dtype=np.float64),
        n_iter=int(n_iter),
        converged=bool(converged),
        elapsed=time.perf_counter() - cfg["t0"],
        method="lic",
        params=params,
        bias=bias,
        level_sets=np.asarray(phi, dtype=np.float64),
        times=np.asarray(hist["times"], dtype=np.float64),
        extras=extras,
    )


def _config(
    n_phases,
    sigma,
    nu,
    mu,
    dt,
    eps,
    max_iter,
    n_inner,
    init,
    lam,
    seed,
    tol,
    channel_axis,
    shape,
    masked,
):
    """Validate the parameters (the JSON-serialisable ``params`` of the result)."""
    k = check_n_phases(n_phases, max_phases=4)
    sigma = check_positive(sigma, "sigma")
    dt = check_positive(dt, "dt")
    eps = check_positive(eps, "eps")
    mu = check_positive(mu, "mu", allow_zero=True)
    nu = _NU_DEFAULT if nu is None else check_positive(nu, "nu", allow_zero=True)
    lam = _LAM_DEFAULT if lam is None else check_positive(lam, "lam", allow_zero=True)
    try:
        tol = float(tol)
    except (TypeError, ValueError):
        raise ValueError(f"tol must be a number; got {tol!r}") from None
    if not np.isfinite(tol):
        raise ValueError(f"tol must be finite; got {tol!r}")
    if min(shape) < 3:
        raise ValueError(
            f"each spatial axis of image must have at least 3 pixels; got spatial shape {shape}"
        )
    _check_sigma_dt(sigma, dt, mu, shape)
    return {
        "n_phases": k,
        "sigma": sigma,
        "nu": nu,
        "mu": mu,
        "dt": dt,
        "eps": eps,
        "max_iter": max_iter,
        "n_inner": check_int(n_inner, "n_inner"),
        "init": init if isinstance(init, str) else "array",
        "lam": float(lam),
        "seed": int(seed) if isinstance(seed, (int, np.integer)) else None,
        "tol": tol,
        "channel_axis": channel_axis,
        "truncate": _TRUNCATE,
        "masked": masked,
        "normalised": True,
    }


# --------------------------------------------------------------------------------------
# Public solver
# --------------------------------------------------------------------------------------
def bias_field_levelset(
    image,
    n_phases=2,
    *,
    mask=None,
    sigma=4.0,
    nu=None,
    mu=1.0,
    dt=0.1,
    eps=1.0,
    max_iter=100,
    n_inner=10,
    init="regions",
    lam=None,
    seed=None,
    tol=1e-4,
    channel_axis=None,
    n_outer=None,
):
    r"""Segment an image with intensity inhomogeneity by Li et al.'s bias-field level set.

    Local intensity clustering (LIC) of Li et al. 2011 [1]_ (Eq. 5-6 of Kim & Ye 2019 [3]_):
    the image is modelled as :math:`x = b\,t + n` with a smooth positive bias :math:`b` and a
    piecewise-constant :math:`t = \sum_i c_i \chi_i` (Li Eq. 1). With a truncated Gaussian
    kernel :math:`K` (std ``sigma``, radius :math:`\mathrm{round}(2\sigma)`,
    :func:`varseg.energy.gaussian_kernel` with ``truncate=2``) and the mask :math:`\Omega`
    (weights :math:`w`, the whole image by default) the energy is

    .. math::

        F(\phi, c, b) = \sum_{i=1}^K \int_\Omega e_i(r) M_i(\phi(r))\,dr
            + \nu \sum_j \int \delta_\varepsilon(\phi_j) |\nabla\phi_j|\,dr
            + \mu \sum_j \int \tfrac12 (|\nabla\phi_j| - 1)^2\,dr,

        e_i(r) = \int_\Omega K(r' - r) |x(r) - b(r') c_i|^2 dr'
               = x^2 (K * w) - 2 c_i x (K * wb) + c_i^2 (K * wb^2)

    (first term: Eq. 6 of [3]_, :func:`varseg.energy.lic_energy`; Li Eq. 15-17), the arc
    length with weight :math:`\nu`, and the distance regularisation of DRLSE [2]_. Level sets
    and memberships (Li Section IV), :math:`H_j = H_\varepsilon(\phi_j)`: K = 2,
    :math:`(H_1, 1 - H_1)`; K = 3, :math:`(H_1 H_2, H_1(1 - H_2), 1 - H_1)`; K = 4,
    :math:`(H_1 H_2, H_1(1 - H_2), (1 - H_1)H_2, (1 - H_1)(1 - H_2))`.

    Each outer iteration (Li Section III-C; Li Eq. 20-22 for two phases, 33-35 for more):

    1. ``n_inner`` explicit steps of the gradient flow of the level sets with :math:`c, b`
       fixed (Li Eq. 20/33),
       :math:`\partial_t\phi_j = \delta_\varepsilon(\phi_j)(f_j + \nu\kappa_j)
       + \mu(\Delta\phi_j - \kappa_j)`, :math:`f_j = -\sum_i e_i\,\partial M_i/\partial H_j`,
       :math:`\kappa_j = \operatorname{div}(\nabla\phi_j/|\nabla\phi_j|)`, discretised as
       Li's code (:mod:`varseg.levelset._lic_kernels`);
    2. centres, the exact minimiser for fixed :math:`M, b` (Li Eq. 21/34):
       :math:`c_i = \int_\Omega (K*wb)\,x\,M_i / \int_\Omega (K*wb^2)\,M_i`;
    3. bias, the exact minimiser for fixed :math:`M, c` (Li Eq. 22/35):
       :math:`b = K*(w\,x J^{(1)}) / K*(w J^{(2)})`, :math:`J^{(1)} = \sum_i c_i M_i`,
       :math:`J^{(2)} = \sum_i c_i^2 M_i`, then normalised to unit mean inside the mask
       (:math:`(b, c) \to (b/\alpha, \alpha c)` leaves every term unchanged).

    Intensity scale. The solver works on :math:`y = 255\,(x - x_0)/s` with
    :math:`x_0 = \min(0, \min_\Omega x)` and :math:`s` the range of :math:`x - x_0` in the
    mask (a non-negative image is only divided, which keeps :math:`x = b\,c` intact), the
    scale Li's parameters are tuned for; so ``image`` and ``255 * image`` give the same
    labels, and ``nu`` is on this [0, 255] scale (default :math:`0.001 \cdot 255^2`, Li's).

    Parameters
    ----------
    image : array_like, shape (H, W) or (D, H, W), or with a channel axis
        Image with intensity inhomogeneity (MR magnitude images). Each spatial axis needs at
        least 3 pixels. Multichannel images share one bias field.
    n_phases : {2, 3, 4}
        Number of classes K (one level set for 2, two for 3 and 4).
    mask : array_like of bool, shape S, optional
        Region :math:`\Omega` to segment (e.g. a brain mask). Pixels outside are excluded
        from the clustering, the centres and the bias estimate and exert no force on the
        level sets; they get the label of the nearest centre (bias 1 there). Default: all.
    sigma : float
        Standard deviation (pixels) of :math:`K` (Li's :math:`\sigma`, default 4); larger
        values assume a smoother bias. The kernel (``2*round(2*sigma)+1`` px) may not be
        wider than the image.
    nu : float, optional
        Arc-length weight :math:`\nu` on the internal [0, 255] scale; default
        :math:`0.001 \cdot 255^2` (Li's).
    mu : float
        Distance-regularisation weight :math:`\mu` (default 1, Li's).
    dt : float
        Time step (default 0.1, Li's); must satisfy :math:`\mu\,dt \le 1/(2d)` in d
        dimensions, the stability bound of the explicit scheme.
    eps : float
        Width :math:`\varepsilon` of :math:`H_\varepsilon` and :math:`\delta_\varepsilon`.
    max_iter : int
        Maximum number of outer iterations (level sets, then centres, then bias).
    n_inner : int
        Level-set steps per outer iteration (Li's ``iter_inner``, default 10).
    init : {"regions", "kmeans", "otsu", "random"} or ndarray
        Initial level sets, binary steps :math:`\pm 2\varepsilon`: ``"regions"`` (default)
        8-pixel blocks in a checkerboard (K = 2) or the 2×2 sign pattern of the two level
        sets, independent of the image (``"checkerboard"`` is its deprecated old name);
        ``"kmeans"`` the optimal 1D k-means classes of the mask's pixels
        (:func:`varseg.levelset.kmeans_partition`); ``"otsu"`` the multi-Otsu classes
        of the mask's pixels; ``"random"`` a random phase per 8-pixel block (``seed``); an
        integer or boolean label map of shape S with values ``0 .. K-1``; or float level
        sets of shape ``(m,) + S`` (m = 1 for K = 2, else 2), or S for K = 2.
    lam : float, optional
        :math:`\lambda` of the shared Mumford–Shah energy recorded in ``energy``, default
        0.125 (Chan–Vese's default :math:`\mu/2`, as every method).
    seed : int or numpy.random.Generator, optional
        Randomness of ``init="random"``.
    tol : float
        Stop (``converged=True``) after the first outer iteration in which at most a
        fraction ``tol`` of the mask's pixels changed label; negative disables the test.
    channel_axis : int, optional
        Channel axis of a multichannel image (scikit-image convention).
    n_outer : int, optional
        Deprecated alias of ``max_iter`` (``DeprecationWarning``), removed in the next
        release.

    Returns
    -------
    Segmentation
        ``method="lic"``; ``labels`` (argmax of the memberships in the mask), ``memberships``
        ((K,) + S, float32; one-hot outside the mask), ``means`` ((K,) or (K, C), centres of
        the corrected image in the input's units, :math:`x_0 + s\,c_i/255`), ``bias``
        (positive, unit mean in the mask, clipped at :math:`10^{-6}`), ``level_sets``;
        ``energy``: the shared energy (Eq. 1) of the hard labels on the [0, 1] min–max
        normalised image (:func:`varseg.compare.shared_energy`, ``params["lam"]``) after
        every outer iteration; ``extras["lic_energy"]``: :math:`\sum_i\int_\Omega e_i M_i` on
        :math:`y/255` (equal to :func:`varseg.energy.lic_energy` of ``(x - x0)/s`` without a
        mask), ``extras["label_change"]``, ``extras["corrected"]``
        (:math:`x_0 + (x - x_0)/b`), ``extras["scale"]`` (:math:`255/s`),
        ``extras["offset"]`` (:math:`x_0`). ``elapsed`` excludes Numba compilation.

    Raises
    ------
    ValueError
        Bad argument (named in the message), a kernel wider than the image, ``mu*dt`` above
        the stability bound, a mask of the wrong shape.

    See Also
    --------
    varseg.levelset.chan_vese : The piecewise-constant model without a bias.
    varseg.energy.lic_energy : :math:`E_{LIC}` (Eq. 6) of any memberships and bias.
    varseg.compare.shared_energy : The ruler of the recorded ``energy``.

    Notes
    -----
    Steps 2 and 3 are exact minimisers (neither increases :math:`E_{LIC}` for fixed
    memberships); step 1 is an explicit descent of :math:`F`. :math:`F` is not convex: the
    bias is identifiable only through windows of radius :math:`2\sigma` that contain several
    classes, so a uniform region much larger than the window can be absorbed by the bias.
    On brain MRI pass the brain mask, start from ``init="kmeans"``, take a kernel wider than
    the structures to segment (the BraTS FLAIR slice of tutorial 4: ``sigma=40`` on 240 px)
    and a weak distance regularisation (``mu=0.01``): the term
    :math:`\mu(\Delta\phi - \kappa)` is not weighted by :math:`\delta_\varepsilon`, and
    once :math:`|\phi|` is large its diffusion erodes thin classes. The initial centres are
    those of the initial hard partition. The experiments behind these remarks are in the
    gallery (``examples/plot_10_lic_experiments.py``). An image constant in the mask returns
    at once (``n_iter=0``): phase 0 everywhere, unit bias.

    References
    ----------
    .. [1] C. Li, R. Huang, Z. Ding, J. C. Gatenby, D. N. Metaxas and J. C. Gore, "A level
           set method for image segmentation in the presence of intensity inhomogeneities
           with application to MRI", IEEE Trans. Image Process. 20(7), 2007-2016, 2011.
    .. [2] C. Li, C. Xu, C. Gui and M. D. Fox, "Distance regularized level set evolution and
           its application to image segmentation", IEEE Trans. Image Process. 19(12),
           3243-3254, 2010.
    .. [3] B. Kim and J. C. Ye, "Mumford–Shah Loss Functional for Image Segmentation with
           Deep Learning", IEEE Trans. Image Process. 29, 2019, Eq. 5-6.

    Examples
    --------
    >>> import numpy as np
    >>> from varseg.levelset import bias_field_levelset
    >>> yy, xx = np.mgrid[:64, :64]
    >>> truth = (((yy % 16) - 8) ** 2 + ((xx % 16) - 8) ** 2 < 25).astype(int)  # 16 disks
    >>> bias = 0.6 + 0.8 * xx / 63                        # ramp 0.6 -> 1.4
    >>> seg = bias_field_levelset((0.3 + 0.4 * truth) * bias, 2)
    >>> agree = np.mean(seg.labels == truth)
    >>> bool(max(agree, 1 - agree) == 1.0)                # up to the order of the labels
    True
    >>> np.round(np.sort(seg.means), 1)                   # c_i: b * c_i = image
    array([0.3, 0.7])
    >>> bool(np.corrcoef(seg.bias.ravel(), bias.ravel())[0, 1] > 0.99)
    True
    """
    max_iter = check_int(
        renamed_argument(max_iter, n_outer, new="max_iter", old="n_outer", default=100),
        "n_outer" if n_outer is not None else "max_iter",
    )
    init = _resolve_init(init)
    x_in, gray = as_channels_first(image, channel_axis)
    shape = x_in.shape[1:]
    inside = _check_mask(mask, shape)
    cfg = _config(
        n_phases,
        sigma,
        nu,
        mu,
        dt,
        eps,
        max_iter,
        n_inner,
        init,
        lam,
        seed,
        tol,
        channel_axis,
        shape,
        mask is not None,
    )
    y, x0, span = _internal_image(x_in, inside)
    data = _Data(y, inside, cfg["sigma"])
    phi = _initial_level_sets(init, data, cfg["n_phases"], cfg["eps"], resolve_rng(seed))
    xn = normalise_image(x_in[0] if gray else x_in)  # the shared ruler's image
    warm_kernels()
    cfg["t0"] = time.perf_counter()  # after the checks and the one-off compilation
    if span == 0:
        out = _constant_solution(data, x_in, phi.shape, cfg, xn)
    else:
        out = _iterate(data, phi, cfg, xn)
    return _result(out, data, x_in, gray, x0, span, cfg, channel_axis, np.ndim(image))

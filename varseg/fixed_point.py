r"""The fixed-point iteration of Eq. 15 (Kim & Ye 2019) as a plain solver (Numba, no torch).

Stationarity of the Mumford–Shah loss (Eq. 12) under :math:`\sum_n y_n = 1` gives Eq. 14; the
paper iterates on the pre-softmax outputs :math:`z`:

.. math::

    z_n^{(k+1)} = z_n^{(k)} - \eta\, w_n^{(k)}, \qquad y^{(k+1)} = \mathrm{softmax}(z^{(k+1)}),
    \qquad c_n^{(k+1)} \text{ from Eq. 13}

with the force :math:`g_n = \|x - c_n\|^2 - \lambda\,\kappa_n`, :math:`\kappa_n =
\mathrm{div}(\nabla y_n / |\nabla y_n|_\epsilon)` and one of two weightings:

* ``update="softmax-gradient"`` (default): :math:`w_n = y_n (g_n - \sum_m y_m g_m)`, the exact
  gradient of Eq. 12 through the softmax (:math:`\partial L/\partial c_n = 0` at Eq. 13), so
  every step is a gradient-descent step on the loss. For two classes and
  :math:`\phi = z_1 - z_2` this is exactly the Chan–Vese flow with :math:`\delta_\varepsilon
  (\phi) = y_1 y_2` and :math:`\mu = 2\lambda`.
* ``update="paper"``: :math:`w_n = \delta_\varepsilon(z_n)\, g_n` with the regularised Dirac
  :math:`\delta_\varepsilon(z) = (\varepsilon/\pi)/(\varepsilon^2 + z^2)` of Vese & Chan, as
  written in Eq. 15.

Discretisation: :math:`\kappa_n = -\partial \mathrm{TV}_\epsilon / \partial y_n` is the
backward-difference divergence of :math:`\nabla^+ y_n / \sqrt{|\nabla^+ y_n|^2 + \epsilon^2}`
(the adjoint of the forward differences of :mod:`varseg.energy`), so :math:`g_n` is the exact
derivative of the energy's (ε-smoothed) isotropic length term.

:func:`ms_fixed_point` runs the iteration in the fused kernels of
:mod:`varseg._fixed_point_kernels` and never imports torch (a classical install runs it); the
torch step :func:`varseg.unrolled.fixed_point_step` and the trainable unrolled network live in
:mod:`varseg.unrolled`, which re-exports :func:`ms_fixed_point`.
"""

from __future__ import annotations

import sys
import time

import numpy as np

from varseg._jit import ensure_compiled
from varseg._threads import SERIAL_BELOW as _SERIAL_BELOW
from varseg._threads import solver_threads
from varseg._validation import (
    as_channels_first,
    check_choice,
    check_int,
    check_n_phases,
    check_positive,
    resolve_rng,
)
from varseg.energy import DEFAULT_LAM, energy_from_labels, normalise_image
from varseg.result import Segmentation

__all__ = ["ms_fixed_point", "UPDATES", "SERIAL_BELOW"]

#: The two weightings of the force (module docstring).
UPDATES = ("softmax-gradient", "paper")

_NUMPY_DTYPES = {np.dtype(np.float32): np.float32, np.dtype(np.float64): np.float64}


#: Sharpness of the ``"quantiles"`` start: logits :math:`-20 (x - q_n)^2`.
_SHARPNESS = 20.0


def _initial_logits(x, k, init, rng, sharpness=_SHARPNESS):
    """Logits (K, *S) as float64 for ``init`` in {"quantiles", "random"} or an array."""
    spatial = x.shape[1:]
    if isinstance(init, str):
        check_choice(init, {"quantiles", "random"}, "init")
        if init == "random":
            return rng.normal(scale=1.0, size=(k,) + spatial)
        lum, q = _luminance_quantiles(x, k)
        return -sharpness * (lum[None] - q.reshape((k,) + (1,) * lum.ndim)) ** 2
    arr = np.asarray(init, dtype=np.float64)
    if arr.shape != (k,) + spatial:
        raise ValueError(
            f"init array must have shape (n_phases,) + image shape = "
            f"{(k,) + spatial}; got {arr.shape}"
        )
    if not np.isfinite(arr).all():
        raise ValueError("init array contains NaN or Inf")
    return arr


def _luminance_quantiles(x, k):
    """Return the luminance of ``x`` (C, *S) and its quantiles at (n + 1/2) / K, n < K.

    The luminance is the mean over channels (the channel itself for gray); the quantiles are
    the centres of the ``"quantiles"`` start.
    """
    lum = x[0] if x.shape[0] == 1 else x.mean(0)  # the mean of one channel is itself
    return lum, np.quantile(lum, (np.arange(k) + 0.5) / k)


def _start_logits(x, k, init, rng, np_dtype, shape4):
    """Return the logits of :func:`_initial_logits` in the working type.

    Shape (K,) + shape4 + S, in a :func:`varseg._scratch.scratch` buffer (the solver updates
    it in place and returns none of it); ``"quantiles"`` straight from the image
    (:func:`varseg._fixed_point_kernels.quantile_logits`: the same values without float64
    (K, N) temporaries, whose fresh pages cost more than the arithmetic).
    """
    from varseg._fixed_point_kernels import quantile_logits
    from varseg._scratch import scratch

    spatial = x.shape[1:]
    z = scratch("fp.z", (k,) + shape4 + spatial, np_dtype)
    if isinstance(init, str) and init == "quantiles":
        lum, q = _luminance_quantiles(x, k)
        quantile_logits(np.ascontiguousarray(lum).reshape(-1), q, -_SHARPNESS, z.reshape(k, -1))
    else:
        z[...] = _initial_logits(x, k, init, rng).reshape(z.shape)
    return z


def _working_dtype(dtype):
    """NumPy float type of ``dtype`` (numpy.float32/float64 or torch.float32/float64).

    A torch dtype can only come from a caller that imported torch, so torch is looked up in
    ``sys.modules`` and never imported here.
    """
    torch = sys.modules.get("torch")
    key = None
    if torch is not None and isinstance(dtype, torch.dtype):
        key = {torch.float32: np.dtype(np.float32), torch.float64: np.dtype(np.float64)}.get(dtype)
    else:
        try:
            key = np.dtype(dtype)
        except TypeError:
            key = None
    if key not in _NUMPY_DTYPES:
        raise TypeError(
            f"dtype must be torch.float32 or torch.float64 (or numpy.float32/"
            f"float64); got {dtype!r}"
        )
    return _NUMPY_DTYPES[key]


def _check_fixed_point_args(n_phases, lam, step, max_iter, tol, update, curvature_eps, dirac_eps):
    """Validate the arguments of ms_fixed_point.

    Return (K, lam, step, max_iter, tol, curvature_eps, dirac_eps).
    """
    k = check_n_phases(n_phases)
    step = check_positive(step, "step")
    lam = check_positive(lam, "lam", allow_zero=True)
    check_choice(update, set(UPDATES), "update")
    max_iter = check_int(max_iter, "max_iter")
    tol = check_positive(tol, "tol", allow_zero=True)
    curvature_eps = check_positive(curvature_eps, "curvature_eps")
    dirac_eps = check_positive(dirac_eps, "dirac_eps")
    return k, lam, step, max_iter, tol, curvature_eps, dirac_eps


def _iterate_fixed_point(
    ws, z, lam, step, mode, curvature_eps, dirac_eps, max_iter, tol, t0, threads=1
):
    """Run the Numba loop of :func:`ms_fixed_point`: (n_iter, converged, energy, times).

    ``energy[k]`` (k < n_iter) is computed inside the step that leaves iterate k; the last
    record is appended by the caller with :func:`varseg.energy_from_labels`.
    """
    from varseg._fixed_point_kernels import iterate

    return iterate(ws, z, lam, step, mode, curvature_eps, dirac_eps, max_iter, tol, t0, threads)


#: Below this many logit entries (K x pixels) the solver runs in the calling thread
#: (:data:`varseg._threads.SERIAL_BELOW`).
SERIAL_BELOW = _SERIAL_BELOW


#: Seconds a cold compilation of the fixed-point kernels takes on a busy 2-core machine
#: (measured: 28 s to 40 s at load average 3.5 to 4.5).
_COMPILE_ESTIMATE_S = 30


def _run_tiny(np_dtype):
    """Run every fixed-point kernel of ``np_dtype`` and the energy kernels once, tiny inputs.

    2D and 3D, both weightings; the final record's serial and parallel energy kernels.
    ``np_dtype``: a NumPy scalar type or its name (the child process of the warm-up).
    """
    from varseg._fixed_point_kernels import Workspace

    np_dtype = np.dtype(np_dtype).type
    _start_logits(np.linspace(0, 1, 16).reshape(1, 4, 4), 2, "quantiles", None, np_dtype, (1,))
    t = time.perf_counter()
    for d in (1, 2):
        x = np.linspace(0, 1, d * 16, dtype=np_dtype).reshape(1, d, 4, 4)
        z = np.zeros((2, d, 4, 4), dtype=np_dtype)
        z[0] = x[0]
        ws = Workspace(x, 2)
        for mode in (0, 1):
            _iterate_fixed_point(
                ws, z, np_dtype(0.1), np_dtype(1.0), mode, np_dtype(0.1), np_dtype(1.0), 2, 0.0, t
            )
    # the final record's kernels: the serial one and, above its size, the parallel one
    for n in (4, 1 << 17):
        energy_from_labels(np.zeros((1, n)), np.zeros((1, n), dtype=np.int64), 0.1, n_phases=2)


def _warm_up(np_dtype):
    """Compile (or load) the kernels once per process and dtype, before the clock starts.

    Through :func:`varseg._jit.ensure_compiled` (key ``("fixed_point", dtype name)``), so
    that no compile time enters ``Segmentation.elapsed``; a real compilation logs one
    ``INFO`` line, a load from Numba's cache none.

    Returns
    -------
    float
        Seconds spent now (0.0 when already run in this process).
    """
    name = np.dtype(np_dtype).name
    return ensure_compiled(
        ("fixed_point", name),
        lambda: _run_tiny(np_dtype),
        estimate=_COMPILE_ESTIMATE_S,
        child=(__name__, "_run_tiny", (name,)),
    )


def ms_fixed_point(
    image,
    n_phases=2,
    *,
    lam=DEFAULT_LAM,
    step=2.0,
    max_iter=300,
    tol=1e-4,
    init="quantiles",
    update="softmax-gradient",
    curvature_eps=0.1,
    dirac_eps=1.0,
    channel_axis=None,
    dtype=np.float32,
    seed=None,
):
    r"""Segment an image with the fixed-point iteration of Eq. 15 (Kim & Ye 2019).

    Iterates Eq. 15 on softmax logits (see :mod:`varseg.fixed_point` for the two weightings)
    on the image scaled to [0, 1] by its min and max (as :func:`varseg.chan_vese`), and
    records the shared Mumford–Shah energy of the hard partition
    (:func:`varseg.energy_from_labels` with the same ``lam``) of the initial partition and
    after every iteration, the last included (``n_iter + 1`` records).

    The iteration runs in fused Numba kernels (:mod:`varseg._fixed_point_kernels`: one pass
    over the logits per iteration, rows in parallel, no allocation per iteration) that
    compute the same step as the torch :func:`varseg.unrolled.fixed_point_step` (agreement
    to 1e-5 in float64, tested). The first call per process and dtype runs the kernels once
    on a tiny input before the clock starts, so JIT compilation is not part of ``elapsed``.

    Parameters
    ----------
    image : ndarray, shape (H, W), (D, H, W) or with a channel axis
    n_phases : int
        Number of classes K ≥ 2 (any K, not only powers of two).
    lam : float
        λ of Eq. 12 (≥ 0). ``lam = mu / 2`` compares with Chan–Vese's ``mu``.
    step : float
        Step size η > 0.
    max_iter : int
        At most this many iterations (≥ 1).
    tol : float
        Stop when the mean absolute change of the memberships in one iteration is below
        ``tol`` (≥ 0; 0 runs all ``max_iter`` iterations).
    init : {"quantiles", "random"} or ndarray (K,) + S
        "quantiles": :math:`z_n = -20 (\bar x - q_n)^2` with :math:`q_n` the
        :math:`(n + \frac12)/K` quantiles of the (channel-mean) intensity, a soft
        nearest-level start; "random": seeded standard normal logits; or initial logits.
    update : {"softmax-gradient", "paper"}
    curvature_eps, dirac_eps : float
        ε > 0 of the smoothed curvature and of the Dirac weighting of ``update="paper"``.
    channel_axis : int, optional
    dtype : numpy.float32 or numpy.float64 (or torch.float32 / torch.float64)
        Working precision (float32 default; sums accumulate in float64). Passing a torch
        dtype needs no torch here: torch is never imported by this solver.
    seed : int, optional
        For ``init="random"``.

    Returns
    -------
    Segmentation
        ``method="fixed-point"``; labels = argmax of the softmax memberships.

    Raises
    ------
    TypeError
        ``dtype`` not a floating type of 32 or 64 bits.
    ValueError
        Any other argument out of range (one line naming it).

    References
    ----------
    .. [1] B. Kim and J. C. Ye, IEEE TIP 29, 2019, Eq. 14-15.
    """
    np_dtype = _working_dtype(dtype)
    k, lam, step, max_iter, tol, curvature_eps, dirac_eps = _check_fixed_point_args(
        n_phases, lam, step, max_iter, tol, update, curvature_eps, dirac_eps
    )
    _warm_up(np_dtype)
    t0 = time.perf_counter()
    from varseg._fixed_point_kernels import UPDATE_CODES, Workspace

    x, _ = as_channels_first(image, channel_axis)
    x = normalise_image(x)
    spatial = x.shape[1:]
    shape4 = (1,) * (4 - x.ndim)
    x4 = np.ascontiguousarray(x.reshape((x.shape[0],) + shape4 + spatial), dtype=np_dtype)
    z = _start_logits(x, k, init, resolve_rng(seed), np_dtype, shape4)  # updated in place
    ws = Workspace(x4, k, keep=True)
    T = np_dtype
    n_iter, converged, energy, times = _iterate_fixed_point(
        ws,
        z,
        T(lam),
        T(step),
        UPDATE_CODES[update],
        T(curvature_eps),
        T(dirac_eps),
        max_iter,
        tol,
        t0,
        solver_threads(z.size),
    )
    labels = ws.lab.reshape(spatial).astype(np.int64)
    terms = energy_from_labels(x, labels, lam, n_phases=k)
    energy.append(terms.total)
    params = dict(
        n_phases=k,
        lam=lam,
        step=step,
        max_iter=max_iter,
        tol=tol,
        init=init if isinstance(init, str) else "array",
        update=update,
        curvature_eps=curvature_eps,
        dirac_eps=dirac_eps,
        seed=seed,
        dtype=np.dtype(np_dtype).name,
    )
    means = terms.means
    return Segmentation(
        labels=labels,
        memberships=ws.y.reshape((k,) + spatial).astype(np.float32),
        means=means[:, 0] if x.shape[0] == 1 else means,
        energy=np.asarray(energy, dtype=np.float64),
        n_iter=n_iter,
        converged=converged,
        elapsed=time.perf_counter() - t0,
        method="fixed-point",
        params=params,
        times=np.asarray(times, dtype=np.float64),
    )

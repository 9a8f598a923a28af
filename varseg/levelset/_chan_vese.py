r"""Multiphase Chan–Vese / Vese–Chan segmentation (Numba), compatible with scikit-image.

See :func:`chan_vese`.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np

from varseg._json import to_builtin
from varseg.energy import check_spacing

from .._jit import ensure_compiled
from .._threads import SERIAL_BELOW as _SERIAL_BELOW
from .._threads import solver_threads
from .._validation import (
    as_channels_first,
    check_int,
    check_n_phases,
    check_positive,
    resolve_rng,
)
from ..result import Segmentation
from ._cv_setup_kernels import normalised
from ._init import INIT_NAMES, check_regions, initial_level_sets
from .heaviside import phase_labels, phase_memberships

__all__ = [
    "chan_vese",
    "interface_edges",
    "warm_kernels",
    "ETA",
    "SERIAL_BELOW",
    "STOP_RULES",
    "STOP_WINDOW",
    "COMPILE_SECONDS",
]

#: Regularisation of the curvature coefficients :math:`C_i = (\eta + |\nabla\phi|^2)^{-1/2}`,
#: the value of ``skimage.segmentation._chan_vese._cv_calculate_variation`` (scikit-image 0.26).
ETA = 1e-16

#: Problems smaller than this (pixels x level sets x channels) run in the calling thread only:
#: there a second thread costs more than it saves (:data:`varseg._threads.SERIAL_BELOW`).
SERIAL_BELOW = _SERIAL_BELOW

#: Threads of the set-up and finish kernels (normalisation, classification, final energy,
#: memberships). They can be split over threads with the same results, but on 2 cores
#: that did not pay (page faults of fresh memory dominate; measured in issue 10): serial.
SETUP_THREADS = 1

#: Stopping rules of :func:`chan_vese` and their default tolerances: ``"partition"`` (fraction
#: of the interface that moves per iteration, size- and dimension-independent, the default) and
#: ``"level-set"`` (scikit-image's RMS change of the level sets per pixel).
STOP_RULES = {"partition": 2e-3, "level-set": 1e-3}

#: Iterations between two checks of the ``"partition"`` stopping rule.
STOP_WINDOW = 10


def _check_lambdas(lambdas, K):
    lam = np.asarray(lambdas, dtype=np.float64)
    if lam.ndim == 0:
        lam = np.full(K, float(lam))
    if lam.shape != (K,):
        raise ValueError(
            f"lambdas must be a scalar or a sequence of n_phases={K} values; got shape {lam.shape}"
        )
    if not np.all(np.isfinite(lam)) or np.any(lam < 0):
        raise ValueError(f"lambdas must be finite and non-negative; got {lam.tolist()}")
    return lam


def chan_vese(
    image,
    n_phases=2,
    *,
    mu=0.25,
    lambdas=1.0,
    dt=0.5,
    eps=1.0,
    max_iter=500,
    tol=None,
    stop="partition",
    window=STOP_WINDOW,
    init="checkerboard",
    init_regions=None,
    channel_axis=None,
    dtype=np.float32,
    seed=None,
    record_energy=True,
    return_history=False,
    snapshot_every=None,
    spacing=None,
):
    r"""Multiphase Chan–Vese segmentation (Vese & Chan 2002) of a gray, colour, 2D or 3D image.

    :math:`m = \log_2 K` level sets :math:`\phi_1..\phi_m` represent :math:`K = 2^m` phases
    (``n_phases`` = 2, 4 or 8) through the vector Heaviside (Eq. 7 of Kim & Ye 2019): pixel
    :math:`r` belongs to phase :math:`k = \sum_j [\phi_j(r) < 0]\,2^{j}` (phase 0 is inside every
    level set; :func:`varseg.levelset.heaviside.phase_labels`). The energy minimised is

    .. math::

        F(c, \phi) = \mu \sum_{j=1}^m \int \delta(\phi_j)|\nabla\phi_j|
                     + \sum_{s=0}^{K-1} \lambda_s \int \|x(r) - c_s\|^2 \chi_s(r)\,dr ,
        \qquad \chi_s = \prod_j H(\phi_j)^{1 - s_j} (1 - H(\phi_j))^{s_j}

    (Vese & Chan 2002, Eq. 7-9 of Kim & Ye 2019; Chan & Vese 2001 for :math:`m = 1`; the
    squared norm sums over the C channels, Chan, Sandberg & Vese 2000). Each iteration

    1. recomputes the phase means :math:`c_s` (Eq. 4) of the current partition, using the
       sharp Heaviside :math:`\phi_j > 0` like scikit-image;
    2. moves every level set by one semi-implicit step of its gradient flow (Eq. 8-9
       generalised to m level sets), Getreuer's scheme (IPOL 2012, Eq. 22) exactly as
       ``skimage.segmentation.chan_vese`` discretises it for :math:`m = 1`:

       .. math::

           \phi_j^{k+1} = \frac{\phi_j + \Delta t\,\delta(\phi_j)\,
                 \big[\mu(C_1\phi_{x+} + C_2\phi_{x-} + C_3\phi_{y+} + C_4\phi_{y-}) + f_j\big]}
                 {1 + \mu\,\Delta t\,\delta(\phi_j)(C_1 + C_2 + C_3 + C_4)}

       with the edge-replicated neighbours :math:`\phi_{x\pm}, \phi_{y\pm}`,
       :math:`C_1 = (\eta + (\phi_{x+} - \phi)^2 + \phi_{y0}^2)^{-1/2}` etc.
       (:math:`\phi_{y0}` the central difference, :math:`\eta = 10^{-16}` as in scikit-image
       0.26), :math:`\delta(\phi) = \varepsilon / (\varepsilon^2 + \phi^2)` (scikit-image's
       Dirac, :math:`\pi` times the normalised :math:`\delta_\varepsilon`; the factor is
       absorbed in ``dt``) and the data force

       .. math::

           f_j = -\lambda_{s_0}\|x - c_{s_0}\|^2 + \lambda_{s_1}\|x - c_{s_1}\|^2
               = -\sum_s \lambda_s \|x - c_s\|^2\, \partial\chi_s / \partial H_j ,

       :math:`s_0` (:math:`s_1`) being the pixel's phase with bit j cleared (set), i.e. the
       phases inside and outside :math:`\phi_j` with the other level sets as they are (the
       factors :math:`H(\phi_i)`, :math:`i \ne j`, of Eq. 8-9 taken sharp, consistently with
       step 1). For :math:`m = 1` this is scikit-image's
       :math:`-\lambda_1 (x - c_1)^2 + \lambda_2 (x - c_2)^2`. In 3D the six neighbours add
       :math:`C_5, C_6` (:math:`z\pm`). The update is Jacobi-style (each iteration reads only
       the previous :math:`\phi`, as in scikit-image), so blocks of rows run in parallel.

    Parameters
    ----------
    image : array_like
        ``(H, W)`` or ``(D, H, W)``, or either with a channel axis ``channel_axis``. It is
        normalised as scikit-image does: ``x - x.min()`` divided by its maximum when that is
        not 0 (one min/max over all channels), see :func:`varseg.energy.normalise_image`.
    n_phases : int
        K = 2, 4 or 8 (a power of two, :math:`m = \log_2 K` level sets).
    mu : float
        Length weight :math:`\mu \ge 0` (scikit-image's ``mu``, for an image in [0, 1]).
    lambdas : float or sequence of K floats
        Data weights :math:`\lambda_s` per phase (scikit-image's ``lambda1, lambda2`` are
        ``lambdas=(lambda1, lambda2)``: phase 0 is scikit-image's ``True`` region,
        :math:`\phi > 0`).
    dt : float
        Time step (> 0); the scheme is stable for large steps.
    eps : float
        Width :math:`\varepsilon > 0` of the regularised Dirac (evolution) and of
        :math:`H_\varepsilon` (returned memberships). scikit-image uses 1.
    max_iter : int
        Maximum number of iterations.
    tol : float, optional
        Tolerance of the stopping rule ``stop`` (see Notes); default
        ``STOP_RULES[stop]`` (2e-3 for ``"partition"``, 1e-3 for ``"level-set"``).
        ``tol=0`` runs all ``max_iter`` iterations.
    stop : {"partition", "level-set"}
        Stopping rule (see Notes): ``"partition"`` (default) stops when the hard partition
        has stopped moving relative to the size of its interface; ``"level-set"`` is
        scikit-image's rule (RMS change of the level sets per pixel), kept for exact
        agreement with ``skimage.segmentation.chan_vese``.
    window : int
        Iterations between two checks of the ``"partition"`` rule (default 10).
    init : {"checkerboard", "disk", "small disk", "random", "kmeans", "lloyd"} or ndarray
        Initial level sets, :func:`varseg.levelset.initial_level_sets`: for ``m = 1`` the
        same formulas as scikit-image; for ``m > 1`` shifted checkerboards / overlapping disks
        so that all K phases are present; ``"kmeans"``: signed distances to an optimal
        intensity clustering (recommended for m > 1, see Notes); ``"lloyd"``: the same from
        a k-means clustering of the colour vectors (seeded by ``seed``). An array must have
        shape ``S`` (``m = 1``) or ``(m,) + S``.
    init_regions : int, optional
        Number of clusters of an ``init="kmeans"`` / ``"lloyd"`` start (1 to ``n_phases``;
        default ``n_phases``). Vese–Chan's m level sets give :math:`2^m` phases; a start
        with fewer regions leaves the spare phases empty, which runs the model with a number
        of regions that is not a power of two (e.g. ``n_phases=8, init_regions=5``). An
        empty phase has mean 0 (as in scikit-image) and gains pixels only where that lowers
        the energy.
    channel_axis : int or None
        Channel axis of a colour / vector-valued image (scikit-image convention).
    dtype : {numpy.float32, numpy.float64}
        Working precision of the level sets and the curvature scheme. Means, data forces and
        the energy are always computed in float64 from the float64 normalised image. float32
        (default) is faster (half the memory traffic, twice the SIMD width, fast-math
        reciprocal square roots within a few ulps) and changes the final energy by far less
        than 0.1 % (tested); float64 evaluates scikit-image's formulas in its order of
        operations and reproduces it (which works in float64 for integer images) up to the
        summation order of the means.
    seed : int or numpy.random.Generator, optional
        Seed of ``init="random"`` and ``init="lloyd"``.
    record_energy : bool
        Record the shared energy of the hard partition after every iteration (see Notes);
        when False only the final value is recorded.
    return_history : bool
        Store snapshots of the level sets in ``extras["snapshots"]`` (shape
        ``(n, m) + S``, float32) taken every ``snapshot_every`` iterations (default 10), plus
        the initial and the final ones, with their iteration numbers in
        ``extras["snapshot_iters"]``.
    snapshot_every : int, optional
        Snapshot period; setting it implies ``return_history=True``.
    spacing : sequence of float, optional
        Pixel / voxel spacing ``(dy, dx)`` or ``(dz, dy, dx)`` (positive): the differences
        inside :math:`C_i` are divided by the spacing of their axis and each axis' pair of
        neighbours is weighted by :math:`1/h_a^2`, so the curvature term is that of the
        physical surface (an anisotropic volume evolves like its isotropic resampling). Default
        isotropic 1 (scikit-image's scheme, unchanged). The recorded energy stays on the
        voxel grid (unit spacing).

    Returns
    -------
    Segmentation
        ``labels`` (phase of each pixel, :func:`phase_labels`), ``memberships``
        (:math:`\prod_j H_\varepsilon(\phi_j)` or :math:`1 - H_\varepsilon(\phi_j)`, float32,
        :func:`phase_memberships`), ``means`` (``(K,)`` gray or ``(K, C)``, on the normalised
        image; ``extras["image_min"]`` and ``extras["image_scale"]`` convert back),
        ``energy``/``times`` (see Notes), ``n_iter``, ``converged``, ``elapsed``,
        ``method="chan-vese"``, ``params`` (all parameters and ``"lam" = mu / 2``) and
        ``level_sets`` ``(m,) + S`` in the working precision.

    Raises
    ------
    ValueError
        Image not 2D/3D (with or without channel axis), NaN/Inf, ``n_phases`` not a power of
        two or larger than 8, unknown ``init`` name, ``init`` array of the wrong shape,
        ``dt``/``eps`` not positive, negative ``mu``/``tol``/``lambdas``, unsupported
        ``dtype``, negative ``max_iter``; a 3D image whose last axis has 3 or 4 entries
        without ``channel_axis`` (an RGB(A) image: pass ``channel_axis=-1``).

    Notes
    -----
    **Stopping rules.** ``stop="partition"`` (default): every ``window`` iterations the
    partition is compared with the one ``window`` iterations earlier; with :math:`n_c` the
    number of pixels whose phase changed and :math:`n_b` the number of interface edges of the
    current partition (pairs of axis-neighbours in different phases, over all axes), the
    solver stops when

    .. math:: n_c \le \mathrm{tol}\cdot \mathrm{window}\cdot \max(n_b, 1),

    i.e. when less than a fraction ``tol`` of the interface moves per iteration on average.
    Both counts scale with the interface, so the rule means the same for a 64² and a 1024²
    image, in 2D and in 3D (scikit-image's per-pixel RMS change shrinks as the image grows
    around a fixed interface, and stops a 3D flow while its surfaces still move).
    ``stop="level-set"`` is scikit-image's rule: after iteration k,
    :math:`v_j = \sqrt{\mathrm{mean}_r(\phi_j^{k} - \phi_j^{k-1})^2}` (the RMS change per
    pixel, ``np.sqrt(((phi - oldphi)**2).mean())``); stop when :math:`\max_j v_j \le` ``tol``.
    ``converged`` is True when the rule fired (``n_iter <= max_iter``), False when
    ``max_iter`` iterations ran without it; ``extras["stop"]`` names the rule and
    ``extras["moved_fraction"]`` holds :math:`n_c / (\mathrm{window}\, \max(n_b, 1))` at each
    check (the ``"partition"`` rule) or :math:`\max_j v_j` at each iteration.

    **Recorded energy.** ``energy[k]`` is the shared Mumford–Shah energy
    (:func:`varseg.energy_from_labels`, isotropic TV, ``reduction="sum"``) of the hard
    partition ``phase_labels(phi)`` after k iterations, on the *normalised* image, with
    :math:`\lambda = \mu/2`; ``energy[0]`` is the initial partition, so ``len(energy) ==
    n_iter + 1`` (1 when ``record_energy=False``). Mapping: the shared length term
    :math:`\sum_n \mathrm{TV}(\chi_n)` counts every boundary twice (once from each side), so
    :math:`\mu |\Gamma| + \sum_s D_s` (Chan–Vese with unit :math:`\lambda_s`) equals the shared
    energy with :math:`\lambda = \mu/2`, for K = 2 and for any K (each boundary between two
    phases is counted twice). With non-unit ``lambdas`` the recorded energy still uses unit
    data weights (the shared ruler). ``times[k]`` is the wall time since the call started
    at which iterate k was available. The energy of iterate k is evaluated inside step k + 1
    from the same per-pixel terms as :func:`varseg._energy_kernels.hard_energy` (squared
    residuals to the phase means, the isotropic-TV value of its ``_pixel_length``) summed in
    another order (equal to about 1e-15 relative, tested), the last one by the same row
    helpers after the loop (``means`` are that partition's own means).

    **The recorded energy is not a Lyapunov function of the scheme**, which descends the
    regularised functional F above, not the shared energy of the hard partition:
    (i) F's length :math:`\mu\sum_j\int\delta_\varepsilon(\phi_j)|\nabla\phi_j|` is that of
    the smooth level sets, not the digital TV of the partition: at the corners of a digital
    contour the discrete curvature is of order 1 and can flip a pixel against a data force
    smaller than :math:`\mu`, raising the data term without lowering the digital length;
    (ii) all pixels move at once with the means of the previous partition (Jacobi, as in
    scikit-image); (iii) for :math:`m > 1` Vese–Chan's length counts a boundary once per level
    set that changes sign across it (twice between "inside both" and "outside both"), the
    shared energy once per boundary: the flow may split such a two-level-set boundary into two
    contours around a one-pixel sliver of an intermediate phase, lowering F and raising the
    shared energy. On ``camera`` (m = 1, defaults, 256² and 512²) the history falls 9- to
    11-fold and rises at 30-40 % of the iterations, each time by at most 6e-4 relative; on
    piecewise-constant images whose boundaries each cross one level set it is non-increasing
    to round-off (tested).

    **Multiphase initialisation.** Vese–Chan has many local minima and moves a pixel between
    phases one level set at a time; the default checkerboard works for m = 1 (Getreuer) but for
    m > 1 its straight zero lines are stationary under the curvature term where the data do not
    separate the two sides, so checkerboard remnants can survive. ``init="kmeans"``
    (:func:`varseg.levelset.initial_level_sets`) starts from an optimal intensity clustering
    with Gray-coded phases and recovers piecewise-constant images with 4 and 8 phases (tested).

    **Constant image** (e.g. blank): every partition has data term 0 and the single phase 0
    has energy 0, the global minimum: the solver returns at once with all pixels in phase 0,
    ``level_sets`` = 1, ``energy = [0.0]``, ``n_iter = 0``, ``converged = True``.

    **Threads.** ``numba.get_num_threads()`` threads (``NUMBA_NUM_THREADS`` by default) each
    run a group of row blocks in a GIL-free Numba kernel; problems with fewer than
    :data:`SERIAL_BELOW` pixels x level sets x channels run in the calling thread. Python
    threads that sleep while waiting, rather than ``parallel=True``, whose OpenMP barrier spins:
    on a machine shared with other busy processes a spinning barrier can cost more than the
    iteration. Results do not depend on the number of threads.

    **Set-up and finish** (the part of a call that is not iterations): one pass normalises
    the image (read as it is when ``uint8`` or float64) into float64 and its float32 copy
    (:func:`varseg.levelset._cv_setup_kernels.normalised`), the checkerboard is written in
    the working precision, and the final pass writes the int64 labels with the energy. The
    internal arrays of a call (normalised image, float32 copy, second level-set and label
    buffers) are reused by the next call of the same thread (up to 64 MiB): the first write
    to fresh memory costs a page fault per 4 KiB, about 0.8 ms per MiB on 2 cores, more than
    the passes themselves. These kernels run in the calling thread (:data:`SETUP_THREADS`).

    **Compilation.** The first call in a process for a working precision compiles the Numba
    kernels (or loads them from Numba's on-disk cache) by running them on a tiny image
    *before* the clock starts (:func:`varseg._jit.ensure_compiled`; a real compilation logs
    one ``INFO`` line, about 20 s): ``elapsed`` and ``times`` never include JIT compilation.
    ``varseg warmup`` (:func:`varseg.levelset.warmup.warmup`) compiles every kernel ahead of time.

    Phase means use the sharp :math:`\phi > 0` (scikit-image); ``labels`` use
    :math:`\phi \ge 0` for phase bit 0 (:func:`phase_labels`): the two differ only on pixels
    where a level set is exactly 0.

    References
    ----------
    .. [1] T. F. Chan and L. A. Vese, "Active contours without edges", IEEE TIP 10(2),
           266-277, 2001.
    .. [2] L. A. Vese and T. F. Chan, "A multiphase level set framework for image segmentation
           using the Mumford and Shah model", IJCV 50(3), 271-293, 2002.
    .. [3] P. Getreuer, "Chan-Vese Segmentation", Image Processing On Line 2, 214-224, 2012,
           :doi:`10.5201/ipol.2012.g-cv`.
    .. [4] T. F. Chan, B. Y. Sandberg and L. A. Vese, "Active contours without edges for
           vector-valued images", JVCIR 11(2), 130-141, 2000.
    .. [5] B. Kim and J. C. Ye, "Mumford–Shah Loss Functional for Image Segmentation with
           Deep Learning", IEEE TIP 29, 2019, Eq. 7-9.

    Examples
    --------
    >>> import numpy as np
    >>> from varseg.levelset import chan_vese
    >>> img = np.zeros((20, 20)); img[5:15, 5:15] = 1
    >>> seg = chan_vese(img, mu=0.1, max_iter=200)
    >>> int((seg.labels == seg.labels[10, 10]).sum()), seg.converged, seg.n_iter
    (100, True, 30)
    """
    cfg = _check_args(
        n_phases,
        mu,
        lambdas,
        dt,
        eps,
        max_iter,
        tol,
        stop,
        window,
        init,
        dtype,
        snapshot_every,
        return_history,
    )
    _check_layout(image, channel_axis)
    check_regions(init_regions, cfg["m"], init)
    cfg["spacing"] = _check_spacing(spacing, np.ndim(image) - (channel_axis is not None))
    _warm_up(cfg["wdtype"])
    t_start = time.perf_counter()  # after the (one-time) compilation: never in the timings
    x_raw, gray = as_channels_first(image, channel_axis, dtype=None)  # no float64 copy
    spatial = x_raw.shape[1:]
    threads = SETUP_THREADS  # of the set-up and finish (the iteration's: _solve)
    # a Generator only where a start draws from it (default_rng(None) reads OS entropy, ~0.3 ms)
    draws = isinstance(init, str) and init in ("random", "lloyd")
    rng = resolve_rng(seed) if seed is not None or draws else None
    x, xw, xmin, scale, constant = normalised(x_raw, cfg["wdtype"], threads)
    phi0 = initial_level_sets(
        spatial, cfg["m"], init, rng, image=x, n_regions=init_regions, dtype=cfg["wdtype"]
    )
    run = _Run(
        x=x,
        gray=gray,
        spatial=spatial,
        cfg=cfg,
        t_start=t_start,
        record=bool(record_energy),
        params=_params(cfg, init, init_regions, channel_axis, seed, record_energy),
        extras={"image_min": xmin, "image_scale": scale, "stop": cfg["stop"]},
        xw=xw,
        threads=threads,
        constant=constant,
    )
    return _solve(run, phi0)


#: Rough compilation time of the kernels of one working precision (the log line's estimate).
COMPILE_SECONDS = 20.0


def _check_args(
    n_phases,
    mu,
    lambdas,
    dt,
    eps,
    max_iter,
    tol,
    stop,
    window,
    init,
    dtype,
    snapshot_every,
    return_history,
):
    """Validate the scalar arguments of :func:`chan_vese`; returns them in a dict."""
    K = check_n_phases(n_phases, power_of_two=True, max_phases=8)
    if stop not in STOP_RULES:
        raise ValueError(f"stop must be one of {sorted(STOP_RULES)}; got {stop!r}")
    cfg = {
        "K": K,
        "m": K.bit_length() - 1,
        "mu": check_positive(mu, "mu", allow_zero=True),
        "dt": check_positive(dt, "dt"),
        "eps": check_positive(eps, "eps"),
        "stop": stop,
        "tol": STOP_RULES[stop] if tol is None else check_positive(tol, "tol", allow_zero=True),
        "window": check_int(window, "window"),
        "max_iter": check_int(max_iter, "max_iter", minimum=0),
        "lam": _check_lambdas(lambdas, K),
        "wdtype": np.dtype(dtype),
    }
    if cfg["wdtype"] not in (np.float32, np.float64):
        raise ValueError(f"dtype must be numpy.float32 or numpy.float64; got {dtype!r}")
    if isinstance(init, str) and init not in INIT_NAMES:
        raise ValueError(f"unknown init {init!r}; expected one of {list(INIT_NAMES)} or an array")
    if snapshot_every is not None:
        check_int(snapshot_every, "snapshot_every")
        return_history = True
    cfg["history"] = bool(return_history)
    cfg["every"] = int(snapshot_every) if snapshot_every is not None else 10
    cfg["lam_ms"] = cfg["mu"] / 2.0
    return cfg


def _check_spacing(spacing, nd):
    """``spacing`` as ``(dz, dy, dx)`` for the kernels (``dz = 0`` in 2D), or None for unit
    (validated by :func:`varseg.energy.check_spacing`)."""
    sp = check_spacing(spacing, nd)
    if sp is None:
        return None
    return sp if nd == 3 else (0.0, sp[0], sp[1])


def _check_layout(image, channel_axis):
    """Refuse an ``(H, W, 3)`` / ``(H, W, 4)`` image without ``channel_axis``.

    Such an image is a colour image, not a 3-slice volume: refuse it (as scikit-image does)
    instead of segmenting it as a volume.
    """
    shape = np.shape(image)
    if channel_axis is None and len(shape) == 3 and shape[-1] in (3, 4):
        raise ValueError(
            f"image of shape {shape} looks like an RGB(A) image; pass "
            f"channel_axis=-1 (or reshape it if it is a volume)"
        )


def _params(cfg, init, init_regions, channel_axis, seed, record_energy):
    """Return the ``params`` dict of the result (JSON-compatible)."""
    return {
        "n_phases": cfg["K"],
        "mu": cfg["mu"],
        "lambdas": cfg["lam"].tolist(),
        "dt": cfg["dt"],
        "eps": cfg["eps"],
        "max_iter": cfg["max_iter"],
        "tol": cfg["tol"],
        "stop": cfg["stop"],
        "window": cfg["window"],
        "init": init if isinstance(init, str) else "array",
        "init_regions": init_regions,
        "channel_axis": channel_axis,
        "dtype": cfg["wdtype"].name,
        "seed": to_builtin(seed),
        "record_energy": bool(record_energy),
        "return_history": cfg["history"],
        "snapshot_every": cfg["every"] if cfg["history"] else None,
        "lam": cfg["lam_ms"],
        "tv": "isotropic",
        "eta": ETA,
        "normalised": True,
        "spacing": None if cfg.get("spacing") is None else [h for h in cfg["spacing"] if h != 0.0],
    }


@dataclass
class _Run:
    """What one call of :func:`chan_vese` carries from its validation to its result."""

    x: np.ndarray
    gray: bool
    spatial: tuple
    cfg: dict
    t_start: float
    record: bool
    params: dict
    extras: dict
    #: ``x`` in the working precision (``x`` itself in float64); None: made by the Stepper
    xw: np.ndarray | None = None
    #: threads of the set-up and finish kernels (the iteration's: _solve)
    threads: int = SETUP_THREADS
    #: constant image (``x`` all 0); None: look at ``x``
    constant: bool | None = None


def _run_tiny(wdtype):
    """Run every kernel of the working precision ``wdtype`` once, on a tiny image.

    Used by :func:`varseg._jit.ensure_compiled` before the clock starts (both raw types of
    the normalisation kernel, :data:`~varseg.levelset._cv_setup_kernels.NATIVE_DTYPES`);
    ``wdtype`` a dtype or its name (the child process of the warm-up).
    """
    wdtype = np.dtype(wdtype)
    img = np.add.outer(np.arange(6.0), np.arange(7.0)) % 4
    cfg = _check_args(
        2, 0.2, 1.0, 0.5, 1.0, 2, 0.0, "partition", 1, "checkerboard", wdtype, None, False
    )
    normalised(img[None].astype(np.uint8), wdtype)
    x, xw, _, _, constant = normalised(img[None], wdtype)
    run = _Run(
        x=x,
        gray=True,
        spatial=img.shape,
        cfg=cfg,
        t_start=time.perf_counter(),
        record=True,
        params={},
        extras={},
        xw=xw,
        constant=constant,
    )
    _solve(run, initial_level_sets(img.shape, 1, "checkerboard", None, image=x, dtype=wdtype))


def warm_kernels():
    """Compile (or load from Numba's cache) the kernels of :func:`chan_vese`.

    Both working precisions, and the hard-partition energy kernels
    (:func:`varseg._jit.ensure_compiled`).

    Returns
    -------
    dict
        Seconds spent per key, e.g. ``("chan_vese", "float32")``; 0.0 for kernels already
        run in this process.
    """
    from .._energy_kernels import warm as warm_energy

    out = {}
    for wdtype in (np.dtype(np.float32), np.dtype(np.float64)):
        out[("chan_vese", wdtype.name)] = _warm_up(wdtype)
    out[("hard_energy",)] = ensure_compiled(
        ("hard_energy",), warm_energy, estimate=10.0, child=("varseg._energy_kernels", "warm", ())
    )
    return out


def _warm_up(wdtype):
    """Compile (or load) the kernels of the working precision ``wdtype`` once per process
    (:func:`varseg._jit.ensure_compiled`, a cold cache compiled in a child process)."""
    return ensure_compiled(
        ("chan_vese", wdtype.name),
        lambda: _run_tiny(wdtype),
        estimate=COMPILE_SECONDS,
        child=(__name__, "_run_tiny", (wdtype.name,)),
    )


def _solve(run, phi0):
    """Constant image: the trivial minimiser; else the iteration (:func:`_iterate`)."""
    cfg, x = run.cfg, run.x
    m, spatial = cfg["m"], run.spatial
    constant = float(x.max()) == 0.0 if run.constant is None else run.constant
    if constant:
        from ..energy import energy_from_labels

        phi = np.ones((m,) + spatial, dtype=cfg["wdtype"])
        labels = phase_labels(phi)
        ms = energy_from_labels(x, labels, cfg["lam_ms"], n_phases=cfg["K"], tv="isotropic")
        snaps = [(0, phi.copy())] if cfg["history"] else None
        return _result(run, phi, labels, [], [], 0, True, snaps, (ms.total, ms.means))
    C = x.shape[0]
    shape4 = (C,) + (1,) * (3 - len(spatial)) + spatial
    x4 = np.ascontiguousarray(x.reshape(shape4))
    if run.xw is not None:
        run.xw = np.ascontiguousarray(run.xw.reshape(shape4))
    threads = solver_threads(x4.size * m)
    rule = (
        _PartitionStop(cfg["tol"], cfg["window"])
        if cfg["stop"] == "partition"
        else _LevelSetStop(cfg["tol"])
    )
    return _iterate(run, x4, phi0, rule, threads)


def _result(run, phi, labels, energies, times, n_iter, converged, snaps, final):
    """Return the :class:`~varseg.result.Segmentation` of a run.

    ``final = (energy, means)`` of the last partition.
    """
    total, means = final
    energies = list(energies) + [total] if run.record else [total]
    times = list(times) + [time.perf_counter() - run.t_start]
    if not run.record:
        times = times[-1:]
    means = np.asarray(means)
    if run.gray:
        means = means[:, 0]
    extras = run.extras
    if snaps is not None:
        extras["snapshots"] = np.stack([s for _, s in snaps]).astype(np.float32)
        extras["snapshot_iters"] = np.array([k for k, _ in snaps], dtype=np.int64)
    return Segmentation(
        labels=labels,
        memberships=phase_memberships(phi, run.cfg["eps"], run.threads).astype(
            np.float32, copy=False
        ),
        means=means,
        energy=np.asarray(energies, dtype=np.float64),
        n_iter=int(n_iter),
        converged=bool(converged),
        elapsed=time.perf_counter() - run.t_start,
        method="chan-vese",
        params=run.params,
        level_sets=phi,
        times=np.asarray(times, dtype=np.float64),
        extras=extras,
    )


def interface_edges(labels):
    """Count the pairs of axis-neighbours with different labels.

    This is the size of the interface, in edges, of a partition (any dimension).
    """
    lab = np.asarray(labels)
    return sum(int(np.count_nonzero(np.diff(lab, axis=a))) for a in range(lab.ndim))


class _PartitionStop:
    """The ``"partition"`` stopping rule (see :func:`chan_vese`, Notes).

    Stop when at most ``tol`` of the interface moved per iteration over the last ``window``
    iterations.
    """

    def __init__(self, tol, window):
        self.tol, self.window = tol, window
        self.ref = None
        self.history = []

    def start(self, lab):
        self.ref = lab.copy()

    def done(self, n_iter, lab, phivar):
        if n_iter % self.window:
            return False
        from ._cv_kernels import partition_change

        moved, edges = partition_change(lab, self.ref)  # also copies lab into ref
        frac = moved / (self.window * max(edges, 1))
        self.history.append(frac)
        return self.tol > 0 and frac <= self.tol


class _LevelSetStop:
    """scikit-image's rule: stop when the RMS change of every level set is at most ``tol``."""

    def __init__(self, tol):
        self.tol = tol
        self.history = []

    def start(self, lab):
        pass

    def done(self, n_iter, lab, phivar):
        self.history.append(phivar)
        return phivar <= self.tol


class _State:
    """The two buffers (iterate k and k + 1) of the level sets and labels, and the means
    (of the classification of ``phi0`` on ``threads`` threads: ``_Run.threads``)."""

    def __init__(self, x4, phi0, m, wdtype, threads):
        from .._scratch import scratch
        from ._cv_kernels import means_from_sums
        from ._cv_setup_kernels import classify_threads

        C = x4.shape[0]
        self.phi = np.ascontiguousarray(phi0.reshape((m,) + x4.shape[1:]), dtype=wdtype)
        self.phi_out = self.phi  # the buffer returned as ``level_sets`` (the others: scratch)
        self.phi_next = scratch("cv.phi_next", self.phi.shape, self.phi.dtype)
        self.lab = scratch("cv.lab", x4.shape[1:], np.uint8)
        self.lab_next = scratch("cv.lab_next", x4.shape[1:], np.uint8)
        self.xtot = np.append(x4.reshape(C, -1).sum(axis=1), float(self.lab.size))
        cnt, sums, ccnt, csums, self.ndiff = classify_threads(
            x4, self.phi, self.lab, self.xtot, threads
        )
        self.m_lab, self.m_evo = means_from_sums(cnt, sums, ccnt, csums)

    def swap(self, m_lab, m_evo, ndiff):
        self.phi, self.phi_next = self.phi_next, self.phi
        self.lab, self.lab_next = self.lab_next, self.lab
        self.m_lab, self.m_evo, self.ndiff = m_lab, m_evo, ndiff


def _iterate(run, x4, phi0, rule, threads):
    """Run the solver loop of :func:`chan_vese` (arguments already validated)."""
    from ._cv_kernels import Stepper

    cfg, spatial = run.cfg, run.spatial
    m, wdtype, lam_ms = cfg["m"], cfg["wdtype"], cfg["lam_ms"]
    st = _State(x4, phi0, m, wdtype, run.threads)
    T = wdtype.type
    stepper = Stepper(
        x4,
        st.xtot,
        cfg["lam"],
        T(cfg["mu"]),
        T(cfg["dt"]),
        T(cfg["eps"]),
        T(ETA),
        m,
        threads,
        fast=wdtype == np.float32,
        spacing=cfg.get("spacing"),
        xw=run.xw,
    )
    energies: list[float] = []
    times = [time.perf_counter() - run.t_start]
    snaps = [(0, st.phi.reshape((m,) + spatial).copy())] if cfg["history"] else None
    n_pix = float(st.lab.size)
    converged = False
    n_iter = 0
    rule.start(st.lab)
    while n_iter < cfg["max_iter"]:
        m_lab, m_evo, ndiff, dsq, data, length = stepper.step(
            st.phi, st.phi_next, st.lab, st.lab_next, st.m_lab, st.m_evo, run.record, st.ndiff == 0
        )
        if run.record:
            energies.append(data + lam_ms * length)  # energy of the iterate before this step
        st.swap(m_lab, m_evo, ndiff)
        n_iter += 1
        times.append(time.perf_counter() - run.t_start)
        if snaps is not None and n_iter % cfg["every"] == 0:
            snaps.append((n_iter, st.phi.reshape((m,) + spatial).copy()))
        if rule.done(n_iter, st.lab, math.sqrt(float(dsq.max()) / n_pix)):
            converged = True
            break
    run.extras["moved_fraction"] = np.asarray(rule.history, dtype=np.float64)
    if run.record:
        times = times[: len(energies)]  # the final record (and its time) is appended below
    return _finish(run, x4, st, energies, times, n_iter, converged, snaps)


def _finish(run, x4, st, energies, times, n_iter, converged, snaps):
    """Return the final energy (shared energy of the last partition, own means) and result."""
    from ._cv_setup_kernels import final_energy_threads

    m, spatial = run.cfg["m"], run.spatial
    if st.phi is not st.phi_out:  # the last iterate is in the scratch buffer
        np.copyto(st.phi_out, st.phi)
    phi = st.phi_out.reshape((m,) + spatial)
    if snaps is not None and snaps[-1][0] != n_iter:
        snaps.append((n_iter, phi.copy()))
    data, length, labels = final_energy_threads(x4, st.lab, st.m_lab, run.threads)
    final = (data + run.cfg["lam_ms"] * length, st.m_lab)
    labels = labels.reshape(spatial)
    return _result(run, phi, labels, energies, times, n_iter, converged, snaps, final)

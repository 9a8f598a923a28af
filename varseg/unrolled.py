r"""The fixed-point iteration of Eq. 15 (Kim & Ye 2019), as a solver and as a trainable network.

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
"""

from __future__ import annotations

import logging
import time

import numpy as np
import torch
from torch import nn

from varseg._jit import ensure_compiled
from varseg._validation import (
    as_channels_first,
    check_choice,
    check_int,
    check_n_phases,
    check_positive,
    renamed_argument,
    resolve_device,
    resolve_rng,
)
from varseg.energy import (
    DEFAULT_LAM,
    batched_means,
    batched_residual,
    energy_from_labels,
    forward_difference,
    normalise_image,
)
from varseg.levelset.heaviside import dirac_torch
from varseg.result import Segmentation

__all__ = [
    "ms_fixed_point",
    "fixed_point_step",
    "curvature",
    "UnrolledMumfordShah",
    "unrolled_segment",
    "normalise_image",
]

logger = logging.getLogger(__name__)

_UPDATES = ("softmax-gradient", "paper")


def curvature(y, eps=0.1):
    r"""Curvature :math:`\mathrm{div}(\nabla y / \sqrt{|\nabla y|^2 + \epsilon^2})` per class.

    Forward differences with a Neumann boundary inside, backward-difference divergence
    outside (its adjoint), so that :math:`-\kappa` is the gradient of the smoothed isotropic
    total variation :math:`\sum_r \sqrt{|\nabla^+ y|^2 + \epsilon^2}`.

    Parameters
    ----------
    y : Tensor, shape (B, K, *S)
    eps : float

    Returns
    -------
    Tensor, shape (B, K, *S)
    """
    axes = range(2, y.ndim)
    grads = [forward_difference(y, a) for a in axes]
    norm = torch.sqrt(sum(g * g for g in grads) + eps * eps)
    div = torch.zeros_like(y)
    for a, g in zip(axes, grads, strict=True):
        p = g / norm
        shifted = torch.cat(
            [torch.zeros_like(p.narrow(a, 0, 1)), p.narrow(a, 0, p.shape[a] - 1)], dim=a
        )
        div = div + p - shifted
    return div


def fixed_point_step(
    z, x, lam, step, *, update="softmax-gradient", curvature_eps=0.1, dirac_eps=1.0, kappa=None
):
    r"""One iteration of Eq. 15 on logits ``z`` (B, K, *S) for images ``x`` (B, C, *S).

    Parameters
    ----------
    z, x : Tensor
    lam : float or Tensor
        Length weight λ of Eq. 12.
    step : float or Tensor
        Step size η.
    update : {"softmax-gradient", "paper"}
        Weighting of the force (module docstring).
    curvature_eps, dirac_eps : float
        ε of the curvature and of the regularised Dirac delta.
    kappa : callable, optional
        Replacement for :func:`curvature` (``kappa(y) -> (B, K, *S)``), e.g. the learned
        convolutions of :class:`UnrolledMumfordShah`.

    Returns
    -------
    Tensor
        Updated logits.
    """
    y = torch.softmax(z, 1)
    means = batched_means(x, y)
    k = curvature(y, curvature_eps) if kappa is None else kappa(y)
    g = batched_residual(x, means) - lam * k
    if update == "paper":
        w = dirac_torch(z, dirac_eps) * g
    else:
        w = y * (g - (y * g).sum(1, keepdim=True))
    return z - step * w


def _initial_logits(x, k, init, rng, sharpness=20.0):
    """Logits (K, *S) as float64 for ``init`` in {"quantiles", "random"} or an array."""
    spatial = x.shape[1:]
    if isinstance(init, str):
        check_choice(init, {"quantiles", "random"}, "init")
        if init == "random":
            return rng.normal(scale=1.0, size=(k,) + spatial)
        lum = x.mean(0)
        q = np.quantile(lum, (np.arange(k) + 0.5) / k)
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


def _segmentation_from_logits(z, x, lam, *, energy, times, n_iter, converged, t0, method, params):
    y = torch.softmax(z, 1)[0].double().numpy()
    labels = y.argmax(0)
    k = y.shape[0]
    means = energy_from_labels(x, labels, lam, n_phases=k).means
    return Segmentation(
        labels=labels,
        memberships=y.astype(np.float32),
        means=means[:, 0] if x.shape[0] == 1 else means,
        energy=np.asarray(energy, dtype=np.float64),
        n_iter=n_iter,
        converged=converged,
        elapsed=time.perf_counter() - t0,
        method=method,
        params=params,
        times=np.asarray(times, dtype=np.float64),
    )


_NUMPY_DTYPES = {
    torch.float32: np.float32,
    torch.float64: np.float64,
    np.dtype(np.float32): np.float32,
    np.dtype(np.float64): np.float64,
}


def _working_dtype(dtype):
    """NumPy float type of ``dtype`` (torch.float32/float64 or the NumPy equivalents)."""
    key = dtype
    if not isinstance(dtype, torch.dtype):
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
    check_choice(update, set(_UPDATES), "update")
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


#: Below this many logit entries (K x pixels) the solver runs in the calling thread.
SERIAL_BELOW = 1 << 15


def _thread_count(n_entries):
    import numba

    return 1 if n_entries < SERIAL_BELOW else numba.get_num_threads()


#: Seconds a cold compilation of the fixed-point kernels takes on a busy 2-core machine
#: (measured: 28 s to 40 s at load average 3.5 to 4.5).
_COMPILE_ESTIMATE_S = 30


def _run_tiny(np_dtype):
    """Run every fixed-point kernel of ``np_dtype`` and the energy kernels once, tiny inputs.

    2D and 3D, both weightings; the final record's serial and parallel energy kernels.
    """
    from varseg._fixed_point_kernels import Workspace

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
        ("fixed_point", name), lambda: _run_tiny(np_dtype), estimate=_COMPILE_ESTIMATE_S
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
    dtype=torch.float32,
    seed=None,
):
    r"""Segment an image with the fixed-point iteration of Eq. 15 (Kim & Ye 2019).

    Iterates Eq. 15 on softmax logits (see :mod:`varseg.unrolled` for the two weightings)
    on the image scaled to [0, 1] by its min and max (as :func:`varseg.chan_vese`), and
    records the shared Mumford–Shah energy of the hard partition
    (:func:`varseg.energy_from_labels` with the same ``lam``) of the initial partition and
    after every iteration, the last included (``n_iter + 1`` records).

    The iteration runs in fused Numba kernels (:mod:`varseg._fixed_point_kernels`: one pass
    over the logits per iteration, rows in parallel, no allocation per iteration) that
    compute the same step as the torch :func:`fixed_point_step` (agreement to 1e-5 in
    float64, tested). The first call per process and dtype runs the kernels once on a tiny
    input before the clock starts, so JIT compilation is not part of ``elapsed``.

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
    dtype : torch.float32 or torch.float64 (or the NumPy types)
        Working precision (float32 default; sums accumulate in float64).
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
    z0 = _initial_logits(x, k, init, resolve_rng(seed))
    spatial = x.shape[1:]
    shape4 = (1,) * (4 - x.ndim)
    x4 = np.ascontiguousarray(x.reshape((x.shape[0],) + shape4 + spatial), dtype=np_dtype)
    z = np.array(z0.reshape((k,) + shape4 + spatial), dtype=np_dtype)  # a copy: updated in place
    ws = Workspace(x4, k)
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
        _thread_count(z.size),
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


class UnrolledMumfordShah(nn.Module):
    r"""T iterations of Eq. 15 unrolled into a trainable network (Kim & Ye 2019, Fig. 1).

    The network (LISTA-style) maps an image to logits: a soft nearest-prototype start
    :math:`z^{(0)}_n = -\beta \|x - p_n\|^2` (learnable prototypes :math:`p_n` and sharpness
    β), then T steps of :func:`fixed_point_step` with learnable step sizes
    :math:`\eta_t = \mathrm{softplus}(s_t)` and, with ``learn_kernels=True``, a learnable
    3×3 convolution per iteration (shared by the classes, initialised to the 5-point
    Laplacian, the linearisation of the curvature) in place of the curvature term. Means
    :math:`c_n` are recomputed from Eq. 13 at every step, per image.

    Parameters
    ----------
    n_phases : int
        Number of classes K.
    in_channels : int
        Image channels C ≥ 1.
    n_iter : int
        Number T ≥ 1 of unrolled iterations.
    lam : float
        λ ≥ 0 of Eq. 12 (fixed).
    step : float
        Initial step size η > 0.
    learn_step, learn_kernels : bool
        Which parts are trainable (prototypes and β always are).
    update : {"softmax-gradient", "paper"}
    curvature_eps : float
        ε > 0 of the smoothed curvature.
    sharpness : float
        Initial β > 0 of the start :math:`z^{(0)}`.

    Raises
    ------
    ValueError
        An argument out of range (one line naming it).

    Shape
    -----
    ``forward(image)``: ``(B, C, H, W)`` in [0, 1] → logits ``(B, K, H, W)``
    (``learn_kernels`` needs 2D; the fixed curvature also works on ``(B, C, D, H, W)``).
    """

    def __init__(
        self,
        n_phases,
        in_channels=1,
        n_iter=10,
        *,
        lam=DEFAULT_LAM,
        step=2.0,
        learn_step=True,
        learn_kernels=False,
        update="softmax-gradient",
        curvature_eps=0.1,
        sharpness=20.0,
    ):
        super().__init__()
        k = check_n_phases(n_phases)
        check_choice(update, set(_UPDATES), "update")
        check_int(in_channels, "in_channels")
        check_int(n_iter, "n_iter")
        lam = check_positive(lam, "lam", allow_zero=True)
        step = check_positive(step, "step")
        sharpness = check_positive(sharpness, "sharpness")
        curvature_eps = check_positive(curvature_eps, "curvature_eps")
        self.n_phases, self.in_channels, self.n_iter = k, int(in_channels), int(n_iter)
        self.lam, self.update, self.curvature_eps = float(lam), update, float(curvature_eps)
        levels = (torch.arange(k, dtype=torch.float32) + 0.5) / k
        self.prototypes = nn.Parameter(levels[:, None].repeat(1, self.in_channels))
        self.log_sharpness = nn.Parameter(torch.tensor(float(np.log(sharpness))))
        raw = float(np.log(np.expm1(step)))  # softplus^-1
        self.raw_steps = nn.Parameter(torch.full((self.n_iter,), raw), requires_grad=learn_step)
        self.kernels = None
        if learn_kernels:
            lap = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]]) / 4
            self.kernels = nn.Parameter(lap.repeat(self.n_iter, 1, 1))
        self.config = dict(
            n_phases=k,
            in_channels=self.in_channels,
            n_iter=self.n_iter,
            lam=self.lam,
            step=step,
            learn_step=learn_step,
            learn_kernels=learn_kernels,
            update=update,
            curvature_eps=curvature_eps,
            sharpness=sharpness,
        )

    @property
    def steps(self):
        r"""The step sizes :math:`\eta_t` (positive), shape (T,)."""
        return nn.functional.softplus(self.raw_steps)

    def initial_logits(self, x):
        r""":math:`z^{(0)}_n = -\beta \|x - p_n\|^2`, shape (B, K, *S)."""
        p = self.prototypes.reshape((1, self.n_phases, self.in_channels) + (1,) * (x.ndim - 2))
        d = ((x[:, None] - p) ** 2).sum(2)
        return -torch.exp(self.log_sharpness) * d

    def _learned_kappa(self, t):
        def kappa(y):
            b, k = y.shape[:2]
            w = self.kernels[t].reshape(1, 1, 3, 3)
            return nn.functional.conv2d(y.reshape(b * k, 1, *y.shape[2:]), w, padding=1).reshape(
                y.shape
            )

        return kappa

    def forward(self, image, return_all=False):
        """Return the logits after T iterations (all T + 1 iterates with ``return_all``)."""
        if image.ndim not in (4, 5) or image.shape[1] != self.in_channels:
            raise ValueError(
                f"image must be (B, {self.in_channels}, H, W) or "
                f"(B, {self.in_channels}, D, H, W); got {tuple(image.shape)}"
            )
        if self.kernels is not None and image.ndim != 4:
            raise ValueError("learn_kernels=True supports 2D images (B, C, H, W) only")
        z = self.initial_logits(image)
        out = [z]
        steps = self.steps
        for t in range(self.n_iter):
            kappa = None if self.kernels is None else self._learned_kappa(t)
            z = fixed_point_step(
                z,
                image,
                self.lam,
                steps[t],
                update=self.update,
                curvature_eps=self.curvature_eps,
                kappa=kappa,
            )
            out.append(z)
        return out if return_all else z


def unrolled_segment(
    image,
    n_phases=2,
    *,
    model=None,
    lam=DEFAULT_LAM,
    n_iter=20,
    max_iter=0,
    lr=0.05,
    learn_kernels=False,
    channel_axis=None,
    seed=None,
    device="cpu",
    progress=False,
    fit_steps=None,
):
    r"""Segment one image with :class:`UnrolledMumfordShah`, optionally fitted to it first.

    With ``max_iter > 0`` the network's parameters are trained on this image with the
    Mumford–Shah loss (Eq. 12, unsupervised, Adam with learning rate ``lr``) before the final
    pass — test-time optimisation. The recorded energy history holds the shared energy of the
    hard partition after each unrolled iteration of the final pass.

    Parameters
    ----------
    image : ndarray
        As in :func:`ms_fixed_point` (scaled to [0, 1] by min/max).
    n_phases : int
    model : UnrolledMumfordShah, optional
        A (trained) network; default: a new one with ``n_iter``, ``lam``, ``learn_kernels``.
    lam : float
        λ ≥ 0 for the recorded energy and the fitting loss.
    n_iter : int
        Unrolled iterations (≥ 1) of a new network.
    max_iter : int
        Adam steps (≥ 0) fitting the network to this image (the iteration budget, spelled as
        in every solver).
    lr : float
        Adam's learning rate (> 0).
    learn_kernels : bool
    channel_axis : int, optional
    seed : int, optional
        Seeds torch for the fit.
    device : str
        "cpu", "cuda" or "auto" (ValueError for "cuda" without CUDA).
    progress : bool
        tqdm bar over the fitting steps.
    fit_steps : int, optional
        Deprecated spelling of ``max_iter`` (``DeprecationWarning``).

    Returns
    -------
    Segmentation
        ``method="unrolled"``.
    """
    from varseg.losses import mumford_shah_loss

    t0 = time.perf_counter()
    x, _ = as_channels_first(image, channel_axis)
    k = check_n_phases(n_phases)
    lam = check_positive(lam, "lam", allow_zero=True)
    n_iter = check_int(n_iter, "n_iter")
    fit_steps = check_int(
        renamed_argument(max_iter, fit_steps, new="max_iter", old="fit_steps", default=0),
        "max_iter" if fit_steps is None else "fit_steps",
        minimum=0,
    )
    lr = check_positive(lr, "lr")
    x = normalise_image(x)
    dev = resolve_device(device)
    if seed is not None:
        torch.manual_seed(seed)
    if model is None:
        model = UnrolledMumfordShah(k, x.shape[0], n_iter, lam=lam, learn_kernels=learn_kernels)
    elif model.n_phases != k or model.in_channels != x.shape[0]:
        raise ValueError(
            f"model has n_phases={model.n_phases}, in_channels="
            f"{model.in_channels}; image needs {k} phases and {x.shape[0]} channels"
        )
    model = model.to(dev)
    xt = torch.as_tensor(x, dtype=torch.float32, device=dev)[None]
    if fit_steps:
        from tqdm.auto import tqdm

        opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=lr)
        for _ in tqdm(range(int(fit_steps)), disable=not progress, desc="unrolled fit"):
            opt.zero_grad()
            loss = mumford_shah_loss(model(xt), xt, lam)
            loss.backward()
            opt.step()
    energy, times = [], []
    with torch.no_grad():
        zs = model(xt, return_all=True)
        for z in zs[1:]:
            energy.append(
                energy_from_labels(x, z[0].argmax(0).cpu().numpy(), lam, n_phases=k).total
            )
            times.append(time.perf_counter() - t0)
    params = dict(
        n_phases=k,
        lam=lam,
        n_iter=model.n_iter,
        max_iter=fit_steps,
        lr=lr,
        learn_kernels=model.kernels is not None,
        seed=seed,
        device=str(dev),
    )
    res = _segmentation_from_logits(
        zs[-1].double().cpu(),
        x,
        lam,
        energy=energy,
        times=times,
        n_iter=model.n_iter,
        converged=True,
        t0=t0,
        method="unrolled",
        params=params,
    )
    res.extras["device"] = str(dev)
    return res

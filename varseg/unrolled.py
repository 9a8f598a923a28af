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

import time

import numpy as np
import torch
from torch import nn

from varseg._validation import (
    as_channels_first,
    check_choice,
    check_n_phases,
    check_positive,
    resolve_rng,
)
from varseg.energy import (
    _batched_means,
    _batched_residual,
    _Ops,
    energy_from_labels,
    normalise_image,
)
from varseg.result import Segmentation

__all__ = ["ms_fixed_point", "fixed_point_step", "curvature", "UnrolledMumfordShah",
           "unrolled_segment", "normalise_image"]

_UPDATES = ("softmax-gradient", "paper")
_OPS = _Ops(True)


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
    grads = [_OPS.fdiff(y, a) for a in axes]
    norm = torch.sqrt(sum(g * g for g in grads) + eps * eps)
    div = torch.zeros_like(y)
    for a, g in zip(axes, grads, strict=True):
        p = g / norm
        shifted = torch.cat([torch.zeros_like(p.narrow(a, 0, 1)),
                             p.narrow(a, 0, p.shape[a] - 1)], dim=a)
        div = div + p - shifted
    return div


def _dirac(z, eps):
    return (eps / np.pi) / (eps * eps + z * z)


def fixed_point_step(z, x, lam, step, *, update="softmax-gradient", curvature_eps=0.1,
                     dirac_eps=1.0, kappa=None):
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
    means = _batched_means(_OPS, x, y)
    k = curvature(y, curvature_eps) if kappa is None else kappa(y)
    g = _batched_residual(_OPS, x, means) - lam * k
    if update == "paper":
        w = _dirac(z, dirac_eps) * g
    else:
        w = y * (g - (y * g).sum(1, keepdim=True))
    return z - step * w


def _initial_logits(x, k, init, rng, sharpness=20.0):
    """Logits (1, K, *S) for ``init`` in {"quantiles", "random"} or an array (K, *S)."""
    spatial = x.shape[1:]
    if isinstance(init, str):
        check_choice(init, {"quantiles", "random"}, "init")
        if init == "random":
            return torch.as_tensor(rng.normal(scale=1.0, size=(1, k) + spatial))
        lum = x.mean(0)
        q = np.quantile(lum, (np.arange(k) + 0.5) / k)
        return torch.as_tensor(-sharpness * (lum[None] - q.reshape((k,) + (1,) * lum.ndim)) ** 2
                               )[None]
    arr = np.asarray(init, dtype=np.float64)
    if arr.shape != (k,) + spatial:
        raise ValueError(f"init array must have shape (n_phases,) + image shape = "
                         f"{(k,) + spatial}; got {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError("init array contains NaN or Inf")
    return torch.as_tensor(arr)[None]


def _segmentation_from_logits(z, x, lam, *, energy, times, n_iter, converged, t0, method,
                              params):
    y = torch.softmax(z, 1)[0].double().numpy()
    labels = y.argmax(0)
    k = y.shape[0]
    means = energy_from_labels(x, labels, lam, n_phases=k).means
    return Segmentation(
        labels=labels, memberships=y.astype(np.float32),
        means=means[:, 0] if x.shape[0] == 1 else means,
        energy=np.asarray(energy, dtype=np.float64), n_iter=n_iter, converged=converged,
        elapsed=time.perf_counter() - t0, method=method, params=params,
        times=np.asarray(times, dtype=np.float64))


def ms_fixed_point(image, n_phases=2, *, lam=0.125, step=2.0, max_iter=300, tol=1e-4,
                   init="quantiles", update="softmax-gradient", curvature_eps=0.1,
                   dirac_eps=1.0, channel_axis=None, dtype=torch.float32, seed=None):
    r"""Segment an image with the fixed-point iteration of Eq. 15 (Kim & Ye 2019).

    Iterates Eq. 15 on softmax logits (see :mod:`varseg.unrolled` for the two weightings)
    on the image scaled to [0, 1] by its min and max (as :func:`varseg.chan_vese`), and
    records the shared Mumford–Shah energy of the hard partition
    (:func:`varseg.energy_from_labels` with the same ``lam``) of the initial partition and
    after every iteration, the last included (``n_iter + 1`` records).

    Parameters
    ----------
    image : ndarray, shape (H, W), (D, H, W) or with a channel axis
    n_phases : int
        Number of classes K ≥ 2 (any K, not only powers of two).
    lam : float
        λ of Eq. 12. ``lam = mu / 2`` compares with Chan–Vese's ``mu``.
    step : float
        Step size η.
    max_iter : int
    tol : float
        Stop when the mean absolute change of the memberships in one iteration is below
        ``tol``.
    init : {"quantiles", "random"} or ndarray (K,) + S
        "quantiles": :math:`z_n = -20 (\bar x - q_n)^2` with :math:`q_n` the
        :math:`(n + \frac12)/K` quantiles of the (channel-mean) intensity, a soft
        nearest-level start; "random": seeded standard normal logits; or initial logits.
    update : {"softmax-gradient", "paper"}
    curvature_eps, dirac_eps : float
        ε of the smoothed curvature and of the Dirac weighting of ``update="paper"``.
    channel_axis : int, optional
    dtype : torch dtype
        Computation type (float32 default).
    seed : int, optional
        For ``init="random"``.

    Returns
    -------
    Segmentation
        ``method="fixed-point"``; labels = argmax of the softmax memberships.

    References
    ----------
    .. [1] B. Kim and J. C. Ye, IEEE TIP 29, 2019, Eq. 14-15.
    """
    t0 = time.perf_counter()
    x, _ = as_channels_first(image, channel_axis)
    k = check_n_phases(n_phases)
    check_positive(step, "step")
    check_positive(lam, "lam", allow_zero=True)
    check_choice(update, set(_UPDATES), "update")
    if int(max_iter) < 1:
        raise ValueError(f"max_iter must be >= 1; got {max_iter}")
    x = normalise_image(x)
    rng = resolve_rng(seed)
    z = _initial_logits(x, k, init, rng).to(dtype)
    xt = torch.as_tensor(x, dtype=dtype)[None]
    energy, times = [], []
    converged = False
    it = 0
    with torch.no_grad():
        y_old = torch.softmax(z, 1)
        energy.append(energy_from_labels(x, y_old[0].argmax(0).numpy(), lam, n_phases=k).total)
        times.append(time.perf_counter() - t0)
        for it in range(1, int(max_iter) + 1):  # noqa: B007 - it is the count run
            z = fixed_point_step(z, xt, lam, step, update=update, curvature_eps=curvature_eps,
                                 dirac_eps=dirac_eps)
            y = torch.softmax(z, 1)
            energy.append(energy_from_labels(x, y[0].argmax(0).numpy(), lam, n_phases=k).total)
            times.append(time.perf_counter() - t0)
            change = float((y - y_old).abs().mean())
            y_old = y
            if change < tol:
                converged = True
                break
    params = dict(n_phases=k, lam=lam, step=step, max_iter=max_iter, tol=tol,
                  init=init if isinstance(init, str) else "array", update=update,
                  curvature_eps=curvature_eps, dirac_eps=dirac_eps, seed=seed)
    return _segmentation_from_logits(z.double(), x, lam, energy=energy, times=times,
                                     n_iter=it, converged=converged, t0=t0,
                                     method="fixed-point", params=params)


class UnrolledMumfordShah(nn.Module):
    r"""T iterations of Eq. 15 unrolled into a trainable network (LISTA-style, Kim & Ye 2019,
    Fig. 1).

    The network maps an image to logits: a soft nearest-prototype start
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
        Image channels C.
    n_iter : int
        Number T of unrolled iterations.
    lam : float
        λ of Eq. 12 (fixed).
    step : float
        Initial step size η.
    learn_step, learn_kernels : bool
        Which parts are trainable (prototypes and β always are).
    update : {"softmax-gradient", "paper"}
    curvature_eps : float

    Shape
    -----
    ``forward(image)``: ``(B, C, H, W)`` in [0, 1] → logits ``(B, K, H, W)``
    (``learn_kernels`` needs 2D; the fixed curvature also works on ``(B, C, D, H, W)``).
    """

    def __init__(self, n_phases, in_channels=1, n_iter=10, *, lam=0.125, step=2.0,
                 learn_step=True, learn_kernels=False, update="softmax-gradient",
                 curvature_eps=0.1, sharpness=20.0):
        super().__init__()
        k = check_n_phases(n_phases)
        check_choice(update, set(_UPDATES), "update")
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
        self.config = dict(n_phases=k, in_channels=self.in_channels, n_iter=self.n_iter,
                           lam=self.lam, step=step, learn_step=learn_step,
                           learn_kernels=learn_kernels, update=update,
                           curvature_eps=curvature_eps, sharpness=sharpness)

    @property
    def steps(self):
        """The step sizes :math:`\\eta_t` (positive), shape (T,)."""
        return nn.functional.softplus(self.raw_steps)

    def initial_logits(self, x):
        """:math:`z^{(0)}_n = -\\beta \\|x - p_n\\|^2`, shape (B, K, *S)."""
        p = self.prototypes.reshape((1, self.n_phases, self.in_channels) + (1,) * (x.ndim - 2))
        d = ((x[:, None] - p) ** 2).sum(2)
        return -torch.exp(self.log_sharpness) * d

    def _learned_kappa(self, t):
        def kappa(y):
            b, k = y.shape[:2]
            w = self.kernels[t].reshape(1, 1, 3, 3)
            return nn.functional.conv2d(y.reshape(b * k, 1, *y.shape[2:]), w,
                                        padding=1).reshape(y.shape)
        return kappa

    def forward(self, image, return_all=False):
        if image.ndim not in (4, 5) or image.shape[1] != self.in_channels:
            raise ValueError(f"image must be (B, {self.in_channels}, H, W) or "
                             f"(B, {self.in_channels}, D, H, W); got {tuple(image.shape)}")
        if self.kernels is not None and image.ndim != 4:
            raise ValueError("learn_kernels=True supports 2D images (B, C, H, W) only")
        z = self.initial_logits(image)
        out = [z]
        steps = self.steps
        for t in range(self.n_iter):
            kappa = None if self.kernels is None else self._learned_kappa(t)
            z = fixed_point_step(z, image, self.lam, steps[t], update=self.update,
                                 curvature_eps=self.curvature_eps, kappa=kappa)
            out.append(z)
        return out if return_all else z


def unrolled_segment(image, n_phases=2, *, model=None, lam=0.125, n_iter=20, fit_steps=0,
                     lr=0.05, learn_kernels=False, channel_axis=None, seed=None,
                     device="cpu", progress=False):
    r"""Segment one image with :class:`UnrolledMumfordShah`, optionally fitted to it first.

    With ``fit_steps > 0`` the network's parameters are trained on this image with the
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
        λ for the recorded energy and the fitting loss.
    n_iter : int
        Unrolled iterations of a new network.
    fit_steps : int
        Adam steps fitting the network to this image.
    lr : float
    learn_kernels : bool
    channel_axis : int, optional
    seed : int, optional
        Seeds torch for the fit.
    device : str
        "cpu", "cuda" or "auto".
    progress : bool
        tqdm bar over the fitting steps.

    Returns
    -------
    Segmentation
        ``method="unrolled"``.
    """
    from varseg.losses import mumford_shah_loss

    t0 = time.perf_counter()
    x, _ = as_channels_first(image, channel_axis)
    k = check_n_phases(n_phases)
    x = normalise_image(x)
    dev = _device(device)
    if seed is not None:
        torch.manual_seed(seed)
    if model is None:
        model = UnrolledMumfordShah(k, x.shape[0], n_iter, lam=lam, learn_kernels=learn_kernels)
    elif model.n_phases != k or model.in_channels != x.shape[0]:
        raise ValueError(f"model has n_phases={model.n_phases}, in_channels="
                         f"{model.in_channels}; image needs {k} phases and {x.shape[0]} channels")
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
            energy.append(energy_from_labels(x, z[0].argmax(0).cpu().numpy(), lam,
                                             n_phases=k).total)
            times.append(time.perf_counter() - t0)
    params = dict(n_phases=k, lam=lam, n_iter=model.n_iter, fit_steps=fit_steps, lr=lr,
                  learn_kernels=model.kernels is not None, seed=seed, device=str(dev))
    res = _segmentation_from_logits(zs[-1].double().cpu(), x, lam, energy=energy, times=times,
                                    n_iter=model.n_iter, converged=True, t0=t0,
                                    method="unrolled", params=params)
    res.extras["device"] = str(dev)
    return res


def _device(device):
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)



r"""The fixed-point iteration of Eq. 15 (Kim & Ye 2019) in torch, and as a trainable network.

The iteration and its two weightings are described in :mod:`varseg.fixed_point`, whose
Numba solver :func:`~varseg.fixed_point.ms_fixed_point` (no torch) is re-exported here. This
module holds the torch side: one differentiable step :func:`fixed_point_step` on softmax
logits,

.. math::

    z_n^{(k+1)} = z_n^{(k)} - \eta\, w_n^{(k)}, \qquad g_n = \|x - c_n\|^2 - \lambda\,\kappa_n,

its curvature :func:`curvature` (:math:`\kappa_n = -\partial \mathrm{TV}_\epsilon / \partial
y_n`, the backward-difference divergence of :math:`\nabla^+ y_n / \sqrt{|\nabla^+ y_n|^2 +
\epsilon^2}`), the network :class:`UnrolledMumfordShah` (T steps unrolled, Fig. 1) and the
per-image solver :func:`unrolled_segment`.
"""

from __future__ import annotations

import logging
import time

import numpy as np
import torch
from torch import nn

from varseg._validation import (
    as_channels_first,
    check_choice,
    check_int,
    check_n_phases,
    check_positive,
    renamed_argument,
    resolve_device,
)
from varseg.energy import (
    DEFAULT_LAM,
    batched_means,
    batched_residual,
    energy_from_labels,
    forward_difference,
    normalise_image,
)
from varseg.fixed_point import UPDATES, ms_fixed_point
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
        check_choice(update, set(UPDATES), "update")
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

r"""A network fitted to one image: the unsupervised "Backprop" setting of Kim & Ye 2019.

A small CNN (by default Kanezaki's conv-ReLU-BN network, ICASSP 2018) is trained on a single
image by minimising the Mumford–Shah loss of its softmax output (Eq. 12-13), optionally with
the bias-field form (Eq. 19-20) and optionally with Kanezaki's own cross-entropy against the
network's argmax (superpixel-refined), so that both "Backprop" and "Backprop + MS" of
Table VI are available; the final argmax is the segmentation. Any model mapping
``(1, C, H, W)`` to logits ``(1, K, H, W)`` (e.g. :class:`varseg.models.UNet`) can be used for
test-time optimisation.

Why a k-means start
-------------------
From random weights the softmax of the network is nearly uniform and its argmax follows
whatever the random features happen to separate. The Mumford–Shah loss is a soft k-means
energy with a length term; like k-means it has merged-region local minima, and gradient
descent from a random start falls into one: the memberships of two regions drift together,
their shared mean sits between them, and the loss around that configuration is flat, with or
without the final batch norm. The cure is the one
Chan–Vese needs for more than two phases: start from an optimal intensity clustering
(:func:`varseg.levelset.kmeans_partition`). With ``init="kmeans"`` the network is first
fitted for ``warm_steps`` steps by cross-entropy to that partition, then the Mumford–Shah loss
alone takes over and moves the boundaries (length term) and the memberships (data term) to
its own minimum; ``restarts`` independent fits keep the lowest shared energy.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

from varseg._optim import SGD, Adam
from varseg._validation import (
    as_channels_first,
    check_choice,
    check_int,
    check_n_phases,
    check_positive,
    resolve_device,
)
from varseg.energy import energy_from_labels, normalise_image
from varseg.levelset import kmeans_partition
from varseg.losses import (
    bias_field_mumford_shah_loss,
    mumford_shah_loss,
    smooth_bias,
    unit_mean_bias,
)
from varseg.result import Segmentation

__all__ = ["neural_segment", "with_coordinates", "PolynomialBias", "NEURAL_INITS", "WARM_CE"]

#: Starts of :func:`neural_segment`: ``"kmeans"`` (fit the k-means partition first) or
#: ``"random"`` (the network's random weights, as Kanezaki 2018).
NEURAL_INITS = ("kmeans", "random")

#: The k-means warm start ends once the mean cross-entropy to the partition is at most this
#: (the network gives its k-means class a probability of about 0.95 on average): the soft
#: memberships are then nearly one-hot, so the Mumford–Shah loss starts near the hard
#: energy of the partition. From a start with soft memberships (e.g. stopping at 99 % argmax
#: agreement) the loss descends to soft local minima whose argmax merges regions.
WARM_CE = 0.05

#: Learning-rate multiplier of the :class:`PolynomialBias` coefficients.
BIAS_LR_MULT = 10.0


#: Random functions that take a ``generator`` keyword (:class:`_LocalGenerator`).
_RANDOM_FUNCS = frozenset(
    {
        "uniform_",
        "normal_",
        "random_",
        "bernoulli_",
        "exponential_",
        "cauchy_",
        "log_normal_",
        "geometric_",
        "rand",
        "randn",
        "randint",
        "randperm",
        "multinomial",
        "bernoulli",
        "normal",
    }
)


class _LocalGenerator(TorchFunctionMode):
    """Draw every random number of the torch calls made inside it from ``generator``.

    A torch function mode (thread-local) that passes ``generator=`` to the random functions
    and to the :mod:`torch.nn.init` initialisers (their ``generator=None`` default), so that
    a network built inside it is initialised from a local :class:`torch.Generator`: the
    caller's global random state is neither read nor changed, and concurrent calls from
    several threads cannot interleave their draws.
    """

    def __init__(self, generator):
        super().__init__()
        self.generator = generator

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = dict(kwargs or {})
        name = getattr(func, "__name__", "")
        if kwargs.get("generator", 0) is None or (
            name in _RANDOM_FUNCS and "generator" not in kwargs
        ):
            kwargs["generator"] = self.generator
        return func(*args, **kwargs)


def _generator(seed):
    """Return a local CPU :class:`torch.Generator` seeded with ``seed``.

    A fresh random seed for None.
    """
    g = torch.Generator()
    if seed is None:
        g.seed()
    else:
        g.manual_seed(int(seed))
    return g


def _superpixel_refine(labels, segments, n_segments):
    """Kanezaki's refinement: every superpixel takes the majority argmax label inside it."""
    k = int(labels.max()) + 1
    counts = np.zeros((n_segments, k), dtype=np.int64)
    np.add.at(counts, (segments.ravel(), labels.ravel()), 1)
    return counts.argmax(1)[segments]


def _superpixels(x, n):
    """SLIC superpixels of the channels-first image (Kanezaki: compactness 100 on colour)."""
    from skimage.segmentation import slic

    if x.shape[0] > 1:
        seg = slic(
            np.moveaxis(x, 0, -1),
            n_segments=int(n),
            compactness=100,
            channel_axis=-1,
            start_label=0,
        )
    else:
        seg = slic(x[0], n_segments=int(n), compactness=0.1, channel_axis=None, start_label=0)
    return seg, int(seg.max()) + 1


@dataclass
class _Fit:
    """Outcome of one fit of the network (one restart)."""

    labels: np.ndarray
    memberships: np.ndarray
    bias: np.ndarray | None
    energy: list = field(default_factory=list)
    times: list = field(default_factory=list)
    losses: list = field(default_factory=list)
    n_iter: int = 0
    stalled: bool = False
    final_energy: float = np.inf
    seed: int | None = None
    warm_steps: int = 0


@dataclass
class _Config:
    """The validated options of :func:`neural_segment` shared by every restart."""

    k: int
    lam: float
    bias_field: bool
    beta: float
    kanezaki_ce: bool
    ms_loss: bool
    max_iter: int
    lr: float
    optimizer: str
    tol: float
    patience: int
    min_labels: int | None
    tv: str
    init: str
    warm_steps: int
    hidden_channels: int
    progress: bool
    bias_model: str
    bias_degree: int
    bias_sigma: float


def _split(out, sigma=0.0):
    """Split a model output into ``(logits, bias)``.

    The bias is smoothed by :func:`smooth_bias` and scaled to unit mean
    (:func:`unit_mean_bias`).
    """
    logits, bias = out if isinstance(out, tuple) else (out, None)
    if bias is not None:
        if sigma > 0:
            bias = smooth_bias(bias, sigma)
        bias = unit_mean_bias(bias)
    return logits, bias


class PolynomialBias(torch.nn.Module):
    r"""A smooth positive bias field of position, a Legendre polynomial under an exponential.

    :math:`b(y, x) = \exp \sum_{i + j \le d} a_{ij} P_i(y) P_j(x)`, with :math:`P_i` the
    Legendre polynomials on :math:`[-1, 1]`.

    The classical parametric bias model of MRI inhomogeneity correction (Styner et al. 2000;
    B-splines in N3/N4): a few coefficients, smooth by construction, positive through the
    exponential. In Eq. 19-20 a free per-pixel bias has a gauge per region (:math:`b \to g_n
    b`, :math:`c_n \to c_n / g_n` for any :math:`g` constant on each region leaves the data
    term unchanged) that only the small β TV(b) penalty pins; a low-degree polynomial can
    follow a piecewise-constant :math:`g` only poorly, so mostly the global scale is left,
    which :func:`unit_mean_bias` fixes. The lower the degree, the less of that gauge is left:
    where the regions are bands along the bias gradient (vertical bars under a horizontal
    ramp) a cubic can still mimic per-band factors and the bias is only partly identifiable,
    a quadratic cannot (the default of :func:`neural_segment`). All coefficients start at 0
    (b = 1).

    Parameters
    ----------
    shape : (H, W)
    degree : int
        Total degree d (default 3: 10 monomials, 9 coefficients without the constant, which
        the unit mean fixes; :func:`neural_segment` uses 2: 5 coefficients).
    """

    def __init__(self, shape, degree=3):
        super().__init__()
        H, W = (int(n) for n in shape)
        ys, xs = (torch.linspace(-1, 1, n, dtype=torch.float64) for n in (H, W))
        py, px = _legendre(ys, degree), _legendre(xs, degree)
        basis = [
            py[i][:, None] * px[j][None, :]
            for i in range(degree + 1)
            for j in range(degree + 1 - i)
        ]
        self.register_buffer("basis", torch.stack(basis[1:]).float())  # no constant term
        self.coef = torch.nn.Parameter(torch.zeros(len(basis) - 1))

    def forward(self):
        """Return the bias field ``(1, 1, H, W)``."""
        return torch.exp(torch.einsum("k,khw->hw", self.coef, self.basis))[None, None]


def _legendre(t, degree):
    out = [torch.ones_like(t), t]
    for n in range(1, degree):
        out.append(((2 * n + 1) * t * out[n] - n * out[n - 1]) / (n + 1))
    return out[: degree + 1]


class _WithBias(torch.nn.Module):
    """A segmentation network plus a :class:`PolynomialBias`: ``(logits, bias)``."""

    def __init__(self, net, bias):
        super().__init__()
        self.net, self.bias = net, bias

    def forward(self, x):
        return self.net(x), self.bias().to(x.dtype).expand(x.shape[0], 1, -1, -1)


def with_coordinates(x):
    r"""Append the normalised pixel coordinates :math:`(y, x) \in [-1, 1]^2` as two channels.

    ``(B, C, H, W) -> (B, C + 2, H, W)`` (CoordConv, Liu et al. 2018).

    A bias field is a function of position (Eq. 5), while a fully convolutional network is
    translation-equivariant and sees only its receptive field: without the coordinates, the
    bias channel of a small network can only be a function of the local intensities, which
    inside a constant region confuses the bias with the class means. With them the bias
    channel can represent any smooth function of position.
    """
    B, _, H, W = x.shape
    ys = torch.linspace(-1, 1, H, dtype=x.dtype, device=x.device).view(1, 1, H, 1)
    xs = torch.linspace(-1, 1, W, dtype=x.dtype, device=x.device).view(1, 1, 1, W)
    return torch.cat([x, ys.expand(B, 1, H, W), xs.expand(B, 1, H, W)], 1)


def _make_optimizer(model, cfg):
    """Adam or SGD over the trainable weights.

    :mod:`varseg._optim`'s classes: ``torch.optim``'s updates without its ``torch._dynamo``
    import.

    The coefficients of a :class:`PolynomialBias` take :data:`BIAS_LR_MULT` times the learning
    rate (a handful of global parameters that otherwise lag far behind the network).
    """
    bias = [
        p
        for p in (model.bias.parameters() if isinstance(model, _WithBias) else [])
        if p.requires_grad
    ]
    ids = {id(p) for p in bias}
    rest = [p for p in model.parameters() if p.requires_grad and id(p) not in ids]
    groups = [{"params": rest}] + ([{"params": bias, "lr": cfg.lr * BIAS_LR_MULT}] if bias else [])
    if cfg.optimizer == "adam":
        return Adam(groups, lr=cfg.lr)
    return SGD(groups, lr=cfg.lr, momentum=0.9)


def _warm_start(model, inp, target, cfg, opt):
    """Fit the network to the k-means partition by cross-entropy.

    At most ``warm_steps`` steps, until the cross-entropy is at most :data:`WARM_CE`. Returns
    the number of steps taken.
    """
    tgt = torch.as_tensor(target, device=inp.device)[None]
    for step in range(cfg.warm_steps):
        opt.zero_grad()
        logits, bias = _split(model(inp), cfg.bias_sigma)
        _check_output(logits, bias, inp, cfg)
        ce = F.cross_entropy(logits, tgt)
        if float(ce.detach()) <= WARM_CE:
            return step
        ce.backward()
        opt.step()
    return cfg.warm_steps


def _loss(logits, bias, xt, cfg, lab_now, segments):
    """Mumford–Shah loss (Eq. 12-13, or 19-20 with the bias) plus Kanezaki's CE."""
    loss = logits.new_zeros(())
    if cfg.ms_loss:
        if cfg.bias_field:
            loss = loss + bias_field_mumford_shah_loss(
                logits, bias, xt, cfg.lam, cfg.beta, tv=cfg.tv
            )
        else:
            loss = loss + mumford_shah_loss(logits, xt, cfg.lam, tv=cfg.tv)
    if cfg.kanezaki_ce:
        target = lab_now if segments is None else _superpixel_refine(lab_now, *segments)
        loss = loss + F.cross_entropy(logits, torch.as_tensor(target, device=logits.device)[None])
    return loss


def _check_output(logits, bias, xt, cfg):
    if logits.shape[1] != cfg.k or logits.shape[2:] != xt.shape[2:]:
        raise ValueError(
            f"model output has shape {tuple(logits.shape)}; expected "
            f"(1, {cfg.k}) + {tuple(xt.shape[2:])}"
        )
    if cfg.bias_field and bias is None:
        raise ValueError("bias_field=True needs a model that returns (logits, bias)")


def _fit_once(model, x, xt, inp, cfg, target, segments, t0, seed):
    """Train ``model`` on the image.

    Optional k-means warm start, then the loss until it stalls (:func:`_stalled`) or
    ``max_iter``.
    """
    from tqdm.auto import tqdm

    opt = _make_optimizer(model, cfg)
    fit = _Fit(labels=None, memberships=None, bias=None, seed=seed)
    if target is not None:
        fit.warm_steps = _warm_start(model, inp, target, cfg, opt)
        opt = _make_optimizer(model, cfg)  # fresh moments for the new loss
    for it in tqdm(range(1, cfg.max_iter + 1), disable=not cfg.progress, desc="neural_segment"):
        opt.zero_grad()
        logits, bias = _split(model(inp), cfg.bias_sigma)
        _check_output(logits, bias, xt, cfg)
        lab_now = logits.detach().argmax(1)[0].cpu().numpy()
        loss = _loss(logits, bias, xt, cfg, lab_now, segments)
        loss.backward()
        opt.step()
        lv = float(loss.detach())
        if not np.isfinite(lv):
            raise FloatingPointError(
                f"neural_segment: the loss became {lv} at step {it}; lower lr (now {cfg.lr})"
            )
        fit.losses.append(lv)
        fit.energy.append(energy_from_labels(x, lab_now, cfg.lam, n_phases=cfg.k, tv=cfg.tv).total)
        fit.times.append(time.perf_counter() - t0)
        fit.n_iter = it
        if _stalled(fit.losses, cfg) or (
            cfg.min_labels and len(np.unique(lab_now)) <= cfg.min_labels
        ):
            fit.stalled = True
            break
    _final_pass(model, x, inp, cfg, fit)
    return fit


def _stalled(losses, cfg):
    """Tell whether the loss stalled.

    It improved by at most ``tol`` (relative) over the last ``patience`` steps.
    """
    if len(losses) <= cfg.patience:
        return False
    return losses[-cfg.patience - 1] - losses[-1] <= cfg.tol * abs(losses[-1])


def _final_pass(model, x, inp, cfg, fit):
    """Memberships, labels, bias and energy of the trained network.

    Batch-norm in training mode: the statistics of this image, as during the fit.
    """
    with torch.no_grad():
        logits, bias = _split(model(inp), cfg.bias_sigma)
        y = torch.softmax(logits.double(), 1)[0].cpu().numpy()
    fit.memberships = y.astype(np.float32)
    fit.labels = y.argmax(0)
    fit.bias = None if bias is None else bias[0, 0].double().cpu().numpy()
    fit.final_energy = energy_from_labels(x, fit.labels, cfg.lam, n_phases=cfg.k, tv=cfg.tv).total


def _converged(fit, x):
    """Tell whether the loss stopped improving without collapsing to one label.

    A non-constant image always has a lower-energy partition with two labels.
    """
    constant = float(np.ptp(x)) == 0.0
    return bool(fit.stalled and (constant or len(np.unique(fit.labels)) >= 2))


def neural_segment(
    image,
    n_phases=2,
    *,
    lam=0.125,
    bias_field=False,
    beta=0.01,
    kanezaki_ce=False,
    ms_loss=True,
    superpixels=None,
    model=None,
    init="kmeans",
    warm_steps=200,
    restarts=1,
    max_iter=None,
    lr=0.01,
    optimizer="adam",
    tol=None,
    patience=20,
    min_labels=None,
    seed=None,
    device="auto",
    progress=True,
    channel_axis=None,
    tv="isotropic",
    hidden_channels=32,
    bias_model="polynomial",
    bias_degree=2,
    bias_sigma=None,
):
    r"""Segment one image by fitting a network to it with the Mumford–Shah loss.

    Minimises over the network weights :math:`\Theta`

    .. math::

        L(\Theta) = \underbrace{\tfrac1N L_{MS}(\Theta; x)}_{\text{Eq. 12-13, or 19-20}}
                    + \gamma\, \mathrm{CE}\big(z, \mathrm{refine}(\arg\max z)\big)

    with :math:`\gamma = 1` when ``kanezaki_ce`` (Kanezaki 2018's self-training loss, the
    "Backprop" baseline; its argmax pseudo-labels are refined by SLIC superpixels when
    ``superpixels`` is set) and 0 otherwise. The image is scaled to [0, 1] by its min and
    max (as :func:`varseg.chan_vese`), so ``lam`` has the meaning of the shared energy's λ; the
    loss uses the per-pixel ``"mean"`` reduction, whose minimiser is that of the energy.

    With ``init="kmeans"`` (default) the network is first fitted by cross-entropy, for
    ``warm_steps`` steps, to the optimal intensity clustering of the image
    (:func:`varseg.levelset.kmeans_partition`); the loss above then takes over (see the
    module docstring for why a random start merges regions).

    The shared energy of the hard partition (argmax) is recorded at every iteration
    (:func:`varseg.energy_from_labels`), so the result compares directly with Chan–Vese.

    Parameters
    ----------
    image : ndarray, shape (H, W) or (H, W, C) with ``channel_axis``
    n_phases : int
        Number of output classes K (response channels of the default network).
    lam : float
        Length weight λ of Eq. 12.
    bias_field : bool
        Use the bias-field loss (Eq. 19-20) with the network's positive bias output.
    beta : float
        Weight of the bias total variation (Eq. 19).
    kanezaki_ce : bool
        Add Kanezaki's argmax cross-entropy ("Backprop"); with ``ms_loss=False`` it is the
        plain "Backprop" baseline.
    ms_loss : bool
        Include the Mumford–Shah term (default).
    superpixels : int, optional
        Number of SLIC superpixels for refining Kanezaki's pseudo-labels (Kanezaki uses
        ~10000 with compactness 100); None: no refinement.
    model : torch.nn.Module, optional
        Network mapping ``(1, C, H, W)`` to logits ``(1, K, H, W)`` (or ``(logits, bias)``
        with ``bias_field``). Default: :class:`varseg.models.KanezakiNet` with K response
        channels, 2 convolutions of ``hidden_channels`` channels. A given model is trained in
        place; ``restarts`` must then be 1.
    init : {"kmeans", "random"}
        Start: fit the k-means partition first (default) or start from the random weights
        (Kanezaki's "Backprop").
    warm_steps : int
        At most this many cross-entropy steps of the k-means start (``init="kmeans"``); it
        ends early once the cross-entropy is at most :data:`WARM_CE` (``extras["warm_steps"]``
        says how many ran).
    restarts : int
        Independent fits (seeds ``seed``, ``seed + 1``, …); the one whose final partition has
        the lowest shared energy is returned.
    max_iter : int, optional
        Maximum optimiser steps of the loss (after the warm start), per restart; default 500,
        1000 with ``bias_field``.
    lr : float
        Learning rate.
    optimizer : {"adam", "sgd"}
        Adam, or SGD with momentum 0.9 (Kanezaki's choice, with lr 0.1).
    tol, patience : float, int
        Stop when the loss improved by at most ``tol`` (relative to its current value) over
        the last ``patience`` steps: :math:`L_{k-p} - L_k \le \mathrm{tol}\,|L_k|`. Default
        ``tol`` 1e-2, 3e-3 with ``bias_field`` (the bias converges more slowly than the
        partition, and its data-term gains are small beside the length term).
    min_labels : int, optional
        Kanezaki's stop: when the argmax uses at most this many labels.
    seed : int, optional
        Seed of the network's weights (and of everything random), drawn from a local
        :class:`torch.Generator`: the caller's global torch random state is neither used nor
        changed, and calls from several threads give the results of serial calls.
    device : {"auto", "cpu", "cuda", "cuda:N"} or torch.device
        "auto" picks CUDA when available (:func:`varseg._validation.resolve_device`).
    progress : bool
        Show a tqdm progress bar.
    channel_axis : int, optional
    tv : {"isotropic", "anisotropic"}
    hidden_channels : int
        Hidden width of the default network.
    bias_model : {"polynomial", "network"}
        With ``bias_field`` and the default model: the bias is a :class:`PolynomialBias`
        of degree ``bias_degree`` (default), or the network's own bias channel (Kim & Ye's
        Fig. 2(b); the network then also receives the pixel coordinates,
        :func:`with_coordinates`, and its bias is smoothed by ``bias_sigma``). A given
        ``model`` supplies its own bias.
    bias_degree : int
        Total degree of the polynomial bias (default 2, a quadratic: smooth inhomogeneities,
        and no room to mimic per-region factors, see :class:`PolynomialBias`).
    bias_sigma : float, optional
        With ``bias_model="network"``: the network's bias channel is smoothed by a Gaussian of this
        standard deviation in pixels (:func:`smooth_bias`; default ``min(H, W) / 8``), so that
        it models slow inhomogeneity and cannot absorb region boundaries; 0 leaves it as the
        network outputs it.

    Returns
    -------
    Segmentation
        ``method="neural"``; ``bias`` with ``bias_field``; ``converged`` is True when the loss
        stopped improving (or Kanezaki's ``min_labels`` fired) and the partition uses at least
        two labels; ``extras["device"]``, ``extras["loss"]`` (loss history),
        ``extras["restart_energies"]`` (final shared energy of every restart) and
        ``extras["seed"]`` (the seed of the returned fit). A constant image returns its
        minimiser, the one-region partition (energy 0, ``n_iter = 0``), without fitting.

    Raises
    ------
    ValueError
        Bad image (also one with fewer than ``max(2, n_phases)`` pixels), ``n_phases``,
        ``lam``, ``lr``, ``init``, ``optimizer``, counts that are not positive (``superpixels``
        included), a CUDA ``device`` on a machine without CUDA, or a model output of the
        wrong shape.

    References
    ----------
    .. [1] B. Kim and J. C. Ye, IEEE TIP 29, 2019, Sec. IV-B3, Table VI.
    .. [2] A. Kanezaki, "Unsupervised image segmentation by backpropagation", ICASSP 2018.
    .. [3] L. A. Vese and T. F. Chan, IJCV 50(3), 2002 (the multiphase local minima that a
           clustering start avoids).

    Examples
    --------
    >>> import numpy as np
    >>> from varseg.neural import neural_segment
    >>> img = np.zeros((24, 24)); img[6:18, 6:18] = 1
    >>> seg = neural_segment(img, 2, max_iter=30, seed=0, progress=False)
    >>> int((seg.labels == seg.labels[12, 12]).sum())
    144
    """
    t0 = time.perf_counter()
    x, _ = as_channels_first(image, channel_axis, spatial_ndims=(2,))
    cfg = _config(
        n_phases,
        lam,
        bias_field,
        beta,
        kanezaki_ce,
        ms_loss,
        max_iter,
        lr,
        optimizer,
        tol,
        patience,
        min_labels,
        tv,
        init,
        warm_steps,
        hidden_channels,
        progress,
        bias_model,
        bias_degree,
        bias_sigma,
        min(x.shape[1:]),
    )
    restarts = check_int(restarts, "restarts")
    if superpixels is not None:
        superpixels = check_int(superpixels, "superpixels")
    if seed is not None:
        seed = check_int(seed, "seed", minimum=0)
    _check_size(x, cfg.k)
    if model is not None and restarts > 1:
        raise ValueError("restarts > 1 needs the default model (a given model is trained in place)")
    x = normalise_image(x)
    dev = resolve_device(device)
    if float(x.max()) == 0.0:  # constant image: the one-region partition is the minimiser
        fits = [_constant_fit(x, cfg, seed)]
        name = "none" if model is None else type(model).__name__
    else:
        fits, name = _fits(x, cfg, model, dev, superpixels, seed, restarts, t0)
    best = min(fits, key=lambda f: f.final_energy)
    return _result(best, fits, x, cfg, dev, t0, superpixels, seed, restarts, name)


def _fits(x, cfg, model, dev, superpixels, seed, restarts, t0):
    """Every restart's fit and the model's class name.

    Seeds ``seed``, ``seed + 1``, …, each model initialised from its own local generator.
    """
    xt = torch.as_tensor(x, dtype=torch.float32, device=dev)[None]
    coords = cfg.bias_field and cfg.bias_model == "network" and model is None
    inp = with_coordinates(xt) if coords else xt
    target = kmeans_partition(x, cfg.k) if cfg.init == "kmeans" else None
    segments = _superpixels(x, superpixels) if (cfg.kanezaki_ce and superpixels) else None
    fits = []
    for r in range(restarts):
        s = None if seed is None else seed + r
        if model is not None:
            net = model
        else:
            with _LocalGenerator(_generator(s)):
                net = _default_model(inp.shape[1], cfg, x.shape[1:])
        fits.append(_fit_once(net.to(dev).train(), x, xt, inp, cfg, target, segments, t0, s))
    return fits, type(net).__name__


def _constant_fit(x, cfg, seed):
    """Return the trivial minimiser of a constant image: every pixel in class 0, energy 0."""
    spatial = x.shape[1:]
    labels = np.zeros(spatial, dtype=np.int64)
    memberships = np.zeros((cfg.k,) + spatial, dtype=np.float32)
    memberships[0] = 1
    bias = np.ones(spatial) if cfg.bias_field else None
    return _Fit(
        labels=labels,
        memberships=memberships,
        bias=bias,
        stalled=True,
        final_energy=energy_from_labels(x, labels, cfg.lam, n_phases=cfg.k).total,
        seed=seed,
    )


def _check_size(x, k):
    """Refuse an image too small for the network.

    The network's batch norm needs two values per channel, and K classes need K pixels.
    """
    n = int(np.prod(x.shape[1:]))
    if n < max(2, k):
        raise ValueError(
            f"image is too small for neural_segment: {n} pixel(s) (shape "
            f"{tuple(x.shape[1:])}); need at least {max(2, k)} for "
            f"n_phases={k}"
        )


def _default_model(in_channels, cfg, shape):
    from varseg.models import KanezakiNet

    if cfg.bias_field and cfg.bias_model == "polynomial":
        net = KanezakiNet(in_channels, n_channels=cfg.k, hidden_channels=cfg.hidden_channels)
        return _WithBias(net, PolynomialBias(shape, cfg.bias_degree))
    return KanezakiNet(
        in_channels,
        n_channels=cfg.k,
        hidden_channels=cfg.hidden_channels,
        bias_field=cfg.bias_field,
    )


def _config(
    n_phases,
    lam,
    bias_field,
    beta,
    kanezaki_ce,
    ms_loss,
    max_iter,
    lr,
    optimizer,
    tol,
    patience,
    min_labels,
    tv,
    init,
    warm_steps,
    hidden_channels,
    progress,
    bias_model,
    bias_degree,
    bias_sigma,
    min_side,
):
    check_positive(lam, "lam", allow_zero=True)
    check_positive(beta, "beta", allow_zero=True)
    check_positive(lr, "lr")
    if max_iter is None:
        max_iter = 1000 if bias_field else 500
    if tol is None:
        tol = 3e-3 if bias_field else 1e-2
    check_positive(tol, "tol", allow_zero=True)
    check_choice(optimizer, {"adam", "sgd"}, "optimizer")
    check_choice(init, set(NEURAL_INITS), "init")
    check_choice(tv, {"isotropic", "anisotropic"}, "tv")
    if not (ms_loss or kanezaki_ce):
        raise ValueError("nothing to minimise: set ms_loss=True and/or kanezaki_ce=True")
    check_choice(bias_model, {"polynomial", "network"}, "bias_model")
    if bias_model == "polynomial":
        bias_sigma = 0.0  # smooth by construction
    elif bias_sigma is None:
        bias_sigma = min_side / 8.0
    return _Config(
        k=check_n_phases(n_phases),
        lam=float(lam),
        bias_field=bool(bias_field),
        beta=float(beta),
        kanezaki_ce=bool(kanezaki_ce),
        ms_loss=bool(ms_loss),
        max_iter=check_int(max_iter, "max_iter"),
        lr=float(lr),
        optimizer=optimizer,
        tol=float(tol),
        patience=check_int(patience, "patience"),
        min_labels=None if min_labels is None else check_int(min_labels, "min_labels"),
        tv=tv,
        init=init,
        warm_steps=check_int(warm_steps, "warm_steps", minimum=0),
        hidden_channels=check_int(hidden_channels, "hidden_channels"),
        progress=bool(progress),
        bias_model=bias_model,
        bias_degree=check_int(bias_degree, "bias_degree"),
        bias_sigma=check_positive(bias_sigma, "bias_sigma", allow_zero=True),
    )


def _result(best, fits, x, cfg, dev, t0, superpixels, seed, restarts, model_name):
    final = energy_from_labels(x, best.labels, cfg.lam, n_phases=cfg.k, tv=cfg.tv)
    params = dict(
        n_phases=cfg.k,
        lam=cfg.lam,
        bias_field=cfg.bias_field,
        beta=cfg.beta,
        kanezaki_ce=cfg.kanezaki_ce,
        ms_loss=cfg.ms_loss,
        superpixels=superpixels,
        init=cfg.init,
        warm_steps=cfg.warm_steps,
        restarts=restarts,
        max_iter=cfg.max_iter,
        lr=cfg.lr,
        optimizer=cfg.optimizer,
        tol=cfg.tol,
        patience=cfg.patience,
        min_labels=cfg.min_labels,
        seed=seed,
        device=str(dev),
        tv=cfg.tv,
        hidden_channels=cfg.hidden_channels,
        bias_sigma=cfg.bias_sigma if cfg.bias_field else None,
        model=model_name,
    )
    return Segmentation(
        labels=best.labels,
        memberships=best.memberships,
        means=final.means[:, 0] if x.shape[0] == 1 else final.means,
        energy=np.asarray(best.energy + [final.total]),
        n_iter=best.n_iter,
        converged=_converged(best, x),
        elapsed=time.perf_counter() - t0,
        method="neural",
        params=params,
        bias=best.bias,
        times=np.asarray(best.times + [time.perf_counter() - t0]),
        extras={
            "device": str(dev),
            "loss": np.asarray(best.losses),
            "restart_energies": np.asarray([f.final_energy for f in fits]),
            "seed": -1 if best.seed is None else best.seed,
            "warm_steps": best.warm_steps,
        },
    )

r"""A network fitted to one image: the unsupervised "Backprop" setting of Kim & Ye 2019.

A small CNN (by default Kanezaki's conv-ReLU-BN network, ICASSP 2018) is trained on a single
image by minimising the Mumford–Shah loss of its softmax output (Eq. 12-13), optionally with
the bias-field form (Eq. 19-20) and optionally with Kanezaki's own cross-entropy against the
network's argmax (superpixel-refined), so that both "Backprop" and "Backprop + MS" of
Table VI are available; the final argmax is the segmentation. Any model mapping
``(1, C, H, W)`` to logits ``(1, K, H, W)`` (e.g. :class:`varseg.models.UNet`) can be used for
test-time optimisation.
"""
from __future__ import annotations

import time

import numpy as np
import torch
import torch.nn.functional as F

from varseg._validation import as_channels_first, check_choice, check_n_phases, check_positive
from varseg.energy import energy_from_labels
from varseg.losses import bias_field_mumford_shah_loss, mumford_shah_loss
from varseg.result import Segmentation
from varseg.unrolled import _device, normalise_image

__all__ = ["neural_segment"]


def _superpixel_refine(labels, segments, n_segments):
    """Kanezaki's refinement: every superpixel takes the majority argmax label inside it."""
    k = int(labels.max()) + 1
    counts = np.zeros((n_segments, k), dtype=np.int64)
    np.add.at(counts, (segments.ravel(), labels.ravel()), 1)
    return counts.argmax(1)[segments]


def neural_segment(image, n_phases=2, *, lam=0.125, bias_field=False, beta=0.01,
                   kanezaki_ce=False, ms_loss=True, superpixels=None, model=None,
                   max_iter=300, lr=0.01, optimizer="adam", tol=1e-4, patience=20,
                   min_labels=None, seed=None, device="auto", progress=True,
                   channel_axis=None, tv="isotropic", hidden_channels=64):
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
        channels, 2 convolutions of 64 channels.
    max_iter : int
        Maximum optimiser steps.
    lr : float
        Learning rate.
    optimizer : {"adam", "sgd"}
        Adam, or SGD with momentum 0.9 (Kanezaki's choice, with lr 0.1).
    tol, patience : float, int
        Early stop when the loss has not improved by more than ``tol`` (relative) for
        ``patience`` consecutive steps.
    min_labels : int, optional
        Kanezaki's stop: when the argmax uses at most this many labels.
    seed : int, optional
        Seeds torch (weights, and everything random) for reproducibility.
    device : {"auto", "cpu", "cuda"}
        "auto" picks CUDA when available.
    progress : bool
        Show a tqdm progress bar.
    channel_axis : int, optional
    tv : {"isotropic", "anisotropic"}
    hidden_channels : int
        Hidden width of the default network.

    Returns
    -------
    Segmentation
        ``method="neural"``; ``bias`` with ``bias_field``; ``extras["device"]``,
        ``extras["loss"]`` (loss history).

    References
    ----------
    .. [1] B. Kim and J. C. Ye, IEEE TIP 29, 2019, Sec. IV-B3, Table VI.
    .. [2] A. Kanezaki, "Unsupervised image segmentation by backpropagation", ICASSP 2018.
    """
    from tqdm.auto import tqdm

    from varseg.models import KanezakiNet

    t0 = time.perf_counter()
    x, _ = as_channels_first(image, channel_axis, spatial_ndims=(2,))
    k = check_n_phases(n_phases)
    check_positive(lam, "lam", allow_zero=True)
    check_positive(lr, "lr")
    check_choice(optimizer, {"adam", "sgd"}, "optimizer")
    if not (ms_loss or kanezaki_ce):
        raise ValueError("nothing to minimise: set ms_loss=True and/or kanezaki_ce=True")
    if int(max_iter) < 1:
        raise ValueError(f"max_iter must be >= 1; got {max_iter}")
    x = normalise_image(x)
    dev = _device(device)
    if seed is not None:
        torch.manual_seed(seed)
    if model is None:
        model = KanezakiNet(x.shape[0], n_channels=k, hidden_channels=hidden_channels,
                            bias_field=bias_field)
    model = model.to(dev).train()
    xt = torch.as_tensor(x, dtype=torch.float32, device=dev)[None]
    params = [p for p in model.parameters() if p.requires_grad]
    opt = (torch.optim.Adam(params, lr=lr) if optimizer == "adam"
           else torch.optim.SGD(params, lr=lr, momentum=0.9))
    segments = None
    if kanezaki_ce and superpixels:
        from skimage.segmentation import slic

        segments = slic(np.moveaxis(x, 0, -1), n_segments=int(superpixels), compactness=100,
                        channel_axis=-1, start_label=0) if x.shape[0] > 1 else slic(
            x[0], n_segments=int(superpixels), compactness=0.1, channel_axis=None,
            start_label=0)
        n_seg = int(segments.max()) + 1
    energy, times, losses = [], [], []
    best, stale, converged, it = np.inf, 0, False, 0
    bias = None
    for it in tqdm(range(1, int(max_iter) + 1), disable=not progress, desc="neural_segment"):  # noqa: B007
        opt.zero_grad()
        out = model(xt)
        logits, bias = (out if isinstance(out, tuple) else (out, None))
        if logits.shape[1] != k or logits.shape[2:] != xt.shape[2:]:
            raise ValueError(f"model output has shape {tuple(logits.shape)}; expected "
                             f"(1, {k}) + {tuple(xt.shape[2:])}")
        if bias_field and bias is None:
            raise ValueError("bias_field=True needs a model that returns (logits, bias)")
        loss = logits.new_zeros(())
        if ms_loss:
            if bias_field:
                loss = loss + bias_field_mumford_shah_loss(logits, bias, xt, lam, beta, tv=tv)
            else:
                loss = loss + mumford_shah_loss(logits, xt, lam, tv=tv)
        lab_now = logits.detach().argmax(1)[0].cpu().numpy()
        if kanezaki_ce:
            target = lab_now if segments is None else _superpixel_refine(lab_now, segments,
                                                                          n_seg)
            loss = loss + F.cross_entropy(logits, torch.as_tensor(target, device=dev)[None])
        loss.backward()
        opt.step()
        lv = float(loss.detach())
        losses.append(lv)
        energy.append(energy_from_labels(x, lab_now, lam, n_phases=k, tv=tv).total)
        times.append(time.perf_counter() - t0)
        if not np.isfinite(best) or lv < best - tol * abs(best):
            best, stale = lv, 0
        else:
            stale += 1
        if stale >= patience or (min_labels and len(np.unique(lab_now)) <= min_labels):
            converged = True
            break
    # final pass in training mode: batch-norm statistics of this image, as during the fit
    with torch.no_grad():
        out = model(xt)
        logits, bias = (out if isinstance(out, tuple) else (out, None))
        y = torch.softmax(logits.double(), 1)[0].cpu().numpy()
    labels = y.argmax(0)
    final = energy_from_labels(x, labels, lam, n_phases=k, tv=tv)
    energy.append(final.total)
    times.append(time.perf_counter() - t0)
    res = Segmentation(
        labels=labels, memberships=y.astype(np.float32),
        means=final.means[:, 0] if x.shape[0] == 1 else final.means,
        energy=np.asarray(energy), n_iter=it, converged=converged,
        elapsed=time.perf_counter() - t0, method="neural",
        params=dict(n_phases=k, lam=lam, bias_field=bias_field, beta=beta,
                    kanezaki_ce=kanezaki_ce, ms_loss=ms_loss, superpixels=superpixels,
                    max_iter=max_iter, lr=lr, optimizer=optimizer, tol=tol, patience=patience,
                    min_labels=min_labels, seed=seed, device=str(dev), tv=tv,
                    model=type(model).__name__),
        bias=None if bias is None else bias[0, 0].double().cpu().numpy(),
        times=np.asarray(times), extras={"device": str(dev), "loss": np.asarray(losses)})
    return res

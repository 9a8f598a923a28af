r"""Mumford–Shah losses for training networks (Kim & Ye 2019, Eq. 12-13, 16-18, 19-20).

Each loss has a functional form and a thin :class:`torch.nn.Module`, in the style of kornia /
MONAI. Shapes: logits ``input`` ``(B, K, H, W)`` or ``(B, K, D, H, W)``; ``image``
``(B, C, H, W)`` / ``(B, C, D, H, W)`` with the same spatial size.

All of them evaluate the one energy of :mod:`varseg.energy` (through
:func:`varseg.energy.batched_terms`): the loss of a network output and the energy of a
level-set result are the same number for the same memberships.

Reductions (per-sample value :math:`L_b = D_b + \lambda L^{TV}_b`, summed over pixels):

* ``"none"``: the ``(B,)`` tensor of per-sample values :math:`L_b` (the paper's integral);
* ``"sum"``: :math:`\sum_b L_b` (the official implementation's form);
* ``"mean"``: :math:`\frac{1}{B N}\sum_b L_b`, the per-pixel mean (N pixels per image), which
  keeps λ independent of the image size. With ``"sum"`` the weight that balances the loss
  against a cross-entropy is about :math:`B N` times smaller (the official code multiplies
  the summed MS term by 1e-6 at 256², batch 4).

Precision: half-precision inputs (float16, bfloat16) are evaluated and returned in float32
(a per-sample sum over 256² pixels exceeds the float16 range of 65504), as
:mod:`torch.amp` does for losses; float32 and float64 inputs keep their dtype.

Validation: the weights (``lam``, ``beta``, ``length_weight``) must be finite and ≥ 0; the
images finite; an empty batch, a bias field that is not finite and positive, and with
``probabilities=True`` memberships that are negative or do not sum to 1 over K (tolerance
:data:`PROBABILITY_TOL`) raise a one-line ``ValueError``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from varseg._validation import check_nonnegative, renamed_argument
from varseg.energy import batched_terms, batched_tv

__all__ = [
    "mumford_shah_loss",
    "MumfordShahLoss",
    "bias_field_mumford_shah_loss",
    "BiasFieldMumfordShahLoss",
    "semi_supervised_loss",
    "SemiSupervisedLoss",
    "masked_cross_entropy",
    "positive_bias",
    "BIAS_EPS",
    "unit_mean_bias",
    "smooth_bias",
]

_REDUCTIONS = ("mean", "sum", "none")

#: Tolerance of the ``probabilities=True`` check: every value ≥ −tol, sums within tol of 1
#: (widened to K times the machine epsilon for half-precision input, whose rounding alone
#: moves a sum of K probabilities by up to that much).
PROBABILITY_TOL = 1e-4


def _check(input, image, reduction):
    """Types, shapes and the reduction of a loss call; the image must be finite."""
    if reduction not in _REDUCTIONS:
        raise ValueError(f"reduction must be one of {_REDUCTIONS}; got {reduction!r}")
    if not (torch.is_tensor(input) and torch.is_tensor(image)):
        raise TypeError("input and image must be torch tensors")
    if input.ndim not in (4, 5):
        raise ValueError(
            f"input must be (B, K, H, W) or (B, K, D, H, W) logits; got shape {tuple(input.shape)}"
        )
    if (
        image.ndim != input.ndim
        or image.shape[0] != input.shape[0]
        or image.shape[2:] != input.shape[2:]
    ):
        raise ValueError(
            f"image shape {tuple(image.shape)} does not match input shape {tuple(input.shape)}: "
            f"expected (B, C) + {tuple(input.shape[2:])} with B = {input.shape[0]}"
        )
    if input.shape[0] == 0:
        raise ValueError(f"input has an empty batch (B = 0); got shape {tuple(input.shape)}")
    if input.shape[1] < 1:
        raise ValueError("input has no classes (K = 0)")
    if input.numel() == 0:
        raise ValueError(f"input has an empty spatial axis; got shape {tuple(input.shape)}")
    if image.is_complex():
        raise TypeError(f"image must be a real tensor; got dtype {image.dtype}")
    if not bool(torch.isfinite(image.detach()).all()):
        raise ValueError("image contains NaN or Inf values")


def _work_dtype(input):
    """float32 for half-precision inputs (the sums overflow float16), else the input's."""
    if not input.is_floating_point():
        raise TypeError(f"input must be a floating tensor; got dtype {input.dtype}")
    return torch.float32 if input.dtype in (torch.float16, torch.bfloat16) else input.dtype


def _memberships(input, probabilities):
    """Softmax of the logits (Eq. 10), or the checked probabilities, in the working dtype."""
    z = input.to(_work_dtype(input))
    if not probabilities:
        return torch.softmax(z, dim=1)
    p = z.detach()
    tol = max(PROBABILITY_TOL, input.shape[1] * torch.finfo(input.dtype).eps)
    if not bool(torch.isfinite(p).all()):
        raise ValueError("input (probabilities=True) contains NaN or Inf values")
    if bool((p < -tol).any()):
        raise ValueError(
            f"input (probabilities=True) must be non-negative; got minimum {float(p.min()):.4g}"
        )
    err = float((p.sum(1) - 1).abs().max())
    if err > tol:
        raise ValueError(
            f"input (probabilities=True) must sum to 1 over the class axis (1) "
            f"within {tol:g}; largest deviation {err:.4g}"
        )
    return z


def _reduce(per_sample, reduction, n_pix):
    if reduction == "none":
        return per_sample
    if reduction == "sum":
        return per_sample.sum()
    return per_sample.sum() / (per_sample.shape[0] * n_pix)


def _check_overflow(out, input):
    """Refuse a non-finite loss from finite logits: an overflow of the weights or the image."""
    if not bool(torch.isfinite(out.detach()).all()) and bool(torch.isfinite(input.detach()).all()):
        raise ValueError(
            f"lam/beta or image too large: the loss overflows {out.dtype}; lower "
            f"the weights or rescale the image"
        )
    return out


def _n_pix(t):
    n = 1
    for s in t.shape[2:]:
        n *= int(s)
    return n


def mumford_shah_loss(input, image, lam, *, probabilities=False, tv="isotropic", reduction="mean"):
    r"""Mumford–Shah loss of Kim & Ye 2019, Eq. 12-13.

    .. math::

        L_{MS}(\Theta; x) = \sum_n \int |x(r) - c_n|^2 y_n(r)\,dr
                           + \lambda \sum_n \int |\nabla y_n(r)|\,dr, \qquad
        c_n = \frac{\int x\,y_n}{\int y_n}

    with :math:`y = \mathrm{softmax}(z)` (Eq. 10) over the class axis, the means recomputed
    for every image of the batch (not per batch), the squared norm over image channels, and
    the discretisation of :mod:`varseg.energy` (forward differences, Neumann boundary). A
    class with zero mass gets mean 0 and contributes nothing (no NaN).

    Parameters
    ----------
    input : Tensor, shape (B, K, H, W) or (B, K, D, H, W)
        Logits :math:`z` (or probabilities with ``probabilities=True``).
    image : Tensor, shape (B, C, H, W) or (B, C, D, H, W)
        The images :math:`x` (any scale; λ is relative to the squared intensity scale).
    lam : float
        Length weight λ.
    probabilities : bool
        ``input`` already holds memberships summing to 1 over K.
    tv : {"isotropic", "anisotropic"}
        Length-term discretisation; ``"anisotropic"`` is the official implementation's L1 form.
    reduction : {"mean", "sum", "none"}
        See the module docstring; ``"mean"`` is per pixel and per image.

    Returns
    -------
    Tensor
        Scalar, or ``(B,)`` for ``reduction="none"``; float32 for half-precision input.

    Raises
    ------
    TypeError
        ``input`` or ``image`` not tensors, integer logits.
    ValueError
        Shapes that do not match, an empty batch, NaN/Inf in the image, ``lam`` negative or
        not finite, invalid probabilities (module docstring), unknown ``tv``/``reduction``.

    Examples
    --------
    >>> import torch
    >>> from varseg.losses import mumford_shah_loss
    >>> z = torch.randn(2, 3, 16, 16, requires_grad=True)
    >>> x = torch.rand(2, 1, 16, 16)
    >>> mumford_shah_loss(z, x, lam=0.1).backward()
    """
    _check(input, image, reduction)
    lam = check_nonnegative(lam, "lam")
    y = _memberships(input, probabilities)
    data, length, _ = batched_terms(image.to(y.dtype), y, tv=tv)
    return _check_overflow(_reduce(data + lam * length, reduction, _n_pix(y)), input)


class MumfordShahLoss(nn.Module):
    """Module form of :func:`mumford_shah_loss` (Eq. 12-13 of Kim & Ye 2019).

    Parameters
    ----------
    lam : float
        Length weight λ.
    probabilities, tv, reduction
        As in :func:`mumford_shah_loss`.

    Shape
    -----
    ``forward(input, image)``: ``(B, K, *S)`` logits and ``(B, C, *S)`` images.
    """

    def __init__(self, lam=1e-3, *, probabilities=False, tv="isotropic", reduction="mean"):
        super().__init__()
        self.lam = check_nonnegative(lam, "lam")
        self.probabilities = probabilities
        self.tv = tv
        self.reduction = reduction

    def forward(self, input, image):
        """Return :func:`mumford_shah_loss` of ``input`` and ``image`` with these settings."""
        return mumford_shah_loss(
            input,
            image,
            self.lam,
            probabilities=self.probabilities,
            tv=self.tv,
            reduction=self.reduction,
        )

    def extra_repr(self):
        """Return the settings shown in the module's repr."""
        return f"lam={self.lam}, tv={self.tv!r}, reduction={self.reduction!r}"


#: Lower bound of a network's bias field: ``b = softplus(z) + BIAS_EPS`` (:func:`positive_bias`).
BIAS_EPS = 1e-3


def positive_bias(raw, eps=BIAS_EPS):
    r"""Map a network's raw bias channel to a positive bias field.

    :math:`b = \mathrm{softplus}(r) + \varepsilon`. Softplus keeps :math:`b > 0` (so Eq. 20's
    denominator is positive) with a gradient that never vanishes for negative inputs as
    :math:`\exp` would explode; ``eps`` bounds it away from 0. :mod:`varseg.models` uses the
    same map for their ``bias_field=True`` output.
    """
    return F.softplus(raw) + eps


def unit_mean_bias(bias):
    r"""Scale each bias field of a batch to unit mean, :math:`b \leftarrow b / \bar b`.

    The data term of Eq. 19-20 is invariant under :math:`b \to s b,\ c_n \to c_n / s`,
    while the penalty :math:`\beta\,\mathrm{TV}(b)` scales with :math:`s`: without a
    normalisation the loss lowers itself by shrinking the bias towards 0 and loses the shape
    of the true bias. Fixing the mean removes that direction, so β acts on the shape of b alone.

    Parameters
    ----------
    bias : Tensor, shape (B, 1, *S)
        Positive bias fields.

    Returns
    -------
    Tensor, same shape, each field with spatial mean 1.
    """
    return bias / bias.mean(dim=tuple(range(2, bias.ndim)), keepdim=True)


def smooth_bias(bias, sigma):
    r"""Gaussian smoothing of a bias field, :math:`b \leftarrow G_\sigma * b`.

    The total variation of Eq. 19 cannot tell a smooth ramp from a step of the same height
    (both have TV = height x length), so a bias output with a free per-pixel value can absorb
    region boundaries: the degenerate minimiser :math:`b = x / c`, one class, zero data term.
    Li et al. (2011) make the bias smooth by construction (their Gaussian kernel, Eq. 6);
    :func:`neural_segment` does the same with the network's bias channel, so that only
    variations slower than σ are attributed to the bias. A positive field stays positive.

    Parameters
    ----------
    bias : Tensor, shape (B, 1, H, W)
    sigma : float
        Standard deviation in pixels; the kernel is truncated at 3σ (and at the image size,
        reflecting at the borders).

    Returns
    -------
    Tensor, same shape
    """
    out = bias
    for axis in (2, 3):
        n = bias.shape[axis]
        r = int(min(max(1, round(3 * sigma)), n - 1))
        if r < 1:
            continue
        t = torch.arange(-r, r + 1, dtype=bias.dtype, device=bias.device)
        w = torch.exp(-0.5 * (t / sigma) ** 2)
        w = (w / w.sum()).view(1, 1, -1)
        moved = out.movedim(axis, -1)
        shape = moved.shape
        flat = F.pad(moved.reshape(-1, 1, n), (r, r), mode="reflect")
        out = F.conv1d(flat, w).reshape(shape).movedim(-1, axis)
    return out


def bias_field_mumford_shah_loss(
    input, bias, image, lam, beta, *, probabilities=False, tv="isotropic", reduction="mean"
):
    r"""Bias-field Mumford–Shah loss of Kim & Ye 2019, Eq. 19-20 (unsupervised).

    .. math::

        L = \sum_n \int |x - b\,c_n|^2 y_n + \lambda \sum_n \int |\nabla y_n|
            + \beta \int |\nabla b|, \qquad
        c_n = \frac{\int b\,x\,y_n}{\int b^2 y_n}

    Li Eq. 6 (Li et al. 2011) with a delta kernel, the bias :math:`b` being an extra output
    channel of the network (Fig. 2(b)); its total variation is penalised with weight β.

    Parameters
    ----------
    input : Tensor, shape (B, K, *S)
        Logits (or probabilities with ``probabilities=True``).
    bias : Tensor, shape (B, 1, *S)
        Positive bias field (e.g. :func:`positive_bias` of a raw output channel). Values
        ``<= 0`` raise ``ValueError``.
    image : Tensor, shape (B, C, *S)
    lam, beta : float
        Weights of the membership TV and of the bias TV.
    tv, reduction
        As in :func:`mumford_shah_loss` (the same TV discretisation for :math:`b`).

    Returns
    -------
    Tensor
    """
    _check(input, image, reduction)
    lam = check_nonnegative(lam, "lam")
    beta = check_nonnegative(beta, "beta")
    if not torch.is_tensor(bias):
        raise TypeError(f"bias must be a torch tensor; got {type(bias).__name__}")
    if bias.shape != (input.shape[0], 1) + tuple(input.shape[2:]):
        raise ValueError(
            f"bias must have shape (B, 1) + spatial = "
            f"{(input.shape[0], 1) + tuple(input.shape[2:])}; got {tuple(bias.shape)}"
        )
    b = bias.detach()
    if not bool((torch.isfinite(b) & (b > 0)).all()):
        raise ValueError(
            "bias must be finite and strictly positive (no NaN/Inf; use "
            "varseg.losses.positive_bias)"
        )
    y = _memberships(input, probabilities)
    data, length, _ = batched_terms(image.to(y.dtype), y, bias=bias.to(y.dtype), tv=tv)
    bias_tv = batched_tv(bias.to(y.dtype), tv)
    return _check_overflow(
        _reduce(data + lam * length + beta * bias_tv, reduction, _n_pix(y)), input
    )


class BiasFieldMumfordShahLoss(nn.Module):
    """Module form of :func:`bias_field_mumford_shah_loss` (Eq. 19-20 of Kim & Ye 2019).

    ``forward(input, bias, image)`` with shapes ``(B, K, *S)``, ``(B, 1, *S)``, ``(B, C, *S)``.
    """

    def __init__(
        self, lam=1e-3, beta=1e-3, *, probabilities=False, tv="isotropic", reduction="mean"
    ):
        super().__init__()
        self.lam = check_nonnegative(lam, "lam")
        self.beta = check_nonnegative(beta, "beta")
        self.probabilities = probabilities
        self.tv = tv
        self.reduction = reduction

    def forward(self, input, bias, image):
        """Return :func:`bias_field_mumford_shah_loss` of the inputs with these settings."""
        return bias_field_mumford_shah_loss(
            input,
            bias,
            image,
            self.lam,
            self.beta,
            probabilities=self.probabilities,
            tv=self.tv,
            reduction=self.reduction,
        )

    def extra_repr(self):
        """Return the settings shown in the module's repr."""
        return f"lam={self.lam}, beta={self.beta}, tv={self.tv!r}, reduction={self.reduction!r}"


def semi_supervised_loss(
    input,
    target,
    image,
    labeled,
    ms_weight=None,
    *,
    length_weight=1e-3,
    ignore_index=255,
    tv="isotropic",
    reduction="mean",
    lam=None,
):
    r"""Semi-supervised loss of Kim & Ye 2019, Eq. 16-18.

    .. math::

        L = \alpha\, L_{CE} + \lambda\, L_{MS}, \qquad
        L_{CE} = -\frac{1}{P}\sum_r \sum_n g_n(r) \log y_n(r)

    with :math:`\alpha = 1` for a sample with a pixel-level label and 0 without (Eq. 17).
    The cross-entropy is averaged over the labelled pixels (``ignore_index`` excluded) of the
    labelled samples of the batch; :math:`L_{MS}` (:func:`mumford_shah_loss`, Eq. 12) is taken
    on every sample. With every sample labelled, the MS term acts as a regulariser.

    Parameters
    ----------
    input : Tensor, shape (B, K, *S)
        Logits.
    target : Tensor of int64, shape (B, *S)
        Labels in ``0 .. K-1`` or ``ignore_index`` (contents of unlabelled samples ignored).
    image : Tensor, shape (B, C, *S)
    labeled : Tensor of bool, shape (B,)
        The per-sample flag α of Eq. 17, so mixed batches work.
    ms_weight : float
        Weight λ of the MS term in Eq. 16 (``ms_weight`` everywhere in varseg: ``lam`` is
        always a length weight).
    length_weight : float
        The λ inside the MS loss (Eq. 12), weighting its length term.
    ignore_index : int
        Label value without supervision (255 for PASCAL VOC).
    tv : {"isotropic", "anisotropic"}
    reduction : {"mean", "sum", "none"}
        ``"mean"``: CE mean over labelled pixels + λ × per-pixel MS mean; ``"sum"``: CE summed
        over labelled pixels + λ × summed MS; ``"none"``: per-sample ``(B,)`` values
        :math:`\alpha_b \mathrm{CE}_b + \lambda L_{MS,b}` with per-sample CE means.
    lam : float, optional
        Deprecated spelling of ``ms_weight`` (``DeprecationWarning``).

    Returns
    -------
    Tensor
        A batch without any labelled pixel has CE term 0.
    """
    _check(input, image, reduction)
    ms_weight = _ms_weight(ms_weight, lam)
    length_weight = check_nonnegative(length_weight, "length_weight")
    ce = masked_cross_entropy(input, target, labeled, ignore_index, reduction=reduction)
    ms = mumford_shah_loss(input, image, length_weight, tv=tv, reduction=reduction)
    return ce + ms_weight * ms


def _ms_weight(ms_weight, lam):
    """Resolve ``ms_weight`` and its deprecated spelling ``lam``; check it."""
    ms_weight = renamed_argument(ms_weight, lam, new="ms_weight", old="lam", default=None)
    if ms_weight is None:
        raise TypeError("semi_supervised_loss needs ms_weight (the weight of the MS term)")
    return check_nonnegative(ms_weight, "ms_weight")


def masked_cross_entropy(input, target, labeled, ignore_index=255, *, reduction="mean"):
    r"""Cross-entropy (Kim & Ye 2019, Eq. 18) over the labelled pixels of labelled samples.

    .. math:: L_{CE} = -\frac{1}{P} \sum_{b:\, \alpha_b = 1} \sum_r \log y_{g(r)}(r)

    with :math:`\alpha_b` the per-sample flag of Eq. 17 and P the number of labelled pixels
    (``ignore_index`` excluded) of the labelled samples. The CE term of
    :func:`semi_supervised_loss`, and of every training step of :mod:`varseg.train`.

    Parameters
    ----------
    input : Tensor, shape (B, K, *S)
        Logits.
    target : Tensor of int, shape (B, *S)
        Labels in ``0 .. K-1`` or ``ignore_index`` (contents of unlabelled samples ignored).
    labeled : Tensor of bool, shape (B,)
        The flag α of Eq. 17.
    ignore_index : int
        Label value without supervision.
    reduction : {"mean", "sum", "none"}
        Mean over the labelled pixels, their sum, or per-sample means ``(B,)``.

    Returns
    -------
    Tensor
        0 (still connected to the graph) when no pixel is labelled.

    Raises
    ------
    ValueError
        Shapes that do not match, or labelled pixels outside ``0 .. K-1``.
    """
    if reduction not in _REDUCTIONS:
        raise ValueError(f"reduction must be one of {_REDUCTIONS}; got {reduction!r}")
    labeled = torch.as_tensor(labeled, dtype=torch.bool, device=input.device).reshape(-1)
    if labeled.numel() != input.shape[0]:
        raise ValueError(
            f"labeled must have one flag per sample ({input.shape[0]}); got {labeled.numel()}"
        )
    if target.shape != (input.shape[0],) + tuple(input.shape[2:]):
        raise ValueError(
            f"target must have shape {(input.shape[0],) + tuple(input.shape[2:])}; "
            f"got {tuple(target.shape)}"
        )
    target = target.long()
    valid = (target != ignore_index) & labeled.reshape((-1,) + (1,) * (target.ndim - 1))
    k = input.shape[1]
    bad = valid & ((target < 0) | (target >= k))
    if bool(bad.any()):
        raise ValueError(
            f"target holds labels outside 0..{k - 1} (and != ignore_index {ignore_index})"
        )
    safe_t = torch.where(valid, target, torch.zeros_like(target))
    ce_map = F.cross_entropy(input, safe_t, reduction="none") * valid
    if reduction == "none":
        return ce_map.flatten(1).sum(1) / valid.flatten(1).sum(1).clamp_min(1)
    if reduction == "sum":
        return ce_map.sum()
    return ce_map.sum() / valid.sum().clamp_min(1)


class SemiSupervisedLoss(nn.Module):
    """Module form of :func:`semi_supervised_loss` (Eq. 16-18 of Kim & Ye 2019).

    ``forward(input, target, image, labeled)``.
    """

    def __init__(
        self,
        ms_weight=None,
        *,
        length_weight=1e-3,
        ignore_index=255,
        tv="isotropic",
        reduction="mean",
        lam=None,
    ):
        super().__init__()
        if ms_weight is None and lam is None:
            ms_weight = 1e-3
        self.ms_weight = _ms_weight(ms_weight, lam)
        self.length_weight = check_nonnegative(length_weight, "length_weight")
        self.ignore_index = ignore_index
        self.tv = tv
        self.reduction = reduction

    def forward(self, input, target, image, labeled):
        """Return :func:`semi_supervised_loss` of the inputs with these settings."""
        return semi_supervised_loss(
            input,
            target,
            image,
            labeled,
            self.ms_weight,
            length_weight=self.length_weight,
            ignore_index=self.ignore_index,
            tv=self.tv,
            reduction=self.reduction,
        )

    def extra_repr(self):
        """Return the settings shown in the module's repr."""
        return (
            f"ms_weight={self.ms_weight}, length_weight={self.length_weight}, "
            f"ignore_index={self.ignore_index}, reduction={self.reduction!r}"
        )

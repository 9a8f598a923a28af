r"""The one Mumford–Shah energy shared by every method in varseg.

Every solver (Chan–Vese, Li's bias-field level set, the Eq. 15 fixed point, networks fitted
to one image) and every loss (Eq. 12-13, 19-20) calls the functions of this module, so any
two segmentations of the same image are scored by the same number.

Discretisation (documented once, used everywhere)
-------------------------------------------------
For an image :math:`x` with :math:`C` channels on a grid of :math:`N` pixels (2D or 3D) and
memberships :math:`y_n \ge 0`, :math:`\sum_n y_n = 1` (hard: :math:`y_n = \chi_n`):

* region means (Eq. 4 / Eq. 13): :math:`c_n = \sum_r x(r) y_n(r) / \sum_r y_n(r)`, per channel;
  with a bias field (Eq. 20) :math:`c_n = \sum_r b x y_n / \sum_r b^2 y_n`. A class with zero
  mass (:math:`\sum_r y_n = 0`) gets :math:`c_n = 0`; it contributes nothing to either term.
* data term (Eq. 2): :math:`D = \sum_n \sum_r \|x(r) - b(r) c_n\|^2 y_n(r)` (:math:`b = 1`
  without bias field), the squared Euclidean norm over channels.
* length term: :math:`L = \sum_n \mathrm{TV}(y_n)`, forward differences
  :math:`\partial_a u(r) = u(r + e_a) - u(r)` with a Neumann boundary (the difference is 0 on
  the last row/column/slice), isotropic :math:`\mathrm{TV}(u) = \sum_r \sqrt{\sum_a
  (\partial_a u)^2}` by default or anisotropic :math:`\sum_r \sum_a |\partial_a u|` (the form of
  the official implementation of [1]_). Summing over all classes counts each boundary twice,
  once from each side, as in the paper.
* energy (Eq. 1 / Eq. 12): :math:`E = D + \lambda L`. ``reduction="sum"`` returns this
  integral (the paper's form); ``reduction="mean"`` divides it by :math:`N`, the number of
  pixels (the per-pixel form).

Relation to Chan–Vese's parameters: for two phases :math:`\mathrm{TV}(\chi_1) = \mathrm{TV}(
\chi_2) = |\Gamma|`, so Chan–Vese's :math:`\mu |\Gamma| + \sum_n \lambda_n D_n` with unit
:math:`\lambda_n` equals this energy with :math:`\lambda = \mu / 2` (see
:func:`varseg.chan_vese`).

NumPy arrays and torch tensors go through the same code (:class:`_Ops` wraps the dozen
array operations used): NumPy input is computed in float64 and returns a Python ``float``;
torch input keeps its dtype and device, is differentiable, and returns a 0-d tensor (or a
``(B,)`` tensor for the batched helpers).

References
----------
.. [1] B. Kim and J. C. Ye, "Mumford–Shah Loss Functional for Image Segmentation with Deep
       Learning", IEEE TIP 29, 2019, Eq. 1-4, 12-13, 19-20.
.. [2] D. Mumford and J. Shah, "Optimal approximations by piecewise smooth functions and
       associated variational problems", Comm. Pure Appl. Math. 42, 1989.
.. [3] C. Li, R. Huang, Z. Ding, J. C. Gatenby, D. N. Metaxas and J. C. Gore, "A level set
       method for image segmentation in the presence of intensity inhomogeneities with
       application to MRI", IEEE TIP 20(7), 2011 (Eq. 6 here).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ._validation import check_image, check_labels, check_nonnegative

__all__ = [
    "mumford_shah_energy",
    "mumford_shah_terms",
    "MumfordShahTerms",
    "data_term",
    "length_term",
    "region_means",
    "total_variation",
    "lic_energy",
    "gaussian_kernel",
    "energy_from_labels",
    "labels_to_memberships",
    "batched_terms",
    "batched_means",
    "forward_difference",
    "batched_residual",
    "batched_tv",
    "check_spacing",
    "normalise_image",
    "DEFAULT_LAM",
]

#: The one default λ of the shared energy (Eq. 1) on images scaled to [0, 1]: Chan–Vese's
#: default μ = 0.25 halved (the shared length term counts every boundary twice).
DEFAULT_LAM = 0.125

_TV_KINDS = ("isotropic", "anisotropic")
_PARALLEL_MIN_PIXELS = 1 << 17  # below this the serial hard-energy kernel is faster
_REDUCTIONS = ("sum", "mean")


def normalise_image(image, *, return_scale=False):
    """Scale an image to [0, 1] by one global minimum and maximum.

    As ``skimage.segmentation.chan_vese`` does: ``(x - min) / (max - min)``; a constant image
    becomes all zeros.

    Every solver and the comparison harness evaluate the shared energy on this image, so that
    a λ means the same for every method (one min/max over all channels keeps the relations
    between the channels of a colour image).

    Parameters
    ----------
    image : array_like
        Any shape.
    return_scale : bool
        Also return ``xmin`` and ``scale`` with ``y = (x - xmin) / scale`` (``scale = 1`` for
        a constant image).

    Returns
    -------
    ndarray of float64 (and ``xmin, scale`` with ``return_scale``)
        Any finite input works, including extreme scales (1e-300 .. 1e300, and ranges wider
        than the largest float, which are pre-scaled so that ``max - min`` cannot overflow).

    Raises
    ------
    TypeError
        Not a real numeric array.
    ValueError
        Empty image, NaN or Inf.
    """
    x = check_image(image, "image", dtype=np.float64)
    xmin, xmax = float(x.min()), float(x.max())
    if not np.isfinite(xmax - xmin):  # range wider than the largest float: pre-scale
        pre = max(abs(xmin), abs(xmax))
        y, m, s = normalise_image(x / pre, return_scale=True)
        return (y, xmin, s * pre) if return_scale else y
    y = x - xmin
    scale = xmax - xmin
    if scale != 0:
        y = y / scale
        np.clip(y, 0.0, 1.0, out=y)  # rounding can leave 1 + 1 ulp
    else:
        scale = 1.0
    return (y, xmin, scale) if return_scale else y


# --------------------------------------------------------------------------------------
# One code path for NumPy and torch
# --------------------------------------------------------------------------------------
def _is_torch(x) -> bool:
    return type(x).__module__.split(".")[0] == "torch"


class _Ops:
    """The few array operations the energy needs, for NumPy or torch."""

    def __init__(self, torch_mode: bool):
        self.torch = torch_mode
        if torch_mode:
            import torch

            self._t = torch

    def sum(self, a, axis):
        return a.sum(dim=axis) if self.torch else a.sum(axis=axis)

    def sqrt0(self, s):
        """Return sqrt with value 0 and (sub)gradient 0 at s = 0 (no NaN in backward)."""
        if self.torch:
            t = self._t
            pos = s > 0
            return t.where(pos, t.sqrt(t.where(pos, s, t.ones_like(s))), t.zeros_like(s))
        return np.sqrt(s)

    def abs(self, a):
        return a.abs() if self.torch else np.abs(a)

    def where(self, cond, a, b):
        return self._t.where(cond, a, b) if self.torch else np.where(cond, a, b)

    def ones_like(self, a):
        return self._t.ones_like(a) if self.torch else np.ones_like(a)

    def zeros_like(self, a):
        return self._t.zeros_like(a) if self.torch else np.zeros_like(a)

    def fdiff(self, u, axis):
        """Forward difference along ``axis`` with a Neumann boundary (0 at the end)."""
        n = u.shape[axis]
        if n < 2:
            return self.zeros_like(u)
        if self.torch:
            d = self._t.diff(u, dim=axis)
            zshape = list(u.shape)
            zshape[axis] = 1
            return self._t.cat([d, u.new_zeros(zshape)], dim=axis)
        d = np.diff(u, axis=axis)
        pad = [(0, 0)] * u.ndim
        pad[axis] = (0, 1)
        return np.pad(d, pad)

    def matmul(self, a, b):
        return a @ b

    def swap_last(self, a):
        return a.transpose(-1, -2) if self.torch else np.swapaxes(a, -1, -2)

    def reshape(self, a, shape):
        return a.reshape(shape)

    def smooth(self, u, kernel):
        """Correlate ``u`` of shape (B, 1, *S) with a normalised kernel, zero padding."""
        if self.torch:
            import torch.nn.functional as F

            k = self._t.as_tensor(kernel, dtype=u.dtype, device=u.device)
            k = k.reshape((1, 1) + tuple(k.shape))
            pad = [s // 2 for s in kernel.shape]
            conv = F.conv2d if u.ndim == 4 else F.conv3d
            return conv(u, k, padding=pad)
        from scipy import ndimage

        full = kernel.reshape((1, 1) + kernel.shape)
        return ndimage.correlate(u, full, mode="constant", cval=0.0)


def _prepare(image, memberships, bias=None):
    """Validate and batch the inputs: returns ops, x (1,C,*S), y (1,K,*S), b (1,1,*S)|None."""
    torch_mode = (
        _is_torch(image) or _is_torch(memberships) or (bias is not None and _is_torch(bias))
    )
    ops = _Ops(torch_mode)
    if torch_mode:
        import torch

        y = memberships if _is_torch(memberships) else torch.as_tensor(np.asarray(memberships))
        if not y.is_floating_point():
            y = y.to(torch.get_default_dtype())
        x = torch.as_tensor(image, dtype=y.dtype, device=y.device)
        b = None if bias is None else torch.as_tensor(bias, dtype=y.dtype, device=y.device)
    else:
        y = check_image(memberships, "memberships", dtype=np.float64)
        x = check_image(image, "image", dtype=np.float64)
        b = None if bias is None else check_image(bias, "bias", dtype=np.float64)
    if y.ndim not in (3, 4):
        raise ValueError(
            f"memberships must have shape (K, H, W) or (K, D, H, W); got shape {tuple(y.shape)}"
        )
    spatial = tuple(y.shape[1:])
    if tuple(x.shape) == spatial:
        x = x[None]
    elif x.ndim == y.ndim and tuple(x.shape[1:]) == spatial:
        pass
    else:
        raise ValueError(
            f"image shape {tuple(x.shape)} does not match memberships shape {tuple(y.shape)}: "
            f"expected {spatial} (gray) or (C,) + {spatial} (channels first)"
        )
    if b is not None:
        if tuple(b.shape) != spatial:
            raise ValueError(f"bias must have the spatial shape {spatial}; got {tuple(b.shape)}")
        b = b[None, None]
    _check_finite(ops, x, "image")
    _check_finite(ops, y, "memberships")
    if torch_mode:
        ysum = y.detach().sum(0)
        bad = bool(((ysum - 1).abs() > 1e-3).any()) or bool((y.detach() < -1e-6).any())
    else:
        bad = bool(np.any(np.abs(y.sum(0) - 1) > 1e-3)) or bool(np.any(y < -1e-6))
    if bad:
        raise ValueError("memberships must be non-negative and sum to 1 over the class axis (0)")
    return ops, x[None], y[None], b


def _check_finite(ops, a, name):
    if ops.torch:
        import torch

        ok = bool(torch.isfinite(a.detach()).all())
    else:
        ok = bool(np.isfinite(a).all())
    if not ok:
        raise ValueError(f"{name} contains NaN or Inf")


def _check_options(tv=None, reduction=None):
    if tv is not None and tv not in _TV_KINDS:
        raise ValueError(f"tv must be one of {_TV_KINDS}; got {tv!r}")
    if reduction is not None and reduction not in _REDUCTIONS:
        raise ValueError(f"reduction must be one of {_REDUCTIONS}; got {reduction!r}")


# --------------------------------------------------------------------------------------
# Batched core: (B, C, *S) images, (B, K, *S) memberships. The losses call these.
# --------------------------------------------------------------------------------------
def _batched_means(ops, x, y, b=None):
    """Region means (B, K, C) per Eq. 4 / 13 (or Eq. 20 with ``b`` of shape (B, 1, *S))."""
    B, K = y.shape[:2]
    C = x.shape[1]
    n = int(np.prod(y.shape[2:]))
    yf = ops.reshape(y, (B, K, n))
    if b is None:
        num = ops.matmul(yf, ops.swap_last(ops.reshape(x, (B, C, n))))  # (B, K, C)
        den = ops.sum(yf, -1)  # (B, K)
    else:
        bf = ops.reshape(b, (B, 1, n))
        num = ops.matmul(yf, ops.swap_last(ops.reshape(x * b, (B, C, n))))
        den = ops.sum(yf * (bf * bf), -1)
    pos = den > 0
    safe = ops.where(pos, den, ops.ones_like(den))
    means = num / safe[..., None]
    return ops.where(pos[..., None], means, ops.zeros_like(means))


def _batched_residual(ops, x, means, b=None):
    """Per-class squared residual e_n(r) = ||x(r) - b(r) c_n||^2, shape (B, K, *S)."""
    nsp = x.ndim - 2
    e = None
    for c in range(x.shape[1]):
        cn = means[:, :, c].reshape(means.shape[:2] + (1,) * nsp)
        if b is not None:
            cn = cn * b
        r = x[:, c : c + 1] - cn
        e = r * r if e is None else e + r * r
    return e


def _batched_tv(ops, y, tv, spacing=None):
    """TV of each membership, summed over classes and space: shape (B,).

    With ``spacing`` (one voxel size per spatial axis) each difference is divided by its
    axis' voxel size: the gradient in physical units.
    """
    axes = range(2, y.ndim)
    h = [1.0] * len(axes) if spacing is None else [float(v) for v in spacing]
    if tv == "anisotropic":
        # the Neumann padding adds zeros only: sum |differences| without materialising it
        tot = ops.sum(ops.reshape(ops.zeros_like(y[:, :1]), (y.shape[0], -1)), -1)
        for a, ha in zip(axes, h, strict=True):
            if y.shape[a] > 1:
                d = y.diff(dim=a) if ops.torch else np.diff(y, axis=a)
                tot = tot + ops.sum(ops.reshape(ops.abs(d), (y.shape[0], -1)), -1) / ha
        return tot
    sq = None
    for a, ha in zip(axes, h, strict=True):
        d = ops.fdiff(y, a) / ha
        sq = d * d if sq is None else sq + d * d
    tot = ops.sqrt0(sq)
    return ops.sum(ops.reshape(tot, (y.shape[0], -1)), -1)


def check_spacing(spacing, ndim):
    """Return ``spacing`` as a tuple of ``ndim`` positive finite floats, or None for unit.

    Raises
    ------
    ValueError
        Wrong length, a non-positive or non-finite voxel size (one line naming ``spacing``).
    """
    if spacing is None:
        return None
    try:
        sp = tuple(float(v) for v in spacing)
    except (TypeError, ValueError):
        raise ValueError(f"spacing must be {ndim} positive floats; got {spacing!r}") from None
    if len(sp) != ndim or not all(np.isfinite(v) and v > 0 for v in sp):
        raise ValueError(
            f"spacing must be {ndim} positive finite floats (one per spatial axis); got {spacing!r}"
        )
    return None if all(v == 1.0 for v in sp) else sp


def forward_difference(u, axis):
    r"""Forward difference :math:`u(r + e_a) - u(r)` along ``axis`` with a Neumann boundary.

    Zero on the last slice, NumPy or torch: the discrete gradient of every length term here
    (Kim & Ye Eq. 12, Vese–Chan's curvature).

    Parameters
    ----------
    u : array or tensor
    axis : int

    Returns
    -------
    array or tensor, same shape as ``u``
    """
    return _Ops(_is_torch(u)).fdiff(u, axis)


def batched_means(x, y, bias=None):
    r"""Region means of batched images (Kim & Ye Eq. 4 / 13; Eq. 20 with a bias field).

    NumPy or torch:

    .. math:: c_n = \frac{\sum_r x(r)\, b(r)\, y_n(r)}{\sum_r b(r)^2\, y_n(r)}

    with :math:`b \equiv 1` without ``bias``; an empty class (zero denominator) gets 0.

    Parameters
    ----------
    x : array or tensor, shape (B, C, *S)
        Images.
    y : array or tensor, shape (B, K, *S)
        Memberships.
    bias : array or tensor, shape (B, 1, *S), optional
        Multiplicative bias field.

    Returns
    -------
    array or tensor, shape (B, K, C)
    """
    return _batched_means(_Ops(_is_torch(y)), x, y, bias)


def batched_residual(x, means, bias=None):
    r"""Per-class squared residuals :math:`e_n(r) = \|x(r) - b(r)\, c_n\|^2` of batched images.

    The data term's integrand (Kim & Ye Eq. 3 / 12; Eq. 19 with a bias field).

    Parameters
    ----------
    x : array or tensor, shape (B, C, *S)
    means : array or tensor, shape (B, K, C)
    bias : array or tensor, shape (B, 1, *S), optional

    Returns
    -------
    array or tensor, shape (B, K, *S)
    """
    return _batched_residual(_Ops(_is_torch(x)), x, means, bias)


def batched_tv(y, tv="isotropic", spacing=None):
    r"""Total variation of each membership, summed over classes and space, NumPy or torch.

    The length term of Kim & Ye Eq. 12 (forward differences with Neumann boundary).

    Parameters
    ----------
    y : array or tensor, shape (B, K, *S)
    tv : {"isotropic", "anisotropic"}
    spacing : sequence of float, optional
        Voxel size per spatial axis (``(dz, dy, dx)`` or ``(dy, dx)``): differences along
        an axis are divided by its size (gradients in physical units).

    Returns
    -------
    array or tensor, shape (B,)
    """
    _check_options(tv=tv)
    return _batched_tv(_Ops(_is_torch(y)), y, tv, check_spacing(spacing, y.ndim - 2))


def batched_terms(x, y, *, bias=None, tv="isotropic", means=None):
    r"""Per-sample data and length terms for batched tensors (the losses' entry point).

    Parameters
    ----------
    x : array or tensor, shape (B, C, H, W) or (B, C, D, H, W)
        Images.
    y : array or tensor, shape (B, K, H, W) or (B, K, D, H, W)
        Memberships (softmax outputs or one-hot), summing to 1 over K.
    bias : array or tensor, shape (B, 1, *S), optional
        Positive bias field :math:`b` of Eq. 19-20.
    tv : {"isotropic", "anisotropic"}
        Discretisation of the length term (module docstring).
    means : array or tensor, shape (B, K, C), optional
        Region means; by default Eq. 13 (or Eq. 20 with ``bias``) from ``x`` and ``y``.

    Returns
    -------
    data, length, means : (B,), (B,), (B, K, C)
        :math:`D` and :math:`L` of Eq. 12 (or Eq. 19 without its :math:`\beta` term) summed
        over pixels, unreduced over the batch, and the means used.
    """
    _check_options(tv=tv)
    ops = _Ops(_is_torch(x) or _is_torch(y))
    if means is None:
        means = _batched_means(ops, x, y, bias)
    e = _batched_residual(ops, x, means, bias)
    B = y.shape[0]
    data = ops.sum(ops.reshape(e * y, (B, -1)), -1)
    length = _batched_tv(ops, y, tv)
    return data, length, means


# --------------------------------------------------------------------------------------
# Public, unbatched API
# --------------------------------------------------------------------------------------
class MumfordShahTerms(NamedTuple):
    """The parts of the Mumford–Shah energy (Eq. 1): ``total = data + lam * length``."""

    total: object
    data: object
    length: object
    means: object


def _reduce(ops, v, reduction, n_pix):
    v = v[0]
    if reduction == "mean":
        v = v / n_pix
    return v if ops.torch else float(v)


def mumford_shah_terms(image, memberships, lam, *, bias=None, tv="isotropic", reduction="sum"):
    r"""Total, data and length terms of the piecewise-constant Mumford–Shah energy (Eq. 1-4).

    Same parameters as :func:`mumford_shah_energy`.

    Returns
    -------
    MumfordShahTerms
        ``(total, data, length, means)`` where ``total = data + lam * length``; ``length`` is
        :math:`\sum_n \mathrm{TV}(y_n)` without the factor ``lam``; ``means`` has shape
        ``(K, C)`` (``(K,)`` for a gray image).
    """
    _check_options(tv=tv, reduction=reduction)
    _check_lam(lam)
    ops, x, y, b = _prepare(image, memberships, bias)
    with np.errstate(over="ignore", invalid="ignore"):  # an overflow is refused below
        data, length, means = batched_terms(x, y, bias=b, tv=tv)
    n_pix = int(np.prod(y.shape[2:]))
    d = _reduce(ops, data, reduction, n_pix)
    ln = _reduce(ops, length, reduction, n_pix)
    gray = x.shape[1] == 1 and tuple(np.shape(image)) == tuple(y.shape[2:])
    m = means[0][:, 0] if gray else means[0]
    total = d + lam * ln
    _check_overflow(ops, total)
    return MumfordShahTerms(total, d, ln, m)


def _check_lam(lam):
    return check_nonnegative(lam, "lam")


def _check_overflow(ops, total):
    """Refuse an energy that overflowed (finite inputs of magnitude ~1e154 and above)."""
    if ops.torch:
        import torch

        ok = bool(torch.isfinite(total.detach()).all())
    else:
        ok = bool(np.isfinite(total))
    if not ok:
        raise ValueError(
            "image values are too large: the energy overflows the floating "
            "type; rescale the image (varseg.energy.normalise_image)"
        )


def mumford_shah_energy(image, memberships, lam, *, bias=None, tv="isotropic", reduction="sum"):
    r"""Piecewise-constant Mumford–Shah energy of a (soft or hard) partition, Eq. 1-4 of [1]_.

    .. math::

        E = \sum_n \sum_r \|x(r) - b(r)\,c_n\|^2 y_n(r) + \lambda \sum_n \mathrm{TV}(y_n)

    with region means :math:`c_n` from Eq. 4 (Eq. 20 with a bias field, :math:`b = 1`
    otherwise). With softmax memberships this is the Mumford–Shah loss of Eq. 12-13 for one
    image; with one-hot memberships it is Eq. 1. The discretisation is given in the module
    docstring (:mod:`varseg.energy`).

    Parameters
    ----------
    image : ndarray or Tensor, shape (H, W), (C, H, W), (D, H, W) or (C, D, H, W)
        Gray image with the memberships' spatial shape, or channels first.
    memberships : ndarray or Tensor, shape (K, H, W) or (K, D, H, W)
        Non-negative, summing to 1 over K (soft or hard).
    lam : float
        Weight :math:`\lambda \ge 0` of the length term.
    bias : ndarray or Tensor, optional
        Positive bias field :math:`b` with the spatial shape (Eq. 19-20).
    tv : {"isotropic", "anisotropic"}, optional
        Length-term discretisation; ``"anisotropic"`` is :math:`|\partial_x| + |\partial_y|`.
    reduction : {"sum", "mean"}, optional
        ``"sum"``: the integral of the paper; ``"mean"``: divided by the number of pixels.

    Returns
    -------
    float or Tensor
        A Python float for NumPy input (computed in float64); a differentiable 0-d tensor
        for torch input.

    Raises
    ------
    ValueError
        Shapes that do not match, NaN/Inf, memberships that do not sum to 1, unknown
        ``tv`` or ``reduction``, negative ``lam``.

    References
    ----------
    .. [1] B. Kim and J. C. Ye, IEEE TIP 29, 2019, Eq. 1-4 and 12-13.

    Examples
    --------
    >>> import numpy as np
    >>> from varseg import mumford_shah_energy, labels_to_memberships
    >>> labels = np.zeros((4, 6), int); labels[:, 3:] = 1
    >>> image = labels.astype(float)
    >>> mumford_shah_energy(image, labels_to_memberships(labels, 2), lam=1.0)
    8.0
    """
    return mumford_shah_terms(image, memberships, lam, bias=bias, tv=tv, reduction=reduction).total


def data_term(image, memberships, *, bias=None, reduction="sum"):
    r"""Return the data term :math:`\sum_n \sum_r \|x - b c_n\|^2 y_n` of Eq. 1-2.

    Eq. 19 with a bias.

    Parameters are those of :func:`mumford_shah_energy`.

    Returns
    -------
    float or Tensor
    """
    return mumford_shah_terms(image, memberships, 0.0, bias=bias, reduction=reduction).data


def length_term(memberships, *, tv="isotropic", reduction="sum"):
    r"""Length term :math:`\sum_n \mathrm{TV}(y_n)` of Eq. 1 / 12, without the factor λ.

    Forward differences, Neumann boundary (module docstring). For a hard two-phase partition
    this is twice the boundary length.

    Parameters
    ----------
    memberships : ndarray or Tensor, shape (K, H, W) or (K, D, H, W)
    tv : {"isotropic", "anisotropic"}
    reduction : {"sum", "mean"}

    Returns
    -------
    float or Tensor
    """
    _check_options(tv=tv, reduction=reduction)
    ops = _Ops(_is_torch(memberships))
    y = memberships if ops.torch else check_image(memberships, "memberships", dtype=np.float64)
    if y.ndim not in (3, 4):
        raise ValueError(f"memberships must be (K, H, W) or (K, D, H, W); got {tuple(y.shape)}")
    _check_finite(ops, y, "memberships")
    n_pix = int(np.prod(y.shape[1:]))
    return _reduce(ops, _batched_tv(ops, y[None], tv), reduction, n_pix)


def total_variation(u, *, tv="isotropic"):
    r"""Discrete total variation of one function, :math:`\sum_r |\nabla u(r)|`.

    Forward differences with a Neumann boundary; isotropic (Euclidean norm of the gradient)
    or anisotropic (L1 norm). For an indicator function this is the perimeter of its set
    (exactly, for boundaries aligned with the grid and ``tv="anisotropic"``).

    Parameters
    ----------
    u : ndarray or Tensor, shape (H, W) or (D, H, W)
    tv : {"isotropic", "anisotropic"}

    Returns
    -------
    float or Tensor
    """
    return length_term(u[None], tv=tv)


def region_means(image, memberships, *, bias=None):
    r"""Region means :math:`c_n` of Eq. 4 / 13, or Eq. 20 with a bias field.

    .. math:: c_n = \frac{\sum_r x(r) y_n(r)}{\sum_r y_n(r)}, \qquad
              c_n^{b} = \frac{\sum_r b(r) x(r) y_n(r)}{\sum_r b(r)^2 y_n(r)}

    A class of zero mass gets mean 0 (it contributes nothing to the energy).

    Returns
    -------
    ndarray or Tensor, shape (K,) for a gray image, (K, C) otherwise
    """
    return mumford_shah_terms(image, memberships, 0.0, bias=bias).means


def labels_to_memberships(labels, n_phases=None, dtype=np.float64):
    """One-hot memberships ``(K, *S)`` of a label map ``S`` (characteristic functions χ_n, Eq. 3).

    Parameters
    ----------
    labels : ndarray of int, shape (H, W) or (D, H, W)
        Labels in ``0 .. n_phases - 1`` (integer or boolean; floats only when every value is
        an integer, see :func:`varseg._validation.check_labels`).
    n_phases : int, optional
        Number of classes K ≥ 1; default ``labels.max() + 1``.

    Returns
    -------
    ndarray, shape (K, *labels.shape)

    Raises
    ------
    TypeError
        Labels that are not integers (non-integral floats are refused, never truncated).
    ValueError
        Labels outside ``0 .. n_phases - 1``, ``n_phases`` < 1, an empty label map.
    """
    lab, k = check_labels(labels, n_phases)
    return (lab[None] == np.arange(k).reshape((k,) + (1,) * lab.ndim)).astype(dtype)


# --------------------------------------------------------------------------------------
# Fast path for hard partitions (solvers record the energy every iteration)
# --------------------------------------------------------------------------------------
def energy_from_labels(
    image, labels, lam, *, n_phases=None, tv="isotropic", reduction="sum", spacing=None
):
    r"""Mumford–Shah energy (Eq. 1) of a hard partition given as a label map.

    Numerically identical to ``mumford_shah_terms(image, labels_to_memberships(labels), lam)``
    (tested), but computed by a Numba kernel in one pass without building K membership
    images, so that iterative solvers can record it every iteration.

    For hard memberships the isotropic TV at pixel :math:`r` of class :math:`l` is
    :math:`\sqrt{m}` for class :math:`l` (``m`` = number of axes whose forward neighbour has
    another label) plus :math:`\sqrt{m_n}` for each other class :math:`n` (``m_n`` = number of
    axes whose forward neighbour has label :math:`n`).

    Parameters
    ----------
    image : ndarray, shape S or (C,) + S
        Real and finite (computed in float64; a float32 image gives the same numbers as
        its float64 copy).
    labels : ndarray of int, shape S, S = (H, W) or (D, H, W)
        Labels in ``0 .. K-1``, checked by :func:`varseg._validation.check_labels`
        (integral-valued floats are accepted, other floats refused).
    lam : float
        Finite λ ≥ 0.
    n_phases : int, optional
        K ≥ 1; default ``labels.max() + 1``.
    tv, reduction : see :func:`mumford_shah_energy`
    spacing : sequence of float, optional
        Voxel size per spatial axis (e.g. a file's ``(dz, dy, dx)``): the length term's
        differences are divided by it (gradients in physical units, as in
        :func:`varseg.levelset.chan_vese`'s curvature); the data term stays a sum over
        voxels. Unit spacing (the default) is the Numba path; other spacings are computed
        from the one-hot memberships by :func:`batched_tv`.

    Returns
    -------
    MumfordShahTerms
        Floats ``total``, ``data``, ``length`` and ``means`` of shape (K, C).

    Raises
    ------
    TypeError
        Image or labels of a non-numeric type, non-integral labels.
    ValueError
        Shapes that do not match, labels outside ``0 .. K-1``, ``n_phases`` < 1, NaN/Inf in
        the image, a negative or non-finite ``lam``, an energy that overflows float64.
    """
    from ._energy_kernels import hard_energy, hard_energy_serial

    _check_options(tv=tv, reduction=reduction)
    lam = check_nonnegative(lam, "lam")
    lab = np.asarray(labels)
    if lab.ndim not in (2, 3):
        raise ValueError(f"labels must be (H, W) or (D, H, W); got shape {lab.shape}")
    x = check_image(image, "image")
    if x.shape == lab.shape:
        x = x[None]
    elif not (x.ndim == lab.ndim + 1 and x.shape[1:] == lab.shape):
        raise ValueError(f"image shape {x.shape} does not match labels shape {lab.shape}")
    lab, k = check_labels(lab, n_phases)
    _check_kernel_memory(x, lab, k)
    # C order and float64 always: one compiled signature (no recompilation for views or a
    # float32 image; the kernel promotes every value of x to float64, so a float32 image
    # gives the same bits through a float64 copy)
    lab3 = np.ascontiguousarray(lab.reshape((1,) * (3 - lab.ndim) + lab.shape))
    x4 = np.ascontiguousarray(x.reshape((x.shape[0],) + lab3.shape), dtype=np.float64)
    sp = check_spacing(spacing, lab.ndim)
    kernel = hard_energy if lab.size >= _PARALLEL_MIN_PIXELS else hard_energy_serial
    data, length, means = kernel(x4, lab3, k, tv == "isotropic")
    if sp is not None:
        onehot = (lab[None] == np.arange(k).reshape((k,) + (1,) * lab.ndim)).astype(np.float64)
        length = float(_batched_tv(_Ops(False), onehot[None], tv, sp)[0])
    n_pix = lab.size
    if reduction == "mean":
        data, length = data / n_pix, length / n_pix
    total = data + lam * length
    _check_overflow(_Ops(False), total)
    return MumfordShahTerms(total, data, length, means)


#: Largest per-row work array of the hard-energy kernel, in float64 values (1 GiB).
_KERNEL_MAX_VALUES = 1 << 27


def _check_kernel_memory(x, lab, k):
    """Refuse a K whose per-row sums of shape (rows, K, C + 1) would not fit in memory.

    E.g. labels up to 10**6 with ``n_phases=None``: refused instead of exhausting memory.
    """
    rows = lab.size // lab.shape[-1]
    need = rows * k * (x.shape[0] + 1)
    if need > _KERNEL_MAX_VALUES:
        raise ValueError(
            f"labels give K = {k} classes (n_phases), too many for this "
            f"image ({need * 8 / 2**30:.1f} GiB of work arrays); relabel to "
            f"0..K-1 with a small K"
        )


# --------------------------------------------------------------------------------------
# Li et al. 2011 local intensity clustering energy (Eq. 6)
# --------------------------------------------------------------------------------------
def gaussian_kernel(sigma, ndim=2, truncate=2.0):
    r"""Normalised truncated Gaussian kernel :math:`K_\sigma` of Li et al. 2011 (Eq. 6).

    Support radius ``round(truncate * sigma)`` pixels (Li's code uses a
    ``(2 round(2σ) + 1)``-wide window, i.e. ``truncate=2``), normalised to sum 1.

    Returns
    -------
    ndarray, shape (2R+1,) * ndim
    """
    if not sigma > 0:
        raise ValueError(f"sigma must be positive; got {sigma!r}")
    r = max(1, int(round(truncate * sigma)))
    t = np.arange(-r, r + 1, dtype=np.float64)
    g = np.exp(-(t**2) / (2.0 * sigma**2))
    k = g
    for _ in range(ndim - 1):
        k = np.multiply.outer(k, g)
    return k / k.sum()


def lic_energy(image, memberships, bias, *, sigma=4.0, means=None, truncate=2.0, reduction="sum"):
    r"""Local intensity clustering energy of Li et al. 2011 (Eq. 6 of [1]_).

    .. math::

        E_{LIC} = \sum_n \int \Big(\int K_\sigma(r - r') |x(r) - b(r') c_n|^2 dr'\Big)
                  M_n(r)\, dr = \sum_n \sum_r e_n(r) M_n(r),

        e_n = x^2 (K * 1) - 2 c_n x (K * b) + c_n^2 (K * b^2)

    with zero padding outside the image (so :math:`K * 1 < 1` near the border, as in Li's
    code) and, unless given, the minimising means
    :math:`c_n = \sum (K*b) x M_n / \sum (K*b^2) M_n`. Multichannel images sum over channels
    with a mean per channel.

    Parameters
    ----------
    image : ndarray or Tensor, shape S or (C,) + S
    memberships : ndarray or Tensor, shape (K,) + S
    bias : ndarray or Tensor, shape S
        The bias field :math:`b` (positive).
    sigma, truncate : float
        Kernel of :func:`gaussian_kernel`.
    means : array, shape (K,) or (K, C), optional
    reduction : {"sum", "mean"}

    Returns
    -------
    float or Tensor

    References
    ----------
    .. [1] C. Li et al., IEEE TIP 20(7), 2011, Eq. 9-19; Kim & Ye 2019, Eq. 5-6.
    """
    _check_options(reduction=reduction)
    if bias is None:
        raise ValueError("lic_energy needs a bias field (use ones for none)")
    ops, x, y, b = _prepare(image, memberships, bias)
    nsp = y.ndim - 2
    kern = gaussian_kernel(sigma, nsp, truncate)
    k1 = ops.smooth(ops.ones_like(b), kern)
    kb = ops.smooth(b, kern)
    kb2 = ops.smooth(b * b, kern)
    K, C = y.shape[1], x.shape[1]
    if means is None:
        n = int(np.prod(y.shape[2:]))
        yf = ops.reshape(y, (1, K, n))
        num = ops.matmul(yf, ops.swap_last(ops.reshape(x * kb, (1, C, n))))
        den = ops.sum(yf * ops.reshape(kb2, (1, 1, n)), -1)
        pos = den > 0
        c = num / ops.where(pos, den, ops.ones_like(den))[..., None]
        c = ops.where(pos[..., None], c, ops.zeros_like(c))[0]
    else:
        c = means if ops.torch else np.asarray(means, dtype=np.float64)
        c = c.reshape(K, -1)
    total = 0.0
    for ch in range(C):
        xc = x[:, ch : ch + 1]
        cn = c[:, ch].reshape((1, K) + (1,) * nsp)
        e = xc * xc * k1 - 2 * cn * xc * kb + cn * cn * kb2  # (1, K, *S)
        total = total + ops.sum(ops.reshape(e * y, (1, -1)), -1)
    n_pix = int(np.prod(y.shape[2:]))
    return _reduce(ops, total, reduction, n_pix)

r"""Regularised Heaviside and Dirac functions and the vector Heaviside of Vese & Chan.

.. math::

    H_\varepsilon(z) = \tfrac12\big(1 + \tfrac{2}{\pi}\arctan(z/\varepsilon)\big), \qquad
    \delta_\varepsilon(z) = H_\varepsilon'(z) = \frac{\varepsilon/\pi}{\varepsilon^2 + z^2}

(Chan & Vese 2001; Vese & Chan 2002, Eq. 7-9 of Kim & Ye 2019). Each formula is written once
(:func:`heaviside_expr`, :func:`dirac_expr`, :func:`dirac_pi_expr`) and used by the Numba
kernels (compiled on first use, never at import), by NumPy (:func:`heaviside`, :func:`dirac`)
and by torch (:func:`heaviside_torch`, :func:`dirac_torch`).
"""

from __future__ import annotations

import math
import types

import numpy as np

from .._jit import jit_family
from .._threads import run_split

__all__ = [
    "heaviside",
    "dirac",
    "heaviside_expr",
    "dirac_expr",
    "dirac_pi_expr",
    "heaviside_scalar",
    "heaviside_vec",
    "atan_vec",
    "dirac_scalar",
    "heaviside_torch",
    "dirac_torch",
    "phase_memberships",
    "phase_labels",
]

_atan = math.atan  # rebound to numpy.arctan / torch.atan in the array and tensor versions


def heaviside_expr(z, eps):
    r"""Evaluate the regularised Heaviside for a Python float (the one definition).

    :math:`H_\varepsilon(z) = \frac12(1 + \frac2\pi \arctan(z/\varepsilon))`
    (Chan & Vese 2001, Eq. 7 of Kim & Ye 2019).

    The same code object is compiled for Numba kernels (:data:`heaviside_scalar`) and bound
    to ``numpy.arctan`` (:func:`heaviside`) and ``torch.atan`` (:func:`heaviside_torch`).
    """
    return 0.5 * (1.0 + (2.0 / math.pi) * _atan(z / eps))


def dirac_expr(z, eps):
    r"""Evaluate the regularised Dirac (the one definition).

    :math:`\delta_\varepsilon(z) = H_\varepsilon'(z) =
    \frac{\varepsilon/\pi}{\varepsilon^2 + z^2}`; valid for floats, arrays and tensors.
    """
    return (eps / math.pi) / (eps * eps + z * z)


def dirac_pi_expr(z, eps):
    r"""Evaluate scikit-image's Dirac, in its order of operations.

    :math:`\pi\,\delta_\varepsilon(z) = \varepsilon / (\varepsilon^2 + z^2)`
    (``skimage.segmentation.chan_vese``; the factor :math:`\pi` is absorbed in the time
    step); used by the Chan–Vese kernels.
    """
    return eps / (eps * eps + z * z)


def _bind(fn, suffix, **names):
    """``fn`` with some of its global names rebound (same code object)."""
    g = dict(fn.__globals__)
    g.update(names)
    out = types.FunctionType(fn.__code__, g, f"{fn.__name__}_{suffix}", fn.__defaults__)
    out.__qualname__ = f"{fn.__qualname__}_{suffix}"
    return out


_heaviside_np = _bind(heaviside_expr, "numpy", _atan=np.arctan)

#: Numba versions of :func:`heaviside_expr` / :func:`dirac_expr` for kernels (compiled on
#: first use, inlined into the caller).
_SCALAR = jit_family(
    {"heaviside_scalar": heaviside_expr, "dirac_scalar": dirac_expr},
    "scalar",
    cache=True,
    inline="always",
)
heaviside_scalar = _SCALAR.heaviside_scalar
dirac_scalar = _SCALAR.dirac_scalar


def heaviside(z, eps):
    r"""Regularised Heaviside (Chan & Vese 2001; Eq. 7 of Kim & Ye 2019).

    :math:`H_\varepsilon(z) = \frac12(1 + \frac2\pi \arctan(z/\varepsilon))`.

    Parameters
    ----------
    z : float or ndarray
    eps : float
        Regularisation width :math:`\varepsilon > 0`.

    Returns
    -------
    float or ndarray
        Same shape as ``z``; float32 input stays float32.
    """
    return _heaviside_np(np.asarray(z) if not np.isscalar(z) else np.float64(z), eps)


def dirac(z, eps):
    r"""Regularised Dirac, the derivative of :func:`heaviside`.

    :math:`\delta_\varepsilon(z) = (\varepsilon/\pi)/(\varepsilon^2 + z^2)`.

    Parameters
    ----------
    z : float or ndarray
    eps : float
        Regularisation width :math:`\varepsilon > 0`.

    Returns
    -------
    float or ndarray
    """
    return dirac_expr(np.asarray(z) if not np.isscalar(z) else np.float64(z), eps)


def heaviside_torch(z, eps):
    r""":func:`heaviside_expr` on a torch tensor (``torch.atan``), for the torch code.

    Parameters
    ----------
    z : torch.Tensor
    eps : float

    Returns
    -------
    torch.Tensor
    """
    global _heaviside_t
    if _heaviside_t is None:
        import torch

        _heaviside_t = _bind(heaviside_expr, "torch", _atan=torch.atan)
    return _heaviside_t(z, eps)


_heaviside_t = None


def dirac_torch(z, eps):
    r""":func:`dirac_expr` on a torch tensor (the derivative of :func:`heaviside_torch`).

    Parameters
    ----------
    z : torch.Tensor
    eps : float

    Returns
    -------
    torch.Tensor
    """
    return dirac_expr(z, eps)


def phase_memberships(level_sets, eps=None, threads=1):
    r"""Memberships of the :math:`2^m` phases of m level sets (vector Heaviside, Eq. 7).

    Phase index :math:`k = \sum_j s_j 2^{j}` with :math:`s_j = 1` where :math:`\phi_j < 0`
    (bit j set outside level set j), so phase 0 is "inside every level set", matching
    ``labels = phase_labels(level_sets)``. With ``eps=None`` the sharp Heaviside
    :math:`H(z) = 1_{z \ge 0}` gives one-hot memberships; with ``eps`` the regularised one
    gives soft memberships (products of :math:`H_\varepsilon` and :math:`1 - H_\varepsilon`)
    that still sum to 1.

    Parameters
    ----------
    level_sets : ndarray, shape (m,) + S
    eps : float, optional
    threads : int
        Threads of the float32 soft memberships (chunks of pixels; the same values for any
        number).

    Returns
    -------
    ndarray, shape (2**m,) + S
        float32 for float32 level sets (computed in float32, soft memberships in one
        vectorised Numba pass with a float32 arc tangent within 3 ulps),
        else float64.
    """
    phi = np.asarray(level_sets)
    dt = np.float32 if phi.dtype == np.float32 else np.float64
    phi = phi.astype(dt, copy=False)
    m = phi.shape[0]
    out = np.empty((2**m,) + phi.shape[1:], dtype=dt)
    if eps is not None and dt is np.float32 and phi.size > 0:  # one fused, vectorised pass
        flat = np.ascontiguousarray(phi).reshape(m, -1)
        args = (flat, np.float32(eps), out.reshape(2**m, -1))
        run_split(_F32._memberships_f32, flat.shape[1], threads, *args, align=_CHUNK)
        return out
    h = (phi >= 0).astype(dt) if eps is None else heaviside(phi, dt(eps))
    for k in range(2**m):
        out[k] = (1 - h[0]) if k & 1 else h[0]
        for j in range(1, m):
            out[k] *= (1 - h[j]) if (k >> j) & 1 else h[j]
    return out


_TAN_3PI_8 = 2.414213562373095  # tan(3 pi / 8)
_TAN_PI_8 = 0.41421356237309503  # tan(pi / 8)
_CHUNK = 2048  # pixels per chunk of the membership kernel (its Heaviside rows stay in L1)


def _atan_f32(t):
    r"""Arc tangent of a float32 (Cephes ``atanf``, within 3 ulps of the exact value).

    Range reduction to :math:`|u| \le \tan(\pi/8)` by :math:`\arctan x = \pi/2 +
    \arctan(-1/x)` or :math:`\pi/4 + \arctan((x - 1)/(x + 1))`, then an odd polynomial of
    degree 9. Branch-free (selects): a loop over it vectorises, unlike the libm call.
    """
    x = abs(t)
    big = x > np.float32(_TAN_3PI_8)
    mid = x > np.float32(_TAN_PI_8)
    one = np.float32(1.0)
    num = -one if big else (x - one if mid else x)
    den = x if big else (x + one if mid else one)
    y0 = np.float32(math.pi / 2) if big else (np.float32(math.pi / 4) if mid else np.float32(0))
    u = num / den
    z = u * u
    p = np.float32(8.05374449538e-2) * z - np.float32(1.38776856032e-1)
    p = p * z + np.float32(1.99777106478e-1)
    p = p * z - np.float32(3.33329491539e-1)
    y = y0 + (p * z * u + u)
    return math.copysign(y, t)


def _memberships_f32(start, stop, phi, eps, out):
    r"""Write the soft memberships of pixels ``start .. stop - 1`` into ``out`` (2^m, N).

    ``phi``: float32 level sets (m, N). Per chunk of pixels, the m rows of
    :math:`H_\varepsilon` (:func:`heaviside_expr` with :func:`_atan_f32`), then per phase the
    products of :func:`phase_memberships`' NumPy code, without temporaries.
    """
    m = phi.shape[0]
    h = np.empty((m, _CHUNK), np.float32)
    one = np.float32(1.0)
    for a in range(start, stop, _CHUNK):
        w = min(_CHUNK, stop - a)
        for j in range(m):
            hj = h[j]
            pj = phi[j, a : a + w]
            for i in range(w):
                hj[i] = heaviside_expr(pj[i], eps)
        for k in range(out.shape[0]):
            ok = out[k, a : a + w]
            h0 = h[0]
            if k & 1:
                for i in range(w):
                    ok[i] = one - h0[i]
            else:
                for i in range(w):
                    ok[i] = h0[i]
            for j in range(1, m):
                hj = h[j]
                if (k >> j) & 1:
                    for i in range(w):
                        ok[i] *= one - hj[i]
                else:
                    for i in range(w):
                        ok[i] *= hj[i]


#: :func:`_memberships_f32` and its float32 Heaviside (the one :func:`heaviside_expr`, its
#: ``_atan`` bound to :func:`_atan_f32`), compiled on first use.
_F32 = jit_family(
    {"_memberships_f32": _memberships_f32, "heaviside_expr": heaviside_expr, "_atan": _atan_f32},
    "f32",
    cache=True,
    error_model="numpy",
    nogil=True,
)


# Cephes atan (S. L. Moshier): range reduction to |r| <= 0.66, then the rational
# approximation r + r^3 P(r^2) / Q(r^2) of degree 4/5 (peak relative error 2.6e-18 there).
_ATAN_P = (
    -8.750608600031904122785e-1,
    -1.615753718733365076637e1,
    -7.500855792314704667340e1,
    -1.228866684490136173410e2,
    -6.485021904942025371773e1,
)
_ATAN_Q = (
    2.485846490142306297962e1,
    1.650270098316988542046e2,
    4.328810604912902668951e2,
    4.853903996359136964868e2,
    1.945506571482613964425e2,
)
_T3P8 = 2.41421356237309504880  # tan(3 pi / 8)
_MOREBITS = 6.123233995736765886130e-17  # pi / 2 - float64(pi / 2)


def _atan_f64(x):
    r""":math:`\arctan x` in float64 without branches, so that a loop of it vectorises.

    Cephes' ``atan``: :math:`|x| > \tan(3\pi/8)`: :math:`\pi/2 + \arctan(-1/|x|)`;
    :math:`|x| > 0.66`: :math:`\pi/4 + \arctan\frac{|x| - 1}{|x| + 1}`; else
    :math:`\arctan |x|`; the reduced argument :math:`r` through :math:`r + r^3 P(r^2) /
    Q(r^2)`; the sign of ``x`` restored (the three cases are selects, one division for
    :math:`r`, one for the rational function). Within 2 ulp of ``numpy.arctan`` (tested as
    :data:`atan_vec`); ±inf give ±π/2, NaN gives NaN.
    """
    t = abs(x)
    big = t > _T3P8
    mid = t > 0.66
    num = -1.0 if big else (t - 1.0 if mid else t)
    den = t if big else (t + 1.0 if mid else 1.0)
    r = num / den
    y0 = 0.5 * np.pi if big else (0.25 * np.pi if mid else 0.0)
    corr = _MOREBITS if big else (0.5 * _MOREBITS if mid else 0.0)
    z = r * r
    P0, P1, P2, P3, P4 = _ATAN_P
    Q0, Q1, Q2, Q3, Q4 = _ATAN_Q
    pz = ((((P0 * z + P1) * z + P2) * z + P3) * z + P4) * z
    qz = ((((z + Q0) * z + Q1) * z + Q2) * z + Q3) * z + Q4
    v = y0 + ((r * (pz / qz) + r) + corr)
    return math.copysign(v, x)


#: The float64 Heaviside for row loops that must vectorise: the one :func:`heaviside_expr`
#: with its ``_atan`` bound to the branch-free :func:`_atan_f64` (inlined, NumPy's error
#: model); used by the LIC kernels. :data:`atan_vec` is that arc tangent on its own.
_VEC = jit_family(
    {"heaviside_vec": heaviside_expr, "_atan": _atan_f64},
    "vec",
    cache=True,
    inline="always",
    error_model="numpy",
)
heaviside_vec = _VEC.heaviside_vec
atan_vec = _VEC._atan


def phase_labels(level_sets):
    r"""Hard phase labels of m level sets: :math:`k = \sum_j [\phi_j < 0]\, 2^j` (Eq. 7)."""
    phi = np.asarray(level_sets)
    lab = np.zeros(phi.shape[1:], dtype=np.int64)
    for j in range(phi.shape[0]):
        lab |= (phi[j] < 0).astype(np.int64) << j
    return lab

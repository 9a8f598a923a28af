r"""Regularised Heaviside and Dirac functions and the vector Heaviside of Vese & Chan.

.. math::

    H_\varepsilon(z) = \tfrac12\big(1 + \tfrac{2}{\pi}\arctan(z/\varepsilon)\big), \qquad
    \delta_\varepsilon(z) = H_\varepsilon'(z) = \frac{\varepsilon/\pi}{\varepsilon^2 + z^2}

(Chan & Vese 2001; Vese & Chan 2002, Eq. 7-9 of Kim & Ye 2019). The scalar functions are
Numba-compiled so the solvers' kernels call them directly; they also accept NumPy arrays.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit, vectorize

__all__ = ["heaviside", "dirac", "phase_memberships", "phase_labels"]


@njit(cache=True, inline="always")
def heaviside_scalar(z, eps):
    """Scalar :math:`H_\\varepsilon(z)` for Numba kernels."""
    return 0.5 * (1.0 + (2.0 / math.pi) * math.atan(z / eps))


@njit(cache=True, inline="always")
def dirac_scalar(z, eps):
    """Scalar :math:`\\delta_\\varepsilon(z)` for Numba kernels."""
    return (eps / math.pi) / (eps * eps + z * z)


@vectorize(["float32(float32, float32)", "float64(float64, float64)"], cache=True)
def heaviside(z, eps):
    r"""Regularised Heaviside, :math:`H_\varepsilon(z) = \frac12(1 + \frac2\pi
    \arctan(z/\varepsilon))`.

    Parameters
    ----------
    z : ndarray
    eps : float
        Regularisation width :math:`\varepsilon > 0`.
    """
    return 0.5 * (1.0 + (2.0 / math.pi) * math.atan(z / eps))


@vectorize(["float32(float32, float32)", "float64(float64, float64)"], cache=True)
def dirac(z, eps):
    r"""Regularised Dirac,
    :math:`\delta_\varepsilon(z) = (\varepsilon/\pi)/(\varepsilon^2 + z^2)`."""
    return (eps / math.pi) / (eps * eps + z * z)


def phase_memberships(level_sets, eps=None):
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

    Returns
    -------
    ndarray, shape (2**m,) + S
    """
    phi = np.asarray(level_sets, dtype=np.float64)
    m = phi.shape[0]
    h = (phi >= 0).astype(np.float64) if eps is None else heaviside(phi, float(eps))
    out = np.ones((2**m,) + phi.shape[1:])
    for k in range(2**m):
        for j in range(m):
            out[k] *= (1.0 - h[j]) if (k >> j) & 1 else h[j]
    return out


def phase_labels(level_sets):
    r"""Hard phase labels of m level sets: :math:`k = \sum_j [\phi_j < 0]\, 2^j` (Eq. 7)."""
    phi = np.asarray(level_sets)
    lab = np.zeros(phi.shape[1:], dtype=np.int64)
    for j in range(phi.shape[0]):
        lab |= (phi[j] < 0).astype(np.int64) << j
    return lab

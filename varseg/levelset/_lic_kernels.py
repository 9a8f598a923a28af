r"""Numba kernels of the Li et al. 2011 bias-field level set (:mod:`varseg.levelset.lic`).

Everything works on float64 arrays of shape ``(D, H, W)``; a 2D image is passed as
``(1, H, W)``. An axis of length 1 is "absent": it contributes no derivative and no Neumann
boundary condition. The discretisation is that of Li's MATLAB code (``lse_bfe.m``,
``lse_bfe_3Phase.m``):

* ``NeumannBoundCond``: the first and last index of every axis copy the values two steps
  inside (``g(1) = g(3)``, ``g(end) = g(end-2)`` in MATLAB), which makes the central
  difference vanish on the boundary (a mirror boundary);
* ``curvature_central``: :math:`\kappa = \operatorname{div}(\nabla u/|\nabla u|)` with
  MATLAB ``gradient`` (central differences inside, one-sided differences at the ends) and
  :math:`|\nabla u| = \sqrt{|\nabla u|^2 + 10^{-10}}`;
* ``4*del2(u)``: the standard :math:`(2d+1)`-point Laplacian (mirror neighbours at the
  ends; those values are overwritten by the boundary condition of the next step anyway);
* explicit Euler step :math:`u \leftarrow u + \Delta t\,[\delta_\varepsilon(u)(f + \nu\kappa)
  + \mu(\Delta u - \kappa)]` with the data force :math:`f` of :func:`data_forces`.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from .heaviside import dirac_scalar, heaviside_scalar

__all__ = ["neumann_bc", "curvature", "data_forces", "evolve"]

_TINY = 1e-10  # inside the square root of |grad u|, as in Li's curvature_central


@njit(cache=True)
def neumann_bc(u):
    """Li's ``NeumannBoundCond`` in place on ``u`` of shape (D, H, W) (axes of length ≥ 3)."""
    D, H, W = u.shape
    if D >= 3:
        for i in range(H):
            for j in range(W):
                u[0, i, j] = u[2, i, j]
                u[D - 1, i, j] = u[D - 3, i, j]
    if H >= 3:
        for d in range(D):
            for j in range(W):
                u[d, 0, j] = u[d, 2, j]
                u[d, H - 1, j] = u[d, H - 3, j]
    if W >= 3:
        for d in range(D):
            for i in range(H):
                u[d, i, 0] = u[d, i, 2]
                u[d, i, W - 1] = u[d, i, W - 3]


@njit(cache=True, inline="always")
def _grad1(am, a0, ap, i, n):
    """MATLAB ``gradient`` along one axis at index i of n, given u[i-1], u[i], u[i+1]."""
    if n == 1:
        return 0.0
    if i == 0:
        return ap - a0
    if i == n - 1:
        return a0 - am
    return 0.5 * (ap - am)


@njit(cache=True, inline="always")
def _lo(i):
    return i - 1 if i > 0 else 0


@njit(cache=True, inline="always")
def _hi(i, n):
    return i + 1 if i < n - 1 else n - 1


@njit(cache=True)
def _unit_normal(u, nd, nh, nw):
    """n = grad u / sqrt(|grad u|^2 + 1e-10) (MATLAB gradient) into nd, nh, nw."""
    D, H, W = u.shape
    for d in range(D):
        dm, dp = _lo(d), _hi(d, D)
        for i in range(H):
            im, ip = _lo(i), _hi(i, H)
            for j in range(W):
                jm, jp = _lo(j), _hi(j, W)
                a0 = u[d, i, j]
                gd = _grad1(u[dm, i, j], a0, u[dp, i, j], d, D)
                gh = _grad1(u[d, im, j], a0, u[d, ip, j], i, H)
                gw = _grad1(u[d, i, jm], a0, u[d, i, jp], j, W)
                inv = 1.0 / np.sqrt(gd * gd + gh * gh + gw * gw + _TINY)
                nd[d, i, j] = gd * inv
                nh[d, i, j] = gh * inv
                nw[d, i, j] = gw * inv


@njit(cache=True)
def _divergence(nd, nh, nw, out):
    """div n with MATLAB gradient along each axis."""
    D, H, W = nd.shape
    for d in range(D):
        dm, dp = _lo(d), _hi(d, D)
        for i in range(H):
            im, ip = _lo(i), _hi(i, H)
            for j in range(W):
                jm, jp = _lo(j), _hi(j, W)
                out[d, i, j] = (
                    _grad1(nd[dm, i, j], nd[d, i, j], nd[dp, i, j], d, D)
                    + _grad1(nh[d, im, j], nh[d, i, j], nh[d, ip, j], i, H)
                    + _grad1(nw[d, i, jm], nw[d, i, j], nw[d, i, jp], j, W)
                )


@njit(cache=True)
def curvature(u, out):
    r"""Curvature :math:`\operatorname{div}(\nabla u/|\nabla u|)` of Li's ``curvature_central``."""
    nd = np.empty_like(u)
    nh = np.empty_like(u)
    nw = np.empty_like(u)
    _unit_normal(u, nd, nh, nw)
    _divergence(nd, nh, nw, out)
    return out


@njit(cache=True, inline="always")
def _mirror_lo(i):
    return i - 1 if i > 0 else 1


@njit(cache=True, inline="always")
def _mirror_hi(i, n):
    return i + 1 if i < n - 1 else n - 2


@njit(cache=True)
def _step(u, force, kappa, nu, mu, dt, eps, out):
    r"""One explicit step ``out = u + dt*(δ(u)(force + ν κ) + μ(Δu − κ))``."""
    D, H, W = u.shape
    for d in range(D):
        for i in range(H):
            for j in range(W):
                a0 = u[d, i, j]
                lap = 0.0
                if D > 1:
                    lap += u[_mirror_lo(d), i, j] + u[_mirror_hi(d, D), i, j] - 2.0 * a0
                if H > 1:
                    lap += u[d, _mirror_lo(i), j] + u[d, _mirror_hi(i, H), j] - 2.0 * a0
                if W > 1:
                    lap += u[d, i, _mirror_lo(j)] + u[d, i, _mirror_hi(j, W)] - 2.0 * a0
                k = kappa[d, i, j]
                delta = dirac_scalar(a0, eps)
                out[d, i, j] = a0 + dt * (delta * (force[d, i, j] + nu * k) + mu * (lap - k))


@njit(cache=True)
def data_forces(phi, e, eps, out):
    r"""Data forces :math:`f_j = -\partial(\sum_i e_i M_i)/\partial H_j` of each level set.

    The level-set equation is :math:`\partial_t\phi_j = \delta_\varepsilon(\phi_j) f_j + \dots`.
    Memberships (Li 2011, Section IV; ``H_j = H_\varepsilon(\phi_j)``):

    * K = 2: :math:`M_1 = H_1, M_2 = 1 - H_1`; :math:`f_1 = -(e_1 - e_2)`;
    * K = 3: :math:`M_1 = H_1 H_2, M_2 = H_1(1 - H_2), M_3 = 1 - H_1`;
      :math:`f_1 = -(e_1 H_2 + e_2 (1 - H_2) - e_3)`, :math:`f_2 = -H_1 (e_1 - e_2)`
      (Li's ``lse_bfe_3Phase.m``);
    * K = 4: :math:`M_1 = H_1 H_2, M_2 = H_1(1-H_2), M_3 = (1-H_1)H_2, M_4 = (1-H_1)(1-H_2)`;
      :math:`f_1 = -(H_2(e_1 - e_3) + (1 - H_2)(e_2 - e_4))`,
      :math:`f_2 = -(H_1(e_1 - e_2) + (1 - H_1)(e_3 - e_4))`.

    Parameters
    ----------
    phi : (m, D, H, W) float64, m = 1 (K = 2) or 2 (K = 3, 4)
    e : (K, D, H, W) float64, the local clustering residuals :math:`e_i`
    eps : float
    out : (m, D, H, W) float64, written
    """
    K = e.shape[0]
    _, D, H, W = phi.shape
    for d in range(D):
        for i in range(H):
            for j in range(W):
                if K == 2:
                    out[0, d, i, j] = -(e[0, d, i, j] - e[1, d, i, j])
                elif K == 3:
                    h1 = heaviside_scalar(phi[0, d, i, j], eps)
                    h2 = heaviside_scalar(phi[1, d, i, j], eps)
                    out[0, d, i, j] = -(e[0, d, i, j] * h2 + e[1, d, i, j] * (1.0 - h2)
                                        - e[2, d, i, j])
                    out[1, d, i, j] = -h1 * (e[0, d, i, j] - e[1, d, i, j])
                else:
                    h1 = heaviside_scalar(phi[0, d, i, j], eps)
                    h2 = heaviside_scalar(phi[1, d, i, j], eps)
                    out[0, d, i, j] = -(h2 * (e[0, d, i, j] - e[2, d, i, j])
                                        + (1.0 - h2) * (e[1, d, i, j] - e[3, d, i, j]))
                    out[1, d, i, j] = -(h1 * (e[0, d, i, j] - e[1, d, i, j])
                                        + (1.0 - h1) * (e[2, d, i, j] - e[3, d, i, j]))


@njit(cache=True, inline="always")
def _force(phi, e, j, d, i, w, eps):
    """Data force :math:`f_j` at one pixel (:func:`data_forces`, fused into :func:`evolve`)."""
    K = e.shape[0]
    if K == 2:
        return -(e[0, d, i, w] - e[1, d, i, w])
    h1 = heaviside_scalar(phi[0, d, i, w], eps)
    h2 = heaviside_scalar(phi[1, d, i, w], eps)
    if K == 3:
        if j == 0:
            return -(e[0, d, i, w] * h2 + e[1, d, i, w] * (1.0 - h2) - e[2, d, i, w])
        return -h1 * (e[0, d, i, w] - e[1, d, i, w])
    if j == 0:
        return -(h2 * (e[0, d, i, w] - e[2, d, i, w])
                 + (1.0 - h2) * (e[1, d, i, w] - e[3, d, i, w]))
    return -(h1 * (e[0, d, i, w] - e[1, d, i, w]) + (1.0 - h1) * (e[2, d, i, w] - e[3, d, i, w]))


@njit(cache=True)
def _fused_step(phi, e, j, nd, nh, nw, nu, mu, dt, eps, out):
    r"""``out = u + dt*(δ(u)(f_j + ν κ) + μ(Δu − κ))`` for ``u = phi[j]`` in one pass: the
    curvature :math:`\kappa` from the unit normals (MATLAB gradient), the mirror Laplacian
    and the data force of :func:`data_forces`, all from the level sets of the step start."""
    u = phi[j]
    D, H, W = u.shape
    for d in range(D):
        dm, dp = _lo(d), _hi(d, D)
        for i in range(H):
            im, ip = _lo(i), _hi(i, H)
            for w in range(W):
                wm, wp = _lo(w), _hi(w, W)
                k = (_grad1(nd[dm, i, w], nd[d, i, w], nd[dp, i, w], d, D)
                     + _grad1(nh[d, im, w], nh[d, i, w], nh[d, ip, w], i, H)
                     + _grad1(nw[d, i, wm], nw[d, i, w], nw[d, i, wp], w, W))
                a0 = u[d, i, w]
                lap = 0.0
                if D > 1:
                    lap += u[_mirror_lo(d), i, w] + u[_mirror_hi(d, D), i, w] - 2.0 * a0
                if H > 1:
                    lap += u[d, _mirror_lo(i), w] + u[d, _mirror_hi(i, H), w] - 2.0 * a0
                if W > 1:
                    lap += u[d, i, _mirror_lo(w)] + u[d, i, _mirror_hi(w, W)] - 2.0 * a0
                f = _force(phi, e, j, d, i, w, eps)
                out[d, i, w] = a0 + dt * (dirac_scalar(a0, eps) * (f + nu * k)
                                          + mu * (lap - k))


@njit(cache=True)
def evolve(phi, e, nu, mu, dt, eps, n_steps):
    r"""``n_steps`` explicit steps of the level-set flow of Li 2011, in place on ``phi``.

    For each level set :math:`\phi_j`:

    .. math::

        \phi_j \leftarrow \phi_j + \Delta t\big[\delta_\varepsilon(\phi_j)\,(f_j + \nu\kappa_j)
        + \mu(\Delta\phi_j - \kappa_j)\big], \quad
        \kappa_j = \operatorname{div}\frac{\nabla\phi_j}{|\nabla\phi_j|}

    after ``NeumannBoundCond``. The forces :math:`f_j` (:func:`data_forces`) of all level sets
    are evaluated from the level sets at the start of the step (Jacobi, as Li's three-phase
    code). ``e`` is fixed (the centres and the bias do not change during the inner loop). The
    boundary condition is applied once more at the end, so the returned level sets satisfy it.
    Two passes per level set and step (unit normals, then one fused update into a second
    buffer); no allocation inside the loop.

    Parameters
    ----------
    phi : (m, D, H, W) float64, modified in place
    e : (K, D, H, W) float64
    nu, mu, dt, eps : float
    n_steps : int
    """
    m = phi.shape[0]
    shp = phi.shape[1:]
    nd = np.empty(shp)
    nh = np.empty(shp)
    nw = np.empty(shp)
    cur = phi
    nxt = np.empty_like(phi)
    for _ in range(n_steps):
        for j in range(m):
            neumann_bc(cur[j])
        for j in range(m):
            _unit_normal(cur[j], nd, nh, nw)
            _fused_step(cur, e, j, nd, nh, nw, nu, mu, dt, eps, nxt[j])
        cur, nxt = nxt, cur
    if n_steps % 2 == 1:
        phi[:] = cur
    for j in range(m):
        neumann_bc(phi[j])

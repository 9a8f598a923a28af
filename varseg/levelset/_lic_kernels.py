r"""Numba kernels of Li 2011's level set (:func:`varseg.levelset.bias_field_levelset`).

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

from .heaviside import dirac_scalar, heaviside_vec

__all__ = [
    "neumann_bc",
    "curvature",
    "data_forces",
    "evolve",
    "evolve_threads",
    "EvolveWork",
    "smooth_2d",
    "smooth_stack",
    "memberships_labels",
    "bias_sources",
    "residuals",
    "heaviside_row",
]

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
    hrow = np.empty((2, phi.shape[3]))
    for d in range(phi.shape[1]):
        _forces_slice(phi, e, d, eps, out, hrow)


@njit(cache=True)
def _step_nd(u, force, nd, nh, nw, nu, mu, dt, eps, out):
    r"""``out = u + dt*(δ(u)(force + ν κ) + μ(Δu − κ))`` in one pass over (D, H, W), with the
    curvature :math:`\kappa` from the unit normals ``nd, nh, nw`` (MATLAB gradient) and the
    mirror Laplacian."""
    D, H, W = u.shape
    for d in range(D):
        dm, dp = _lo(d), _hi(d, D)
        for i in range(H):
            im, ip = _lo(i), _hi(i, H)
            for w in range(W):
                wm, wp = _lo(w), _hi(w, W)
                k = (
                    _grad1(nd[dm, i, w], nd[d, i, w], nd[dp, i, w], d, D)
                    + _grad1(nh[d, im, w], nh[d, i, w], nh[d, ip, w], i, H)
                    + _grad1(nw[d, i, wm], nw[d, i, w], nw[d, i, wp], w, W)
                )
                a0 = u[d, i, w]
                lap = 0.0
                if D > 1:
                    lap += u[_mirror_lo(d), i, w] + u[_mirror_hi(d, D), i, w] - 2.0 * a0
                if H > 1:
                    lap += u[d, _mirror_lo(i), w] + u[d, _mirror_hi(i, H), w] - 2.0 * a0
                if W > 1:
                    lap += u[d, i, _mirror_lo(w)] + u[d, i, _mirror_hi(w, W)] - 2.0 * a0
                out[d, i, w] = a0 + dt * (
                    dirac_scalar(a0, eps) * (force[d, i, w] + nu * k) + mu * (lap - k)
                )


# 2D fast path: the same formulas on (H, W) with the border cases hoisted out of the inner
# loop (clamped neighbour indices and a one-sided factor 1 instead of 1/2 at the ends), so
# that the interior loop is branch-free; NumPy's error model (no zero-division branch: every
# denominator is positive) lets it vectorise.
@njit(cache=True, inline="always", error_model="numpy")
def _normal_px(u, nh, nw, i, im, ip, fi, w, wm, wp, fw):
    gh = fi * (u[ip, w] - u[im, w])
    gw = fw * (u[i, wp] - u[i, wm])
    inv = 1.0 / np.sqrt(gh * gh + gw * gw + _TINY)
    nh[i, w] = gh * inv
    nw[i, w] = gw * inv


@njit(cache=True, error_model="numpy")
def _normals_2d(u, nh, nw):
    """Unit normals (MATLAB gradient, :func:`_unit_normal`) of a 2D level set."""
    H, W = u.shape
    for i in range(H):
        im, ip = max(i - 1, 0), min(i + 1, H - 1)
        fi = 0.5 if 0 < i < H - 1 else 1.0
        _normal_px(u, nh, nw, i, im, ip, fi, 0, 0, 1, 1.0)
        for w in range(1, W - 1):
            _normal_px(u, nh, nw, i, im, ip, fi, w, w - 1, w + 1, 0.5)
        _normal_px(u, nh, nw, i, im, ip, fi, W - 1, W - 2, W - 1, 1.0)


@njit(cache=True, inline="always", error_model="numpy")
def _update_px(u, f, nh, nw, nu, mu, dt, eps, out, i, im, ip, fi, li, hi, w, wm, wp, fw, lw, hw):
    k = fi * (nh[ip, w] - nh[im, w]) + fw * (nw[i, wp] - nw[i, wm])
    a0 = u[i, w]
    lap = u[li, w] + u[hi, w] + u[i, lw] + u[i, hw] - 4.0 * a0
    delta = (eps / np.pi) / (eps * eps + a0 * a0)
    out[i, w] = a0 + dt * (delta * (f[i, w] + nu * k) + mu * (lap - k))


@njit(cache=True, error_model="numpy")
def _step_2d(u, f, nh, nw, nu, mu, dt, eps, out):
    """:func:`_step_nd` for a 2D level set (H, W >= 3)."""
    H, W = u.shape
    for i in range(H):
        im, ip = max(i - 1, 0), min(i + 1, H - 1)
        fi = 0.5 if 0 < i < H - 1 else 1.0
        li = i - 1 if i > 0 else 1  # mirror neighbours of the Laplacian
        hi = i + 1 if i < H - 1 else H - 2
        _update_px(u, f, nh, nw, nu, mu, dt, eps, out, i, im, ip, fi, li, hi, 0, 0, 1, 1.0, 1, 1)
        for w in range(1, W - 1):
            _update_px(
                u,
                f,
                nh,
                nw,
                nu,
                mu,
                dt,
                eps,
                out,
                i,
                im,
                ip,
                fi,
                li,
                hi,
                w,
                w - 1,
                w + 1,
                0.5,
                w - 1,
                w + 1,
            )
        _update_px(
            u,
            f,
            nh,
            nw,
            nu,
            mu,
            dt,
            eps,
            out,
            i,
            im,
            ip,
            fi,
            li,
            hi,
            W - 1,
            W - 2,
            W - 1,
            1.0,
            W - 2,
            W - 2,
        )


@njit(cache=True, error_model="numpy")
def heaviside_row(u, eps, out):
    r""":math:`H_\varepsilon(u) = \frac12(1 + \frac2\pi \arctan(u/\varepsilon))` of a row
    into ``out`` (:data:`varseg.levelset.heaviside.heaviside_vec`, the one formula with a
    branch-free arc tangent: the loop vectorises; NumPy's error model: no zero-division
    branch)."""
    for j in range(u.shape[0]):
        out[j] = heaviside_vec(u[j], eps)


@njit(cache=True)
def _forces_3_row(e0, e1, e2, h1, h2, out0, out1):
    """K = 3 forces of one row (one loop per output, few arrays each: they vectorise)."""
    for w in range(out0.shape[0]):
        out0[w] = -(e0[w] * h2[w] + e1[w] * (1.0 - h2[w]) - e2[w])
    for w in range(out1.shape[0]):
        out1[w] = -h1[w] * (e0[w] - e1[w])


@njit(cache=True)
def _forces_4_row(e0, e1, e2, e3, h1, h2, out0, out1):
    """K = 4 forces of one row (as :func:`_forces_3_row`)."""
    for w in range(out0.shape[0]):
        out0[w] = -(h2[w] * (e0[w] - e2[w]) + (1.0 - h2[w]) * (e1[w] - e3[w]))
    for w in range(out1.shape[0]):
        out1[w] = -(h1[w] * (e0[w] - e1[w]) + (1.0 - h1[w]) * (e2[w] - e3[w]))


@njit(cache=True)
def _forces_slice(phi, e, d, eps, out, hrow):
    """:func:`data_forces` of slice ``d`` of (m, D, H, W) / (K, D, H, W) arrays, row by row
    (:func:`_forces_rows` over all rows)."""
    _forces_rows(phi, e, d, eps, out, hrow, 0, phi.shape[2])


@njit(cache=True, nogil=True)
def _forces_rows(phi, e, d, eps, out, hrow, i0, i1):
    """:func:`data_forces` of rows ``i0 .. i1 - 1`` of slice ``d``: the Heavisides of both
    level sets once per pixel (:func:`heaviside_row` into ``hrow``, (2, W) scratch), then the
    forces. Rows are indexed from the whole C-contiguous arrays (a slice ``phi[:, d]`` would
    be typed non-contiguous, and its loops stay scalar)."""
    K = e.shape[0]
    W = phi.shape[3]
    if K == 2:
        for i in range(i0, i1):
            e0, e1, o = e[0, d, i], e[1, d, i], out[0, d, i]
            for w in range(W):
                o[w] = e1[w] - e0[w]
        return
    h1 = hrow[0]
    h2 = hrow[1]
    for i in range(i0, i1):
        heaviside_row(phi[0, d, i], eps, h1)
        heaviside_row(phi[1, d, i], eps, h2)
        o0, o1 = out[0, d, i], out[1, d, i]
        if K == 3:
            _forces_3_row(e[0, d, i], e[1, d, i], e[2, d, i], h1, h2, o0, o1)
        else:
            _forces_4_row(e[0, d, i], e[1, d, i], e[2, d, i], e[3, d, i], h1, h2, o0, o1)


@njit(cache=True, nogil=True)
def _level_set_step(cur, force, nd, nh, nw, nu, mu, dt, eps, nxt, j):
    """Unit normals and the explicit update of level set ``j`` (one step of :func:`evolve`
    after the forces), ``nd, nh, nw``: the normal's scratch (D, H, W) of the calling thread."""
    D, H, W = cur.shape[1:]
    if D == 1 and H >= 3 and W >= 3:
        _normals_2d(cur[j, 0], nh[0], nw[0])
        _step_2d(cur[j, 0], force[j, 0], nh[0], nw[0], nu, mu, dt, eps, nxt[j, 0])
    else:
        _unit_normal(cur[j], nd, nh, nw)
        _step_nd(cur[j], force[j], nd, nh, nw, nu, mu, dt, eps, nxt[j])


@njit(cache=True, nogil=True)
def _boundary_all(cur):
    """Li's ``NeumannBoundCond`` (:func:`neumann_bc`) on every level set of ``cur``."""
    for j in range(cur.shape[0]):
        neumann_bc(cur[j])


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
    Per step: one pass for the forces of all level sets, then two per level set (unit
    normals, then the update into a second buffer); a branch-free 2D path when D = 1 and
    H, W >= 3; no allocation inside the loop.

    Parameters
    ----------
    phi : (m, D, H, W) float64, modified in place
    e : (K, D, H, W) float64
    nu, mu, dt, eps : float
    n_steps : int
    """
    m, D, H, W = phi.shape
    nd, nh, nw, hrow = _thread_scratch(D, H, W)
    _evolve_into(
        phi, e, nu, mu, dt, eps, n_steps, nd, nh, nw, hrow, np.empty_like(phi), np.empty_like(phi)
    )


@njit(cache=True)
def _thread_scratch(D, H, W):
    """The unit normal's three (D, H, W) components (the D one zero: untouched in 2D) and a
    (2, W) row of Heavisides: the work arrays of one thread of :func:`evolve`."""
    return np.zeros((D, H, W)), np.empty((D, H, W)), np.empty((D, H, W)), np.empty((2, W))


@njit(cache=True, nogil=True)
def _evolve_into(phi, e, nu, mu, dt, eps, n_steps, nd, nh, nw, hrow, force, nxt):
    """:func:`evolve` with its work arrays given (``force`` and ``nxt``: like ``phi``)."""
    m, D = phi.shape[0], phi.shape[1]
    cur = phi
    for _ in range(n_steps):
        _boundary_all(cur)
        for d in range(D):
            _forces_slice(cur, e, d, eps, force, hrow)
        for j in range(m):
            _level_set_step(cur, force, nd, nh, nw, nu, mu, dt, eps, nxt, j)
        cur, nxt = nxt, cur
    if n_steps % 2 == 1:
        phi[:] = cur
    _boundary_all(phi)


class EvolveWork:
    """The work arrays of :func:`evolve_threads` for level sets of shape ``(m, D, H, W)`` on
    ``threads`` threads, made once per solve: a solve that allocated them at every outer
    iteration paid the page faults of fresh memory (about 0.8 ms per MiB here) each time."""

    def __init__(self, shape, threads):
        m, D, H, W = shape
        self.shape = tuple(shape)
        self.threads = max(1, min(int(threads), m))
        self.scratch = [_thread_scratch(D, H, W) for _ in range(self.threads)]
        self.force = np.empty(shape)
        self.nxt = np.empty(shape)


def evolve_threads(phi, e, nu, mu, dt, eps, n_steps, threads, work=None):
    """:func:`evolve` on up to ``threads`` threads: per step, the boundary condition, the forces
    in chunks of rows, then each level set's normals and update on its own thread
    (:func:`varseg._threads.team`). The same arithmetic as :func:`evolve`, so the same result
    whatever ``threads``; with one thread or one level set, :func:`evolve`'s loop.
    ``work``: an :class:`EvolveWork` of ``phi``'s shape (made here when not given)."""
    m, D, H, W = phi.shape
    if work is None or work.shape != phi.shape or work.threads != max(1, min(int(threads), m)):
        work = EvolveWork(phi.shape, threads)
    force, nxt = work.force, work.nxt
    if work.threads <= 1:
        _evolve_into(phi, e, nu, mu, dt, eps, n_steps, *work.scratch[0], force, nxt)
        return
    from functools import partial

    from .._threads import chunks, team

    threads = work.threads
    crew = team(threads - 1)
    rows = [(d, a, b) for d in range(D) for a, b in chunks(H, threads, 2)]
    scratch = work.scratch
    cur = phi
    for _ in range(n_steps):
        _boundary_all(cur)
        crew.drain(
            [(q, q + 1) for q in range(len(rows))],
            [partial(_forces_chunk, rows, cur, e, eps, force, s[3]) for s in scratch],
        )
        for j0 in range(0, m, threads):
            crew.run(
                [
                    partial(_level_set_step, cur, force, *s[:3], nu, mu, dt, eps, nxt, j)
                    for j, s in zip(range(j0, min(m, j0 + threads)), scratch, strict=False)
                ]
            )
        cur, nxt = nxt, cur
    if n_steps % 2 == 1:
        phi[:] = cur
    _boundary_all(phi)


def _forces_chunk(rows, cur, e, eps, force, hrow, q0, q1):
    """:func:`_forces_rows` of the row ranges ``rows[q0:q1]`` (``(d, i0, i1)`` each)."""
    for d, a, b in rows[q0:q1]:
        _forces_rows(cur, e, d, eps, force, hrow, a, b)


@njit(cache=True, error_model="numpy")
def _axpy_row(dst, src, a):
    """``dst += a * src`` (equal-length rows; the loop vectorises)."""
    for w in range(dst.shape[0]):
        dst[w] += a * src[w]


@njit(cache=True, error_model="numpy", nogil=True)
def smooth_stack(u, k, tmp, out):
    r"""Separable zero-padded correlation :math:`K * u_c` of each 2D channel of ``u`` (C, H,
    W) with the symmetric 1D factor ``k`` (odd length) along both axes, into ``out``
    (``tmp``: scratch of u's shape).

    Equal to ``scipy.ndimage.correlate1d(·, k, mode="constant")`` along axis 2, then axis 1,
    up to rounding. Both passes are axpy operations on contiguous rows (along W: a row
    against the same row shifted by each tap, as slices so that no index goes negative;
    along H: a row against the rows of the window) that the compiler vectorises; several
    channels per call (the two moments, or the bias's numerator and denominator) share one
    call.
    """
    C, H, W = u.shape
    r = k.size // 2
    for c in range(C):
        for i in range(H):  # along W: tmp[c, i, w] = sum_t k[t] u[c, i, w + t - r]
            tr = tmp[c, i]
            ur = u[c, i]
            for w in range(W):
                tr[w] = 0.0
            for t in range(k.size):
                off = t - r
                lo = max(0, -off)
                hi = min(W, W - off)
                if hi > lo:
                    _axpy_row(tr[lo:hi], ur[lo + off : hi + off], k[t])
        for i in range(H):  # along H: out[c, i] = sum_t k[t] tmp[c, i + t - r]
            orow = out[c, i]
            for w in range(W):
                orow[w] = 0.0
            for t in range(k.size):
                s = i + t - r
                if 0 <= s < H:
                    _axpy_row(orow, tmp[c, s], k[t])


@njit(cache=True)
def smooth_2d(u, k, tmp, out):
    """:func:`smooth_stack` of one 2D array (C-contiguous ``u``, ``tmp``, ``out``)."""
    H, W = u.shape
    smooth_stack(u.reshape((1, H, W)), k, tmp.reshape((1, H, W)), out.reshape((1, H, W)))


@njit(cache=True, error_model="numpy")
def memberships_labels(phi, eps, memb, labels):
    r"""Li's soft memberships :math:`M_i(\phi)` and their argmax in one kernel, flattened.

    K = 2: :math:`(H_1, 1 - H_1)`; K = 3: :math:`(H_1 H_2, H_1(1 - H_2), 1 - H_1)`; K = 4:
    :math:`(H_1 H_2, H_1(1 - H_2), (1 - H_1)H_2, (1 - H_1)(1 - H_2))` with :math:`H_j =
    H_\varepsilon(\phi_j)` (:func:`heaviside_row`, written into rows of ``memb`` first),
    and ``labels`` the first index of the largest membership (as ``numpy.argmax``), all in
    loops that vectorise.

    Shapes: phi (m, n), memb (K, n) and labels (n,) int64 written.
    """
    K = memb.shape[0]
    m0, m1 = memb[0], memb[1]
    if K == 2:
        heaviside_row(phi[0], eps, m0)
        for j in range(m0.shape[0]):
            m1[j] = 1.0 - m0[j]
        for j in range(m0.shape[0]):
            labels[j] = 0 if m0[j] >= m1[j] else 1
        return
    m2 = memb[2]
    if K == 3:
        heaviside_row(phi[0], eps, m2)
        heaviside_row(phi[1], eps, m1)
        for j in range(m0.shape[0]):
            h1 = m2[j]
            h2 = m1[j]
            m0[j] = h1 * h2
            m1[j] = h1 * (1.0 - h2)
            m2[j] = 1.0 - h1
        _argmax3(m0, m1, m2, labels)
        return
    m3 = memb[3]
    heaviside_row(phi[0], eps, m2)
    heaviside_row(phi[1], eps, m3)
    for j in range(m0.shape[0]):
        h1 = m2[j]
        h2 = m3[j]
        m0[j] = h1 * h2
        m1[j] = h1 * (1.0 - h2)
        m2[j] = (1.0 - h1) * h2
        m3[j] = (1.0 - h1) * (1.0 - h2)
    _argmax3(m0, m1, m2, labels)
    for j in range(m0.shape[0]):
        best = max(max(m0[j], m1[j]), m2[j])
        labels[j] = 3 if m3[j] > best else labels[j]


@njit(cache=True, error_model="numpy")
def _argmax3(m0, m1, m2, labels):
    """First index of the largest of three rows, per element (selects: it vectorises)."""
    for j in range(m0.shape[0]):
        a, b, c = m0[j], m1[j], m2[j]
        lab = 1 if b > a else 0
        labels[j] = 2 if c > max(a, b) else lab


@njit(cache=True)
def bias_sources(x, c, memb, w, num, den):
    r"""Sources of the bias update (Li Eq. 22/35) in one pass over the pixels (flattened):
    ``num = w * sum_ch x_ch sum_i c_(i,ch) M_i`` and ``den = w * sum_i |c_i|^2 M_i``.

    Shapes: x (C, n), c (K, C), memb (K, n), w (n,); num, den (n,) written. A gray image
    takes :func:`_bias_sources_gray` (the same operations in the same order).
    """
    C, n = x.shape
    K = c.shape[0]
    cc = np.zeros(K)
    for i in range(K):
        for ch in range(C):
            cc[i] += c[i, ch] * c[i, ch]
    if C == 1:
        _bias_sources_gray(x[0], c, cc, memb, w, num, den)
        return
    for p in range(n):
        s1 = 0.0
        s2 = 0.0
        for i in range(K):
            mi = memb[i, p]
            cx = 0.0
            for ch in range(C):
                cx += c[i, ch] * x[ch, p]
            s1 += mi * cx
            s2 += mi * cc[i]
        num[p] = w[p] * s1
        den[p] = w[p] * s2


@njit(cache=True, error_model="numpy")
def _bias_sources_gray(x, c, cc, memb, w, num, den):
    """:func:`bias_sources` of one channel, phase by phase: ``num`` and ``den`` accumulate
    the sums of the pixel loop in its order (bit for bit), in loops that vectorise."""
    n = x.shape[0]
    for p in range(n):
        num[p] = 0.0
        den[p] = 0.0
    for i in range(c.shape[0]):
        ci = c[i, 0]
        cci = cc[i]
        mi = memb[i]
        for p in range(n):
            m = mi[p]
            num[p] += m * (0.0 + ci * x[p])
            den[p] += m * cci
    for p in range(n):
        num[p] = w[p] * num[p]
        den[p] = w[p] * den[p]


@njit(cache=True)
def residuals(x, c, sx2, k1w, kb, kb2, w, out):
    r"""Local clustering residuals of all phases in one pass (Li Eq. 17), flattened:
    ``out[i] = w * (sx2 * k1w - 2 (c_i . x) kb + |c_i|^2 kb2)``.

    Shapes: x (C, n), c (K, C), sx2, k1w, kb, kb2, w (n,); out (K, n) written. A gray image
    takes :func:`_residuals_gray` (the same operations, bit for bit).
    """
    C, n = x.shape
    K = c.shape[0]
    cc = np.zeros(K)
    for i in range(K):
        for ch in range(C):
            cc[i] += c[i, ch] * c[i, ch]
    if C == 1:
        _residuals_gray(x[0], c, cc, sx2, k1w, kb, kb2, w, out)
        return
    for p in range(n):
        base = sx2[p] * k1w[p]
        for i in range(K):
            cx = 0.0
            for ch in range(C):
                cx += c[i, ch] * x[ch, p]
            out[i, p] = w[p] * (base - 2.0 * cx * kb[p] + cc[i] * kb2[p])


@njit(cache=True, error_model="numpy")
def _residuals_gray(x, c, cc, sx2, k1w, kb, kb2, w, out):
    """:func:`residuals` of one channel, one phase per loop (loops that vectorise)."""
    for i in range(c.shape[0]):
        ci = c[i, 0]
        cci = cc[i]
        o = out[i]
        for p in range(x.shape[0]):
            cx = 0.0 + ci * x[p]
            o[p] = w[p] * (sx2[p] * k1w[p] - 2.0 * cx * kb[p] + cci * kb2[p])

r"""Numba kernels of the multiphase Chan–Vese solver (:func:`varseg.levelset.chan_vese`).

Arrays are 3D-shaped: a 2D image is handled as ``D = 1`` (no neighbours along z).

* ``x``: normalised image ``(C, D, H, W)``, float64 (the means, the data forces and the energy
  are computed from it in float64 whatever the working precision);
* ``phi``/``out``: level sets ``(m, D, H, W)``, float32 or float64 (the working precision of
  the curvature scheme);
* ``lab``: hard labels ``(D, H, W)`` uint8 in the convention of
  :func:`varseg.levelset.heaviside.phase_labels` (bit j set where :math:`\phi_j < 0`);
* the *evolution code* of a pixel has bit j set where **not** :math:`\phi_j > 0` (scikit-image
  computes its means with ``phi > 0``). The two differ only where some :math:`\phi_j` is
  exactly 0; the kernels accumulate that difference as a correction, so both sets of means
  are exact.

The work is split into a fixed number of blocks of rows (``D * H`` rows, at most 64 blocks,
independent of the number of threads); :class:`Stepper` runs groups of blocks in Python
threads (the kernels release the GIL); each block writes partial sums that are reduced in
block order, so results do not depend on the number of threads. A gray 2D image with unit
spacing (m = 1, 2, 3) takes fused rows (:func:`_fused_block`): the data forces and the energy
terms of the old partition in a few loops per row (m = 1: one loop, phases from the signs of
the level set, length as integer counts of its 1 and sqrt(2) terms; m = 2, 3: the data term
from the mean of each pixel's own phase, the length from the uint8 labels of the old
partition, :func:`_length2d`, and the forces in the working precision from a float32 copy
of the image, 8-wide in the FAST family; no residual rows), then the updates and the post
pass; the general path (colour, 3D, anisotropic spacing, or a recorded energy whose
means differ from the forces' because of an exact zero) keeps separate passes. Inside a row
every step is a simple loop over the row that LLVM vectorises (``error_model="numpy"``: no
division-by-zero check in the loops). In float64 the update is IEEE arithmetic in
scikit-image's order of operations (bit for bit its update, tested); in float32 it uses fast-math
(approximate reciprocal square roots refined by a Newton step, one division per pixel,
:func:`_implicit_1div`: within a few float32 ulps, tested); the row reductions allow
re-association.

The functions below are plain Python: one source, compiled twice by :func:`kernel_family`
(:func:`varseg._jit.jit_family`) into :data:`IEEE` and :data:`FAST`, each variant under its own
qualified name and hence its own entry in Numba's cache (which does not key on ``fastmath``).
Nothing is compiled at import; :func:`varseg._jit.ensure_compiled` compiles before a solver's
clock starts.
"""

from __future__ import annotations

import math
import types
from functools import partial

import numpy as np

from .._jit import jit_family
from .._threads import bound, chunks, team
from .heaviside import dirac_pi_expr

dirac_pi = dirac_pi_expr  # rebound to its compiled clone inside each kernel family

__all__ = [
    "classify_parts",
    "Stepper",
    "means_from_sums",
    "n_blocks",
    "partition_change",
    "classify_blocks",
    "reduce_classified",
    "final_energy_rows",
    "sum_in_order",
    "kernel_family",
    "IEEE",
    "FAST",
]

_FM = {"reassoc", "nsz"}  # lets LLVM vectorise the row reductions (sums only)
_FAST = {"afn", "arcp", "contract"}  # float32 update only (the FAST family's _update_row)


def n_blocks(rows):
    """Number of row blocks used by the kernels (at most 64, a function of ``rows`` only)."""
    return min(rows, 64)


# ------------------------------------------------------------------------------------------
# row passes (each a simple loop over one row, vectorised by LLVM)
# ------------------------------------------------------------------------------------------
def _masked_sum(v, lab, s):
    acc = 0.0
    for j in range(v.shape[0]):
        w = v[j]  # unconditional load: lets LLVM use a blend instead of a branch
        acc += w if lab[j] == s else 0.0
    return acc


def _masked_count_sum(v, lab, s):
    n = 0
    acc = 0.0
    for j in range(v.shape[0]):
        w = v[j]
        hit = lab[j] == s
        n += 1 if hit else 0
        acc += w if hit else 0.0
    return n, acc


def _sq_diff(a, b):
    acc = 0.0
    for j in range(a.shape[0]):
        d = a[j] - b[j]
        acc += d * d
    return acc


def _post1(o, r, xr, lo):
    """m = 1, after the update of a row: labels ``lo`` of the new row ``o``, sum of squared
    changes from ``r``, count and sum of ``xr`` over phase 1, number of exact zeros."""
    sq = 0.0
    n1 = 0
    s1 = 0.0
    nz = 0
    for j in range(o.shape[0]):
        v = o[j]
        w = xr[j]
        d = v - r[j]
        sq += d * d
        neg = v < 0
        lo[j] = 1 if neg else 0
        n1 += 1 if neg else 0
        s1 += w if neg else 0.0
        nz += 1 if v == 0 else 0
    return sq, n1, s1, nz


def _labels_row(phi, z, i, lo, m):
    """Labels of row (z, i) into ``lo``; returns whether some phi_j is exactly 0 there."""
    W = lo.shape[0]
    for j in range(W):
        lo[j] = 0
    nzero = 0
    for l in range(m):
        r = phi[l, z, i]
        b = np.uint8(1 << l)
        for j in range(W):
            lo[j] |= b if r[j] < 0 else np.uint8(0)
        for j in range(W):
            nzero += 1 if r[j] == 0 else 0
    return nzero > 0


def _sums_row(x, phi, z, i, lo, has_zero, blk, first, pc, ps, pcc, pcs):
    """Add the counts and sums of row (z, i) (labels ``lo``) of phases ``first .. K-1`` to
    block ``blk`` (phase 0 is obtained from the totals); where the ``phi > 0`` code differs
    from the label, add the correction. Returns the number of such pixels."""
    C = x.shape[0]
    m = phi.shape[0]
    K = pc.shape[1]
    for s in range(first, K):
        n, acc = _masked_count_sum(x[0, z, i], lo, s)
        pc[blk, s] += n
        ps[blk, s, 0] += acc
        for c in range(1, C):
            ps[blk, s, c] += _masked_sum(x[c, z, i], lo, s)
    ndiff = 0
    if not has_zero:
        return ndiff
    W = lo.shape[0]
    for j0 in range(0, W, 16):  # rare: pixels where the phi > 0 code differs from the label
        j1 = min(j0 + 16, W)
        nzero = 0  # level-set entries 0 (or NaN) in j0 .. j1 - 1: elsewhere code == label
        for l in range(m):
            r = phi[l, z, i]
            for j in range(j0, j1):
                v = r[j]
                nzero += 0 if (v < 0 or v > 0) else 1
        if nzero == 0:
            continue
        for j in range(j0, j1):
            code = 0
            for l in range(m):
                if not phi[l, z, i, j] > 0:
                    code |= 1 << l
            lb = lo[j]
            if code != lb:
                ndiff += 1
                pcc[blk, code] += 1.0
                pcc[blk, lb] -= 1.0
                for c in range(C):
                    v = x[c, z, i, j]
                    pcs[blk, code, c] += v
                    pcs[blk, lb, c] -= v
    return ndiff


def _post2(o0, o1, r0, r1, lo):
    """m = 2, after the update of a row: labels ``lo`` of the new rows ``o0``, ``o1``, sums
    of squared changes from ``r0``, ``r1`` and the number of pixels where some level set is
    exactly 0 (one pass: :func:`_sq_diff` and :func:`_labels_row` fused)."""
    sq0 = 0.0
    sq1 = 0.0
    nz = 0
    for j in range(o0.shape[0]):
        a = o0[j]
        b = o1[j]
        d0 = a - r0[j]
        d1 = b - r1[j]
        sq0 += d0 * d0
        sq1 += d1 * d1
        lo[j] = (np.uint8(1) if a < 0 else np.uint8(0)) | (np.uint8(2) if b < 0 else np.uint8(0))
        nz += 1 if a == 0 else (1 if b == 0 else 0)
    return sq0, sq1, nz


def _post3(o0, o1, o2, r0, r1, r2, lo):
    """m = 3: :func:`_post2` for three level sets."""
    sq0 = 0.0
    sq1 = 0.0
    sq2 = 0.0
    nz = 0
    for j in range(o0.shape[0]):
        a = o0[j]
        b = o1[j]
        c = o2[j]
        d0 = a - r0[j]
        d1 = b - r1[j]
        d2 = c - r2[j]
        sq0 += d0 * d0
        sq1 += d1 * d1
        sq2 += d2 * d2
        lo[j] = (
            (np.uint8(1) if a < 0 else np.uint8(0))
            | (np.uint8(2) if b < 0 else np.uint8(0))
            | (np.uint8(4) if c < 0 else np.uint8(0))
        )
        nz += 1 if a == 0 else (1 if b == 0 else (1 if c == 0 else 0))
    return sq0, sq1, sq2, nz


def _post_multi(out, phi, z, i, lo, pd, blk):
    """m > 1, after the update of row (z, i): labels ``lo``, the squared changes added to
    ``pd[blk]``; returns whether some level set is exactly 0 in the row."""
    m = out.shape[0]
    if m == 2:
        sq0, sq1, nz = _post2(out[0, z, i], out[1, z, i], phi[0, z, i], phi[1, z, i], lo)
        pd[blk, 0] += sq0
        pd[blk, 1] += sq1
        return nz > 0
    if m == 3:
        sq0, sq1, sq2, nz = _post3(
            out[0, z, i], out[1, z, i], out[2, z, i], phi[0, z, i], phi[1, z, i], phi[2, z, i], lo
        )
        pd[blk, 0] += sq0
        pd[blk, 1] += sq1
        pd[blk, 2] += sq2
        return nz > 0
    for l in range(m):
        pd[blk, l] += _sq_diff(out[l, z, i], phi[l, z, i])
    return _labels_row(out, z, i, lo, m)


def _reduce_blocks(pc, ps, pcc, pcs, xtot):
    """Sum the block partials; phase 0 = totals minus the other phases."""
    nb, K, C = ps.shape
    cnt = np.zeros(K)
    sums = np.zeros((K, C))
    ccnt = np.zeros(K)
    csums = np.zeros((K, C))
    for q in range(nb):
        for s in range(K):
            cnt[s] += pc[q, s]
            ccnt[s] += pcc[q, s]
            for c in range(C):
                sums[s, c] += ps[q, s, c]
                csums[s, c] += pcs[q, s, c]
    cnt[0] = xtot[C]
    for c in range(C):
        sums[0, c] = xtot[c]
    for s in range(1, K):
        cnt[0] -= cnt[s]
        for c in range(C):
            sums[0, c] -= sums[s, c]
    return cnt, sums, ccnt, csums


def classify_parts(C, m, rows):
    """Zeroed block partials of :func:`classify_blocks` for ``C`` channels, ``m`` level sets
    and ``rows`` rows: counts, sums, their corrections and the zero counts of each block."""
    K = 1 << m
    nb = n_blocks(rows)
    return (
        np.zeros((nb, K)),
        np.zeros((nb, K, C)),
        np.zeros((nb, K)),
        np.zeros((nb, K, C)),
        np.zeros(nb, dtype=np.int64),
    )


def reduce_classified(pc, ps, pcc, pcs, pnd, xtot):
    """The return value of :func:`~varseg.levelset._cv_setup_kernels.classify_threads` from
    the block partials of :func:`classify_blocks` (reduced in block order)."""
    cnt, sums, ccnt, csums = _reduce_blocks(pc, ps, pcc, pcs, xtot)
    return cnt, sums, ccnt, csums, pnd.sum()


def classify_blocks(b0, b1, x, phi, lab, pc, ps, pcc, pcs, pnd):
    """Row blocks ``b0 .. b1 - 1`` of the classification of ``phi``
    (:func:`~varseg.levelset._cv_setup_kernels.classify_threads`): the labels of their rows
    into ``lab`` and their partial counts and sums into ``pc[blk]``, ``ps[blk]``,
    ``pcc[blk]``, ``pcs[blk]``, ``pnd[blk]`` (blocks of :func:`n_blocks`; reduced in block
    order by :func:`_reduce_blocks`, so the split over threads does not change the result)."""
    C, D, H, W = x.shape
    m = phi.shape[0]
    K = 1 << m
    rows = D * H
    nb = pc.shape[0]
    pd = np.zeros((nb, m))  # squared changes of the post passes (0 here: unused)
    for blk in range(b0, b1):
        for q in range(blk * rows // nb, (blk + 1) * rows // nb):
            z = q // H
            i = q - z * H
            lo = lab[z, i]
            if m == 1:  # the post passes of the step, with the row as its own old row
                r = phi[0, z, i]
                sq, n1, s1, nz = _post1(r, r, x[0, z, i], lo)
                pc[blk, 1] += n1
                ps[blk, 1, 0] += s1
                for c in range(1, C):
                    ps[blk, 1, c] += _masked_sum(x[c, z, i], lo, np.int64(1))
                if nz > 0:
                    pnd[blk] += _sums_row(
                        x, phi, z, i, lo, np.bool_(True), blk, K, pc, ps, pcc, pcs
                    )
                continue
            hz = _post_multi(phi, phi, z, i, lo, pd, blk)
            pnd[blk] += _sums_row(x, phi, z, i, lo, hz, blk, np.int64(1), pc, ps, pcc, pcs)


def means_from_sums(cnt, sums, ccnt, csums):
    """Means of the label partition and of the evolution partition (``phi > 0``); a phase
    with no pixel gets mean 0 (as in scikit-image and :mod:`varseg.energy`)."""
    K, C = sums.shape
    m_lab = np.zeros((K, C))
    m_evo = np.zeros((K, C))
    for s in range(K):
        n = cnt[s]
        if n > 0.5:
            for c in range(C):
                m_lab[s, c] = sums[s, c] / n
        n2 = cnt[s] + ccnt[s]
        if n2 > 0.5:
            for c in range(C):
                m_evo[s, c] = (sums[s, c] + csums[s, c]) / n2
    return m_lab, m_evo


# ------------------------------------------------------------------------------------------
# the semi-implicit update of one pixel
# ------------------------------------------------------------------------------------------
def _implicit(p, kk, sc, f, mu, dt, mudt, eps, one):
    r"""The semi-implicit step of one pixel from :math:`\kappa = \sum_i C_i \phi_i` (``kk``)
    and :math:`\sum_i C_i` (``sc``), in scikit-image's order of operations (two divisions):

    .. math:: \phi^{new} = \frac{\phi + \Delta t\,\delta\,(\mu\kappa + f)}
                               {1 + \mu\Delta t\,\delta \sum_i C_i},
              \qquad \delta = \frac{\varepsilon}{\varepsilon^2 + \phi^2}

    (Getreuer, IPOL 2012, Eq. 22). The :data:`FAST` family binds :func:`_implicit_1div`
    under this name."""
    dl = dirac_pi(p, eps)
    return (p + (dt * dl) * (mu * kk + f)) / (one + mudt * dl * sc)


def _implicit_1div(p, kk, sc, f, mu, dt, mudt, eps, one):
    r""":func:`_implicit` with one division (the :data:`FAST` family): numerator and
    denominator multiplied by :math:`q = \varepsilon^2 + \phi^2`,

    .. math:: \phi^{new} = \frac{\phi q + \Delta t\,\varepsilon\,(\mu\kappa + f)}
                               {q + \mu\Delta t\,\varepsilon \sum_i C_i}

    (the same value in exact arithmetic; float32 with fast-math: within a few ulps)."""
    q = eps * eps + p * p
    return (p * q + (dt * eps) * (mu * kk + f)) / (q + (mudt * eps) * sc)


def _upd2(p, pxp, pxm, pyp, pym, f, mu, dt, mudt, eps, eta, one, half):
    dxp = pxp - p
    dxm = p - pxm
    dx0 = (pxp - pxm) * half
    dyp = pyp - p
    dym = p - pym
    dy0 = (pyp - pym) * half
    c1 = one / math.sqrt(eta + dxp * dxp + dy0 * dy0)
    c2 = one / math.sqrt(eta + dxm * dxm + dy0 * dy0)
    c3 = one / math.sqrt(eta + dx0 * dx0 + dyp * dyp)
    c4 = one / math.sqrt(eta + dx0 * dx0 + dym * dym)
    kk = pxp * c1 + pxm * c2 + pyp * c3 + pym * c4
    sc = c1 + c2 + c3 + c4
    return _implicit(p, kk, sc, f, mu, dt, mudt, eps, one)


def _upd3(p, pxp, pxm, pyp, pym, pzp, pzm, f, mu, dt, mudt, eps, eta, one, half):
    dxp = pxp - p
    dxm = p - pxm
    dx0 = (pxp - pxm) * half
    dyp = pyp - p
    dym = p - pym
    dy0 = (pyp - pym) * half
    dzp = pzp - p
    dzm = p - pzm
    dz0 = (pzp - pzm) * half
    x2 = dx0 * dx0
    y2 = dy0 * dy0
    z2 = dz0 * dz0
    c1 = one / math.sqrt(eta + dxp * dxp + y2 + z2)
    c2 = one / math.sqrt(eta + dxm * dxm + y2 + z2)
    c3 = one / math.sqrt(eta + x2 + dyp * dyp + z2)
    c4 = one / math.sqrt(eta + x2 + dym * dym + z2)
    c5 = one / math.sqrt(eta + x2 + y2 + dzp * dzp)
    c6 = one / math.sqrt(eta + x2 + y2 + dzm * dzm)
    kk = pxp * c1 + pxm * c2 + pyp * c3 + pym * c4 + pzp * c5 + pzm * c6
    sc = c1 + c2 + c3 + c4 + c5 + c6
    return _implicit(p, kk, sc, f, mu, dt, mudt, eps, one)


def _upd3s(p, pxp, pxm, pyp, pym, pzp, pzm, f, mu, dt, mudt, eps, eta, one, half, sp):
    r""":func:`_upd3` on an anisotropic grid, ``sp = (1/dx, 1/dy, 1/dz, 1/dx^2, 1/dy^2,
    1/dz^2)``: differences divided by the spacing inside :math:`C_i`, and each axis' pair
    weighted by :math:`1/h_a^2` (the divergence of :math:`\nabla\phi/|\nabla\phi|`);
    2D: ``pzp = pzm = p`` and ``sp[5] = 0``."""
    dxp = (pxp - p) * sp[0]
    dxm = (p - pxm) * sp[0]
    dx0 = (pxp - pxm) * half * sp[0]
    dyp = (pyp - p) * sp[1]
    dym = (p - pym) * sp[1]
    dy0 = (pyp - pym) * half * sp[1]
    dzp = (pzp - p) * sp[2]
    dzm = (p - pzm) * sp[2]
    dz0 = (pzp - pzm) * half * sp[2]
    x2 = dx0 * dx0
    y2 = dy0 * dy0
    z2 = dz0 * dz0
    c1 = sp[3] / math.sqrt(eta + dxp * dxp + y2 + z2)
    c2 = sp[3] / math.sqrt(eta + dxm * dxm + y2 + z2)
    c3 = sp[4] / math.sqrt(eta + x2 + dyp * dyp + z2)
    c4 = sp[4] / math.sqrt(eta + x2 + dym * dym + z2)
    c5 = sp[5] / math.sqrt(eta + x2 + y2 + dzp * dzp)
    c6 = sp[5] / math.sqrt(eta + x2 + y2 + dzm * dzm)
    kk = pxp * c1 + pxm * c2 + pyp * c3 + pym * c4 + pzp * c5 + pzm * c6
    sc = c1 + c2 + c3 + c4 + c5 + c6
    return _implicit(p, kk, sc, f, mu, dt, mudt, eps, one)


def _update_row_spaced(r, rp, rm, rzp, rzm, has_z, f, o, mu, dt, eps, eta, sp):
    """:func:`_update_row` on an anisotropic grid (``sp``: see :func:`_upd3s`)."""
    W = r.shape[0]
    one = eps / eps
    half = one / (one + one)
    mudt = mu * dt
    for j in range(W):
        jp = j + 1 if j + 1 < W else j
        jm = j - 1 if j > 0 else j
        p = r[j]
        zp = rzp[j] if has_z else p
        zm = rzm[j] if has_z else p
        o[j] = _upd3s(
            p, r[jp], r[jm], rp[j], rm[j], zp, zm, f[j], mu, dt, mudt, eps, eta, one, half, sp
        )


def _update_row(r, rp, rm, rzp, rzm, has_z, f, o, mu, dt, eps, eta, sp):
    """New values of one row ``o`` from the row ``r``, its neighbours rows (edge-replicated)
    and the data force ``f``; ``sp`` empty: unit spacing, else see :func:`_upd3s`."""
    if sp.shape[0] > 0:
        _update_row_spaced(r, rp, rm, rzp, rzm, has_z, f, o, mu, dt, eps, eta, sp)
        return
    W = r.shape[0]
    one = eps / eps
    half = one / (one + one)
    mudt = mu * dt
    if has_z:
        for j in range(1, W - 1):
            o[j] = _upd3(
                r[j],
                r[j + 1],
                r[j - 1],
                rp[j],
                rm[j],
                rzp[j],
                rzm[j],
                f[j],
                mu,
                dt,
                mudt,
                eps,
                eta,
                one,
                half,
            )
    else:
        for j in range(1, W - 1):
            o[j] = _upd2(
                r[j], r[j + 1], r[j - 1], rp[j], rm[j], f[j], mu, dt, mudt, eps, eta, one, half
            )
    for j in (0, W - 1):  # the two border pixels (edge replication); W == 1: twice the same
        jp = j + 1 if j + 1 < W else j
        jm = j - 1 if j > 0 else j
        if has_z:
            o[j] = _upd3(
                r[j],
                r[jp],
                r[jm],
                rp[j],
                rm[j],
                rzp[j],
                rzm[j],
                f[j],
                mu,
                dt,
                mudt,
                eps,
                eta,
                one,
                half,
            )
        else:
            o[j] = _upd2(r[j], r[jp], r[jm], rp[j], rm[j], f[j], mu, dt, mudt, eps, eta, one, half)


def _forces_row(x, phi, z, i, m_evo, lam, e, f):
    r"""Data forces ``f[l, j]`` of row (z, i): :math:`-\lambda_{s_0} e_{s_0} + \lambda_{s_1}
    e_{s_1}` with :math:`e_s = \|x - c_s\|^2`, phases from ``phi > 0``."""
    C = x.shape[0]
    m = phi.shape[0]
    K = lam.shape[0]
    W = e.shape[1]
    for s in range(K):
        er = e[s]
        if C == 1:
            xr = x[0, z, i]
            cs = m_evo[s, 0]
            for j in range(W):
                d = xr[j] - cs
                er[j] = d * d
            continue
        for j in range(W):
            er[j] = 0.0
        for c in range(C):
            xr = x[c, z, i]
            cs = m_evo[s, c]
            for j in range(W):
                d = xr[j] - cs
                er[j] += d * d
    if m == 1:
        a0 = -lam[0]
        a1 = lam[1]
        e0 = e[0]
        e1 = e[1]
        f0 = f[0]
        for j in range(W):
            f0[j] = a0 * e0[j] + a1 * e1[j]
        return
    if m == 2:
        p0 = phi[0, z, i]
        p1 = phi[1, z, i]
        e0, e1, e2, e3 = e[0], e[1], e[2], e[3]
        a0, a1, a2 = -lam[0], -lam[1], -lam[2]
        b1, b2, b3 = lam[1], lam[2], lam[3]
        f0 = f[0]
        f1 = f[1]
        for j in range(W):
            # level set 0: phases (0, 1) inside level set 1, (2, 3) outside
            vi = a0 * e0[j] + b1 * e1[j]
            vo = a2 * e2[j] + b3 * e3[j]
            f0[j] = vi if p1[j] > 0 else vo
        for j in range(W):
            # level set 1: phases (0, 2) inside level set 0, (1, 3) outside
            vi = a0 * e0[j] + b2 * e2[j]
            vo = a1 * e1[j] + b3 * e3[j]
            f1[j] = vi if p0[j] > 0 else vo
        return
    for l in range(3):  # m == 3
        a = 1 if l == 0 else 0
        b = 1 if l == 2 else 2
        _force3(e, lam, phi[a, z, i], phi[b, z, i], 1 << l, 1 << a, 1 << b, f[l])


def _force3(e, lam, pa, pb, bl, ba, bb, fl):
    """Force of level set l for m = 3; ``a``, ``b`` are the two other level sets."""
    s00 = 0
    s10 = ba
    s01 = bb
    s11 = ba | bb
    e00, e10, e01, e11 = e[s00], e[s10], e[s01], e[s11]
    g00, g10, g01, g11 = e[s00 | bl], e[s10 | bl], e[s01 | bl], e[s11 | bl]
    a00, a10, a01, a11 = -lam[s00], -lam[s10], -lam[s01], -lam[s11]
    c00, c10, c01, c11 = lam[s00 | bl], lam[s10 | bl], lam[s01 | bl], lam[s11 | bl]
    for j in range(fl.shape[0]):
        v00 = a00 * e00[j] + c00 * g00[j]
        v10 = a10 * e10[j] + c10 * g10[j]
        v01 = a01 * e01[j] + c01 * g01[j]
        v11 = a11 * e11[j] + c11 * g11[j]
        ina = pa[j] > 0
        inb = pb[j] > 0
        fl[j] = (v00 if inb else v01) if ina else (v10 if inb else v11)


_R2 = math.sqrt(2.0)
_R3 = math.sqrt(3.0)


def _energy2(lr, ld, lz, e0, e1):
    """K = 2, one row: data term (residuals ``e0``/``e1`` of each pixel's own phase) and
    isotropic length. ``ld``/``lz``: labels of the next row / slice (the row itself at the
    last row / slice: Neumann). At a pixel with n differing forward neighbours the TV of both
    indicator functions is sqrt(n) + sqrt(n), the value of ``_pixel_length``."""
    r1 = 2.0
    r2 = 2.0 * _R2
    r3 = 2.0 * _R3
    W = lr.shape[0]
    data = 0.0
    length = 0.0
    for j in range(W):
        l = lr[j]
        w0 = e0[j]
        w1 = e1[j]
        nr = 1 if lr[min(j + 1, W - 1)] != l else 0
        n = nr + (1 if ld[j] != l else 0) + (1 if lz[j] != l else 0)
        data += w1 if l != 0 else w0
        length += 0.0 if n == 0 else (r1 if n == 1 else (r2 if n == 2 else r3))
    return data, length


def _length_counts(l, n0, n1, n2):
    """Per pixel, ``_pixel_length`` as counts of its terms equal to 1, sqrt(2), sqrt(3):
    with the forward neighbours n0 (z), n1 (y), n2 (x) of label l, sqrt(#differing) +
    sqrt(#axes with label n0) [n0 != l] + sqrt(#axes with label n1) [n1 != l, n0] +
    1 [n2 != l, n0, n1]."""
    d0 = 1 if n0 != l else 0
    d1 = 1 if n1 != l else 0
    d2 = 1 if n2 != l else 0
    e10 = 1 if n1 == n0 else 0
    e20 = 1 if n2 == n0 else 0
    e21 = 1 if n2 == n1 else 0
    a = d0 + d1 + d2
    b = d0 * (1 + e10 + e20)
    c = d1 * (1 - e10) * (1 + e21)
    dd = d2 * (1 - e20) * (1 - e21)
    k1 = (1 if a == 1 else 0) + (1 if b == 1 else 0) + (1 if c == 1 else 0) + dd
    k2 = (1 if a == 2 else 0) + (1 if b == 2 else 0) + (1 if c == 2 else 0)
    k3 = (1 if a == 3 else 0) + (1 if b == 3 else 0)
    return k1, k2, k3


def _energyk(lr, ld, lz, e):
    """Any K, one row: data term (residuals ``e`` (K, W), each pixel's own phase: one masked
    sum per phase) and isotropic length, per pixel exactly ``_pixel_length``
    (:func:`_length_counts`, integer sums: the loop vectorises)."""
    W = lr.shape[0]
    data = 0.0
    for s in range(e.shape[0]):
        data += _masked_sum(e[s], lr, s)
    c1 = 0
    c2 = 0
    c3 = 0
    for j in range(W - 1):
        k1, k2, k3 = _length_counts(
            np.int64(lr[j]), np.int64(lz[j]), np.int64(ld[j]), np.int64(lr[j + 1])
        )
        c1 += k1
        c2 += k2
        c3 += k3
    l = lr[W - 1]
    k1, k2, k3 = _length_counts(np.int64(l), np.int64(lz[W - 1]), np.int64(ld[W - 1]), np.int64(l))
    c1 += k1
    c2 += k2
    c3 += k3
    return data, (c1 + _R2 * c2) + _R3 * c3


def _energy_row(x, lab, z, i, m_lab, e, same):
    """Data and length terms of row (z, i) of the hard partition ``lab``: the shared energy of
    :func:`varseg._energy_kernels.hard_energy` (squared residuals to the phase means; isotropic
    TV of the indicator functions, forward differences, Neumann boundary; per pixel the same
    values as ``hard_energy``, summed in another order). With ``same`` the residuals ``e`` of
    the forces (same partition, same means) are reused, else they are recomputed."""
    C, D, H, W = x.shape
    K = m_lab.shape[0]
    lr = lab[z, i]
    ld = lab[z, i + 1] if i + 1 < H else lr
    lz = lab[z + 1, i] if z + 1 < D else lr
    if not same:
        for s in range(K):
            er = e[s]
            for j in range(W):
                er[j] = 0.0
            for c in range(C):
                xr = x[c, z, i]
                cs = m_lab[s, c]
                for j in range(W):
                    d = xr[j] - cs
                    er[j] += d * d
    if K == 2:
        return _energy2(lr, ld, lz, e[0], e[1])
    return _energyk(lr, ld, lz, e)


def _force1(xv, c0, c1, a0, a1):
    """m = 1, one gray pixel: residuals :math:`e_s = (x - c_s)^2` and the force
    :math:`a_0 e_0 + a_1 e_1` (the arithmetic of :func:`_forces_row`, in its order)."""
    d0 = xv - c0
    d1 = xv - c1
    e0 = d0 * d0
    e1 = d1 * d1
    return e0, e1, a0 * e0 + a1 * e1


def _pix_energy1(xv, p, pxp, pyp, c0, c1, a0, a1):
    """One pixel of :func:`_force_energy1`: the force (:func:`_force1`), the data term of
    the pixel's own phase and the number of its forward neighbours in the other phase."""
    e0, e1, force = _force1(xv, c0, c1, a0, a1)
    neg = p < 0
    n = (1 if (pxp < 0) != neg else 0) + (1 if (pyp < 0) != neg else 0)
    return force, e1 if neg else e0, n


def _force_energy1(xr, r, rp, fr, c0, c1, a0, a1):
    r"""m = 1, gray, 2D, one row: the data forces ``fr`` (:func:`_forces_row`) and the energy
    terms of the old partition (labels from the signs of ``r`` and of the next row ``rp``,
    the row itself at the last row): data as :func:`_energy2` with the means of the forces
    (valid when no level set is exactly 0), length :math:`2 n_1 + 2\sqrt2\, n_2` with
    :math:`n_k` the number of pixels with k forward neighbours in the other phase
    (``_pixel_length``; integer counts: the loop vectorises)."""
    W = r.shape[0]
    data = 0.0
    k1 = 0
    k2 = 0
    for j in range(W - 1):
        force, w, n = _pix_energy1(xr[j], r[j], r[j + 1], rp[j], c0, c1, a0, a1)
        fr[j] = force
        data += w
        k1 += 1 if n == 1 else 0
        k2 += 1 if n == 2 else 0
    j = W - 1
    force, w, n = _pix_energy1(xr[j], r[j], r[j], rp[j], c0, c1, a0, a1)
    fr[j] = force
    data += w
    k1 += 1 if n == 1 else 0
    return data, 2.0 * k1 + (2.0 * _R2) * k2


def _fused1_block(blk, nb, x, xw, phi, out, lab, lab_out, m_evo, lam, consts, parts, f):
    """The rows of block ``blk``, m = 1, gray, 2D, unit spacing: per row three loops,
    forces and energy (:func:`_force_energy1`), update (:func:`_update_row`), post pass
    (:func:`_post1`, with the correction of :func:`_sums_row` in a row with an exact zero);
    adds the block's partial sums at index ``blk`` and returns its data and length terms."""
    mu, dt, eps, eta, sp = consts
    pc, ps, pcc, pcs, pnd, pd = parts
    H = x.shape[2]
    c0 = m_evo[0, 0]
    c1 = m_evo[1, 0]
    a0 = -lam[0]
    a1 = lam[1]
    data = 0.0
    length = 0.0
    fr = f[0]
    for i in range(blk * H // nb, (blk + 1) * H // nb):
        ip = i + 1 if i + 1 < H else i
        im = i - 1 if i > 0 else i
        r = phi[0, 0, i]
        rp = phi[0, 0, ip]
        o = out[0, 0, i]
        xr = x[0, 0, i]
        lo = lab_out[0, i]
        dd, ll = _force_energy1(xr, r, rp, fr, c0, c1, a0, a1)
        _update_row(r, rp, phi[0, 0, im], r, r, np.bool_(False), fr, o, mu, dt, eps, eta, sp)
        sq, n1, s1, nz = _post1(o, r, xr, lo)
        pd[blk, 0] += sq  # per row, in the order of the separate passes
        pc[blk, 1] += n1
        ps[blk, 1, 0] += s1
        data += dd
        length += ll
        if nz > 0:
            pnd[blk] += _sums_row(
                x, out, np.int64(0), i, lo, np.bool_(True), blk, np.int64(2), pc, ps, pcc, pcs
            )
    return data, length


def _length2d(lr, ld):
    r"""Isotropic length of one row of a 2D hard partition from its labels ``lr`` and those
    of the next row ``ld`` (the row itself at the last row; the right neighbour of the last
    pixel is itself: Neumann), per pixel exactly ``_pixel_length`` (:func:`_length_counts`
    with no z neighbour): with :math:`d_y, d_x` the lower / right neighbour differing,
    :math:`2` if exactly one differs, :math:`2\sqrt2` if both do and are equal to each
    other, :math:`2 + \sqrt2` if both do and differ. The counts are kept in float32
    (exact: W < 2**23) so that the loop vectorises 8-wide."""
    W = lr.shape[0]
    k1 = np.float32(0.0)  # pixels with one term 2 (half the count of 1-terms)
    k2 = np.float32(0.0)
    for j in range(W - 1):
        l = np.int32(lr[j])
        n = np.int32(lr[j + 1])
        d = np.int32(ld[j])
        dy = np.float32(d != l)
        dx = np.float32(n != l)
        both = dy * dx
        same = both * np.float32(d == n)
        k1 += (dy + dx - both) - same
        k2 += both + same
    k1 += np.float32(ld[W - 1] != lr[W - 1])
    return 2.0 * float(k1) + _R2 * float(k2)


def _own2(xv, p0, p1, c):
    """Squared residual of a gray pixel to the mean of its own phase (from the signs of its
    two level sets; the arithmetic of :func:`_forces_row` for that phase)."""
    c01 = c[1] if p0 < 0 else c[0]
    c23 = c[3] if p0 < 0 else c[2]
    d = xv - (c23 if p1 < 0 else c01)
    return d * d


def _force2px(xv, c, a, p, q, r, t, inside):
    """Force of a level set at one gray pixel, m = 2: phases ``(p, q)`` where the pixel is
    inside the other level set, else ``(r, t)``; :func:`_forces_row`'s arithmetic, in its
    order, with the pair's means and weights selected first (two residuals, not four)."""
    c0 = c[p] if inside else c[r]
    c1 = c[q] if inside else c[t]
    a0 = a[p] if inside else a[r]
    a1 = a[q] if inside else a[t]
    u0 = xv - c0
    u1 = xv - c1
    return (-a0) * (u0 * u0) + a1 * (u1 * u1)


def _force_energy2(xr, xw, r0, r1, lr, ld, f0, f1, c, cw, aw):
    """m = 2, gray, 2D, one row: the forces ``f0``, ``f1`` (:func:`_forces_row`'s arithmetic,
    in the working precision: ``xw``, ``cw``, ``aw`` are the row, the 4 means and the 4
    weights in it; float64 in the IEEE family, hence its values) and the energy terms of the
    old partition (:func:`_energyk`; the data term in float64 from ``xr`` and the means ``c``,
    phases from the signs of the level sets, valid when no level set is exactly 0; the
    length from the labels ``lr`` of the row and ``ld`` of the next one, :func:`_length2d`).
    Loops with one store each (few runtime alias checks: they vectorise, the force loops at
    the width of the working precision)."""
    W = r0.shape[0]
    data = 0.0
    for j in range(W):
        data += _own2(xr[j], r0[j], r1[j], c)
    for j in range(W):  # level set 0: phases (0, 1) inside level set 1, (2, 3) outside
        f0[j] = _force2px(xw[j], cw, aw, 0, 1, 2, 3, r1[j] > 0)
    for j in range(W):  # level set 1: phases (0, 2) inside level set 0, (1, 3) outside
        f1[j] = _force2px(xw[j], cw, aw, 0, 2, 1, 3, r0[j] > 0)
    return data, _length2d(lr, ld)


def _pick4(v, bl, ba, bb, ina, inb):
    """Entry ``s | bl`` of the 8-tuple ``v``, ``s`` the phase of the two other level sets
    (bits ``ba``, ``bb``; 0 where inside, ``ina``/``inb``), by selects (no branch)."""
    s01 = bb | bl
    s10 = ba | bl
    s11 = ba | bb | bl
    return (v[bl] if inb else v[s01]) if ina else (v[s10] if inb else v[s11])


def _force3px(xv, c, a, bl, ba, bb, ina, inb):
    r"""Force of level set l (bit ``bl``; ``ba``, ``bb``: the bits of the two others) at one
    gray pixel, m = 3: :func:`_force3`'s arithmetic, in its order, with the two means and
    weights of the pixel's pair of phases selected first (:func:`_pick4`), so that two
    residuals are computed instead of eight."""
    c0 = _pick4(c, 0, ba, bb, ina, inb)
    c1 = _pick4(c, bl, ba, bb, ina, inb)
    a0 = _pick4(a, 0, ba, bb, ina, inb)
    a1 = _pick4(a, bl, ba, bb, ina, inb)
    u0 = xv - c0
    u1 = xv - c1
    return (-a0) * (u0 * u0) + a1 * (u1 * u1)


def _own3(xv, p0, p1, p2, c):
    """:func:`_own2` for three level sets (8 means)."""
    n0 = p0 < 0
    n1 = p1 < 0
    c01 = c[1] if n0 else c[0]
    c23 = c[3] if n0 else c[2]
    c45 = c[5] if n0 else c[4]
    c67 = c[7] if n0 else c[6]
    c03 = c23 if n1 else c01
    c47 = c67 if n1 else c45
    d = xv - (c47 if p2 < 0 else c03)
    return d * d


def _force_energy3(xr, xw, r0, r1, r2, lr, ld, f0, f1, f2, c, cw, aw):
    """m = 3, gray, 2D, one row: :func:`_force_energy2` for three level sets (one loop per
    force, each with one store)."""
    W = r0.shape[0]
    data = 0.0
    for j in range(W):
        data += _own3(xr[j], r0[j], r1[j], r2[j], c)
    for j in range(W):
        f0[j] = _force3px(xw[j], cw, aw, 1, 2, 4, r1[j] > 0, r2[j] > 0)
    for j in range(W):
        f1[j] = _force3px(xw[j], cw, aw, 2, 1, 4, r0[j] > 0, r2[j] > 0)
    for j in range(W):
        f2[j] = _force3px(xw[j], cw, aw, 4, 1, 2, r0[j] > 0, r1[j] > 0)
    return data, _length2d(lr, ld)


def _fused3_block(blk, nb, x, xw, phi, out, lab, lab_out, m_evo, lam, consts, parts, f):
    """:func:`_fused2_block` for m = 3 (:func:`_force_energy3`)."""
    mu, dt, eps, eta, sp = consts
    pc, ps, pcc, pcs, pnd, pd = parts
    H = x.shape[2]
    c = (m_evo[0, 0], m_evo[1, 0], m_evo[2, 0], m_evo[3, 0])
    c = c + (m_evo[4, 0], m_evo[5, 0], m_evo[6, 0], m_evo[7, 0])
    wt = f.dtype.type
    cw = (wt(c[0]), wt(c[1]), wt(c[2]), wt(c[3]), wt(c[4]), wt(c[5]), wt(c[6]), wt(c[7]))
    aw = (wt(lam[0]), wt(lam[1]), wt(lam[2]), wt(lam[3]))
    aw = aw + (wt(lam[4]), wt(lam[5]), wt(lam[6]), wt(lam[7]))
    data = 0.0
    length = 0.0
    for i in range(blk * H // nb, (blk + 1) * H // nb):
        ip = i + 1 if i + 1 < H else i
        im = i - 1 if i > 0 else i
        dd, ll = _force_energy3(
            x[0, 0, i],
            xw[0, 0, i],
            phi[0, 0, i],
            phi[1, 0, i],
            phi[2, 0, i],
            lab[0, i],
            lab[0, ip],
            f[0],
            f[1],
            f[2],
            c,
            cw,
            aw,
        )
        data += dd
        length += ll
        for l in range(3):
            r = phi[l, 0, i]
            _update_row(
                r,
                phi[l, 0, ip],
                phi[l, 0, im],
                r,
                r,
                np.bool_(False),
                f[l],
                out[l, 0, i],
                mu,
                dt,
                eps,
                eta,
                sp,
            )
        lo = lab_out[0, i]
        hz = _post_multi(out, phi, np.int64(0), i, lo, pd, blk)
        pnd[blk] += _sums_row(x, out, np.int64(0), i, lo, hz, blk, np.int64(1), pc, ps, pcc, pcs)
    return data, length


def _fused2_block(blk, nb, x, xw, phi, out, lab, lab_out, m_evo, lam, consts, parts, f):
    """The rows of block ``blk``, m = 2, gray, 2D, unit spacing: per row forces and energy
    (:func:`_force_energy2`: forces from ``xw``, the image in the working precision; length
    from the labels ``lab`` of the old partition), the two updates (:func:`_update_row`)
    and the post passes (:func:`_post_multi`, :func:`_sums_row`); adds the block's partial
    sums at index ``blk`` and returns its data and length terms."""
    mu, dt, eps, eta, sp = consts
    pc, ps, pcc, pcs, pnd, pd = parts
    H = x.shape[2]
    c = (m_evo[0, 0], m_evo[1, 0], m_evo[2, 0], m_evo[3, 0])
    wt = f.dtype.type
    cw = (wt(c[0]), wt(c[1]), wt(c[2]), wt(c[3]))
    aw = (wt(lam[0]), wt(lam[1]), wt(lam[2]), wt(lam[3]))
    data = 0.0
    length = 0.0
    f0 = f[0]
    f1 = f[1]
    for i in range(blk * H // nb, (blk + 1) * H // nb):
        ip = i + 1 if i + 1 < H else i
        im = i - 1 if i > 0 else i
        r0 = phi[0, 0, i]
        r1 = phi[1, 0, i]
        rp0 = phi[0, 0, ip]
        rp1 = phi[1, 0, ip]
        o0 = out[0, 0, i]
        o1 = out[1, 0, i]
        xr = x[0, 0, i]
        lo = lab_out[0, i]
        dd, ll = _force_energy2(xr, xw[0, 0, i], r0, r1, lab[0, i], lab[0, ip], f0, f1, c, cw, aw)
        data += dd
        length += ll
        _update_row(r0, rp0, phi[0, 0, im], r0, r0, np.bool_(False), f0, o0, mu, dt, eps, eta, sp)
        _update_row(r1, rp1, phi[1, 0, im], r1, r1, np.bool_(False), f1, o1, mu, dt, eps, eta, sp)
        hz = _post_multi(out, phi, np.int64(0), i, lo, pd, blk)
        pnd[blk] += _sums_row(x, out, np.int64(0), i, lo, hz, blk, np.int64(1), pc, ps, pcc, pcs)
    return data, length


def _fused_block(blk, nb, x, xw, phi, out, lab, lab_out, m_evo, lam, consts, parts, f):
    """Block ``blk`` of a gray 2D step with unit spacing by the fused rows of its m
    (:func:`_fused1_block`, :func:`_fused2_block`, :func:`_fused3_block`); returns the data
    and length terms of the old partition."""
    m = phi.shape[0]
    if m == 1:
        return _fused1_block(blk, nb, x, xw, phi, out, lab, lab_out, m_evo, lam, consts, parts, f)
    if m == 2:
        return _fused2_block(blk, nb, x, xw, phi, out, lab, lab_out, m_evo, lam, consts, parts, f)
    return _fused3_block(blk, nb, x, xw, phi, out, lab, lab_out, m_evo, lam, consts, parts, f)


def _step_block(
    blk,
    nb,
    x,
    phi,
    out,
    lab,
    lab_out,
    m_lab,
    m_evo,
    lam,
    mu,
    dt,
    eps,
    eta,
    sp,
    record,
    same,
    pc,
    ps,
    pcc,
    pcs,
    pnd,
    pd,
    pdata,
    plen,
    e,
    f,
):
    """Rows ``blk * rows // nb`` to ``(blk + 1) * rows // nb`` of one step (:class:`Stepper`);
    writes the block's partial sums at index ``blk``. ``e`` (K, W) float64 and ``f`` (m, W)
    are scratch rows (residuals, forces) of the calling thread, allocated once by the
    :class:`Stepper` (not per step or block: they stay in the thread's cache)."""
    C, D, H, W = x.shape
    m = phi.shape[0]
    K = lam.shape[0]
    rows = D * H
    has_z = D > 1
    dacc = 0.0
    lacc = 0.0
    for q in range(blk * rows // nb, (blk + 1) * rows // nb):
        z = q // H
        i = q - z * H
        ip = i + 1 if i + 1 < H else i
        im = i - 1 if i > 0 else i
        zp = z + 1 if z + 1 < D else z
        zm = z - 1 if z > 0 else z
        _forces_row(x, phi, z, i, m_evo, lam, e, f)
        if record:
            dd, ll = _energy_row(x, lab, z, i, m_lab, e, same)
            dacc += dd
            lacc += ll
        for l in range(m):
            _update_row(
                phi[l, z, i],
                phi[l, z, ip],
                phi[l, z, im],
                phi[l, zp, i],
                phi[l, zm, i],
                has_z,
                f[l],
                out[l, z, i],
                mu,
                dt,
                eps,
                eta,
                sp,
            )
        lo = lab_out[z, i]
        if m == 1:
            sq, n1, s1, nz = _post1(out[0, z, i], phi[0, z, i], x[0, z, i], lo)
            pd[blk, 0] += sq
            pc[blk, 1] += n1
            ps[blk, 1, 0] += s1
            for c in range(1, C):
                ps[blk, 1, c] += _masked_sum(x[c, z, i], lo, np.int64(1))
            if nz > 0:
                pnd[blk] += _sums_row(x, out, z, i, lo, np.bool_(True), blk, K, pc, ps, pcc, pcs)
        else:
            hz = _post_multi(out, phi, z, i, lo, pd, blk)
            pnd[blk] += _sums_row(x, out, z, i, lo, hz, blk, np.int64(1), pc, ps, pcc, pcs)
    pdata[blk] = dacc
    plen[blk] = lacc


def _step_range(
    b0,
    b1,
    nb,
    x,
    xw,
    phi,
    out,
    lab,
    lab_out,
    m_lab,
    m_evo,
    lam,
    mu,
    dt,
    eps,
    eta,
    sp,
    record,
    same,
    pc,
    ps,
    pcc,
    pcs,
    pnd,
    pd,
    pdata,
    plen,
    e,
    f,
):
    """Blocks ``b0 .. b1 - 1`` of one step (releases the GIL: the blocks of one step run in
    several Python threads at once); ``xw``: the image in the working precision (the fused
    rows' data forces). Gray 2D images with unit spacing and m <= 3 take the
    fused rows (:func:`_fused_block`) unless the energy is recorded with means that differ
    from those of the forces (an exact zero in the iterate)."""
    C, D, H, W = x.shape
    fused = C == 1 and D == 1 and W > 1 and sp.shape[0] == 0 and (same or not record)
    fused = fused and phi.shape[0] <= 3
    consts = (mu, dt, eps, eta, sp)
    parts = (pc, ps, pcc, pcs, pnd, pd)
    for blk in range(b0, b1):
        pc[blk] = 0.0
        ps[blk] = 0.0
        pcc[blk] = 0.0
        pcs[blk] = 0.0
        pnd[blk] = 0
        pd[blk] = 0.0
        if fused:
            dd, ll = _fused_block(
                blk, nb, x, xw, phi, out, lab, lab_out, m_evo, lam, consts, parts, f
            )
            pdata[blk] = dd if record else 0.0
            plen[blk] = ll if record else 0.0
            continue
        _step_block(
            blk,
            nb,
            x,
            phi,
            out,
            lab,
            lab_out,
            m_lab,
            m_evo,
            lam,
            mu,
            dt,
            eps,
            eta,
            sp,
            record,
            same,
            pc,
            ps,
            pcc,
            pcs,
            pnd,
            pd,
            pdata,
            plen,
            e,
            f,
        )


def _finish_step(xtot, pc, ps, pcc, pcs, pnd, pd, pdata, plen):
    """Reduce the block partials of a step in block order; the means of the new iterate."""
    nb, m = pd.shape
    cnt, sums, ccnt, csums = _reduce_blocks(pc, ps, pcc, pcs, xtot)
    m_lab, m_evo = means_from_sums(cnt, sums, ccnt, csums)
    dsq = np.zeros(m)
    data = 0.0
    length = 0.0
    for q in range(nb):
        data += pdata[q]
        length += plen[q]
        for l in range(m):
            dsq[l] += pd[q, l]
    return m_lab, m_evo, pnd.sum(), dsq, data, length


def _row_change(lr, rr, ld, lz):
    """Row part of :func:`partition_change` (``ld``/``lz``: next row / slice, or the row)."""
    W = lr.shape[0]
    moved = 0
    edges = 0
    for j in range(W):
        v = lr[j]
        moved += 1 if v != rr[j] else 0
        edges += (1 if ld[j] != v else 0) + (1 if lz[j] != v else 0)
        rr[j] = v
    for j in range(W - 1):
        edges += 1 if lr[j + 1] != lr[j] else 0
    return moved, edges


def partition_change(lab, ref):
    """Number of pixels whose label differs from ``ref`` and number of interface edges of
    ``lab`` (pairs of axis-neighbours with different labels); copies ``lab`` into ``ref``."""
    D, H, W = lab.shape
    moved = 0
    edges = 0
    for z in range(D):
        for i in range(H):
            lr = lab[z, i]
            ld = lab[z, i + 1] if i + 1 < H else lr
            lz = lab[z + 1, i] if z + 1 < D else lr
            mv, ed = _row_change(lr, ref[z, i], ld, lz)
            moved += mv
            edges += ed
    return moved, edges


def final_energy_rows(q0, q1, x, lab, m_lab, rd, rl, lab64):
    """Rows ``q0 .. q1 - 1`` of the energy of the hard partition ``lab`` with its means
    ``m_lab`` (:func:`~varseg.levelset._cv_setup_kernels.final_energy_threads`): their data
    and length terms (:func:`_energy_row`) into ``rd[q]``, ``rl[q]``; with a non-empty
    ``lab64`` (shape of ``lab``) also ``lab`` as int64 (the public labels) in the same pass."""
    C, D, H, W = x.shape
    e = np.empty((m_lab.shape[0], W))
    copy = lab64.shape[0] > 0
    for q in range(q0, q1):
        z = q // H
        i = q - z * H
        rd[q], rl[q] = _energy_row(x, lab, z, i, m_lab, e, np.bool_(False))
        if copy:
            lr = lab[z, i]
            o = lab64[z, i]
            for j in range(W):
                o[j] = lr[j]


def sum_in_order(v):
    """``v[0] + v[1] + ...`` from 0.0, left to right (no re-association: the order of a serial
    loop, whatever the number of threads that wrote ``v``)."""
    acc = 0.0
    for k in range(v.shape[0]):
        acc += v[k]
    return acc


def spacing_weights(spacing, dtype):
    """The ``sp`` argument of the update: empty for unit (or no) spacing, else ``(1/dx, 1/dy,
    1/dz, 1/dx^2, 1/dy^2, 1/dz^2)`` for ``spacing = (dz, dy, dx)`` (``1/dz = 0`` in 2D)."""
    if spacing is None or all(float(h) == 1.0 for h in spacing):
        return np.empty(0, dtype=dtype)
    dz, dy, dx = (float(h) for h in spacing)
    inv = [1.0 / dx, 1.0 / dy, 0.0 if dz == 0 else 1.0 / dz]
    return np.array(inv + [v * v for v in inv], dtype=dtype)


#: Chunks of row blocks per thread that :class:`Stepper` hands out on demand
#: (:meth:`varseg._threads.Team.drain`).
CHUNKS_PER_THREAD = 2


class Stepper:
    r"""One Jacobi step of the semi-implicit scheme for all m level sets, run in ``threads``
    threads (the GIL-free kernel :func:`_step_range` on contiguous chunks of row blocks that
    the threads take on demand, :data:`CHUNKS_PER_THREAD` per thread).

    ``step(phi, out, lab, lab_out, m_lab, m_evo, record, same)`` reads ``phi`` (iterate k) and
    writes ``out`` (iterate k + 1) and its labels ``lab_out``; with ``record`` it also
    evaluates the shared energy of ``lab`` (iterate k, means ``m_lab``; ``same``: iterate k
    has no exact zero, so ``m_lab == m_evo``). Per level set j and pixel (2D; 3D adds the z
    pair):

    .. math::

        C_1 = (\eta + (\phi_{x+} - \phi)^2 + \phi_{y0}^2)^{-1/2}, \dots,
        C_4 = (\eta + \phi_{x0}^2 + (\phi - \phi_{y-})^2)^{-1/2}

        \phi^{new} = \frac{\phi + \Delta t\,\delta(\phi)\,[\mu \sum_i C_i \phi_i + f_j]}
                          {1 + \mu\,\Delta t\,\delta(\phi) \sum_i C_i},
        \qquad \delta(\phi) = \frac{\varepsilon}{\varepsilon^2 + \phi^2}

    with :math:`\phi_i` the edge-replicated neighbours and the data force
    :math:`f_j = -\lambda_{s_0}\|x - c_{s_0}\|^2 + \lambda_{s_1}\|x - c_{s_1}\|^2`
    (:math:`s_0, s_1`: the pixel's phase with bit j cleared / set). It returns ``m_lab,
    m_evo`` (the means of the labels of ``out`` and of its ``phi > 0`` partition), ``ndiff``
    (pixels where the two conventions differ), ``dsq`` (per level set, the sum of
    :math:`(\phi^{new}_j - \phi_j)^2`) and the ``data, length`` terms of ``lab`` (0 unless
    ``record``). ``fast``: use the :data:`FAST` family (fast-math update, float32 working
    precision) instead of :data:`IEEE`.

    Python threads of the process-wide :func:`varseg._threads.team`, not ``parallel=True``: a
    waiting thread sleeps instead of spinning (an OpenMP barrier spinning on a busy machine can
    cost more than the step), and the compilation is several times shorter.
    """

    def __init__(
        self, x, xtot, lam, mu, dt, eps, eta, m, threads, fast=False, spacing=None, xw=None
    ):
        C, D, H, W = x.shape
        K = lam.shape[0]
        self.x, self.xtot, self.lam = x, xtot, lam
        # x in the working precision (x itself in float64); ``xw``: already made by the caller
        self.xw = np.ascontiguousarray(x, dtype=type(mu)) if xw is None else xw
        self.consts = (mu, dt, eps, eta, spacing_weights(spacing, type(mu)))
        self.fast = bool(fast)
        self.kernels = FAST if fast else IEEE
        self.nb = nb = n_blocks(D * H)
        self.parts = (
            np.zeros((nb, K)),
            np.zeros((nb, K, C)),
            np.zeros((nb, K)),
            np.zeros((nb, K, C)),
            np.zeros(nb, dtype=np.int64),
            np.zeros((nb, m)),
            np.zeros(nb),
            np.zeros(nb),
        )
        t = max(1, min(int(threads), nb))
        # per thread: scratch rows of the residuals and forces (reused by every step)
        self.scratch = [(np.empty((K, W)), np.empty((m, W), dtype=type(mu))) for _ in range(t)]
        self.chunks = chunks(nb, t, CHUNKS_PER_THREAD)
        self.team = team(t - 1) if t > 1 else None

    def step(self, phi, out, lab, lab_out, m_lab, m_evo, record, same):
        kern = self.kernels
        args = (
            (self.nb, self.x, self.xw, phi, out, lab, lab_out, m_lab, m_evo, self.lam)
            + self.consts
            + (record, same)
            + self.parts
        )
        run = kern._step_range
        if self.team is None:
            run(0, self.nb, *args, *self.scratch[0])
        else:
            # each thread's scratch rows after the step's arguments
            self.team.drain(self.chunks, [partial(bound, run, args + sc) for sc in self.scratch])
        return kern._finish_step(self.xtot, *self.parts)


# ------------------------------------------------------------------------------------------
# the two kernel families, compiled from the one source above (each clone has its own
# qualified name, hence its own entry in Numba's cache)
# ------------------------------------------------------------------------------------------
_KERNELS = {
    name: obj
    for name, obj in list(globals().items())
    if isinstance(obj, types.FunctionType)
    and obj.__module__ == __name__
    and name not in ("spacing_weights", "_implicit_1div")  # the last: FAST only
}
_KERNELS["dirac_pi"] = dirac_pi_expr  # the one definition of scikit-image's Dirac
_REDUCTIONS = (
    "_masked_sum",
    "_masked_count_sum",
    "_sq_diff",
    "_post1",
    "_post2",
    "_post3",
    "_force_energy1",
    "_force_energy2",
    "_force_energy3",
    "_length2d",
    "_energy2",
    "_energyk",
    "_length_counts",
)
_UPDATE = (
    "_upd2",
    "_upd3",
    "_upd3s",
    "_implicit",
    "_update_row",
    "_update_row_spaced",
    "dirac_pi",
)
_OPTIONS = {"cache": True, "error_model": "numpy", "nogil": True}


def kernel_family(suffix, fast, **options):
    """Compile the kernels of this module as one family (:func:`varseg._jit.jit_family`).

    ``fast``: the update (:func:`_update_row` and the per-pixel helpers) with the fast-math
    flags ``{"afn", "arcp", "contract"}`` and one division per pixel (:func:`_implicit_1div`
    bound as ``_implicit``; float32 working precision); else IEEE, in scikit-image's order. The row
    reductions allow re-association in both. ``options`` override the Numba options
    (``cache=True, error_model="numpy", nogil=True``).
    """
    over = {name: {"fastmath": _FM} for name in _REDUCTIONS}
    functions = dict(_KERNELS)
    if fast:
        over.update({name: {"fastmath": _FAST} for name in _UPDATE})
        functions["_implicit"] = _implicit_1div  # one division per pixel instead of two
    else:  # explicit: a callee without fastmath would inherit its caller's (a fused row's)
        over.update({name: {"fastmath": False} for name in _UPDATE})
    return jit_family(functions, suffix, overrides=over, **{**_OPTIONS, **options})


#: IEEE kernels (float64 working precision: scikit-image's arithmetic in its order).
IEEE = kernel_family("ieee", fast=False)
#: The same kernels with a fast-math update (float32 working precision): approximate
#: reciprocal square roots and divisions refined by Newton steps, FMA; within a few float32
#: ulps of :data:`IEEE` (tested).
FAST = kernel_family("fast", fast=True)

# the public kernels of the solver's set-up and stopping rule (IEEE: they only count and sum)
classify_parts = IEEE.classify_parts  # noqa: F811
means_from_sums = IEEE.means_from_sums  # noqa: F811
n_blocks = IEEE.n_blocks  # noqa: F811
partition_change = IEEE.partition_change  # noqa: F811
classify_blocks = IEEE.classify_blocks  # noqa: F811
reduce_classified = IEEE.reduce_classified  # noqa: F811
final_energy_rows = IEEE.final_energy_rows  # noqa: F811
sum_in_order = IEEE.sum_in_order  # noqa: F811

r"""Numba kernels of the Eq. 15 fixed-point iteration (Kim & Ye 2019) behind
:func:`varseg.unrolled.ms_fixed_point`.

One iteration is two fused passes over the (K, D, H, W) logits, rows split into a fixed
number of blocks run on a few threads (:class:`Runner`; the result does not depend on the
thread count):

* :func:`softmax_blocks` — memberships :math:`y = \mathrm{softmax}(z)`, their change since the
  previous call, the hard labels :math:`\arg\max_n y_n = \arg\max_n z_n`, and per-block
  partial sums for the soft means (Eq. 13) and for the means of the hard partition;
* :func:`update_blocks` — curvature :math:`\kappa_n = \mathrm{div}(\nabla^+ y_n /
  \sqrt{|\nabla^+ y_n|^2 + \epsilon^2})` (backward-difference divergence, the adjoint of the
  forward differences), force :math:`g_n = \|x - c_n\|^2 - \lambda \kappa_n`, the weighting
  (``paper``: :math:`\delta_\varepsilon(z_n) g_n`; ``softmax-gradient``: :math:`y_n (g_n -
  \sum_m y_m g_m)`) and the in-place step :math:`z \leftarrow z - \eta w`, plus the shared
  energy (data and isotropic length) of the hard partition of the previous pass.

The torch :func:`varseg.unrolled.fixed_point_step` computes the same step (tested to 1e-10
in float64). All work arrays live in a :class:`Workspace` allocated once per call of the
solver: nothing is allocated per iteration.

Speed (float32, AVX without AVX2): inside a row every loop is written so that LLVM
vectorises it: few arrays per loop (each store against each load is a run-time alias check,
and past LLVM's limit the loop stays scalar), masks as products by 0/1 rather than selects
inside reductions, float rather than integer labels in the selects, row sums in the working
type (added to float64 block sums per row). The labels are the argmax of :math:`z` (the
argmax of the memberships: softmax is monotone), found in the pass that finds the maximum;
the normalisation, the change, the soft and the hard sums of one class are one loop; the
curvature's divergence and the data term one loop per class; the curvature's
:math:`1/\sqrt{\cdot}` an approximate reciprocal square root with a Newton step in float32.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

__all__ = [
    "Workspace",
    "Runner",
    "softmax_blocks",
    "reduce_means",
    "update_blocks",
    "UPDATE_CODES",
    "n_blocks",
]

#: Integer codes of the two weightings passed to the kernels.
UPDATE_CODES = {"softmax-gradient": 0, "paper": 1}

_MAX_BLOCKS = 32
# reassociation lets the row reductions vectorise; no flag that changes IEEE special values
_FM = {"reassoc", "contract", "nsz"}
# the normalisation 1 / sqrt(.) of the curvature: an approximate reciprocal square root
# refined by a Newton step in float32 (within a few ulps; float64 has no such instruction)
_FM_RSQRT = _FM | {"afn", "arcp"}


def n_blocks(rows):
    """Fixed number of row blocks (independent of the thread count)."""
    return max(1, min(rows, _MAX_BLOCKS))


class Workspace:
    """Every buffer one solve needs, allocated once.

    Parameters
    ----------
    x : ndarray, shape (C, D, H, W)
        Normalised image in the working dtype.
    k : int
        Number of classes K.
    """

    def __init__(self, x, k):
        c, d, h, w = x.shape
        dt = x.dtype
        self.x = x
        self.k = k
        self.nb = n_blocks(d * h)
        self.y = np.zeros((k, d, h, w), dtype=dt)
        self.lab = np.zeros((d, h, w), dtype=np.int32)
        # per block: soft den (k), soft num (k, c), hard count (k), hard sum (k, c), change
        self.part = np.zeros((self.nb, 2 * k * (c + 1) + 1))
        # per block: p rows (2 slots + 1 for the previous slice) x 3 components x k x W
        self.prow = np.zeros((self.nb, 3, 3, k, w), dtype=dt)
        # per block: k rows of forces / exponentials and four more rows
        self.grow = np.zeros((self.nb, k + 4, w), dtype=dt)
        self.soft = np.zeros((k, c), dtype=dt)
        self.hard = np.zeros((k, c), dtype=dt)
        self.energy = np.zeros((self.nb, 2))


@njit(cache=True, error_model="numpy")
def _block_rows(b, nb, rows):
    return (b * rows) // nb, ((b + 1) * rows) // nb


@njit(cache=True, error_model="numpy")
def _exp_row(a, b, out, bits):
    r"""``out = exp(a - b)`` for ``a <= b`` (clamped at the smallest normal exponent), in loops
    that vectorise (IEEE arithmetic: no reassociation, which would undo the reduction):
    Cody–Waite reduction :math:`v = t \ln 2 + r`, :math:`|r| \le \ln 2 / 2`, the Taylor
    polynomial of :math:`e^r` (degree 7 in float32, 13 in float64: below an ulp of the
    type) and :math:`2^t` built from exponent bits (``bits``: a work row). The four rows must
    not overlap (else the loops do not vectorise)."""
    w = a.shape[0]
    T = a.dtype.type
    if a.itemsize == 4:
        ib = bits.view(np.int32)
        for j in range(w):
            x = max(a[j] - b[j], T(-87.0))
            t = np.floor(x * T(1.4426950408889634) + T(0.5))
            r = (x - t * T(0.693359375)) - t * T(-2.12194440e-4)
            p = T(1 / 5040) * r + T(1 / 720)
            p = p * r + T(1 / 120)
            p = p * r + T(1 / 24)
            p = p * r + T(1 / 6)
            p = p * r + T(0.5)
            p = p * r + T(1.0)
            out[j] = p * r + T(1.0)
            ib[j] = (np.int32(t) + np.int32(127)) << np.int32(23)
    else:
        ib = bits.view(np.int64)
        for j in range(w):
            x = max(a[j] - b[j], T(-708.0))
            t = np.floor(x * T(1.4426950408889634) + T(0.5))
            r = (x - t * T(6.93147180369123816490e-01)) - t * T(1.90821492927058770002e-10)
            p = T(1 / 6227020800) * r + T(1 / 479001600)
            p = p * r + T(1 / 39916800)
            p = p * r + T(1 / 3628800)
            p = p * r + T(1 / 362880)
            p = p * r + T(1 / 40320)
            p = p * r + T(1 / 5040)
            p = p * r + T(1 / 720)
            p = p * r + T(1 / 120)
            p = p * r + T(1 / 24)
            p = p * r + T(1 / 6)
            p = p * r + T(0.5)
            p = p * r + T(1.0)
            out[j] = p * r + T(1.0)
            ib[j] = (np.int64(t) + np.int64(1023)) << np.int64(52)
    for j in range(w):
        out[j] *= bits[j]


@njit(cache=True, error_model="numpy", fastmath=_FM)
def _row_max_exp(z, d, i, tmp, labr):
    r"""``tmp[n] = exp(z_n - max_m z_m)``, ``tmp[k + 1] = 1 / sum_n tmp[n]`` and the hard
    labels ``labr = argmax_n z_n`` (the first maximum; softmax is monotone, so this is the
    argmax of the memberships), also as floats in ``tmp[k + 3]``, of one row (``tmp[k + 2]``:
    work row; float labels keep the selects in float vector registers)."""
    k = z.shape[0]
    w = z.shape[3]
    mx = tmp[k]
    s = tmp[k + 1]
    bits = tmp[k + 2]
    labf = tmp[k + 3]
    T = mx.dtype.type
    z0 = z[0, d, i]
    for j in range(w):
        mx[j] = z0[j]
        labf[j] = 0.0
    for n in range(1, k):
        zn = z[n, d, i]
        fn = T(n)
        for j in range(w):
            v = zn[j]
            up = v > mx[j]
            mx[j] = v if up else mx[j]
            labf[j] = fn if up else labf[j]
    for j in range(w):
        labr[j] = np.int32(labf[j])
    for j in range(w):
        s[j] = 0.0
    one = s.dtype.type(1.0)
    for n in range(k):
        en = tmp[n]
        _exp_row(z[n, d, i], mx, en, bits)
        for j in range(w):
            s[j] += en[j]
    for j in range(w):
        s[j] = one / s[j]


@njit(cache=True, error_model="numpy", fastmath=_FM)
def _norm_class_row(yn, en, inv, xr, labf, n):
    r"""One class of one row, one fused loop: :math:`y_n = e_n / \sum_m e_m` in place, and
    the row sums of :math:`|\Delta y_n|`, :math:`y_n`, :math:`y_n x`, :math:`[l = n]` and
    :math:`[l = n]\,x` (single-channel image), in the working type."""
    zero = yn.dtype.type(0.0)
    one = yn.dtype.type(1.0)
    change = zero
    den = zero
    num = zero
    cnt = zero
    hs = zero
    fn = yn.dtype.type(n)
    for j in range(yn.shape[0]):
        v = en[j] * inv[j]
        change += abs(v - yn[j])
        yn[j] = v
        xv = xr[j]
        den += v
        num += v * xv
        mine = one if labf[j] == fn else zero  # a product, not a select: it vectorises
        cnt += mine
        hs += xv * mine
    return change, den, num, cnt, hs


@njit(cache=True, error_model="numpy", fastmath=_FM)
def _norm_class_row_multi(yn, en, inv, x, d, i, labf, n, acc, k):
    """:func:`_norm_class_row` for C channels (per-channel loops): the sums go to ``acc``."""
    c = x.shape[0]
    zero = yn.dtype.type(0.0)
    change = zero
    den = zero
    for j in range(yn.shape[0]):
        v = en[j] * inv[j]
        change += abs(v - yn[j])
        yn[j] = v
        den += v
    cnt = zero
    fn = yn.dtype.type(n)
    one = yn.dtype.type(1.0)
    for j in range(yn.shape[0]):
        cnt += one if labf[j] == fn else zero
    acc[n] += den
    acc[k * (c + 1) + n] += cnt
    for ch in range(c):
        xr = x[ch, d, i]
        num = zero
        hs = zero
        for j in range(yn.shape[0]):
            num += yn[j] * xr[j]
            hs += xr[j] * (one if labf[j] == fn else zero)
        acc[k + n * c + ch] += num
        acc[k * (c + 1) + k + n * c + ch] += hs
    return change


@njit(cache=True, error_model="numpy", fastmath=_FM)
def _softmax_row(z, x, y, lab, d, i, acc, tmp):
    """Softmax, change, argmax and the partial sums (into ``acc``) of row (d, i): one pass
    for the maximum and the labels, one for the exponentials, one per class for the rest."""
    k = z.shape[0]
    c = x.shape[0]
    labr = lab[d, i]
    _row_max_exp(z, d, i, tmp, labr)
    inv = tmp[k + 1]
    labf = tmp[k + 3]
    change = 0.0
    o_cnt = k * (c + 1)
    for n in range(k):
        if c == 1:
            dc, den, num, cnt, hs = _norm_class_row(y[n, d, i], tmp[n], inv, x[0, d, i], labf, n)
            acc[n] += den
            acc[k + n] += num
            acc[o_cnt + n] += cnt
            acc[o_cnt + k + n] += hs
        else:
            dc = _norm_class_row_multi(y[n, d, i], tmp[n], inv, x, d, i, labf, n, acc, k)
        change += dc
    acc[2 * o_cnt] += change


@njit(cache=True, error_model="numpy")
def _softmax_block(b, nb, z, x, y, lab, part, scratch):
    acc = part[b]
    for t in range(acc.shape[0]):
        acc[t] = 0.0
    rows = z.shape[1] * z.shape[2]
    h = z.shape[2]
    q0, q1 = _block_rows(b, nb, rows)
    for q in range(q0, q1):
        _softmax_row(z, x, y, lab, q // h, q % h, acc, scratch[b])


@njit(cache=True, error_model="numpy", nogil=True)
def softmax_blocks(b0, b1, z, x, y, lab, part, scratch):
    r""":math:`y = \mathrm{softmax}(z)` over axis 0, labels and partial sums of the row
    blocks ``b0`` to ``b1 - 1`` (GIL released; ``scratch``: (nb, k + 4, W) work array).

    The change sum (last column of ``part``) is :math:`\sum |y^{new} - y^{old}|` against
    the previous contents of ``y`` (zeros before the first call)."""
    nb = part.shape[0]
    for b in range(b0, b1):
        _softmax_block(b, nb, z, x, y, lab, part, scratch)


@njit(cache=True, error_model="numpy")
def reduce_means(part, k, c, soft, hard):
    """Soft means (Eq. 13) and hard-partition means from the block partial sums (a class of
    zero mass gets mean 0)."""
    o_cnt = k * (c + 1)
    for n in range(k):
        den = 0.0
        cnt = 0.0
        for b in range(part.shape[0]):
            den += part[b, n]
            cnt += part[b, o_cnt + n]
        for ch in range(c):
            num = 0.0
            hs = 0.0
            for b in range(part.shape[0]):
                num += part[b, k + n * c + ch]
                hs += part[b, o_cnt + k + n * c + ch]
            soft[n, ch] = num / den if den > 0 else 0.0
            hard[n, ch] = hs / cnt if cnt > 0 else 0.0


@njit(cache=True, error_model="numpy", fastmath=_FM_RSQRT)
def _p_row(y, d, i, eps2, out, slot, want_z):
    r""":math:`\nabla^+ y_n / \sqrt{|\nabla^+ y_n|^2 + \epsilon^2}` of row (d, i), every
    class, into ``out[slot, axis, n, :]`` (axis 0: along W, 1: along H, 2: along D)."""
    k, dd, h, w = y.shape
    one = y.dtype.type(1.0)
    zero = y.dtype.type(0.0)
    for n in range(k):
        yn = y[n, d, i]
        yd = y[n, d, i + 1] if i + 1 < h else yn
        px = out[slot, 0, n]
        py = out[slot, 1, n]
        if want_z and d + 1 < dd:
            yz = y[n, d + 1, i]
            pz = out[slot, 2, n]
            for j in range(w):
                gx = yn[j + 1] - yn[j] if j + 1 < w else zero
                gy = yd[j] - yn[j]
                gz = yz[j] - yn[j]
                inv = one / math.sqrt(gx * gx + gy * gy + gz * gz + eps2)
                px[j] = gx * inv
                py[j] = gy * inv
                pz[j] = gz * inv
        else:
            for j in range(w - 1):
                gx = yn[j + 1] - yn[j]
                gy = yd[j] - yn[j]
                inv = one / math.sqrt(gx * gx + gy * gy + eps2)
                px[j] = gx * inv
                py[j] = gy * inv
            gy = yd[w - 1] - yn[w - 1]
            px[w - 1] = zero
            py[w - 1] = gy / math.sqrt(gy * gy + eps2)
            if want_z:
                pz = out[slot, 2, n]
                for j in range(w):
                    pz[j] = zero


@njit(cache=True, error_model="numpy", fastmath=_FM)
def _kappa_data_row(x, d, i, p, cur, prev, gn, n, c0, lam, has_z):
    r""":math:`g_n = (x_0 - c_{n,0})^2 - \lambda \kappa_n` of row (d, i), one class, in one
    loop: :math:`\kappa_n` is the backward-difference divergence of the stored ``p`` rows
    (this row ``cur``, the row above ``prev``, the slice before in slot 2). One store and
    few loads per loop, so that LLVM's run-time alias checks stay within its limit and the
    loop vectorises."""
    w = gn.shape[0]
    T = gn.dtype.type
    px = p[cur, 0, n]
    py = p[cur, 1, n]
    pyp = p[prev, 1, n]
    xr = x[0, d, i]
    up = T(1.0 if i > 0 else 0.0)  # the row above is outside the image: no backward term
    r = xr[0] - c0
    gn[0] = r * r - lam * (px[0] + py[0] - up * pyp[0])
    for j in range(1, w):
        r = xr[j] - c0
        gn[j] = r * r - lam * (px[j] - px[j - 1] + py[j] - up * pyp[j])
    if has_z:
        pz = p[cur, 2, n]
        pzp = p[2, 2, n]
        back = T(1.0 if d > 0 else 0.0)
        for j in range(w):
            gn[j] -= lam * (pz[j] - back * pzp[j])


@njit(cache=True, error_model="numpy", fastmath=_FM)
def _force_row(x, y, d, i, p, cur, prev, g, sbar, soft, lam, has_z, mode):
    r""":math:`g_n = \|x - c_n\|^2 - \lambda \kappa_n` of row (d, i), every class, into g;
    for ``mode`` 0 also :math:`\bar s = \sum_n y_n g_n` into ``sbar``."""
    k = p.shape[2]
    w = g.shape[1]
    c = x.shape[0]
    for n in range(k):
        gn = g[n]
        _kappa_data_row(x, d, i, p, cur, prev, gn, n, soft[n, 0], lam, has_z)
        for ch in range(1, c):
            cn = soft[n, ch]
            xr = x[ch, d, i]
            for j in range(w):
                r = xr[j] - cn
                gn[j] += r * r
        if mode == 0:
            yn = y[n, d, i]
            if n == 0:
                for j in range(w):
                    sbar[j] = yn[j] * gn[j]
            else:
                for j in range(w):
                    sbar[j] += yn[j] * gn[j]


@njit(cache=True, error_model="numpy", fastmath=_FM)
def _step_row(z, y, d, i, g, sbar, step, mode, deps):
    r""":math:`z \leftarrow z - \eta w` of row (d, i) (``mode`` 0: softmax-gradient, with
    ``sbar`` from :func:`_force_row`; 1: paper)."""
    k = z.shape[0]
    w = g.shape[1]
    if mode == 0:
        for n in range(k):
            yn = y[n, d, i]
            gn = g[n]
            zn = z[n, d, i]
            for j in range(w):
                zn[j] -= step * (yn[j] * (gn[j] - sbar[j]))
    else:
        a = g.dtype.type(deps / math.pi)
        e2 = deps * deps
        for n in range(k):
            gn = g[n]
            zn = z[n, d, i]
            for j in range(w):
                zv = zn[j]
                zn[j] = zv - step * (a / (e2 + zv * zv)) * gn[j]


@njit(cache=True, error_model="numpy", fastmath=_FM)
def _hard_row(x, lab, d, i, hard):
    """Data term and isotropic length of the hard partition on row (d, i) (as
    :func:`varseg.energy_from_labels`)."""
    dd, h, w = lab.shape
    c = x.shape[0]
    labr = lab[d, i]
    lad = lab[d, i + 1] if i + 1 < h else labr
    laz = lab[d + 1, i] if d + 1 < dd else labr
    data = 0.0
    for ch in range(c):
        xr = x[ch, d, i]
        hc = hard[:, ch]
        for j in range(w):
            r = xr[j] - hc[labr[j]]
            data += r * r
    length = 0.0
    for j in range(w):
        lv = labr[j]
        n2 = labr[j + 1] if j + 1 < w else lv
        n1 = lad[j]
        n0 = laz[j]
        if n0 == lv and n1 == lv and n2 == lv:
            continue
        length += math.sqrt((n0 != lv) + (n1 != lv) + (n2 != lv))
        if n0 != lv:
            length += math.sqrt(1 + (n1 == n0) + (n2 == n0))
        if n1 != lv and n1 != n0:
            length += math.sqrt(1 + (n2 == n1))
        if n2 != lv and n2 != n0 and n2 != n1:
            length += 1.0
    return data, length


@njit(cache=True, error_model="numpy")
def _update_block(b, nb, z, x, y, lab, soft, hard, prow, grow, energy, lam, step, mode, eps2, deps):
    k, dd, h, w = z.shape
    has_z = dd > 1
    p = prow[b]
    g = grow[b]
    sbar = g[k]
    q0, q1 = _block_rows(b, nb, dd * h)
    data = 0.0
    length = 0.0
    for q in range(q0, q1):
        d = q // h
        i = q % h
        cur = q & 1
        prev = 1 - cur
        if i > 0 and q == q0:
            _p_row(y, d, i - 1, eps2, p, prev, has_z)
        _p_row(y, d, i, eps2, p, cur, has_z)
        if d > 0:
            _p_row(y, d - 1, i, eps2, p, 2, True)
        _force_row(x, y, d, i, p, cur, prev, g, sbar, soft, lam, has_z, mode)
        _step_row(z, y, d, i, g, sbar, step, mode, deps)
        dq, lq = _hard_row(x, lab, d, i, hard)
        data += dq
        length += lq
    energy[b, 0] = data
    energy[b, 1] = length


@njit(cache=True, error_model="numpy", nogil=True)
def update_blocks(
    b0, b1, z, x, y, lab, soft, hard, prow, grow, energy, lam, step, mode, ceps, deps
):
    """One step of Eq. 15 in place on the row blocks ``b0`` to ``b1 - 1`` of ``z``, from
    ``y = softmax(z)`` (:func:`softmax_blocks`); the data and length terms of the hard
    partition ``lab`` of each block go to ``energy[b]`` (GIL released)."""
    nb = prow.shape[0]
    eps2 = ceps * ceps
    for b in range(b0, b1):
        _update_block(
            b, nb, z, x, y, lab, soft, hard, prow, grow, energy, lam, step, mode, eps2, deps
        )


class Runner:
    """Run a block kernel over all row blocks on ``threads`` threads (contiguous ranges).

    Python threads that wait on a future sleep instead of spinning, which on a machine shared
    with other busy processes costs less than an OpenMP-style barrier (``parallel=True``
    measured slower than one thread there); results do not depend on ``threads``.
    """

    _pools = {}

    def __init__(self, nb, threads):
        self.nb = nb
        self.threads = max(1, min(int(threads), nb))
        cuts = [(t * nb) // self.threads for t in range(self.threads + 1)]
        self.ranges = list(zip(cuts[:-1], cuts[1:], strict=True))
        self.pool = None
        if self.threads > 1:
            from concurrent.futures import ThreadPoolExecutor

            pool = Runner._pools.get(self.threads)
            if pool is None:
                pool = Runner._pools.setdefault(
                    self.threads, ThreadPoolExecutor(self.threads, "varseg-fixed-point")
                )
            self.pool = pool

    def __call__(self, kernel, *args):
        if self.pool is None:
            kernel(0, self.nb, *args)
            return
        futures = [self.pool.submit(kernel, b0, b1, *args) for b0, b1 in self.ranges[1:]]
        b0, b1 = self.ranges[0]
        kernel(b0, b1, *args)
        for f in futures:
            f.result()

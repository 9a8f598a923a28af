r"""Numba kernels of the Eq. 15 fixed-point iteration (Kim & Ye 2019) behind
:func:`varseg.unrolled.ms_fixed_point`.

The memberships :math:`y = \mathrm{softmax}(z)` live in two buffers (the iterate and the next
one), so that one iteration is **one** fused pass over the (K, D, H, W) logits, rows split
into a fixed number of blocks run on a few threads (:class:`Runner`; the result does not
depend on the thread count). Per row, :func:`iterate_blocks` computes, from the old
memberships :math:`y`:

* the curvature :math:`\kappa_n = \mathrm{div}(\nabla^+ y_n / \sqrt{|\nabla^+ y_n|^2 +
  \epsilon^2})` (backward-difference divergence, the adjoint of the forward differences),
  class by class, keeping of the previous row only the H component of each class;
* the force :math:`g_n = \|x - c_n\|^2 - \lambda \kappa_n` with the soft means (Eq. 13)
  :math:`c_n = \sum y_n x / \sum y_n`, the weighting (``paper``: :math:`\delta_\varepsilon(z_n)
  g_n`; ``softmax-gradient``: :math:`y_n (g_n - \sum_m y_m g_m)`) and the in-place step
  :math:`z \leftarrow z - \eta w`;
* the shared energy (data and isotropic length) of the hard partition of :math:`y`;
* then, on the row of :math:`z` just updated, the new memberships (into the other buffer),
  their change :math:`\sum |y^{new} - y|`, the hard labels :math:`\arg\max_n z_n` and the
  per-block partial sums of the next soft and hard means.

Two classes (K = 2) take shortcuts that keep the same step: :math:`y_1 = 1 - y_0` gives
:math:`\kappa_1 = -\kappa_0`, so :math:`g_1 = \|x - c_0\|^2 + \|x - c_1\|^2 - g_0` (one
curvature, :func:`_pair_force`); the larger logit's exponential is exactly 1, so the
softmax takes one exponential per pixel (:func:`_pair_max_exp`, bit for bit the general
rule); the hard data term picks the mean by a select instead of a gather.

The means of a pass are reduced from the previous pass's block sums at the start of each
chunk of blocks (:class:`Runner` hands chunks to the threads on demand), and the change,
data and length of each block are stored beside its sums, so that one iteration costs one
kernel call per chunk and one small sum in Python (:func:`iterate`). :func:`softmax_blocks`
computes the first memberships.

The torch :func:`varseg.unrolled.fixed_point_step` computes the same step (tested to 1e-10
in float64). All work arrays live in a :class:`Workspace` allocated once per call of the
solver: nothing is allocated per iteration.

Speed (float32; the 2-core machine has AVX2, no AVX-512): inside a row every loop is written
so that LLVM vectorises it: few arrays per loop (each store against each load is a run-time
alias check, and past LLVM's limit the loop stays scalar), masks as products by 0/1 rather
than selects inside reductions, float rather than integer labels in the selects, row sums in
the working type (added to float64 block sums per row). The labels are the argmax of
:math:`z` (the argmax of the memberships: softmax is monotone), found in the pass that finds
the maximum; the normalisation, the change, the soft and the hard sums of one class are one
loop; the curvature's divergence and the data term one loop per class; the curvature's
:math:`1/\sqrt{\cdot}` an approximate reciprocal square root with a Newton step in float32.
No kernel allocates, and all are compiled without Numba's reference counting
(:data:`varseg._jit.NO_NRT`): each row view would otherwise cost two atomic operations on a
count shared by the threads.
"""

from __future__ import annotations

import math
import time
from functools import partial

import numpy as np
from numba import njit

from ._jit import NO_NRT
from ._threads import bound, chunks, team

__all__ = [
    "Workspace",
    "quantile_logits",
    "Runner",
    "softmax_blocks",
    "iterate_blocks",
    "iterate",
    "UPDATE_CODES",
    "n_blocks",
    "CHUNKS_PER_THREAD",
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


def _n_sums(k, c):
    """Columns of the per-block sums: soft den (k), soft num (k, c), hard count (k), hard
    sum (k, c), then change, data and length."""
    return 2 * k * (c + 1) + 3


class Workspace:
    """Every buffer one solve needs, allocated once.

    The memberships, labels and block sums exist twice (``ys``, ``labs``, ``parts``): the
    iterate ``cur`` and the next one; ``y``, ``lab`` and ``part`` are the current ones.

    Parameters
    ----------
    x : ndarray, shape (C, D, H, W)
        Normalised image in the working dtype.
    k : int
        Number of classes K.
    keep : bool
        Take the buffers from :func:`varseg._scratch.scratch` (those of this thread's previous
        solve when the shapes match: no page faults on fresh memory; zeroed, except ``ys`` and
        ``labs``, which the kernels write before they read them). Only for a
        caller that holds one workspace at a time per thread and lets none of its arrays out
        (:func:`varseg.unrolled.ms_fixed_point` returns copies). Default: new arrays.
    """

    def __init__(self, x, k, keep=False):
        c, d, h, w = x.shape
        dt = x.dtype
        self.x = x
        self.k = k
        self.nb = n_blocks(d * h)
        self.cur = 0
        if keep:
            from varseg._scratch import scratch

            def zeros(name, shape, dtype=np.float64, zero=True):
                return scratch("fp." + name, shape, dtype, zero=zero)
        else:

            def zeros(name, shape, dtype=np.float64, zero=True):
                return np.zeros(shape, dtype=dtype)

        # the memberships and labels: every entry written (softmax_blocks, then each
        # iteration's new buffer) before it is read, so kept ones are not zeroed (a pass over
        # 2 K arrays of the image's size); the other buffers are small and zeroed
        self.ys = zeros("ys", (2, k, d, h, w), dt, zero=False)
        self.labs = zeros("labs", (2, d, h, w), np.int32, zero=False)
        self.parts = zeros("parts", (2, self.nb, _n_sums(k, c)))
        # per block: the H component of p of every class, this row and the row above
        self.pyrow = zeros("pyrow", (self.nb, 2, k, w), dt)
        # per block: p along W, along D, along D of the slice before, two work rows
        self.rows = zeros("rows", (self.nb, 5, w), dt)
        # per block: k rows of forces / exponentials and four more rows
        self.grow = zeros("grow", (self.nb, k + 4, w), dt)
        # per block (the first of each thread's range): soft and hard means
        self.means = zeros("means", (self.nb, 2, k, c), dt)

    @property
    def y(self):
        """Current memberships, shape (K, D, H, W)."""
        return self.ys[self.cur]

    @property
    def lab(self):
        """Current hard labels, shape (D, H, W)."""
        return self.labs[self.cur]

    @property
    def part(self):
        """Current block sums, shape (nb, 2 K (C + 1) + 3)."""
        return self.parts[self.cur]


@njit(cache=True, error_model="numpy", **NO_NRT)
def _block_rows(b, nb, rows):
    return (b * rows) // nb, ((b + 1) * rows) // nb


@njit(cache=True, error_model="numpy", **NO_NRT)
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


@njit(cache=True, error_model="numpy", **NO_NRT, fastmath=_FM)
def _pair_max_exp(z0, z1, tmp, labr):
    r""":func:`_row_max_exp` for K = 2 with one exponential per pixel: the larger logit's
    is :math:`e^0 = 1` exactly, the other's :math:`e^{\min - \max}` (the same numbers as
    the general path, bit for bit: same arguments, same order of the sum)."""
    mn, e, mx, s, bits, labf = tmp[0], tmp[1], tmp[2], tmp[3], tmp[4], tmp[5]
    T = mx.dtype.type
    one = T(1.0)
    zero = T(0.0)
    w = z0.shape[0]
    for j in range(w):
        a = z0[j]
        b = z1[j]
        up = b > a
        mx[j] = b if up else a
        mn[j] = a if up else b
        labf[j] = one if up else zero
    for j in range(w):
        labr[j] = np.int32(labf[j])
    _exp_row(mn, mx, e, bits)
    for j in range(w):
        ev = e[j]
        first = labf[j] == zero
        e0 = one if first else ev
        e1 = ev if first else one
        mn[j] = e0
        e[j] = e1
        s[j] = one / ((zero + e0) + e1)


@njit(cache=True, error_model="numpy", **NO_NRT, fastmath=_FM)
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
    if k == 2:
        _pair_max_exp(z[0, d, i], z[1, d, i], tmp, labr)
        return
    one = T(1.0)
    zero = T(0.0)
    z0 = z[0, d, i]
    for j in range(w):
        mx[j] = z0[j]
        labf[j] = zero
    for n in range(1, k):
        zn = z[n, d, i]
        fn = T(n)
        for j in range(w):
            v = zn[j]
            up = v > mx[j]
            mx[j] = v if up else mx[j]
            # a product by 0/1, not a select of labf: with two selects storing to rows of
            # one array the loop stays scalar (5x slower); exact for these small integers
            labf[j] += (one if up else zero) * (fn - labf[j])
    for j in range(w):
        labr[j] = np.int32(labf[j])
    for j in range(w):
        s[j] = zero
    for n in range(k):
        en = tmp[n]
        _exp_row(z[n, d, i], mx, en, bits)
        for j in range(w):
            s[j] += en[j]
    for j in range(w):
        s[j] = one / s[j]


@njit(cache=True, error_model="numpy", **NO_NRT, fastmath=_FM)
def _norm_class_row(yn, yo, en, inv, xr, labf, n):
    r"""One class of one row, one fused loop: :math:`y_n = e_n / \sum_m e_m` into ``yn``,
    and the row sums of :math:`|y_n - y^{old}_n|` (``yo``: the old row, may be ``yn``),
    :math:`y_n`, :math:`y_n x`, :math:`[l = n]` and :math:`[l = n]\,x` (single-channel
    image), in the working type."""
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
        change += abs(v - yo[j])
        yn[j] = v
        xv = xr[j]
        den += v
        num += v * xv
        mine = one if labf[j] == fn else zero  # a product, not a select: it vectorises
        cnt += mine
        hs += xv * mine
    return change, den, num, cnt, hs


@njit(cache=True, error_model="numpy", **NO_NRT, fastmath=_FM)
def _norm_class_row_multi(yn, yo, en, inv, x, d, i, labf, n, acc, k):
    """:func:`_norm_class_row` for C channels (per-channel loops): the sums go to ``acc``."""
    c = x.shape[0]
    zero = yn.dtype.type(0.0)
    change = zero
    den = zero
    for j in range(yn.shape[0]):
        v = en[j] * inv[j]
        change += abs(v - yo[j])
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


@njit(cache=True, error_model="numpy", **NO_NRT, fastmath=_FM)
def _softmax_row(z, x, y, yo, lab, d, i, acc, tmp):
    """Softmax of row (d, i) of ``z`` into ``y``, its change against ``yo``, argmax and the
    partial sums (into ``acc``): one pass for the maximum and the labels, one for the
    exponentials, one per class for the rest."""
    k = z.shape[0]
    c = x.shape[0]
    labr = lab[d, i]
    _row_max_exp(z, d, i, tmp, labr)
    inv = tmp[k + 1]
    labf = tmp[k + 3]
    change = 0.0
    o_cnt = k * (c + 1)
    for n in range(k):
        yn = y[n, d, i]
        yon = yo[n, d, i]
        if c == 1:
            dc, den, num, cnt, hs = _norm_class_row(yn, yon, tmp[n], inv, x[0, d, i], labf, n)
            acc[n] += den
            acc[k + n] += num
            acc[o_cnt + n] += cnt
            acc[o_cnt + k + n] += hs
        else:
            dc = _norm_class_row_multi(yn, yon, tmp[n], inv, x, d, i, labf, n, acc, k)
        change += dc
    acc[2 * o_cnt] += change


@njit(cache=True, error_model="numpy", **NO_NRT)
def _softmax_block(b, nb, z, x, y, lab, part, scratch):
    acc = part[b]
    for t in range(acc.shape[0]):
        acc[t] = 0.0
    rows = z.shape[1] * z.shape[2]
    h = z.shape[2]
    q0, q1 = _block_rows(b, nb, rows)
    for q in range(q0, q1):
        _softmax_row(z, x, y, y, lab, q // h, q % h, acc, scratch[b])


@njit(cache=True, error_model="numpy", **NO_NRT)
def quantile_logits(lum, q, neg_sharpness, out):
    r"""The ``"quantiles"`` start of :func:`varseg.unrolled.ms_fixed_point`: logits
    :math:`z_n = -s\,(\bar x - q_n)^2` (``neg_sharpness`` :math:`= -s`; :math:`\bar x`: the
    luminance ``lum`` (N,), :math:`q_n` its quantiles ``q`` (K,)), computed in float64 and
    rounded to ``out``'s type (K, N): NumPy's ``neg_sharpness * (lum - q[n]) ** 2`` then
    ``astype``, bit for bit."""
    for n in range(out.shape[0]):
        qn = q[n]
        o = out[n]
        for p in range(lum.shape[0]):
            d = lum[p] - qn
            o[p] = neg_sharpness * (d * d)


@njit(cache=True, error_model="numpy", **NO_NRT, nogil=True)
def softmax_blocks(b0, b1, z, x, y, lab, part, scratch):
    r""":math:`y = \mathrm{softmax}(z)` over axis 0, labels and partial sums of the row
    blocks ``b0`` to ``b1 - 1`` (GIL released; ``scratch``: (nb, k + 4, W) work array).

    The change sum (column ``2 K (C + 1)`` of ``part``) is :math:`\sum |y^{new} - y^{old}|`
    against the previous contents of ``y``."""
    nb = part.shape[0]
    for b in range(b0, b1):
        _softmax_block(b, nb, z, x, y, lab, part, scratch)


@njit(cache=True, error_model="numpy", **NO_NRT)
def _reduce_means(part, k, c, soft, hard):
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


@njit(cache=True, error_model="numpy", **NO_NRT, fastmath=_FM_RSQRT)
def _p_class_row(y, n, d, i, eps2, px, py, pz, want_z):
    r""":math:`p = \nabla^+ y_n / \sqrt{|\nabla^+ y_n|^2 + \epsilon^2}` of class n on row
    (d, i): its components along W, H and (``want_z``) D into the rows ``px``, ``py``,
    ``pz`` (forward differences, zero past the last pixel)."""
    k, dd, h, w = y.shape
    one = y.dtype.type(1.0)
    zero = y.dtype.type(0.0)
    yn = y[n, d, i]
    yd = y[n, d, i + 1] if i + 1 < h else yn
    if want_z and d + 1 < dd:
        yz = y[n, d + 1, i]
        for j in range(w):
            gx = yn[j + 1] - yn[j] if j + 1 < w else zero
            gy = yd[j] - yn[j]
            gz = yz[j] - yn[j]
            inv = one / math.sqrt(gx * gx + gy * gy + gz * gz + eps2)
            px[j] = gx * inv
            py[j] = gy * inv
            pz[j] = gz * inv
        return
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
        for j in range(w):
            pz[j] = zero


@njit(cache=True, error_model="numpy", **NO_NRT, fastmath=_FM)
def _kappa_data_row(xr, px, py, pyp, gn, c0, lam, up):
    r""":math:`g_n = (x_0 - c_{n,0})^2 - \lambda \kappa_n` of one row and class, in one
    loop: :math:`\kappa_n` is the backward-difference divergence of this row's ``px``,
    ``py`` and the row above's ``pyp`` (weighted by ``up``: 0 on the first row). One store
    and few loads per loop, so that LLVM's run-time alias checks stay within its limit and
    the loop vectorises."""
    w = gn.shape[0]
    r = xr[0] - c0
    gn[0] = r * r - lam * (px[0] + py[0] - up * pyp[0])
    for j in range(1, w):
        r = xr[j] - c0
        gn[j] = r * r - lam * (px[j] - px[j - 1] + py[j] - up * pyp[j])


@njit(cache=True, error_model="numpy", **NO_NRT, fastmath=_FM)
def _z_div_row(gn, pz, pzp, lam, back):
    r"""Add :math:`-\lambda (p_z - p_z^{before})` (the D part of the divergence) to ``gn``."""
    for j in range(gn.shape[0]):
        gn[j] -= lam * (pz[j] - back * pzp[j])


@njit(cache=True, error_model="numpy", **NO_NRT, fastmath=_FM)
def _force_class(x, y, d, i, n, pyrow, cur, first, rows, gn, soft, lam, eps2):
    r""":math:`g_n = \|x - c_n\|^2 - \lambda \kappa_n` of class n on row (d, i) into ``gn``.

    ``pyrow[cur, n]`` receives this row's H component of p, ``pyrow[1 - cur, n]`` holds the
    row above's (computed here on the ``first`` row of a block)."""
    T = gn.dtype.type
    dd = y.shape[1]
    has_z = dd > 1
    px, pz, pzp, tx, ty = rows[0], rows[1], rows[2], rows[3], rows[4]
    py = pyrow[cur, n]
    pyp = pyrow[1 - cur, n]
    if first and i > 0:
        _p_class_row(y, n, d, i - 1, eps2, tx, pyp, pz, has_z)
    _p_class_row(y, n, d, i, eps2, px, py, pz, has_z)
    up = T(1.0 if i > 0 else 0.0)  # the row above is outside the image: no backward term
    _kappa_data_row(x[0, d, i], px, py, pyp, gn, soft[n, 0], lam, up)
    if has_z:
        if d > 0:
            # has_z (True here), not the literal True: one compiled signature, not two
            _p_class_row(y, n, d - 1, i, eps2, tx, ty, pzp, has_z)
        _z_div_row(gn, pz, pzp, lam, T(1.0 if d > 0 else 0.0))
    for ch in range(1, x.shape[0]):
        cn = soft[n, ch]
        xr = x[ch, d, i]
        for j in range(gn.shape[0]):
            r = xr[j] - cn
            gn[j] += r * r


@njit(cache=True, error_model="numpy", **NO_NRT, fastmath=_FM)
def _step_row(z, y, d, i, g, sbar, step, mode, deps):
    r""":math:`z \leftarrow z - \eta w` of row (d, i) (``mode`` 0: softmax-gradient, with
    :math:`\bar s = \sum_n y_n g_n` in ``sbar``; 1: paper)."""
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


@njit(cache=True, error_model="numpy", **NO_NRT, fastmath=_FM)
def _pair_force(x, d, i, g0, g1, soft):
    r"""K = 2: :math:`g_1 = \sum_c \left[(x_c - c_{0,c})^2 + (x_c - c_{1,c})^2\right] - g_0`.

    With two classes :math:`y_1 = 1 - y_0`, so :math:`\kappa_1 = -\kappa_0`, and
    :math:`g_0 + g_1 = \|x - c_0\|^2 + \|x - c_1\|^2`: the second curvature is not
    computed (equal up to the rounding of :math:`y_0 + y_1 = 1`)."""
    for ch in range(x.shape[0]):
        c0 = soft[0, ch]
        c1 = soft[1, ch]
        xr = x[ch, d, i]
        if ch == 0:
            for j in range(g1.shape[0]):
                r0 = xr[j] - c0
                r1 = xr[j] - c1
                g1[j] = (r0 * r0 + r1 * r1) - g0[j]
        else:
            for j in range(g1.shape[0]):
                r0 = xr[j] - c0
                r1 = xr[j] - c1
                g1[j] += r0 * r0 + r1 * r1


@njit(cache=True, error_model="numpy", **NO_NRT, fastmath=_FM)
def _update_row(z, x, y, d, i, cur, first, pyrow, rows, g, soft, lam, step, mode, eps2, deps):
    """One step of Eq. 15 on row (d, i) of ``z`` from the memberships ``y``, class by class
    (forces into ``g``, then the step)."""
    k = z.shape[0]
    sbar = g[k]
    for n in range(k):
        gn = g[n]
        if k == 2 and n == 1:
            _pair_force(x, d, i, g[0], gn, soft)
        else:
            _force_class(x, y, d, i, n, pyrow, cur, first, rows, gn, soft, lam, eps2)
        if mode == 0:
            yn = y[n, d, i]
            if n == 0:
                for j in range(gn.shape[0]):
                    sbar[j] = yn[j] * gn[j]
            else:
                for j in range(gn.shape[0]):
                    sbar[j] += yn[j] * gn[j]
    _step_row(z, y, d, i, g, sbar, step, mode, deps)


@njit(cache=True, error_model="numpy", **NO_NRT, fastmath=_FM)
def _length_row(labr, lad, laz, row):
    r"""Isotropic length of the hard partition at one row: for each pixel of label
    :math:`l` with the neighbours :math:`n_0, n_1, n_2` after it (next slice, next row, next
    column; the pixel itself past the border), :math:`\sum_n \sqrt{s_n}`, with :math:`s_n`
    the number of the three differences of the one-hot :math:`[\,\cdot = n]` that are not 0.

    Only :math:`n \in \{l, n_0, n_1, n_2\}` count: :math:`s_l = \#\{a: n_a \ne l\}`, and
    a distinct neighbour value :math:`v \ne l` has :math:`s_v = \#\{a: n_a = v\}`. Each
    :math:`s \in \{0, 1, 2, 3\}` is counted, without branches (0/1 products of float
    comparisons, so that the loop vectorises), and the length is :math:`c_1 + \sqrt 2\, c_2
    + \sqrt 3\, c_3` (exact integer counts in the working type; ``row``: a work row)."""
    T = row.dtype.type
    one = T(1.0)
    zero = T(0.0)
    w = labr.shape[0]
    for j in range(w - 1):
        row[j] = T(labr[j + 1])
    row[w - 1] = T(labr[w - 1])
    c1 = zero
    c2 = zero
    c3 = zero
    for j in range(w):
        lv = T(labr[j])
        n0 = T(laz[j])
        n1 = T(lad[j])
        n2 = row[j]
        a0 = one if n0 != lv else zero
        a1 = one if n1 != lv else zero
        a2 = one if n2 != lv else zero
        e10 = one if n1 == n0 else zero
        e20 = one if n2 == n0 else zero
        e21 = one if n2 == n1 else zero
        t0 = a0 + a1 + a2  # s of the own class
        t1 = a0 * (one + e10 + e20)  # s of n0, counted once (at the first of equal values)
        t2 = a1 * (one - e10) * (one + e21)  # s of n1 when new
        t3 = a2 * (one - e20) * (one - e21)  # s of n2 when new (then 1)
        c1 += _is(t0, 1, one, zero) + _is(t1, 1, one, zero) + _is(t2, 1, one, zero) + t3
        c2 += _is(t0, 2, one, zero) + _is(t1, 2, one, zero) + _is(t2, 2, one, zero)
        c3 += _is(t0, 3, one, zero) + _is(t1, 3, one, zero)
    return float(c1) + math.sqrt(2.0) * float(c2) + math.sqrt(3.0) * float(c3)


@njit(cache=True, error_model="numpy", **NO_NRT, inline="always")
def _is(t, v, one, zero):
    """``one`` where the (small integer valued) float ``t`` equals ``v``, else ``zero``."""
    return one if t == v else zero


@njit(cache=True, error_model="numpy", **NO_NRT, fastmath=_FM)
def _hard_row(x, lab, d, i, hard, row):
    """Data term and isotropic length of the hard partition on row (d, i) (as
    :func:`varseg.energy_from_labels`; ``row``: a work row of the working type)."""
    dd, h, w = lab.shape
    c = x.shape[0]
    labr = lab[d, i]
    lad = lab[d, i + 1] if i + 1 < h else labr
    laz = lab[d + 1, i] if d + 1 < dd else labr
    data = 0.0
    for ch in range(c):
        xr = x[ch, d, i]
        hc = hard[:, ch]
        if hard.shape[0] == 2:  # a select instead of a gather: the loop vectorises
            h0 = hc[0]
            h1 = hc[1]
            for j in range(w):
                r = xr[j] - (h1 if labr[j] != 0 else h0)
                data += r * r
        else:
            for j in range(w):
                r = xr[j] - hc[labr[j]]
                data += r * r
    return data, _length_row(labr, lad, laz, row)


@njit(cache=True, error_model="numpy", **NO_NRT)
def _iterate_block(b, nb, z, x, ys, labs, parts, old, means, pyrow, rows, grow, sc):
    """One iteration on the rows of block ``b``: the step of each row from the memberships
    ``ys[old]``, the hard energy of ``labs[old]``, then the new memberships, labels and sums
    of the row (into ``ys[1 - old]``, ``labs[1 - old]``, ``parts[1 - old, b]``)."""
    lam, step, mode, eps2, deps, mb = sc
    k, dd, h, w = z.shape
    new = 1 - old
    y, lab, yn, labn = ys[old], labs[old], ys[new], labs[new]
    soft, hard = means[mb, 0], means[mb, 1]
    acc = parts[new, b]
    for t in range(acc.shape[0]):
        acc[t] = 0.0
    g = grow[b]
    q0, q1 = _block_rows(b, nb, dd * h)
    data = 0.0
    length = 0.0
    for q in range(q0, q1):
        d = q // h
        i = q % h
        _update_row(
            z, x, y, d, i, q & 1, q == q0, pyrow[b], rows[b], g, soft, lam, step, mode, eps2, deps
        )
        dq, lq = _hard_row(x, lab, d, i, hard, rows[b, 3])
        data += dq
        length += lq
        _softmax_row(z, x, yn, y, labn, d, i, acc, g)
    acc[-2] = data
    acc[-1] = length


@njit(cache=True, error_model="numpy", **NO_NRT, nogil=True)
def iterate_blocks(
    b0, b1, z, x, ys, labs, parts, old, means, pyrow, rows, grow, lam, step, mode, ceps, deps
):
    r"""One iteration of Eq. 15 in place on the row blocks ``b0`` to ``b1 - 1`` of ``z``
    (GIL released).

    From the memberships ``ys[old]`` (:math:`\mathrm{softmax}(z)`) and their block sums
    ``parts[old]`` (the means, reduced once into ``means[b0]``), the step of every row of
    the blocks, then ``ys[1 - old] = softmax(z)``, the labels ``labs[1 - old]`` and the
    block sums ``parts[1 - old, b]``: the partial sums of the new means, their change
    against ``ys[old]``, and the data and length terms of the hard partition ``labs[old]``
    (last three columns)."""
    nb = parts.shape[1]
    k = z.shape[0]
    c = x.shape[0]
    _reduce_means(parts[old], k, c, means[b0, 0], means[b0, 1])
    sc = (lam, step, mode, ceps * ceps, deps, b0)
    for b in range(b0, b1):
        _iterate_block(b, nb, z, x, ys, labs, parts, old, means, pyrow, rows, grow, sc)


#: Chunks of row blocks per thread that :class:`Runner` hands out on demand.
CHUNKS_PER_THREAD = 4


class Runner:
    """Run a block kernel over all row blocks on ``threads`` threads.

    The blocks are cut into ``CHUNKS_PER_THREAD * threads`` contiguous chunks that the
    calling thread and the workers of the process-wide :func:`varseg._threads.team` take one
    after the other from a shared iterator (under a lock) until none is left: on a machine
    shared with other busy processes a thread that loses its core leaves its remaining chunks
    to the others instead of holding up the whole pass (a fixed split waits for the slowest
    thread). Waiting threads sleep instead of spinning (``parallel=True`` measured slower than
    one thread there). A chunk's result does not depend on which thread runs it, so results
    do not depend on ``threads``.
    """

    def __init__(self, nb, threads):
        self.nb = nb
        self.threads = max(1, min(int(threads), nb))
        self.chunks = chunks(nb, self.threads, CHUNKS_PER_THREAD)
        self.team = team(self.threads - 1) if self.threads > 1 else None

    def __call__(self, kernel, *args):
        if self.team is None:
            kernel(0, self.nb, *args)
            return
        work = partial(bound, kernel, args)
        self.team.drain(self.chunks, [work] * self.threads)


def iterate(ws, z, lam, step, mode, ceps, deps, max_iter, tol, t0, threads=1):
    """Run the fixed-point loop on the logits ``z`` (updated in place) from ``ws``.

    One kernel call (:func:`iterate_blocks`) and one sum of the block totals per
    iteration; ``ws.y`` and ``ws.lab`` are the last memberships and labels.

    Parameters
    ----------
    ws : Workspace
    z : ndarray, shape (K, D, H, W)
        Logits in the working dtype.
    lam, step, ceps, deps : scalar of the working dtype
        λ, η, the curvature's ε and the Dirac's ε.
    mode : int
        :data:`UPDATE_CODES` of the weighting.
    max_iter : int
    tol : float
        Stop when the mean absolute change of the memberships is below ``tol``.
    t0 : float
        ``time.perf_counter()`` origin of the recorded times.
    threads : int

    Returns
    -------
    n_iter : int
    converged : bool
    energy : list of float
        ``energy[k]`` (k < n_iter), the shared energy of iterate k, computed inside the step
        that leaves it (the last record is the caller's).
    times : list of float
        Seconds since ``t0`` at the start and after every iteration.
    """
    x = ws.x
    run = Runner(ws.nb, threads)
    per_entry = 1.0 / z.size
    ws.cur = 0
    y0 = ws.ys[0]
    run(softmax_blocks, z, x, y0, ws.labs[0], ws.parts[0], ws.grow)
    tail = (ws.means, ws.pyrow, ws.rows, ws.grow, lam, step, mode, ceps, deps)
    energy, times = [], [time.perf_counter() - t0]
    converged = False
    it = 0
    for it in range(1, max_iter + 1):  # noqa: B007 - it is the count run
        old = ws.cur
        run(iterate_blocks, z, x, ws.ys, ws.labs, ws.parts, old, *tail)
        ws.cur = 1 - old
        change, data, length = ws.parts[1 - old, :, -3:].sum(axis=0)
        energy.append(float(data + lam * length))
        times.append(time.perf_counter() - t0)
        if float(change) * per_entry < tol:
            converged = True
            break
    return it, converged, energy, times

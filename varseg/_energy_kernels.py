"""Numba kernels behind :func:`varseg.energy.energy_from_labels` (hard partitions).

``hard_energy`` runs rows in parallel; ``hard_energy_serial`` is the same computation on one
thread, faster for small images (thread start-up dominates below ~10^5 pixels). Both are
compiled from the one source below (:func:`varseg._jit.jit_family`, ``parallel=True`` or not;
``prange`` is ``range`` in the serial one), each under its own cache entry.
"""

import math
import types

import numpy as np
from numba import prange

from ._jit import jit_family

__all__ = ["hard_energy", "hard_energy_serial", "warm"]


def _row_sums(x, lab, q, H, part_s, part_n):
    """Per-class pixel counts and intensity sums of row ``q`` (= z * H + i)."""
    z = q // H
    i = q - z * H
    for j in range(lab.shape[2]):
        l = lab[z, i, j]
        part_n[q, l] += 1.0
        for c in range(x.shape[0]):
            part_s[q, l, c] += x[c, z, i, j]


def _pixel_length(lab, z, i, j, D, H, W, isotropic):
    l = lab[z, i, j]
    n0 = lab[z + 1, i, j] if z + 1 < D else l
    n1 = lab[z, i + 1, j] if i + 1 < H else l
    n2 = lab[z, i, j + 1] if j + 1 < W else l
    m = (n0 != l) + (n1 != l) + (n2 != l)
    if m == 0:
        return 0.0
    if not isotropic:
        return 2.0 * m
    out = math.sqrt(m)
    # each other class n present among the neighbours: sqrt(#axes whose neighbour is n)
    if n0 != l:
        out += math.sqrt((n0 == n0) + (n1 == n0) + (n2 == n0))
    if n1 != l and n1 != n0:
        out += math.sqrt(1 + (n2 == n1))
    if n2 != l and n2 != n0 and n2 != n1:
        out += 1.0
    return out


def _row_energy(x, lab, means, q, isotropic):
    """Data and length contributions of row ``q`` (= z * H + i)."""
    C, D, H, W = x.shape
    z = q // H
    i = q - z * H
    data = 0.0
    length = 0.0
    for j in range(W):
        l = lab[z, i, j]
        for c in range(C):
            r = x[c, z, i, j] - means[l, c]
            data += r * r
        length += _pixel_length(lab, z, i, j, D, H, W, isotropic)
    return data, length


def _means(part_s, part_n, k):
    sums = part_s.sum(axis=0)
    counts = part_n.sum(axis=0)
    means = np.zeros((k, part_s.shape[2]))
    for l in range(k):
        if counts[l] > 0:
            means[l] = sums[l] / counts[l]
    return means


def _hard_energy(x, lab, k, isotropic):
    r"""Data term, length term and means (k, C) of a hard partition.

    ``x``: (C, D, H, W) float, ``lab``: (D, H, W) int64 in [0, k): data
    :math:`\sum_r \|x(r) - c_{l(r)}\|^2` and the (isotropic or anisotropic) TV of the
    indicator functions, forward differences, Neumann boundary (Eq. 2-6 of Kim & Ye 2019).
    See :func:`varseg.energy.energy_from_labels`.
    """
    rows = x.shape[1] * x.shape[2]
    part_s = np.zeros((rows, k, x.shape[0]))
    part_n = np.zeros((rows, k))
    # np.int64(q): the parallel loop's index is uint64, the serial one's int64; one type
    # compiles each helper once instead of twice
    for q in prange(rows):
        _row_sums(x, lab, np.int64(q), x.shape[2], part_s, part_n)
    means = _means(part_s, part_n, k)
    # per-row terms, summed afterwards in row order: the same floats whatever the number of
    # threads (a prange reduction adds the threads' partial sums in an order that depends on
    # it), and the same as the serial kernel's
    part_e = np.zeros((rows, 2))
    for q in prange(rows):
        d, ln = _row_energy(x, lab, means, np.int64(q), isotropic)
        part_e[q, 0] = d
        part_e[q, 1] = ln
    data = 0.0
    length = 0.0
    for q in range(rows):
        data += part_e[q, 0]
        length += part_e[q, 1]
    return data, length, means


_SOURCE = {
    name: obj
    for name, obj in list(globals().items())
    if isinstance(obj, types.FunctionType) and obj.__module__ == __name__
}
_PARALLEL = jit_family(
    _SOURCE,
    "parallel",
    cache=True,
    parallel=True,
    overrides={name: {"parallel": False} for name in _SOURCE if name != "_hard_energy"},
)
_SERIAL = jit_family(_SOURCE, "serial", cache=True)

#: Rows in parallel (``prange``).
hard_energy = _PARALLEL._hard_energy
#: The same computation on one thread.
hard_energy_serial = _SERIAL._hard_energy


def warm():
    """Compile (or load) both kernels on a tiny partition, for the one signature that
    :func:`varseg.energy.energy_from_labels` calls (float64 image, int64 labels, C order)."""
    lab = np.zeros((1, 2, 3), dtype=np.int64)
    lab[0, 1] = 1
    x = np.arange(6, dtype=np.float64).reshape(1, 1, 2, 3)
    for kernel in (hard_energy, hard_energy_serial):
        kernel(x, lab, 2, True)

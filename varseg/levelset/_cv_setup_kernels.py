r"""Set-up and finish of :func:`varseg.levelset.chan_vese` in few passes and several threads.

* :func:`normalised`: scikit-image's normalisation :math:`y = \min(\max((x - x_{min}) / (x_{max}
  - x_{min}), 0), 1)` (:func:`varseg.energy.normalise_image`, bit for bit: the same float64
  operations in the same order) in one pass over the raw image after its min/max, writing the
  float64 image of the means and energies and, in the same pass, the float32 copy of the
  curvature scheme; a ``uint8`` or ``float64`` image is read as it is (no float64 copy first).
* :func:`classify_threads` / :func:`final_energy_threads`: the classification of the initial
  level sets and the energy of the last partition (the row-block kernels
  :func:`~varseg.levelset._cv_kernels.classify_blocks` and
  :func:`~varseg.levelset._cv_kernels.final_energy_rows`) with their blocks / rows split over
  threads and reduced in the serial order afterwards, so the values do not depend on the
  number of threads; the final energy also writes the public int64 labels in the same pass.

The kernels are compiled with ``cache=True, nogil=True`` by
:func:`varseg._jit.ensure_compiled` (the warm-up of :func:`chan_vese`) before any clock starts.
"""

from __future__ import annotations

import math

import numpy as np

from .._jit import jit_family
from .._scratch import scratch
from .._threads import run_split
from ..energy import normalise_image
from ._cv_kernels import (
    classify_blocks,
    classify_parts,
    final_energy_rows,
    reduce_classified,
    sum_in_order,
)

__all__ = [
    "normalised",
    "classify_threads",
    "final_energy_threads",
    "NATIVE_DTYPES",
]


#: Raw image types read by the normalisation kernel as they are (other types are converted to
#: float64 first); one compiled signature each.
NATIVE_DTYPES = (np.dtype(np.uint8), np.dtype(np.float64))

_ALIGN = 4096  # pixels: thread bounds of the element-wise kernels on whole cache lines / pages


def _normalise_range(a, b, src, xmin, scale, out, outw):
    r"""Entries ``a .. b - 1`` of the normalised image: ``out[i] = min(max((float64(src[i]) -
    xmin) / scale, 0), 1)`` (``src[i] - xmin`` when ``scale == 0``), and ``outw[i]`` its
    float32 rounding when ``outw`` is not empty (IEEE arithmetic: the operations of
    :func:`varseg.energy.normalise_image`)."""
    w = outw.shape[0] > 0
    if scale == 0.0:
        for i in range(a, b):
            v = np.float64(src[i]) - xmin
            out[i] = v
            if w:
                outw[i] = np.float32(v)
        return
    for i in range(a, b):
        v = (np.float64(src[i]) - xmin) / scale
        v = min(max(v, 0.0), 1.0)
        out[i] = v
        if w:
            outw[i] = np.float32(v)


_K = jit_family(
    {"_normalise_range": _normalise_range},
    "cvsetup",
    cache=True,
    nogil=True,
    error_model="numpy",
)


def normalised(x_raw, wdtype, threads=1):
    r"""Normalise a channels-first image as :func:`varseg.energy.normalise_image` does.

    :math:`y = (x - x_{min}) / (x_{max} - x_{min})` clipped to [0, 1] (Chan & Vese 2001 as
    ``skimage.segmentation.chan_vese`` scales its input), bit-identical to
    :func:`~varseg.energy.normalise_image`, in one pass after the min/max.

    Parameters
    ----------
    x_raw : ndarray, shape (C,) + S
        Finite real image, any numeric type, any strides.
    wdtype : numpy.dtype
        Working precision of the curvature scheme (float32 or float64).
    threads : int
        Threads of the pass.

    Returns
    -------
    x : ndarray of float64, shape (C,) + S, C-contiguous
        The normalised image (a :func:`scratch` buffer: overwritten by the next call).
    xw : ndarray of ``wdtype``
        ``x`` rounded to float32 (``x`` itself for float64; a :func:`scratch` buffer).
    xmin, scale : float
        ``x = (x_raw - xmin) / scale`` (``scale = 1`` for a constant image).
    constant : bool
        True for a constant image (``x`` all 0).
    """
    wdtype = np.dtype(wdtype)
    src = x_raw if x_raw.dtype in NATIVE_DTYPES else x_raw.astype(np.float64)
    src = np.ascontiguousarray(src)
    xmin, xmax = float(src.min()), float(src.max())
    if not math.isfinite(xmax - xmin):  # range wider than the largest float: pre-scaled there
        x, xmin, scale = normalise_image(x_raw, return_scale=True)
        return x, x.astype(wdtype, copy=False), xmin, scale, False
    scale = xmax - xmin
    x = scratch("cv.x", src.shape, np.float64)
    f32 = wdtype == np.float32
    xw = scratch("cv.xw", src.shape if f32 else (0,), np.float32)
    flat = src.reshape(-1)
    run_split(
        _K._normalise_range,
        flat.size,
        threads,
        flat,
        xmin,
        scale,
        x.reshape(-1),
        xw.reshape(-1),
        align=_ALIGN,
    )
    return x, (xw if f32 else x), xmin, (scale if scale != 0 else 1.0), scale == 0


def classify_threads(x, phi, lab, xtot, threads=1):
    r"""Classify the pixels by the level sets ``phi``; the phase counts and sums.

    The row blocks of :func:`~varseg.levelset._cv_kernels.classify_blocks` split over
    ``threads`` threads; the block partials are reduced in block order
    (:func:`~varseg.levelset._cv_kernels.reduce_classified`), so the result does not depend
    on ``threads``.

    Parameters
    ----------
    x : ndarray of float64, shape (C, D, H, W)
        Normalised image.
    phi : ndarray, shape (m, D, H, W)
        Level sets (float32 or float64).
    lab : ndarray of uint8, shape (D, H, W)
        Output: the labels of ``phi`` (bit j set where :math:`\phi_j < 0`).
    xtot : ndarray of float64, shape (C + 1,)
        Per-channel sums of ``x`` followed by the number of pixels.
    threads : int
        Threads of the pass.

    Returns
    -------
    cnt : ndarray, shape (K,)
        Pixels per phase of ``lab`` (``K = 2**m``).
    sums : ndarray, shape (K, C)
        Per-channel sums of ``x`` per phase.
    ccnt, csums : ndarray, shapes (K,) and (K, C)
        Their corrections for the ``phi > 0`` convention (scikit-image's means).
    ndiff : int
        Pixels where the two conventions differ (some :math:`\phi_j` exactly 0).
    """
    pc, ps, pcc, pcs, pnd = classify_parts(x.shape[0], phi.shape[0], x.shape[1] * x.shape[2])
    run_split(classify_blocks, pc.shape[0], threads, x, phi, lab, pc, ps, pcc, pcs, pnd)
    return reduce_classified(pc, ps, pcc, pcs, pnd, xtot)


def final_energy_threads(x, lab, m_lab, threads=1):
    """Data and length terms of the hard partition ``lab`` with its means ``m_lab``.

    The shared energy of :func:`varseg._energy_kernels.hard_energy` (isotropic TV) by the row
    helpers of the step (:func:`~varseg.levelset._cv_kernels.final_energy_rows`), the rows
    split over ``threads`` threads and the per-row terms summed in row order afterwards
    (:func:`~varseg.levelset._cv_kernels.sum_in_order`): the same values for any
    ``threads``. The same pass writes ``lab`` as int64.

    Parameters
    ----------
    x : ndarray of float64, shape (C, D, H, W)
        Normalised image.
    lab : ndarray of uint8, shape (D, H, W)
        Labels of the partition.
    m_lab : ndarray of float64, shape (K, C)
        Means of its phases.
    threads : int
        Threads of the pass.

    Returns
    -------
    data, length : float
        Data term and length term (the energy is ``data + lam * length``).
    labels : ndarray of int64, shape (D, H, W)
        ``lab`` as int64.
    """
    rows = x.shape[1] * x.shape[2]
    rd = np.empty(rows)
    rl = np.empty(rows)
    lab64 = np.empty(lab.shape, dtype=np.int64)
    run_split(final_energy_rows, rows, threads, x, lab, m_lab, rd, rl, lab64)
    return sum_in_order(rd), sum_in_order(rl), lab64

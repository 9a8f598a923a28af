"""Compile every level-set and energy kernel ahead of time (``varseg warmup``)."""

from __future__ import annotations

import time

__all__ = ["warmup"]


def warmup():
    """Compile (or load from Numba's cache) every Chan–Vese, Li 2011 and hard-energy kernel.

    Covers :func:`varseg.levelset.chan_vese` in float32 and float64 (2D and 3D, any
    number of phases and channels: the kernels are the same), the bias-field level set
    :func:`varseg.levelset.bias_field_levelset` and
    :func:`varseg.energy.energy_from_labels`. Later calls in this process start at once, and
    later processes load the kernels from the on-disk cache.

    Returns
    -------
    dict
        Seconds spent per kernel group (about 0 for kernels that were already loaded).
    """
    from ._bias_field import warm_kernels as warm_lic
    from ._chan_vese import warm_kernels as warm_chan_vese

    spent = dict(warm_chan_vese())
    t0 = time.perf_counter()
    warm_lic()
    spent[("lic",)] = time.perf_counter() - t0
    return spent

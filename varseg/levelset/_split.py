"""Run a GIL-free kernel over a range of indices in a few threads (set-up and finish of
:func:`varseg.levelset.chan_vese`).

The kernels called here write disjoint parts of their outputs (per row, per block of rows or
per chunk of pixels) and any reduction over those parts is done afterwards in a fixed order,
so the result does not depend on the number of threads.
"""

from __future__ import annotations

from functools import partial

__all__ = ["run_split", "split_bounds"]


def split_bounds(n, parts, align=1):
    """``parts`` contiguous ranges ``(a, b)`` covering ``0 .. n`` (inner bounds multiples of
    ``align``; fewer ranges when ``n`` is too small to give each at least ``align``)."""
    parts = max(1, min(int(parts), -(-n // max(align, 1)) or 1))
    cuts = [0] + [min(n, (k * n // parts) // align * align) for k in range(1, parts)] + [n]
    return [(a, b) for a, b in zip(cuts[:-1], cuts[1:], strict=True) if b > a] or [(0, n)]


def run_split(kernel, n, threads, *args, align=1):
    """Call ``kernel(a, b, *args)`` on the ranges of :func:`split_bounds` (``n``, ``threads``,
    ``align``): the calling thread takes the first range, the workers of the process-wide
    :func:`varseg._threads.team` the others (the kernels release the GIL). Exceptions of the
    other threads are re-raised here."""
    bounds = split_bounds(n, threads, align)
    if len(bounds) == 1:
        kernel(*bounds[0], *args)
        return
    from .._threads import team

    team(len(bounds) - 1).run([partial(kernel, a, b, *args) for a, b in bounds])

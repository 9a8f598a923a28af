"""``varseg warmup``: compile every Chan–Vese and energy kernel ahead of time.

The kernels land in Numba's on-disk cache (next to the sources, or ``NUMBA_CACHE_DIR``), so
later processes load them in well under a second instead of compiling them on first use.
"""

from __future__ import annotations


def add_arguments(p):
    p.add_argument("--quiet", "-q", action="store_true", help="print nothing")


def main(args):
    """Run :func:`varseg._jit.warmup` and print the seconds spent per kernel group."""
    import time

    from varseg._jit import warmup

    t0 = time.perf_counter()
    spent = warmup()
    if not args.quiet:
        for key, seconds in spent.items():
            print(f"{' '.join(map(str, key)):24s} {seconds:7.2f} s")
        print(f"{'total':24s} {time.perf_counter() - t0:7.2f} s")
    return 0

"""The one place that limits the CPU threads of BLAS/OpenMP, Numba and torch."""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager

__all__ = ["limit_threads", "torch_threads"]

_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS")


def limit_threads(n):
    """Use at most ``n`` CPU threads in this process.

    Sets the environment variables read at import by OpenMP/BLAS, Numba and torch (for
    worker processes that have not imported them yet) and, for the libraries already
    imported, their run-time setting (``numba.set_num_threads``, ``torch.set_num_threads``).
    ``NUMBA_NUM_THREADS`` is left alone once Numba is imported (Numba refuses a changed value
    after its threads are launched). torch is never imported here.

    Raises
    ------
    ValueError
        ``n`` is not a positive integer.
    """
    from ._validation import check_int

    n = check_int(n, "threads")
    numba_loaded = "numba" in sys.modules
    for var in _ENV:
        # once Numba is imported its thread count is fixed at launch: changing the variable
        # then would make Numba's next configuration reload refuse to run
        if not (numba_loaded and var == "NUMBA_NUM_THREADS"):
            os.environ[var] = str(n)
    if numba_loaded:
        import numba

        numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(n)
    return n


@contextmanager
def torch_threads(n):
    """Run the block with ``n`` torch CPU threads (``torch.set_num_threads``), then restore
    the previous count, also on an error. Imports torch (for a method that runs on it).

    Raises
    ------
    ValueError
        ``n`` is not a positive integer.
    """
    from ._validation import check_int

    n = check_int(n, "threads")
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield n
    finally:
        torch.set_num_threads(before)

"""Per-thread work buffers kept between the calls of a solver (:func:`scratch`).

Fresh memory costs a page fault per 4 KiB page at its first write (on the 2-core test
machine about 0.8 ms per MiB, several times the pass that writes it), and the allocator gives
the memory of a finished call back to the system. The internal arrays of a solver that never
leave it (the normalised image, a second level-set buffer, the memberships of the fixed
point) are therefore kept per thread, up to :data:`KEEP_BYTES` in all, and handed out again
when a later call of the same thread asks for the same name, shape and type.
"""

from __future__ import annotations

import threading

import numpy as np

__all__ = ["scratch", "KEEP_BYTES"]

#: Largest total size of the buffers (:func:`scratch`) a thread keeps between calls.
KEEP_BYTES = 64 << 20

_WS = threading.local()


def scratch(name, shape, dtype, *, zero=False):
    """An internal buffer: the one of the previous call of this thread when ``name``, its
    shape and type match, else a new one.

    Its contents are those the previous call left (uninitialised for a new one) unless
    ``zero``. A buffer returned here must not leave the solver (it is handed out again).

    Parameters
    ----------
    name : str
        The caller's name for the buffer, unique among the buffers of one call (e.g.
        ``"cv.phi_next"``).
    shape : tuple of int
    dtype : numpy dtype
    zero : bool
        Fill the buffer with zeros (as ``numpy.zeros``; a kept buffer costs one pass, no page
        faults).

    Returns
    -------
    numpy.ndarray
        C-contiguous.
    """
    store = getattr(_WS, "bufs", None)
    if store is None:
        store = _WS.bufs = {}
    buf = store.get(name)
    if buf is None or buf.shape != tuple(shape) or buf.dtype != dtype:
        buf = np.empty(shape, dtype)
        store[name] = buf
        if sum(b.nbytes for b in store.values()) > KEEP_BYTES:
            store.clear()  # too large to keep: this call's buffer only
    if zero:
        buf.fill(0)
    return buf

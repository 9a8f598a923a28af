"""The one place for CPU threads: the limits of BLAS/OpenMP, Numba and torch, and the
process-wide team of worker threads that runs the solvers' GIL-free kernels."""

from __future__ import annotations

import os
import sys
import threading
from contextlib import contextmanager

__all__ = [
    "SERIAL_BELOW",
    "Team",
    "bound",
    "chunks",
    "limit_threads",
    "run_split",
    "solver_threads",
    "split_bounds",
    "team",
    "torch_threads",
]

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


class Team:
    """Persistent worker threads that run GIL-free kernels beside the calling thread.

    :meth:`run` hands one callable to each worker and runs the first one itself, then waits
    for all of them. Each worker sleeps on its own lock between calls, so handing out the work
    of one solver iteration costs two lock operations per worker (about 30 µs for one worker,
    measured on the 2-core machine against about 100 µs through
    ``concurrent.futures.ThreadPoolExecutor``'s futures), and a waiting thread sleeps instead
    of spinning. Use the process-wide team of :func:`team`.

    Parameters
    ----------
    workers : int
        Number of worker threads (the calling thread is not counted).
    name : str
        Prefix of the threads' names.
    """

    def __init__(self, workers, name="varseg"):
        self.pid = os.getpid()
        self.busy = threading.Lock()  # one run at a time; another caller runs serially
        self._workers = [_Worker(f"{name}-{i}") for i in range(int(workers))]

    @property
    def workers(self):
        """Number of worker threads."""
        return len(self._workers)

    def run(self, calls):
        """Run ``calls[0]()`` here and ``calls[i]()`` on worker ``i - 1``, concurrently.

        Returns after all have finished. The first exception raised by any call is re-raised
        here (after every call has finished). If the team is running another caller's work (two
        Python threads solving at once), or ``calls`` has more entries than workers + 1, the
        calls run one after the other in this thread: the kernels' results do not depend on
        which thread runs which part.

        Parameters
        ----------
        calls : sequence of callables taking no argument
        """
        calls = list(calls)
        if len(calls) - 1 > len(self._workers) or not self.busy.acquire(blocking=False):
            for call in calls:
                call()
            return
        try:
            used = self._workers[: len(calls) - 1]
            for worker, call in zip(used, calls[1:], strict=True):
                worker.start(call)
            error = None
            try:
                calls[0]()
            except BaseException as exc:  # noqa: BLE001 - re-raised below, after the workers
                error = exc
            for worker in used:
                exc = worker.wait()
                error = error or exc
            if error is not None:
                raise error
        finally:
            self.busy.release()

    def drain(self, chunks, workers):
        """Run ``workers[t](b0, b1)`` for every chunk ``(b0, b1)`` of ``chunks``, each chunk once.

        Thread ``t`` (the caller is thread 0) takes the next chunk from a shared iterator
        (under a lock) until none is left: a thread that loses its core to another process
        leaves its remaining chunks to the others instead of holding up the pass. Which
        thread ran a chunk must not change its result (the kernels write per-block
        partial sums, reduced in block order afterwards).

        Parameters
        ----------
        chunks : sequence of (int, int)
        workers : sequence of callables ``(b0, b1) -> None``
            One per thread, e.g. the same kernel bound to each thread's scratch buffers.
        """
        it = iter(chunks)
        lock = threading.Lock()

        def take():
            with lock:
                return next(it, None)

        def loop(work):
            def call():
                b = take()
                while b is not None:
                    work(*b)
                    b = take()

            return call

        self.run([loop(w) for w in workers])


class _Worker:
    """One daemon thread that runs the callable it is handed (:meth:`start`) and reports when
    it is done (:meth:`wait`), sleeping on a lock in between."""

    def __init__(self, name):
        self._go = threading.Lock()
        self._done = threading.Lock()
        self._go.acquire()
        self._done.acquire()
        self._call = None
        self._error = None
        threading.Thread(target=self._loop, name=name, daemon=True).start()

    def _loop(self):
        while True:
            self._go.acquire()
            try:
                self._call()
            except BaseException as exc:  # noqa: BLE001 - handed to the caller by wait()
                self._error = exc
            self._call = None
            self._done.release()

    def start(self, call):
        self._call = call
        self._error = None
        self._go.release()

    def wait(self):
        self._done.acquire()
        return self._error


_TEAM = None
_TEAM_LOCK = threading.Lock()


#: Work items (pixels x level sets x channels) below which a solver runs in one thread: the
#: hand-off to a second thread (tens of µs) would cost more than it saves.
SERIAL_BELOW = 1 << 15


def solver_threads(n_items):
    """Threads for a solver pass over ``n_items`` work items: 1 below :data:`SERIAL_BELOW`,
    else ``numba.get_num_threads()`` (``NUMBA_NUM_THREADS``, :func:`limit_threads`)."""
    if n_items < SERIAL_BELOW:
        return 1
    import numba

    return numba.get_num_threads()


def split_bounds(n, parts, align=1):
    """``parts`` contiguous ranges ``(a, b)`` covering ``0 .. n`` (inner bounds multiples of
    ``align``; fewer ranges when ``n`` is too small to give each at least ``align``)."""
    parts = max(1, min(int(parts), -(-n // max(align, 1)) or 1))
    cuts = [0] + [min(n, (k * n // parts) // align * align) for k in range(1, parts)] + [n]
    return [(a, b) for a, b in zip(cuts[:-1], cuts[1:], strict=True) if b > a] or [(0, n)]


def chunks(n, threads, per_thread):
    """Cut ``range(n)`` into ``min(n, per_thread * threads)`` contiguous ``(b0, b1)`` chunks
    (one chunk for one thread), as even as integer division makes them
    (:func:`split_bounds`)."""
    return split_bounds(n, per_thread * threads if threads > 1 else 1)


def bound(kernel, args, b0, b1):
    """Call ``kernel(b0, b1, *args)``: a range kernel as a worker of :meth:`Team.drain`.

    Bind ``kernel`` and ``args`` with :func:`functools.partial`, e.g.
    ``team.drain(chunks, [partial(bound, kernel, args)] * threads)``; a module-level function
    rather than a closure, one adapter for every solver.

    Parameters
    ----------
    kernel : callable ``(b0, b1, *args) -> None``
        GIL-free kernel over the range ``b0 .. b1 - 1`` (of row blocks, rows, ...).
    args : tuple
        Its other arguments, after the range.
    b0, b1 : int
        The range (a chunk handed out by :meth:`Team.drain`).
    """
    kernel(b0, b1, *args)


def run_split(kernel, n, threads, *args, align=1):
    """Call ``kernel(a, b, *args)`` on the ranges of :func:`split_bounds` (``n``, ``threads``,
    ``align``): the calling thread takes the first range, the workers of the process-wide
    :func:`team` the others (the kernels release the GIL). Exceptions of the other threads
    are re-raised here. The kernels must write disjoint parts of their outputs and leave any
    reduction to a fixed order afterwards, so that the result does not depend on
    ``threads``."""
    bounds = split_bounds(n, threads, align)
    if len(bounds) == 1:
        kernel(*bounds[0], *args)
        return
    from functools import partial

    team(len(bounds) - 1).run([partial(kernel, a, b, *args) for a, b in bounds])


def team(workers):
    """The process-wide :class:`Team` with at least ``workers`` worker threads.

    Created on first use, grown when more workers are asked for, and created afresh in a
    forked child (whose copy of the parent's threads does not run).
    """
    global _TEAM
    with _TEAM_LOCK:
        t = _TEAM
        if t is None or t.pid != os.getpid() or t.workers < workers:
            _TEAM = t = Team(max(int(workers), t.workers if t is not None else 0))
        return t

"""Numba helpers: kernel families from one source, one-time compilation outside the timings.

* :func:`jit_family` compiles one set of plain Python functions (kernels and the helpers they
  call) under a given set of Numba options, each clone under its own ``__qualname__`` so that
  Numba's on-disk cache keeps one entry per variant (the cache does not key on ``fastmath`` or
  ``parallel``, numba issue #6845): the fast-math and IEEE families of the Chan–Vese kernels,
  the parallel and serial hard-partition energy, all from one undecorated source.
* :func:`ensure_compiled` runs a small warm-up function once per process before a solver
  starts its clock, so that reported times never contain JIT compilation; a compilation that
  actually happens (not a cache load) is announced by one ``INFO`` log line.
* :func:`warmup` compiles (or loads from the cache) every Chan–Vese and energy kernel ahead of
  time (``varseg warmup``).
"""

from __future__ import annotations

import logging
import threading
import time
import types

from numba.core import event as _event

__all__ = ["jit_family", "ensure_compiled", "compiled_keys", "warmup"]

log = logging.getLogger(__name__)

_DONE: dict = {}
_LOCK = threading.Lock()


def jit_family(functions, suffix, *, overrides=None, **options):
    """Compile a family of plain Python functions with one set of Numba options.

    Every function is cloned (same code, a copy of its module's globals) under the qualified
    name ``<name>__<suffix>``, and every name of the family inside the copied globals is bound
    to the family's own compiled clone, so that kernels call helpers of the same variant.
    Each variant thus has its own entry in Numba's on-disk cache.

    Parameters
    ----------
    functions : dict of str to function
        Undecorated functions by the global name under which they call each other.
    suffix : str
        Variant name (an identifier), e.g. ``"fast"`` or ``"ieee"``.
    overrides : dict of str to dict, optional
        Extra or replaced options per function name (e.g. a different ``fastmath`` set).
    **options
        Options of :func:`numba.njit` (``cache``, ``fastmath``, ``parallel``, ...).

    Returns
    -------
    types.SimpleNamespace
        The compiled dispatchers, by the original names.

    Raises
    ------
    ValueError
        If ``suffix`` is not an identifier or a value of ``functions`` is not a function.
    """
    from numba import njit

    if not str(suffix).isidentifier():
        raise ValueError(f"suffix must be an identifier; got {suffix!r}")
    overrides = overrides or {}
    clones = {}
    namespaces = {}
    for name, fn in functions.items():
        if not isinstance(fn, types.FunctionType):
            raise ValueError(
                f"functions[{name!r}] must be a plain Python function; got {type(fn).__name__}"
            )
        key = id(fn.__globals__)
        if key not in namespaces:
            namespaces[key] = dict(fn.__globals__)
        clone = types.FunctionType(
            fn.__code__,
            namespaces[key],
            f"{fn.__name__}__{suffix}",
            fn.__defaults__,
            fn.__closure__,
        )
        clone.__qualname__ = f"{fn.__qualname__}__{suffix}"
        clone.__module__ = fn.__module__
        clone.__doc__ = fn.__doc__
        clone.__kwdefaults__ = fn.__kwdefaults__
        clones[name] = njit(**{**options, **overrides.get(name, {})})(clone)
    for ns in namespaces.values():
        ns.update(clones)
    return types.SimpleNamespace(**clones)


def ensure_compiled(key, fn, *, estimate=20.0):
    """Run ``fn()`` once per process for ``key`` (compiling or loading its kernels).

    Call it before a solver starts its clock. When Numba really compiles during the first run
    of ``fn`` (not when it loads the kernels from its cache), one ``INFO`` line "compiling
    Numba kernels once, about N s" is logged on the ``varseg._jit`` logger as the compilation
    starts.

    Parameters
    ----------
    key : hashable
        Identifies the kernels, e.g. ``("chan_vese", "float32")``.
    fn : callable
        Runs the kernels once on a tiny input of the same types as the real call.
    estimate : float
        Expected compilation time in seconds (the N of the log line).

    Returns
    -------
    float
        Seconds spent now (0.0 when ``key`` was already run in this process).
    """
    if key in _DONE:
        return 0.0
    with _LOCK:
        if key in _DONE:
            return 0.0
        t0 = time.perf_counter()
        listener = _Announce(key, estimate)
        with _event.install_listener("numba:compile", listener):
            fn()
        _DONE[key] = time.perf_counter() - t0
        return _DONE[key]


class _Announce(_event.Listener):
    """Numba event listener: logs once when the first real compilation starts (Numba emits
    ``numba:compile`` only when it compiles, not when it loads from its cache)."""

    def __init__(self, key, estimate):
        self.key, self.estimate, self.done = key, estimate, False

    def on_start(self, event):
        if not self.done:
            self.done = True
            log.info("compiling Numba kernels once, about %.0f s (%s)", self.estimate, self.key)

    def on_end(self, event):
        pass


def compiled_keys():
    """Keys already run by :func:`ensure_compiled` in this process, with their seconds."""
    return dict(_DONE)


def warmup():
    """Compile (or load from Numba's cache) every Chan–Vese and hard-energy kernel.

    Covers :func:`varseg.levelset.chan_vese.chan_vese` in float32 and float64 (2D and 3D, any
    number of phases and channels: the kernels are the same) and
    :func:`varseg.energy.energy_from_labels`. Later calls in this process start at once.

    Returns
    -------
    dict
        Seconds spent per key (0.0 for kernels that were already loaded).
    """
    from varseg.levelset.chan_vese import warm_kernels

    return warm_kernels()

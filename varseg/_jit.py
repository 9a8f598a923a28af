"""Numba helpers: kernel families from one source, one-time compilation outside the timings.

* :func:`jit_family` compiles one set of plain Python functions (kernels and the helpers they
  call) under a given set of Numba options, each clone under its own ``__qualname__`` so that
  Numba's on-disk cache keeps one entry per variant (the cache does not key on ``fastmath`` or
  ``parallel``, numba issue #6845): the fast-math and IEEE families of the Chan–Vese kernels,
  the parallel and serial hard-partition energy, all from one undecorated source.
* :func:`ensure_compiled` runs a small warm-up function once per process before a solver
  starts its clock, so that reported times never contain JIT compilation; a compilation that
  actually happens (not a cache load) is announced by one ``INFO`` log line, and runs in a
  child process so that every process runs the code of Numba's cache (the compiling process
  would otherwise run different fast-math code from every later one).
* :func:`warmup` compiles (or loads from the cache) every Chan–Vese and energy kernel ahead of
  time (``varseg warmup``).
* :data:`NO_NRT`: the Numba option of kernels that allocate nothing, so that the array views
  they take of their arguments carry no reference counting.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import subprocess
import sys
import tempfile
import threading
import time
import types

from numba.core import event as _event

__all__ = ["jit_family", "ensure_compiled", "compiled_keys", "NO_NRT"]

log = logging.getLogger(__name__)

_DONE: dict = {}
_LOCK = threading.Lock()


def _no_nrt():
    """``{"_nrt": False}`` where this Numba's CPU target accepts the option, else ``{}``."""
    try:
        from numba.core.cpu import CPUTargetOptions
    except ImportError:  # pragma: no cover - a Numba without the CPU target module
        return {}
    return {"_nrt": False} if hasattr(CPUTargetOptions, "_nrt") else {}


#: Options of :func:`numba.njit` for a kernel that allocates no array: without Numba's
#: runtime (NRT), an array view (``z[n, d, i]``, a row of a scratch array) is a pointer and
#: strides, without the atomic increment and decrement of its owner's reference count at
#: each view. Those atomics are on one cache line that every thread of a pass touches: in
#: the fixed point's row kernels they cost a third of an iteration (issue 10). Compiling a
#: kernel that allocates with these options fails ("NRT required") instead of leaking.
NO_NRT = _no_nrt()


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


def ensure_compiled(key, fn, *, estimate=20.0, child=None):
    """Run ``fn()`` once per process for ``key`` (compiling or loading its kernels).

    Call it before a solver starts its clock. When Numba really compiles during the first run
    of ``fn`` (not when it loads the kernels from its cache), one ``INFO`` line "compiling
    Numba kernels once, about N s" is logged on the ``varseg._jit`` logger as the compilation
    starts.

    **Compilation in a child process.** With ``child``, a kernel that Numba would compile
    here (a cache miss of a cached kernel) is instead compiled by a fresh interpreter that
    runs ``child``, and this process then loads it from the cache. A process that compiles a
    kernel and one that loads it from the cache do not run the same code: the compiling
    process also holds each callee's own compiled copy, and calls resolve to it, whereas a
    loaded kernel calls the copies linked (and optimised a second time) inside it. With
    fast-math that is not the same arithmetic: float32 Chan–Vese level sets differed in 4%
    of the pixels (up to 4e-4) after 50 iterations on camera between the first run after an
    install and every later one. Through the child, every process runs the cached code.
    Processes that meet the same cold cache at once (pytest-xdist workers) take a lock
    (:func:`_compile_lock`): one compiles, the others wait, then load.
    If the child fails, or the cache cannot be written, the kernels are compiled here
    (a ``WARNING`` says why); ``VARSEG_JIT_IN_PROCESS=1`` always compiles here.

    Parameters
    ----------
    key : hashable
        Identifies the kernels, e.g. ``("chan_vese", "float32")``.
    fn : callable
        Runs the kernels once on a tiny input of the same types as the real call.
    estimate : float
        Expected compilation time in seconds (the N of the log line).
    child : tuple of (str, str, tuple), optional
        ``(module, function, args)``: the importable equivalent of ``fn`` for the child
        (``args`` as Python literals). None: compile in this process.

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
        listener = _Announce(key, estimate, stop=child is not None and not _in_process())
        if not _loaded(fn, listener):  # nothing compiled here: compile in a child, then load
            with _compile_lock(key):  # one process compiles a key at a time
                if not _loaded(fn, listener):  # unless another one did while this one waited
                    _compile_then_load(key, fn, child, listener)
        _DONE[key] = time.perf_counter() - t0
        return _DONE[key]


def _loaded(fn, listener):
    """Run ``fn()`` under ``listener``; False when it stopped at a cache miss
    (:class:`_CacheMiss`, nothing compiled), True when it ran to the end."""
    try:
        with _event.install_listener("numba:compile", listener):
            fn()
    except _CacheMiss:
        return False
    return True


def _compile_then_load(key, fn, child, listener):
    """After a cache miss of ``fn``'s kernels: compile them in a child
    (:func:`_compile_in_child`), then run ``fn()`` here, which loads them (or compiles them
    here, with a warning, when the child could not)."""
    listener.stop = False
    listener.announce()  # the one line, as the child starts
    error = _compile_in_child(child)
    if error:
        log.warning("compiling %s in this process: %s", key, error)
    _loaded(fn, listener)
    if listener.cached_compiles and not error:
        log.warning(
            "compiling %s in this process: the child's kernels were not in Numba's "
            "cache (is its directory writable? NUMBA_CACHE_DIR sets it)",
            key,
        )


@contextlib.contextmanager
def _compile_lock(key):
    """An exclusive lock between processes for compiling ``key`` (a file in the temporary
    directory, per interpreter and key): pytest-xdist workers or parallel jobs on a cold cache
    then compile each kernel once, and never write Numba's index file at the same time.
    Without ``fcntl`` (Windows) no lock is taken."""
    try:
        import fcntl
    except ImportError:
        yield
        return
    tag = hashlib.sha1(repr((sys.executable, key)).encode()).hexdigest()[:16]
    path = os.path.join(tempfile.gettempdir(), f"varseg-jit-{tag}.lock")
    try:
        handle = open(path, "a")  # noqa: SIM115 - held for the duration of the lock
    except OSError:
        yield
        return
    with handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


#: Set in the environment of the child of :func:`ensure_compiled` (it compiles in itself).
CHILD_ENV = "VARSEG_JIT_CHILD"

#: The environment variable that carries ``sys.path`` to the child (:func:`_compile_in_child`).
_CHILD_PATH = "VARSEG_JIT_CHILD_PATH"


def _in_process():
    """Whether kernels are compiled in this process (a child, or the user's choice)."""
    return bool(os.environ.get(CHILD_ENV)) or os.environ.get("VARSEG_JIT_IN_PROCESS") == "1"


class _CacheMiss(Exception):
    """A cached kernel would be compiled in this process (:class:`_Announce` with ``stop``)."""


def _compile_in_child(child):
    """Run ``child = (module, function, args)`` in a fresh interpreter with this process's
    ``sys.path`` (it compiles and caches the kernels); '' on success, else why not.

    The child's ``sys.path`` is this one's, set before its first import (``python -c`` would
    put the working directory first, where another copy of the package may live), and it
    reports the file of ``module`` it imported, which must be this process's."""
    module, name, args = child
    code = (
        "import importlib, json, os, sys\n"
        f"sys.path[:] = json.loads(os.environ[{_CHILD_PATH!r}])\n"
        f"mod = importlib.import_module({module!r})\n"
        f"getattr(mod, {name!r})(*{tuple(args)!r})\n"
        "print(mod.__file__)\n"
    )
    env = dict(os.environ)
    env[CHILD_ENV] = "1"
    env[_CHILD_PATH] = json.dumps([p for p in sys.path if isinstance(p, str)])
    try:
        proc = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=False
        )
    except OSError as exc:
        return f"could not start {sys.executable}: {exc}"
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return f"the child process failed (exit {proc.returncode}): {last}"
    here = getattr(sys.modules.get(module), "__file__", None)
    there = (proc.stdout.strip().splitlines() or [""])[-1]
    if here is not None and os.path.realpath(there) != os.path.realpath(here):
        return f"the child process imported {module} from {there}, this one from {here}"
    return ""


class _Announce(_event.Listener):
    """Numba event listener: logs once when the first real compilation starts (Numba emits
    ``numba:compile`` only when it compiles, not when it loads from its cache).

    With ``stop``, the first compilation of a kernel that has an on-disk cache raises
    :class:`_CacheMiss` instead, before anything is compiled (the outermost kernel starts
    first; its callees are compiled while it is typed); kernels without a cache compile as
    usual."""

    def __init__(self, key, estimate, stop=False):
        self.key, self.estimate, self.stop, self.done = key, estimate, stop, False
        self.cached_compiles = 0  # compilations of kernels that have an on-disk cache

    def on_start(self, event):
        cache = getattr(event.data.get("dispatcher"), "_cache", None)
        if cache is not None and type(cache).__name__ != "NullCache":
            if self.stop:
                raise _CacheMiss
            self.cached_compiles += 1
        self.announce()

    def announce(self):
        """Log the one line "compiling Numba kernels once, about N s" (once)."""
        if not self.done:
            self.done = True
            log.info("compiling Numba kernels once, about %.0f s (%s)", self.estimate, self.key)

    def on_end(self, event):
        pass


def compiled_keys():
    """Keys already run by :func:`ensure_compiled` in this process, with their seconds."""
    return dict(_DONE)

"""Run several segmentation methods on one image and score them with one ruler.

The ruler is :mod:`varseg.compare.scoring`.

By default (``normalise=True``) the methods are *run* on the image scaled to [0, 1], and each
receives the shared λ as its :class:`varseg.methods.MethodSpec` declares it (``lam=λ``;
``mu = 2λ`` for Chan–Vese, whose length weight counts each boundary once), so that their
recorded energy histories are on one scale and can be drawn on one axis
(:func:`varseg.plot.plot_energy`).

Timing is the wall time of the call measured by the harness (same clock for all methods);
methods with Numba kernels are first run once, untimed, on a small crop so that just-in-time
compilation is not charged to them.
"""

from __future__ import annotations

import math
import time
import warnings

import numpy as np

from .._environment import environment
from ..energy import DEFAULT_LAM, normalise_image
from ..methods import MethodSpec, get_spec
from .scoring import is_label_list, nan_scores, score_result, spatial_shape
from .table import ComparisonTable

__all__ = [
    "compare",
    "resolve_methods",
    "DEFAULT_METHODS",
    "available_cpus",
    "has_spare_cpu",
    "TorchWorker",
]

#: Methods run by default: the level sets, the paper's fixed point, the per-image network
#: and two clustering baselines, side by side on one energy and one clock.
DEFAULT_METHODS = ("chan-vese", "lic", "fixed-point", "neural", "kmeans", "otsu")


def _callable_spec(name, fn):
    """Return the spec of a user callable: ``fn(image, n_phases, *, lam, channel_axis, **kw)``."""
    return MethodSpec(name, fn, length_param="lam", iteration_param=None, takes_seed=False)


def _one_method(m):
    if isinstance(m, MethodSpec):
        return m.name, m
    if isinstance(m, str):
        return m, get_spec(m)
    if callable(m):
        name = getattr(m, "__name__", type(m).__name__)
        return name, _callable_spec(name, m)
    if isinstance(m, (tuple, list)) and len(m) == 2 and isinstance(m[0], str):
        name, fn = m
        if isinstance(fn, (str, MethodSpec)):
            return name, get_spec(fn)
        if callable(fn):
            return name, _callable_spec(name, fn)
        raise ValueError(
            f"method {name!r}: expected a callable or a registry name; got {type(fn).__name__}"
        )
    raise ValueError(
        "methods must be registry names, MethodSpecs, callables returning "
        f"Segmentation, or (name, callable) pairs; got {m!r}"
    )


def resolve_methods(methods):
    """``methods`` as a list of ``(unique name, MethodSpec)``.

    Raises
    ------
    ValueError
        Unknown registry name, a non-callable, or an empty list.
    """
    if isinstance(methods, (str, bytes, MethodSpec)) or callable(methods):
        methods = [methods]
    out, seen = [], {}
    for m in methods:
        name, spec = _one_method(m)
        seen[name] = seen.get(name, 0) + 1
        out.append((name if seen[name] == 1 else f"{name}#{seen[name]}", spec))
    if not out:
        raise ValueError("methods is empty: give at least one method")
    return out


def _check_params(pairs, method_params):
    method_params = dict(method_params or {})
    known = {n for n, _ in pairs} | {s.name for _, s in pairs}
    unknown = set(method_params) - known
    if unknown:
        raise ValueError(
            f"method_params names methods not compared: {sorted(unknown)}; "
            f"compared: {[n for n, _ in pairs]}"
        )
    for name, spec in pairs:
        if spec.options:
            for key in _params_for(name, spec, method_params):
                if not spec.accepts(key):
                    raise ValueError(
                        f"method {name!r} does not take option {key!r}; it "
                        f"takes {sorted(spec.options)}"
                    )
    return method_params


def _params_for(name, spec, method_params):
    params = dict(method_params.get(spec.name, {}))
    params.update(method_params.get(name, {}))
    return params


def _kwargs(name, spec, lam, channel_axis, seed, method_params, share_lam):
    kw = {"channel_axis": channel_axis}
    kw.update(spec.shared_kwargs(lam=lam if share_lam else None, seed=seed, progress=False))
    kw.update(_params_for(name, spec, method_params))
    return kw


def _describe(kw):
    """Keyword arguments as JSON-friendly values (objects by their type name)."""
    ok = (bool, int, float, str, type(None))
    return {
        k: v
        if isinstance(v, ok) or (isinstance(v, (list, tuple)) and all(isinstance(e, ok) for e in v))
        else f"<{type(v).__name__}>"
        for k, v in kw.items()
    }


def _warm_up(func, image, channel_axis, n_phases, kw):
    """Call ``func`` once on a small crop (compiles Numba kernels).

    Failures are ignored here and reported by the timed call.
    """
    ax = None if channel_axis is None else channel_axis % image.ndim
    crop = tuple(slice(None) if i == ax else slice(0, 32) for i in range(image.ndim))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            func(np.ascontiguousarray(image[crop]), n_phases, **kw)
    except Exception:  # noqa: BLE001, S110 - the timed call reports real errors
        pass


def _device_of(res):
    dev = res.extras.get("device") if isinstance(res.extras, dict) else None
    if dev is None and isinstance(res.params, dict):
        dev = res.params.get("device")
    return "cpu" if dev in (None, "auto") else str(dev)


def _failed_row(name, msg, errors, ground_truth, spatial, n_phases, seconds):
    if errors == "warn":
        warnings.warn(f"compare: method {name!r} failed: {msg}", RuntimeWarning, stacklevel=3)
    row = {"method": name, **nan_scores(ground_truth, spatial)}
    row.update(
        {
            "n_iter": 0,
            "time": seconds,
            "device": "",
            "converged": False,
            "n_phases": int(n_phases),
            "error": msg,
        }
    )
    return row


def _attempt(name, spec, kw, ctx):
    """Run one method with its keywords ``kw``: ``(row, result, None)`` or ``(None, None, err)``.

    ``row`` holds the scores and the timing but not yet the failure handling, which
    :func:`_finish` applies (in the process that builds the table).
    """
    try:
        func = spec.load()
        if ctx["warmup"] and spec.jit:
            _warm_up(func, ctx["run_image"], ctx["channel_axis"], ctx["n_phases"], kw)
        t0 = time.perf_counter()
        res = func(ctx["run_image"], ctx["n_phases"], **kw)
        wall = time.perf_counter() - t0
        row = {
            "method": name,
            **score_result(
                res,
                ctx["image_n"],
                ctx["channel_axis"],
                ctx["lam"],
                ctx["ground_truth"],
                ctx["ignore_index"],
                ctx["n_phases"],
            ),
        }
    except Exception as err:  # noqa: BLE001 - reported in the table or re-raised
        return None, None, err
    row.update(
        {
            "n_iter": int(res.n_iter),
            "time": float(wall),
            "device": _device_of(res),
            "converged": bool(res.converged),
            "n_phases": int(res.n_phases),
        }
    )
    return row, res, None


def _finish(name, outcome, ctx):
    """``(row, result or None)`` of an :func:`_attempt`: a failure is raised or tabled."""
    row, res, err = outcome
    if err is None:
        return row, res
    if ctx["errors"] == "raise":
        raise err
    msg = err.message if isinstance(err, _RemoteError) else f"{type(err).__name__}: {err}"
    return _failed_row(
        name, msg, ctx["errors"], ctx["ground_truth"], ctx["spatial"], ctx["n_phases"], 0.0
    ), None


# --------------------------------------------------------------------------------------
# the torch methods in one worker process
# --------------------------------------------------------------------------------------
class _RemoteError(RuntimeError):
    """A worker's failure that could not be sent back as itself.

    An exception that does not pickle, or the worker's death; ``message`` is the table's
    ``"Type: text"``.
    """

    def __init__(self, message):
        super().__init__(message)
        self.message = message


def _sendable(err):
    """``err`` itself when it survives pickling, else a :class:`_RemoteError` with its text."""
    import pickle

    try:
        pickle.loads(pickle.dumps(err))
    except Exception:  # noqa: BLE001 - any pickling failure
        return _RemoteError(f"{type(err).__name__}: {err}")
    return err


def worker_main(jobs_in, results_out):
    """Entry of :class:`TorchWorker`'s process: import torch, run the jobs, send outcomes.

    ``jobs_in`` / ``results_out`` are binary files (pipes) of pickles: one ``(jobs, ctx)``
    in, one ``(name, outcome)`` out per job. torch is imported before the jobs arrive (its
    import is most of a torch method's start-up).
    """
    import pickle

    try:
        import torch  # noqa: F401 - imported ahead of the jobs
    except ImportError:
        pass  # the method's own import reports it, as in the serial path
    try:
        jobs, ctx = pickle.load(jobs_in)
    except EOFError:  # closed before any job: nothing to run
        return
    for name, spec, kw in jobs:
        row, res, err = _attempt(name, spec, kw, ctx)
        pickle.dump((name, (row, res, None if err is None else _sendable(err))), results_out)
        results_out.flush()


#: the worker's command: ignore SIGINT (the parent stops it), take the parent's sys.path,
#: then run :func:`worker_main` on the two pipes named by its arguments
_WORKER_CODE = (
    "import os, pickle, signal, sys; signal.signal(signal.SIGINT, signal.SIG_IGN); "
    "jobs = os.fdopen(int(sys.argv[1]), 'rb'); sys.path[:0] = pickle.load(jobs); "
    "from varseg.compare.run import worker_main; "
    "worker_main(jobs, os.fdopen(int(sys.argv[2]), 'wb'))"
)


class TorchWorker:
    """One process that runs :func:`compare`'s torch methods alongside the others.

    Started early (torch is imported there at once, on another core, while this process
    loads the image and runs the Numba methods), given the torch methods by
    :func:`compare` (``torch_worker=worker``), used once. A fresh interpreter
    (``sys.executable``, this process's ``sys.path``), neither forked (unsafe with Numba's
    and OpenMP's threads) nor re-importing the caller's ``__main__`` as multiprocessing's
    spawn does; the image, the settings and each method's spec and keywords are pickled to
    it through a pipe and the outcomes come back through another. :meth:`close` (or leaving
    the ``with`` block) terminates a worker still running, so an error or a Ctrl-C leaves no
    process behind.

    Examples
    --------
    >>> from varseg.compare import TorchWorker, compare
    >>> with TorchWorker() as worker:  # doctest: +SKIP
    ...     table = compare(image, ["chan-vese", "neural"], torch_worker=worker)
    """

    def __init__(self):
        import os
        import subprocess
        import sys

        self.names, self._writer = [], None
        #: called once just before waiting for the worker's outcomes: work of the caller's
        #: that does not need them (e.g. importing what comes next) fills the wait
        self.while_waiting = None
        jobs_r, jobs_w = os.pipe()
        res_r, res_w = os.pipe()
        try:
            self._proc = subprocess.Popen(
                [sys.executable, "-c", _WORKER_CODE, str(jobs_r), str(res_w)],
                pass_fds=(jobs_r, res_w),
                stdin=subprocess.DEVNULL,
            )
        except BaseException:
            for fd in (jobs_r, jobs_w, res_r, res_w):
                os.close(fd)
            raise
        os.close(jobs_r)
        os.close(res_w)
        self._jobs = os.fdopen(jobs_w, "wb")
        self._results = os.fdopen(res_r, "rb")
        self._send(list(sys.path))

    def _send(self, obj):
        """Pickle ``obj`` here and write it from a thread.

        A pickling failure raises before anything is written; the thread is needed since
        the worker reads only once torch is imported and a pipe holds 64 KiB.
        """
        import pickle
        import threading

        data = pickle.dumps(obj)
        if self._writer is not None:
            self._writer.join()
        self._writer = threading.Thread(target=self._write, args=(data,), daemon=True)
        self._writer.start()

    def _write(self, data):
        try:
            self._jobs.write(data)
            self._jobs.flush()
        except (OSError, ValueError):  # the worker is gone (or closed): outcomes() says so
            pass

    def submit(self, jobs, ctx):
        """Send ``[(name, spec, keywords)]`` and the run settings ``ctx`` (once).

        Raises
        ------
        RuntimeError
            The worker already has its jobs.
        Exception
            Whatever pickling raises for a spec that cannot be sent (nothing is sent then).
        """
        if self.names:
            raise RuntimeError("a TorchWorker runs one set of jobs; start another")
        self._send((jobs, ctx))
        self.names = [name for name, _, _ in jobs]

    def outcomes(self):
        """Name → outcome of every job (a dead worker fails the methods it had left).

        :attr:`while_waiting`, when set, is called first (once, in this process).
        """
        import pickle

        if self.while_waiting is not None:
            hook, self.while_waiting = self.while_waiting, None
            hook()
        out = {}
        while len(out) < len(self.names):
            try:
                name, outcome = pickle.load(self._results)
            except (EOFError, OSError, pickle.UnpicklingError):
                died = _RemoteError(
                    f"RuntimeError: the compare worker process died (exit code {self._proc.wait()})"
                )
                out.update({n: (None, None, died) for n in self.names if n not in out})
                break
            out[name] = outcome
        return out

    def close(self):
        """Stop the worker if it still runs and release the pipes (idempotent)."""
        import subprocess

        for f in (self._jobs, self._results):
            try:
                f.close()
            except OSError:  # a broken pipe to a worker that is gone
                pass
        if self._proc.poll() is None:
            self._proc.terminate()
        try:
            self._proc.wait(5)
        except subprocess.TimeoutExpired:  # pragma: no cover - ignores SIGTERM
            self._proc.kill()
            self._proc.wait()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def available_cpus():
    """CPUs this process may run on (its affinity mask where the platform has one)."""
    import os

    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - not on every platform
        return os.cpu_count() or 1


def has_spare_cpu():
    """Whether a second CPU is free now.

    2 or more CPUs and a 1-minute load average that leaves one idle (``load <= CPUs - 1``).

    The torch worker pays only then: on a busy machine a second process of this session
    shares the same CPU time and only adds its own start-up (``varseg compare
    sample:camera`` on a shared 2-core machine at load 3-4: 11.6-13.8 s serial against
    12.1-20.8 s with the worker).
    """
    import os

    n = available_cpus()
    try:
        load = os.getloadavg()[0]
    except OSError:  # pragma: no cover - not on every platform
        load = 0.0
    return n >= 2 and load <= n - 1


def _remote_pairs(pairs, torch_worker):
    """Return the ``(name, spec)`` pairs that run in the worker process (none: all here)."""
    if not (torch_worker in (False, True, "auto") or isinstance(torch_worker, TorchWorker)):
        raise ValueError(
            f"torch_worker must be False, True, 'auto' or a TorchWorker; got {torch_worker!r}"
        )
    remote = [(n, s) for n, s in pairs if s.needs_torch]
    if torch_worker is False or not remote or len(remote) == len(pairs):
        return []
    if torch_worker == "auto":
        from .._optional import has_torch

        if not has_spare_cpu() or not has_torch():
            return []
    return remote


def _submit(torch_worker, remote, kwargs, ctx):
    """Hand the ``remote`` pairs to a worker: ``(worker, owned)``, or ``(None, False)``.

    ``owned``: the worker was started here (and is closed here). When the jobs cannot be
    sent (a spec that does not pickle) they run in this process, as without a worker.
    """
    if not remote:
        return None, False
    owned = not isinstance(torch_worker, TorchWorker)
    worker = TorchWorker() if owned else torch_worker
    try:
        worker.submit([(n, s, kwargs[n]) for n, s in remote], ctx)
    except Exception as err:  # noqa: BLE001 - e.g. a spec that does not pickle
        import logging

        logging.getLogger(__name__).debug("compare: methods not sent to the worker (%s)", err)
        if owned:
            worker.close()
        return None, False
    return worker, owned


def _run_all(pairs, kwargs, ctx, torch_worker, progress):
    """Name → outcome of every method: the torch ones in a worker when asked, the rest here."""
    worker, owned = _submit(torch_worker, _remote_pairs(pairs, torch_worker), kwargs, ctx)
    remote = set(worker.names) if worker is not None else set()
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(pairs), desc="compare", unit="method")
    outcomes, raised = {}, False
    try:
        for name, spec in pairs:
            if name in remote:
                continue
            outcomes[name] = _attempt(name, spec, kwargs[name], ctx)
            raised = ctx["errors"] == "raise" and outcomes[name][2] is not None
            if raised:
                break  # raised by _finish, in table order; the worker is stopped below
            if bar is not None:
                bar.update()
        if worker is not None and not raised:
            outcomes.update(worker.outcomes())
    finally:
        if worker is not None and (owned or len(outcomes) < len(pairs)):
            worker.close()
        if bar is not None:
            bar.update(len(remote))
            bar.close()
    return outcomes


def _check_inputs(image, ground_truth, channel_axis, lam, errors):
    if errors not in ("warn", "raise", "ignore"):
        raise ValueError(f"errors must be 'warn', 'raise' or 'ignore'; got {errors!r}")
    lam = DEFAULT_LAM if lam is None else float(lam)
    if not math.isfinite(lam) or lam < 0:
        raise ValueError(f"lam must be a finite non-negative number; got {lam!r}")
    img = np.asarray(image)
    spatial = spatial_shape(img.shape, channel_axis)
    if ground_truth is not None and not is_label_list(ground_truth, spatial):
        gt = np.asarray(ground_truth)
        if gt.shape != spatial:
            raise ValueError(
                f"ground_truth must have the image's spatial shape {spatial} "
                f"(or be a list of such label maps); got shape {gt.shape}"
            )
    return img, spatial, lam


def compare(
    image,
    methods=DEFAULT_METHODS,
    ground_truth=None,
    n_phases=2,
    *,
    lam=None,
    channel_axis=None,
    method_params=None,
    seed=0,
    normalise=True,
    share_lam=True,
    ignore_index=None,
    errors="warn",
    progress=False,
    warmup=True,
    torch_worker=False,
):
    r"""Run several segmentation methods on one image and score them with one ruler.

    Parameters
    ----------
    image : array_like
        ``(H, W)``, ``(D, H, W)`` or with a channel axis (scikit-image conventions).
    methods : sequence
        Registry names (:func:`varseg.methods.method_names`), :class:`varseg.methods.
        MethodSpec` objects, callables ``f(image, n_phases, *, lam, channel_axis, **kw)``
        returning :class:`varseg.Segmentation`, or ``(name, callable_or_registry_name)``
        pairs. Default :data:`DEFAULT_METHODS`.
    ground_truth : ndarray of int, or list of ndarray, optional
        A class label map (scored by Hungarian-matched Dice, IoU and pixel accuracy) or a
        list / stack of human segmentations (covering, PRI, VI).
    n_phases : int
        Number of phases K given to every method.
    lam : float, optional
        λ of the shared energy (Kim & Ye Eq. 1; given to the methods, see ``share_lam``);
        default :data:`varseg.energy.DEFAULT_LAM` = 0.125 = Chan–Vese's default μ / 2.
    channel_axis : int, optional
        Channel axis of a colour image.
    method_params : dict, optional
        Method name → dict of extra keyword arguments (override the shared ones), e.g.
        ``{"chan-vese": {"max_iter": 200}, "lic": {"sigma": 3}}``; keys are checked against
        the method's declared options.
    seed : int, optional
        Passed to every method that declares ``takes_seed``.
    normalise : bool
        Run the methods on the [0, 1] min/max-normalised image (default) instead of the
        image as given. The table's energies are always evaluated on the normalised image.
    share_lam : bool
        Pass the shared λ to the methods (as their spec declares: ``lam=λ``, ``mu=2λ``).
        With False the methods keep their own defaults; the table still uses the shared λ.
    ignore_index : int, optional
        Ground-truth label excluded from the scores (class maps).
    errors : {"warn", "raise", "ignore"}
        What a failing method does: record a row with ``error`` and NaN scores (and warn,
        for "warn"), or raise.
    progress : bool
        Show a tqdm progress bar over the methods.
    warmup : bool
        Run each method with Numba kernels once, untimed, on a 32-pixel crop first, so
        that just-in-time compilation is not charged to its time.
    torch_worker : {False, True, "auto"} or TorchWorker
        Run the methods that need torch (:attr:`varseg.methods.MethodSpec.needs_torch`) in
        one spawned worker process, started first, while the other methods run in this
        process: torch's import and the network's fit then use a second core. The table,
        its order and every result are those of the serial run (same seeds and keywords;
        the worker's failures are tabled or raised as here). ``"auto"``: only with a spare
        CPU (:func:`has_spare_cpu`), torch installed, and methods of both kinds; False
        (default): everything in this process. As with any spawned process, a script that
        calls this needs the ``if __name__ == "__main__":`` guard (``varseg compare`` uses
        ``"auto"``). A :class:`TorchWorker` started earlier (its torch import then overlaps
        the caller's own start-up) is used for them (the caller closes it).

    Returns
    -------
    ComparisonTable
        One row per method; ``table.results[name]`` holds the :class:`varseg.Segmentation`
        of each method that ran.

    Examples
    --------
    >>> import numpy as np
    >>> from varseg.compare import compare
    >>> img = np.zeros((32, 32)); img[8:24, 8:24] = 1
    >>> table = compare(img, ["kmeans", "otsu"], ground_truth=(img > 0.5).astype(int))
    >>> table.row("otsu")["dice"]
    1.0
    """
    img, spatial, lam = _check_inputs(image, ground_truth, channel_axis, lam, errors)
    pairs = resolve_methods(methods)
    method_params = _check_params(pairs, method_params)
    image_n = normalise_image(img)
    kwargs = {n: _kwargs(n, s, lam, channel_axis, seed, method_params, share_lam) for n, s in pairs}
    ctx = {
        "lam": lam,
        "channel_axis": channel_axis,
        "errors": errors,
        "warmup": warmup,
        "run_image": image_n if normalise else img,
        "image_n": image_n,
        "n_phases": n_phases,
        "ground_truth": ground_truth,
        "ignore_index": ignore_index,
        "spatial": spatial,
    }
    table = ComparisonTable(
        lam=lam,
        meta={
            "n_phases": int(n_phases),
            "normalisation": "min-max to [0, 1]",
            "methods_on_normalised_image": bool(normalise),
            "image_shape": list(img.shape),
            "channel_axis": channel_axis,
            "seed": seed,
            "environment": environment(),
            "parameters": {n: _describe(kw) for n, kw in kwargs.items()},
            "ground_truth": None
            if ground_truth is None
            else ("human segmentations" if is_label_list(ground_truth, spatial) else "label map"),
        },
    )
    outcomes = _run_all(pairs, kwargs, ctx, torch_worker, progress)
    for name, _ in pairs:
        if name not in outcomes:  # after a raised failure (errors="raise")
            continue
        row, res = _finish(name, outcomes[name], ctx)
        table.rows.append(row)
        if res is not None:
            table.results[name] = res
    return table

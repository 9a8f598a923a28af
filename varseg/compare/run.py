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

__all__ = ["compare", "resolve_methods", "DEFAULT_METHODS"]

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


def _failed_row(name, err, errors, ground_truth, spatial, n_phases, seconds):
    msg = f"{type(err).__name__}: {err}"
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


def _run_method(name, spec, kw, ctx):
    """Run one method with its keywords ``kw`` and return ``(row, result or None)``."""
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
        if ctx["errors"] == "raise":
            raise
        return _failed_row(
            name, err, ctx["errors"], ctx["ground_truth"], ctx["spatial"], ctx["n_phases"], 0.0
        ), None
    row.update(
        {
            "n_iter": int(res.n_iter),
            "time": float(wall),
            "device": _device_of(res),
            "converged": bool(res.converged),
            "n_phases": int(res.n_phases),
        }
    )
    return row, res


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
    iterator = pairs
    if progress:
        from tqdm.auto import tqdm

        iterator = tqdm(pairs, desc="compare", unit="method")
    for name, spec in iterator:
        row, res = _run_method(name, spec, kwargs[name], ctx)
        table.rows.append(row)
        if res is not None:
            table.results[name] = res
    return table

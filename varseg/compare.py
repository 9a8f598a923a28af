r"""Run segmentation methods side by side and score them with one ruler.

:func:`compare` runs classical and neural methods on one image and returns a
:class:`ComparisonTable`; :func:`compare_dataset` does the same over many images (in parallel
worker processes, or sharded over the ranks of a ``torchrun`` launch) and aggregates.

The shared ruler
----------------
Every method minimises its own functional (Chan–Vese's :math:`\mu|\Gamma| + \sum \lambda_s
D_s`, Li's local clustering energy, the softmax relaxation of Eq. 12, …). To compare them the
harness scores every **final hard partition** with the same piecewise-constant Mumford–Shah
energy (Eq. 1 of Kim & Ye 2019, :func:`varseg.energy.energy_from_labels`, isotropic TV,
``reduction="sum"``)

.. math:: E(\chi) = \sum_n \sum_r \|\hat x(r) - c_n\|^2 \chi_n(r)
          + \lambda \sum_n \mathrm{TV}(\chi_n)

on the image normalised to [0, 1] by its global min and max,
:math:`\hat x = (x - \min x) / (\max x - \min x)` (one min/max over all channels, a constant
image becomes 0 — exactly :func:`varseg.chan_vese`'s normalisation), with **one** λ for all
methods: ``lam`` or, by default, :data:`DEFAULT_LAM` = 0.125, which is :math:`\mu/2` for
Chan–Vese's default ``mu = 0.25`` (the shared length term counts every boundary twice).
The energy is re-evaluated from each result's labels, so the numbers are comparable even
when a method recorded its own history with another λ or on another scale.

By default (``normalise=True``) the methods are also *run* on :math:`\hat x`, and each
receives the shared λ (``lam=`` for methods that take it; ``mu = 2λ`` for Chan–Vese, whose
length weight is ``mu``), so that their recorded energy histories are on the same scale and
can be drawn on one axis (:func:`varseg.plot.plot_energy`). Li's bias-field method keeps its
own arc-length weight ν (its ``lam`` only sets the recorded energy).

Scores against ground truth
---------------------------
* one label map (classes): clusters are matched to classes by the Hungarian algorithm
  (:func:`varseg.metrics.match_labels`, over the image); then the mean over the ground-truth
  classes of Dice and IoU (:math:`\mathrm{IoU}_c = D_c / (2 - D_c)`) and the pixel accuracy;
* a list (or stack) of human segmentations (BSDS500): segmentation covering, probabilistic
  Rand index and variation of information (:func:`varseg.metrics.region_scores`); over a
  data set, covering is pooled (Σ numerators / Σ denominators) and PRI, VI averaged.

Timing is the wall time of the call measured by the harness (same clock for all methods),
including any JIT loading in the first call of a process.
"""
from __future__ import annotations

import csv
import inspect
import json
import math
import os
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .energy import normalise_image as _normalise

__all__ = [
    "compare",
    "compare_dataset",
    "merge_shards",
    "ComparisonTable",
    "normalise_image",
    "shared_energy",
    "label_scores",
    "DEFAULT_METHODS",
    "DEFAULT_LAM",
    "shard_info",
    "iter_folder",
    "read_ground_truth",
    "aggregate_rows",
]

#: Methods run by default: the level sets, the paper's fixed point, the per-image network
#: and two clustering baselines, side by side on one energy and one clock.
DEFAULT_METHODS = ("chan-vese", "lic", "fixed-point", "neural", "kmeans", "otsu")

#: Default λ of the shared energy: Chan–Vese's default μ = 0.25 halved, image in [0, 1].
DEFAULT_LAM = 0.125

#: Columns shown by :meth:`ComparisonTable.to_markdown` (those present in the rows).
DISPLAY_COLUMNS = ("image", "method", "n_images", "energy", "data", "length", "dice", "iou",
                   "pixel_accuracy", "covering", "PRI", "VI", "n_iter", "time", "device",
                   "converged", "error")

_IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".gif", ".npy"}
_GT_SUFFIXES = (".png", ".npy", ".mat", ".tif", ".tiff", ".bmp")


# --------------------------------------------------------------------------------------
# the ruler
# --------------------------------------------------------------------------------------
def normalise_image(image, channel_axis=None):
    """Scale an image to [0, 1] by its global min and max (a constant image becomes 0).

    :func:`varseg.energy.normalise_image`, the normalisation of :func:`varseg.chan_vese`,
    applied once over all channels, so that a λ means the same for every method and image.

    Parameters
    ----------
    image : array_like
        Any shape; ``channel_axis`` is accepted for symmetry and does not change the result
        (one min/max over all values).

    Returns
    -------
    ndarray of float64, same shape
    """
    return _normalise(image)


def _channels_first(image, channel_axis):
    x = np.asarray(image, dtype=np.float64)
    if channel_axis is None:
        return x
    return np.moveaxis(x, channel_axis, 0)


def shared_energy(image, labels, lam=DEFAULT_LAM, *, channel_axis=None, n_phases=None,
                  normalise=True):
    """The shared Mumford–Shah energy (Eq. 1) of a hard partition, as the table reports it.

    Parameters
    ----------
    image : array_like
        The image in scikit-image conventions (``channel_axis`` for colour).
    labels : ndarray of int
        Label map with the image's spatial shape.
    lam : float
        λ of the length term.
    normalise : bool
        Evaluate on the [0, 1] min/max-normalised image (:func:`normalise_image`).

    Returns
    -------
    varseg.energy.MumfordShahTerms
        ``total``, ``data``, ``length`` (without λ) and ``means``.
    """
    from .energy import energy_from_labels

    x = normalise_image(image) if normalise else np.asarray(image, dtype=np.float64)
    x = _channels_first(x, channel_axis)
    lab = np.asarray(labels)
    if not np.issubdtype(lab.dtype, np.integer):
        raise ValueError(f"labels must be integers; got dtype {lab.dtype}")
    if lab.size and lab.min() < 0:
        raise ValueError("labels must be non-negative")
    k = int(lab.max()) + 1 if n_phases is None else max(int(n_phases), int(lab.max()) + 1)
    return energy_from_labels(x, lab, float(lam), n_phases=k)


def _is_label_list(ground_truth, spatial_shape):
    """True for a list/tuple of label maps or a stack ``(K,) + spatial_shape``."""
    if isinstance(ground_truth, (list, tuple)):
        return True
    gt = np.asarray(ground_truth)
    return gt.ndim == len(spatial_shape) + 1 and gt.shape[1:] == tuple(spatial_shape)


def label_scores(labels, ground_truth, *, ignore_index=None):
    """Scores of one label map against ground truth, as reported in the table.

    Parameters
    ----------
    labels : ndarray of int
        Machine segmentation (cluster ids, any values).
    ground_truth : ndarray of int, or list / stack of label maps
        One class map (→ Hungarian-matched ``dice``, ``iou`` — means over the ground-truth
        classes — and ``pixel_accuracy``) or several human segmentations (→ BSDS
        ``covering``, ``PRI``, ``VI``, plus ``covering_num``/``covering_den`` for pooling).
    ignore_index : int, optional
        Ground-truth value excluded from matching and scoring (class maps only).

    Returns
    -------
    dict of float
    """
    from .metrics import hungarian_dice, match_labels, pixel_accuracy, region_scores

    lab = np.asarray(labels)
    if _is_label_list(ground_truth, lab.shape):
        r = region_scores(lab, list(ground_truth) if isinstance(ground_truth, (list, tuple))
                          else np.asarray(ground_truth))
        return {k: float(r[k]) for k in ("covering", "PRI", "VI", "covering_num",
                                          "covering_den")}
    gt = np.asarray(ground_truth)
    if gt.shape != lab.shape:
        raise ValueError(f"ground_truth must have the labels' shape {lab.shape} (or be a list "
                         f"of such maps); got shape {gt.shape}")
    per_class = hungarian_dice(lab, gt, ignore_index=ignore_index)
    if not per_class:
        return {"dice": float("nan"), "iou": float("nan"), "pixel_accuracy": float("nan")}
    d = np.array(list(per_class.values()), dtype=np.float64)
    relab = match_labels(lab, gt, ignore_index=ignore_index)
    return {"dice": float(d.mean()), "iou": float(np.mean(d / (2.0 - d))),
            "pixel_accuracy": float(pixel_accuracy(relab, gt, ignore_index=ignore_index))}


# --------------------------------------------------------------------------------------
# the table
# --------------------------------------------------------------------------------------
def _fmt(v, floatfmt):
    if v is None:
        return ""
    if isinstance(v, (bool, np.bool_)):
        return "yes" if v else "no"
    if isinstance(v, (float, np.floating)):
        return "nan" if math.isnan(v) else format(float(v), floatfmt)
    return str(v)


def _parse_csv_value(s):
    if s == "":
        return None
    if s in ("True", "False"):
        return s == "True"
    try:
        return int(s)
    except ValueError:
        pass
    try:
        return float(s)
    except ValueError:
        return s


def _jsonable(v):
    if isinstance(v, (np.bool_,)):
        return bool(v)
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, np.floating):
        return float(v)
    return v


@dataclass
class ComparisonTable:
    """Rows of scores, one per method (or per method and image), in a plain structure.

    Attributes
    ----------
    rows : list of dict
        One dict per method with keys (those that apply): ``method``; ``energy``, ``data``,
        ``length`` — the shared energy (module docstring), its data term and its length term
        without λ; ``lam``; ``recorded_energy`` — the last value the method recorded itself;
        ``dice``, ``iou``, ``pixel_accuracy`` or ``covering``, ``PRI``, ``VI`` (with
        ``covering_num``, ``covering_den``) against ground truth; ``n_iter``; ``time`` (wall
        seconds); ``device``; ``converged``; ``n_phases``; ``error`` (message, when the method
        failed). Data-set tables add ``image`` and ``index`` (per image) or ``n_images``
        (aggregated).
    results : dict
        Method name → :class:`varseg.Segmentation` (single-image comparisons).
    lam : float
        The λ of the shared energy.
    meta : dict
        Normalisation, number of phases, image shape, …
    per_image : ComparisonTable or None
        For :func:`compare_dataset`: the per-image rows behind the aggregated ones.
    """

    rows: list = field(default_factory=list)
    results: dict = field(default_factory=dict)
    lam: float = DEFAULT_LAM
    meta: dict = field(default_factory=dict)
    per_image: ComparisonTable | None = None

    # -- access ----------------------------------------------------------------------
    @property
    def methods(self):
        """Method names in row order (unique)."""
        return list(dict.fromkeys(r["method"] for r in self.rows))

    @property
    def columns(self):
        """All keys present in the rows, display columns first."""
        keys = list(dict.fromkeys(k for r in self.rows for k in r))
        first = [c for c in DISPLAY_COLUMNS if c in keys]
        return first + [k for k in keys if k not in first]

    @property
    def display_columns(self):
        """Columns shown by :meth:`to_markdown` (``error`` only when a method failed)."""
        cols = [c for c in DISPLAY_COLUMNS if any(c in r for r in self.rows)]
        if not any(r.get("error") for r in self.rows):
            cols = [c for c in cols if c != "error"]
        return cols

    def column(self, name):
        """Values of one column, in row order (None where absent)."""
        return [r.get(name) for r in self.rows]

    def row(self, method, image=None):
        """The row of ``method`` (and ``image`` for per-image tables)."""
        for r in self.rows:
            if r["method"] == method and (image is None or r.get("image") == image):
                return r
        raise KeyError(f"no row for method {method!r}" + (f" and image {image!r}"
                                                         if image is not None else ""))

    def __getitem__(self, method):
        return self.row(method)

    def __len__(self):
        return len(self.rows)

    def __iter__(self):
        return iter(self.rows)

    def best(self, column="energy", minimize=True):
        """Name of the method with the lowest (``minimize``) or highest value of ``column``."""
        vals = [(r[column], r["method"]) for r in self.rows
                if isinstance(r.get(column), (int, float)) and not math.isnan(r[column])]
        if not vals:
            raise ValueError(f"no numeric values in column {column!r}")
        return (min(vals) if minimize else max(vals))[1]

    # -- export ----------------------------------------------------------------------
    def to_dict(self):
        """A JSON-serialisable dict: ``rows``, ``lam``, ``meta`` (and ``per_image``)."""
        d = {"lam": self.lam, "meta": {k: _jsonable(v) for k, v in self.meta.items()},
             "rows": [{k: _jsonable(v) for k, v in r.items()} for r in self.rows]}
        if self.per_image is not None:
            d["per_image"] = self.per_image.to_dict()["rows"]
        return d

    @classmethod
    def from_dict(cls, d):
        """Inverse of :meth:`to_dict` (without the Segmentation objects)."""
        per = d.get("per_image")
        per_t = None if per is None else cls(rows=list(per), lam=d.get("lam", DEFAULT_LAM),
                                            meta=dict(d.get("meta", {})))
        return cls(rows=list(d.get("rows", [])), lam=d.get("lam", DEFAULT_LAM),
                   meta=dict(d.get("meta", {})), per_image=per_t)

    def to_json(self, path):
        """Write :meth:`to_dict` as JSON; returns the path."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=1))
        return path

    @classmethod
    def from_json(cls, path):
        """Read a table written by :meth:`to_json`."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"comparison table not found: {path}")
        return cls.from_dict(json.loads(path.read_text()))

    def to_csv(self, path):
        """Write all columns of all rows as CSV (floats at full precision); returns the path.

        Read it back with :meth:`from_csv` (values are parsed as int, float, bool or str; an
        empty cell is None).
        """
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        cols = self.columns
        with open(path, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(cols)
            for r in self.rows:
                w.writerow(["" if r.get(c) is None else
                            (repr(float(r[c])) if isinstance(r[c], (float, np.floating))
                             else _jsonable(r[c])) for c in cols])
        return path

    @classmethod
    def from_csv(cls, path, lam=None):
        """Read a table written by :meth:`to_csv` (rows only)."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"CSV table not found: {path}")
        with open(path, newline="") as f:
            reader = csv.reader(f)
            header = next(reader)
            rows = [{k: v for k, v in zip(header, map(_parse_csv_value, line), strict=True)
                     if v is not None} for line in reader]
        if lam is None:
            lams = {r.get("lam") for r in rows if r.get("lam") is not None}
            lam = lams.pop() if len(lams) == 1 else DEFAULT_LAM
        return cls(rows=rows, lam=lam)

    def to_markdown(self, floatfmt=".6g", columns=None):
        """A GitHub-flavoured Markdown table of the display columns."""
        cols = list(columns) if columns is not None else self.display_columns
        lines = ["| " + " | ".join(cols) + " |",
                 "|" + "|".join("---" if c in ("method", "image", "device", "error")
                                else "---:" for c in cols) + "|"]
        for r in self.rows:
            lines.append("| " + " | ".join(_fmt(r.get(c), floatfmt).replace("|", "\\|")
                                           for c in cols) + " |")
        return "\n".join(lines)

    def to_string(self, floatfmt=".5g", columns=None):
        """A plain-text, column-aligned rendering (used by ``repr``)."""
        cols = list(columns) if columns is not None else self.display_columns
        cells = [cols] + [[_fmt(r.get(c), floatfmt) for c in cols] for r in self.rows]
        widths = [max(len(row[i]) for row in cells) for i in range(len(cols))]
        out = []
        for j, row in enumerate(cells):
            out.append("  ".join(s.ljust(w) if cols[i] in ("method", "image", "device",
                                                            "error") else s.rjust(w)
                                 for i, (s, w) in enumerate(zip(row, widths, strict=True))))
            if j == 0:
                out.append("  ".join("-" * w for w in widths))
        return "\n".join(out)

    def __repr__(self):
        head = f"ComparisonTable(lam={self.lam:g}, rows={len(self.rows)}"
        if self.meta.get("n_images") is not None:
            head += f", images={self.meta['n_images']}"
        return head + ")\n" + self.to_string()

    def __str__(self):
        return self.to_string()


# --------------------------------------------------------------------------------------
# running methods
# --------------------------------------------------------------------------------------
def _resolve_methods(methods):
    """List of (name, callable-or-registry-name) with unique names."""
    from .methods import get_method

    if isinstance(methods, (str, bytes)) or callable(methods):
        methods = [methods]
    out, seen = [], {}
    for m in methods:
        if isinstance(m, str):
            get_method(m)  # validate early: unknown name -> ValueError listing names
            name, fn = m, m
        elif callable(m):
            name, fn = getattr(m, "__name__", type(m).__name__), m
        elif isinstance(m, (tuple, list)) and len(m) == 2 and isinstance(m[0], str):
            name, fn = m
            if isinstance(fn, str):
                get_method(fn)
            elif not callable(fn):
                raise ValueError(f"method {name!r}: expected a callable or a registry name; "
                                 f"got {type(fn).__name__}")
        else:
            raise ValueError("methods must be registry names, callables returning "
                             f"Segmentation, or (name, callable) pairs; got {m!r}")
        if name in seen:
            seen[name] += 1
            name = f"{name}#{seen[name]}"
        else:
            seen[name] = 1
        out.append((name, fn))
    if not out:
        raise ValueError("methods is empty: give at least one method")
    return out


def _accepts(fn, name):
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return True
    ps = sig.parameters
    return name in ps or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in ps.values())


def _explicit(fn, name):
    try:
        return name in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False


def _method_kwargs(fn, lam, channel_axis, seed, params, share_lam=True):
    kw = {}
    if _accepts(fn, "channel_axis"):
        kw["channel_axis"] = channel_axis
    if seed is not None and _explicit(fn, "seed"):
        kw["seed"] = seed
    if _explicit(fn, "progress"):  # no nested progress bars (neural, unrolled)
        kw["progress"] = False
    if share_lam:
        if _explicit(fn, "lam"):
            kw["lam"] = lam
        elif _explicit(fn, "mu"):  # Chan–Vese: mu |Γ| = (2 λ) · (boundary counted once)
            kw["mu"] = 2.0 * lam
    kw.update(params or {})
    return kw


def _device_of(res):
    dev = res.extras.get("device") if isinstance(res.extras, dict) else None
    if dev is None and isinstance(res.params, dict):
        dev = res.params.get("device")
    return "cpu" if dev in (None, "auto") else str(dev)


def _score_result(res, image_n, channel_axis, lam, ground_truth, ignore_index, n_phases):
    lab = np.asarray(res.labels)
    spatial = image_n.shape if channel_axis is None else tuple(
        np.delete(np.array(image_n.shape), channel_axis % image_n.ndim))
    if lab.shape != tuple(spatial):
        raise ValueError(f"labels of shape {lab.shape} do not match the image's spatial shape "
                         f"{tuple(spatial)}")
    terms = shared_energy(image_n, lab, lam, channel_axis=channel_axis, n_phases=n_phases,
                          normalise=False)
    row = {"energy": float(terms.total), "data": float(terms.data),
           "length": float(terms.length), "lam": float(lam),
           "recorded_energy": float(res.final_energy)}
    if ground_truth is not None:
        row.update(label_scores(lab, ground_truth, ignore_index=ignore_index))
    return row


def _nan_row(ground_truth, spatial):
    row = {k: float("nan") for k in ("energy", "data", "length", "recorded_energy")}
    if ground_truth is not None:
        keys = (("covering", "PRI", "VI", "covering_num", "covering_den")
                if _is_label_list(ground_truth, spatial) else ("dice", "iou", "pixel_accuracy"))
        row.update({k: float("nan") for k in keys})
    return row


def compare(image, methods=DEFAULT_METHODS, ground_truth=None, n_phases=2, *, lam=None,
            channel_axis=None, method_params=None, seed=0, normalise=True, share_lam=True,
            ignore_index=None, errors="warn", progress=False, warmup=True):
    r"""Run several segmentation methods on one image and score them with one ruler.

    Parameters
    ----------
    image : array_like
        ``(H, W)``, ``(D, H, W)`` or with a channel axis (scikit-image conventions).
    methods : sequence
        Registry names (:func:`varseg.methods.method_names`: ``"chan-vese"``, ``"lic"``,
        ``"fixed-point"``, ``"unrolled"``, ``"neural"``, ``"kmeans"``, ``"otsu"``), callables
        ``f(image, n_phases, **kw)`` returning :class:`varseg.Segmentation`, or
        ``(name, callable_or_registry_name)`` pairs. Default :data:`DEFAULT_METHODS`.
    ground_truth : ndarray of int, or list of ndarray, optional
        A class label map (scored by Hungarian-matched Dice, IoU and pixel accuracy) or a
        list / stack of human segmentations (covering, PRI, VI).
    n_phases : int
        Number of phases K given to every method.
    lam : float, optional
        λ of the shared energy (and given to the methods, see ``share_lam``); default
        :data:`DEFAULT_LAM` = 0.125 = Chan–Vese's default μ / 2.
    channel_axis : int, optional
        Channel axis of a colour image.
    method_params : dict, optional
        Method name → dict of extra keyword arguments (override the shared ones), e.g.
        ``{"chan-vese": {"max_iter": 200}, "lic": {"sigma": 3}}``.
    seed : int, optional
        Passed to every method that has a ``seed`` parameter.
    normalise : bool
        Run the methods on the [0, 1] min/max-normalised image (default) instead of the
        image as given. The table's energies are always evaluated on the normalised image.
    share_lam : bool
        Pass the shared λ to the methods (``lam=λ``, or ``mu=2λ`` for a method with ``mu``
        but no ``lam``, i.e. Chan–Vese). With False the methods keep their own defaults;
        the table is still evaluated with the shared λ.
    ignore_index : int, optional
        Ground-truth label excluded from the scores (class maps).
    errors : {"warn", "raise", "ignore"}
        What a failing method does: record a row with ``error`` and NaN scores (and warn,
        for "warn"), or raise.
    progress : bool
        Show a tqdm progress bar over the methods.
    warmup : bool
        Run each method once, untimed, on a 16-pixel crop of the image first, so that the
        one-off just-in-time compilation of Numba kernels is not charged to the first call
        (the clock then measures the segmentation alone).

    Returns
    -------
    ComparisonTable
        One row per method (see :class:`ComparisonTable`); ``table.results[name]`` holds the
        :class:`varseg.Segmentation` of each method that ran.

    Examples
    --------
    >>> import numpy as np
    >>> from varseg.compare import compare
    >>> img = np.zeros((32, 32)); img[8:24, 8:24] = 1
    >>> table = compare(img, ["kmeans", "otsu"], ground_truth=(img > 0.5).astype(int))
    >>> table.row("otsu")["dice"]
    1.0
    """
    if errors not in ("warn", "raise", "ignore"):
        raise ValueError(f"errors must be 'warn', 'raise' or 'ignore'; got {errors!r}")
    lam = DEFAULT_LAM if lam is None else float(lam)
    if not math.isfinite(lam) or lam < 0:
        raise ValueError(f"lam must be a finite non-negative number; got {lam!r}")
    from .methods import get_method

    pairs = _resolve_methods(methods)
    method_params = dict(method_params or {})
    unknown = set(method_params) - {n for n, _ in pairs} - {
        f for _, f in pairs if isinstance(f, str)}
    if unknown:
        raise ValueError(f"method_params names methods not compared: {sorted(unknown)}; "
                         f"compared: {[n for n, _ in pairs]}")
    img = np.asarray(image)
    image_n = normalise_image(img)
    spatial = img.shape if channel_axis is None else tuple(
        np.delete(np.array(img.shape), channel_axis % img.ndim))
    if ground_truth is not None and not _is_label_list(ground_truth, spatial):
        gt = np.asarray(ground_truth)
        if gt.shape != tuple(spatial):
            raise ValueError(f"ground_truth must have the image's spatial shape {spatial} "
                             f"(or be a list of such label maps); got shape {gt.shape}")
    run_image = image_n if normalise else img
    table = ComparisonTable(lam=lam, meta={
        "n_phases": int(n_phases), "normalisation": "min-max to [0, 1]",
        "methods_on_normalised_image": bool(normalise), "image_shape": list(img.shape),
        "channel_axis": channel_axis, "seed": seed,
        "ground_truth": None if ground_truth is None else (
            "human segmentations" if _is_label_list(ground_truth, spatial) else "label map")})
    iterator = pairs
    if progress:
        from tqdm.auto import tqdm

        iterator = tqdm(pairs, desc="compare", unit="method")
    for name, fn in iterator:
        func = get_method(fn) if isinstance(fn, str) else fn
        params = dict(method_params.get(fn, {}) if isinstance(fn, str) else {})
        params.update(method_params.get(name, {}))
        kw = _method_kwargs(func, lam, channel_axis, seed, params, share_lam)
        row = {"method": name}
        if warmup:
            _warm_up(func, run_image, channel_axis, n_phases, kw)
        t0 = time.perf_counter()
        try:
            res = func(run_image, n_phases, **kw)
            wall = time.perf_counter() - t0
            row.update(_score_result(res, image_n, channel_axis, lam, ground_truth,
                                     ignore_index, n_phases))
        except Exception as err:  # noqa: BLE001 - reported in the table or re-raised
            if errors == "raise":
                raise
            msg = f"{type(err).__name__}: {err}"
            if errors == "warn":
                warnings.warn(f"compare: method {name!r} failed: {msg}", RuntimeWarning,
                              stacklevel=2)
            row.update(_nan_row(ground_truth, spatial))
            row.update({"n_iter": 0, "time": time.perf_counter() - t0, "device": "",
                        "converged": False, "n_phases": int(n_phases), "error": msg})
            table.rows.append(row)
            continue
        row.update({"n_iter": int(res.n_iter), "time": float(wall), "device": _device_of(res),
                    "converged": bool(res.converged), "n_phases": int(res.n_phases)})
        table.rows.append(row)
        table.results[name] = res
    return table


def _warm_up(func, image, channel_axis, n_phases, kw):
    """Call ``func`` once on a small crop (compiles Numba kernels); failures are ignored
    here and reported by the timed call."""
    ax = None if channel_axis is None else channel_axis % image.ndim
    crop = tuple(slice(None) if i == ax else slice(0, 16) for i in range(image.ndim))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            func(np.ascontiguousarray(image[crop]), n_phases, **kw)
    except Exception:  # noqa: BLE001, S110 - the timed call reports real errors
        pass


# --------------------------------------------------------------------------------------
# data sets
# --------------------------------------------------------------------------------------
def shard_info(rank=None, world_size=None):
    """``(rank, world_size)`` from the arguments or the ``RANK``/``WORLD_SIZE`` environment
    variables set by ``torchrun`` (``(0, 1)`` when absent)."""
    r = int(os.environ.get("RANK", 0)) if rank is None else int(rank)
    w = int(os.environ.get("WORLD_SIZE", 1)) if world_size is None else int(world_size)
    if w < 1 or not 0 <= r < w:
        raise ValueError(f"need 0 <= rank < world_size; got rank={r}, world_size={w}")
    return r, w


def _read_image(path):
    from .io import load_image

    return load_image(path)


def read_ground_truth(path):
    """Read a ground truth file: a label-map ``.png``/``.tif``/``.npy``, or a BSDS ``.mat``.

    A palette / gray PNG gives its indices; an RGB(A) PNG is converted to one label per
    distinct colour. A BSDS500 ``.mat`` gives the list of human segmentations.

    Returns
    -------
    ndarray of int64, or list of ndarray
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"ground truth file not found: {path}")
    suffix = path.suffix.lower()
    if suffix == ".mat":
        from .data import load_bsds_ground_truth

        return [np.asarray(g, dtype=np.int64) for g in load_bsds_ground_truth(path)]
    if suffix == ".npy":
        arr = np.load(path)
    else:
        from PIL import Image

        with Image.open(path) as im:
            arr = np.array(im)
    arr = np.asarray(arr)
    if arr.ndim == 3:  # colour-coded label map: one label per distinct colour
        flat = arr.reshape(-1, arr.shape[-1])
        _, inv = np.unique(flat, axis=0, return_inverse=True)
        arr = inv.reshape(arr.shape[:2])
    if not (np.issubdtype(arr.dtype, np.integer) or arr.dtype == bool):
        if np.all(np.mod(arr, 1) == 0):
            arr = arr.astype(np.int64)
        else:
            raise ValueError(f"ground truth {path} is not an integer label map "
                             f"(dtype {arr.dtype})")
    return arr.astype(np.int64)


def iter_folder(image_dir, gt_dir=None):
    """Yield ``(name, image, ground_truth, channel_axis)`` for the images of a folder.

    Images: files with suffix .png/.jpg/.jpeg/.tif/.tiff/.bmp/.gif/.npy, sorted by name, read
    by :func:`varseg.io.load_image` (as float in [0, 1]). Ground truth: the file of
    ``gt_dir`` with the same stem and suffix .png/.npy/.mat/.tif/.tiff/.bmp (first found;
    see :func:`read_ground_truth`), or None.
    """
    image_dir = Path(image_dir)
    if not image_dir.is_dir():
        raise FileNotFoundError(f"image folder not found: {image_dir}")
    files = sorted(p for p in image_dir.iterdir()
                   if p.is_file() and p.suffix.lower() in _IMAGE_SUFFIXES)
    if not files:
        raise FileNotFoundError(f"no images ({sorted(_IMAGE_SUFFIXES)}) in {image_dir}")
    gt_dir = None if gt_dir is None else Path(gt_dir)
    if gt_dir is not None and not gt_dir.is_dir():
        raise FileNotFoundError(f"ground-truth folder not found: {gt_dir}")
    for p in files:
        image, ca = _read_image(p)
        gt = None
        if gt_dir is not None:
            for s in _GT_SUFFIXES:
                q = gt_dir / (p.stem + s)
                if q.is_file():
                    gt = read_ground_truth(q)
                    break
        yield p.stem, image, gt, ca


def _dataset_items(dataset):
    """Items of a varseg.data dataset as (name, image, gt, channel_axis)."""
    ignore = getattr(dataset, "ignore_index", None)
    for i in range(len(dataset)):
        item = dataset[i]
        img = item["image"]
        img = img.numpy() if hasattr(img, "numpy") else np.asarray(img)
        if img.ndim == 3 and img.shape[0] == 1:
            img, ca = img[0], None
        elif img.ndim == 3:
            img, ca = np.moveaxis(img, 0, -1), -1
        else:
            ca = None
        gt = None
        if "ground_truths" in item:
            gt = [np.asarray(g) for g in item["ground_truths"]]
        elif "label" in item and bool(item.get("labeled", True)):
            lab = item["label"]
            gt = lab.numpy() if hasattr(lab, "numpy") else np.asarray(lab)
            if ignore is not None and np.all(gt == ignore):
                gt = None
        yield str(item.get("name", i)), img, gt, ca


def _normalise_items(items, gt_dir=None, channel_axis=None):
    """Any accepted ``items`` → iterator of (name, image, gt, channel_axis)."""
    if isinstance(items, (str, os.PathLike)):
        return iter_folder(items, gt_dir)
    if hasattr(items, "__getitem__") and hasattr(items, "__len__") and (
            type(items).__module__.startswith("varseg.data")
            or hasattr(items, "num_classes")):
        return _dataset_items(items)

    def gen():
        for k, it in enumerate(items):
            if isinstance(it, Mapping):
                yield (str(it.get("name", k)), it["image"], it.get("ground_truth"),
                       it.get("channel_axis", channel_axis))
            elif len(it) == 2:
                yield str(it[0]), it[1], None, channel_axis
            elif len(it) == 3:
                yield str(it[0]), it[1], it[2], channel_axis
            elif len(it) == 4:
                yield str(it[0]), it[1], it[2], it[3]
            else:
                raise ValueError("dataset items must be (name, image), (name, image, gt) or "
                                 f"(name, image, gt, channel_axis); item {k} has {len(it)} "
                                 "fields")
    return gen()


def _run_one(index, name, image, gt, ca, cfg):
    """Worker: compare on one image, return per-image rows (and results if kept)."""
    table = compare(image, cfg["methods"], gt, cfg["n_phases"], lam=cfg["lam"],
                    channel_axis=ca, method_params=cfg["method_params"], seed=cfg["seed"],
                    normalise=cfg["normalise"], share_lam=cfg["share_lam"],
                    ignore_index=cfg["ignore_index"], errors=cfg["errors"])
    rows = [dict({"image": name, "index": int(index)}, **r) for r in table.rows]
    return rows, (table.results if cfg["keep_results"] else None)


def _init_worker(n_threads):
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                "NUMBA_NUM_THREADS"):
        os.environ.setdefault(var, str(n_threads))
    warnings.filterwarnings("ignore", category=RuntimeWarning, message="compare: method")


_AGG_SKIP = {"method", "image", "error", "index", "covering_num", "covering_den"}


def aggregate_rows(rows):
    """Aggregate per-image rows to one row per method.

    Numeric columns are averaged over the images where they are finite (NaN-aware mean);
    ``converged`` becomes the fraction of images that converged; ``covering`` is pooled,
    ``Σ covering_num / Σ covering_den`` (BSDS benchmark); ``time`` is the mean per image
    and ``total_time`` the sum; ``device`` the distinct devices; ``n_images`` the count and
    ``n_failed`` the number of images where the method failed.
    """
    by = {}
    for r in rows:
        by.setdefault(r["method"], []).append(r)
    out = []
    for method, rs in by.items():
        agg = {"method": method, "n_images": len(rs)}
        keys = list(dict.fromkeys(k for r in rs for k in r))
        for k in keys:
            if k in _AGG_SKIP:
                continue
            vals = [r.get(k) for r in rs]
            if k == "device":
                agg[k] = ",".join(sorted({str(v) for v in vals if v}))
            elif k == "converged":
                agg[k] = float(np.mean([bool(v) for v in vals]))
            elif k in ("n_phases", "lam"):
                uniq = {v for v in vals if v is not None}
                agg[k] = uniq.pop() if len(uniq) == 1 else None
            else:
                num = np.array([v for v in vals if isinstance(v, (int, float, np.number))
                                and not isinstance(v, bool)], dtype=np.float64)
                num = num[np.isfinite(num)]
                agg[k] = float(num.mean()) if num.size else float("nan")
        if any("covering_num" in r for r in rs):
            n = np.array([r.get("covering_num", np.nan) for r in rs], dtype=np.float64)
            d = np.array([r.get("covering_den", np.nan) for r in rs], dtype=np.float64)
            ok = np.isfinite(n) & np.isfinite(d)
            agg["covering"] = float(n[ok].sum() / d[ok].sum()) if ok.any() else float("nan")
            agg["covering_num"] = float(n[ok].sum())
            agg["covering_den"] = float(d[ok].sum())
        if "time" in agg:
            agg["total_time"] = float(sum(r.get("time", 0.0) or 0.0 for r in rs))
        agg["n_failed"] = sum(1 for r in rs if r.get("error"))
        out.append(agg)
    return out


def _dataset_table(per_rows, lam, meta, results=None):
    per_rows = sorted(per_rows, key=lambda r: (r.get("index", 0), r.get("_order", 0)))
    for r in per_rows:
        r.pop("_order", None)
    n_images = len({r.get("index") for r in per_rows})
    meta = dict(meta, n_images=n_images)
    per = ComparisonTable(rows=per_rows, lam=lam, meta=meta)
    return ComparisonTable(rows=aggregate_rows(per_rows), results=results or {}, lam=lam,
                           meta=meta, per_image=per)


def compare_dataset(items, methods=DEFAULT_METHODS, n_phases=2, *, lam=None,
                    channel_axis=None, method_params=None, seed=0, normalise=True,
                    share_lam=True, ignore_index=None, errors="warn", gt_dir=None, n_jobs=1,
                    progress=True, shard=None, out_dir=None, keep_results=False,
                    mp_context="spawn"):
    r"""Run :func:`compare` on every image of a data set and aggregate.

    Parameters
    ----------
    items : iterable, folder path or dataset
        * an iterable of ``(name, image, ground_truth)`` (``ground_truth`` may be None; also
          ``(name, image)``, ``(name, image, gt, channel_axis)`` or dicts with keys
          ``name``, ``image``, ``ground_truth``, ``channel_axis``);
        * a folder of images (``gt_dir``: a folder of ground-truth files with the same stems,
          see :func:`iter_folder`);
        * a :mod:`varseg.data` dataset (items' ``"image"`` ``(C, H, W)`` tensors; ground truth
          from ``"ground_truths"`` when present, else ``"label"``; its ``ignore_index`` is
          used unless ``ignore_index`` is given).
    methods, n_phases, lam, method_params, seed
        As in :func:`compare`.
    channel_axis : int, optional
        As in :func:`compare`, for tuple items without their own.
    normalise, share_lam, ignore_index, errors
        As in :func:`compare`.
    gt_dir : path, optional
        Ground-truth folder for a folder ``items``.
    n_jobs : int
        Worker processes (:class:`concurrent.futures.ProcessPoolExecutor`); 1 runs in this
        process. Each worker limits its BLAS/OpenMP/Numba threads to ``cpu_count // n_jobs``.
        Methods given as callables must then be picklable (module-level functions).
    progress : bool
        tqdm progress bar over the images.
    shard : (rank, world_size), "auto" or None
        Process only items ``rank::world_size``. ``None``/``"auto"`` reads ``RANK`` and
        ``WORLD_SIZE`` from the environment (set by ``torchrun``), so launching the same
        script on W ranks partitions the data set; combine the parts with
        :func:`merge_shards`.
    out_dir : path, optional
        Write this process's table to ``out_dir/shard-RRRRR-of-WWWWW.json`` (always when
        sharded over more than one rank and ``out_dir`` is given) — the input of
        :func:`merge_shards`.
    keep_results : bool
        Keep every :class:`varseg.Segmentation` in ``table.results[(image, method)]``
        (memory grows with the data set).
    mp_context : str
        Start method of the worker processes ("spawn" — safe with torch — "forkserver" or
        "fork").

    Returns
    -------
    ComparisonTable
        Aggregated rows (one per method: means over images, pooled covering, ``n_images``,
        see :func:`aggregate_rows`) with the per-image rows in ``table.per_image`` (columns
        ``image`` and ``index``, the item's position in the full data set).
    """
    lam = DEFAULT_LAM if lam is None else float(lam)
    rank, world = shard_info(*shard) if isinstance(shard, (tuple, list)) else shard_info()
    if shard is False:
        rank, world = 0, 1
    n_jobs = int(n_jobs)
    if n_jobs < 1:
        n_jobs = max(1, os.cpu_count() or 1)
    pairs = _resolve_methods(methods)
    if ignore_index is None and not isinstance(items, (str, os.PathLike)):
        ignore_index = getattr(items, "ignore_index", None)
    cfg = {"methods": pairs, "n_phases": n_phases, "lam": lam,
           "method_params": method_params, "seed": seed, "normalise": normalise,
           "share_lam": share_lam, "ignore_index": ignore_index, "errors": errors,
           "keep_results": keep_results}
    stream = ((i, *it) for i, it in enumerate(_normalise_items(items, gt_dir, channel_axis))
              if i % world == rank)
    total = None
    if hasattr(items, "__len__") and not isinstance(items, (str, os.PathLike)):
        n = len(items)
        total = len(range(rank, n, world))
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=total, desc="compare_dataset" + (f" [rank {rank}/{world}]"
                                                          if world > 1 else ""), unit="image")
    per_rows, results = [], {}

    def collect(rows, res):
        for j, r in enumerate(rows):
            r["_order"] = j
        per_rows.extend(rows)
        if res:
            name = rows[0]["image"] if rows else ""
            for m, s in res.items():
                results[(name, m)] = s
        if bar is not None:
            bar.update(1)

    try:
        if n_jobs == 1:
            for i, name, image, gt, ca in stream:
                collect(*_run_one(i, name, image, gt, ca, cfg))
        else:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor, as_completed

            threads = max(1, (os.cpu_count() or 1) // n_jobs)
            ctx = multiprocessing.get_context(mp_context)
            with ProcessPoolExecutor(n_jobs, mp_context=ctx, initializer=_init_worker,
                                     initargs=(threads,)) as ex:
                futures = [ex.submit(_run_one, i, name, image, gt, ca, cfg)
                           for i, name, image, gt, ca in stream]
                for fut in as_completed(futures):
                    collect(*fut.result())
    finally:
        if bar is not None:
            bar.close()
    meta = {"n_phases": int(n_phases), "normalisation": "min-max to [0, 1]",
            "methods": [n for n, _ in pairs], "seed": seed, "rank": rank,
            "world_size": world}
    table = _dataset_table(per_rows, lam, meta, results)
    if out_dir is not None:
        path = Path(out_dir) / f"shard-{rank:05d}-of-{world:05d}.json"
        table.to_json(path)
        table.meta["shard_path"] = str(path)
    return table


def merge_shards(paths):
    """Combine the per-rank tables written by :func:`compare_dataset` (``out_dir``).

    Parameters
    ----------
    paths : iterable of path, or a folder
        Shard JSON files (``shard-*-of-*.json``), or the folder holding them.

    Returns
    -------
    ComparisonTable
        Per-image rows of all shards (sorted by item index) and their aggregation, exactly
        as an unsharded run would give.
    """
    if isinstance(paths, (str, os.PathLike)) and Path(paths).is_dir():
        paths = sorted(Path(paths).glob("shard-*-of-*.json"))
    paths = [Path(p) for p in paths]
    if not paths:
        raise ValueError("merge_shards: no shard files given")
    per_rows, lam, meta, worlds = [], None, {}, set()
    for p in paths:
        t = ComparisonTable.from_json(p)
        if t.per_image is None:
            raise ValueError(f"{p} is not a compare_dataset shard (no per_image rows)")
        if lam is not None and not math.isclose(lam, t.lam):
            raise ValueError(f"shards use different λ: {lam} and {t.lam} ({p})")
        lam = t.lam
        meta = t.meta
        worlds.add(t.meta.get("world_size"))
        per_rows.extend(dict(r) for r in t.per_image.rows)
    if len(worlds) > 1:
        raise ValueError(f"shards come from different world sizes: {sorted(worlds)}")
    seen = {}
    for r in per_rows:
        key = (r.get("index"), r.get("method"))
        if key in seen:
            raise ValueError(f"image index {key[0]} / method {key[1]!r} appears in two shards")
        seen[key] = True
    for j, r in enumerate(per_rows):
        r["_order"] = j
    meta = {k: v for k, v in meta.items() if k not in ("rank", "shard_path")}
    meta["merged_shards"] = len(paths)
    return _dataset_table(per_rows, lam, meta)

"""``varseg compare``: several methods on one image (or a folder), one ruler, one report.

Examples
--------
``varseg compare sample:camera -o out`` runs the default methods (chan-vese, lic,
fixed-point, neural, kmeans, otsu) on the camera image and writes ``out/report.md``,
``out/results.csv``, figures and each method's ``.npz``.

``varseg compare image.png --gt labels.png --phases 3 --methods kmeans otsu lic -o out``
scores against a label map (Hungarian-matched Dice / IoU / pixel accuracy);
``--gt 12003.mat`` against BSDS500 human segmentations (covering / PRI / VI).

``varseg compare images/ --gt groundTruth/ --jobs 2 -o out`` compares on every image of a
folder (ground truth matched by file stem) and writes the mean table and the per-image table.

On one image, when a second CPU is idle (:func:`varseg.compare.has_spare_cpu`), the torch
methods (``neural``) run in one worker process started first (:class:`varseg.compare.
TorchWorker`): torch's import and the network's fit overlap the Numba methods; the table is
the serial one. ``--serial`` runs everything in this process, ``--parallel`` uses the
worker on a busy machine too.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

from varseg.commands._output import check_output_dir
from varseg.compare import DEFAULT_METHODS
from varseg.methods import get_spec, method_names

log = logging.getLogger(__name__)


def add_arguments(p):
    p.add_argument(
        "image",
        help="image file, .npy array, sample:NAME (skimage.data), or a "
        "folder of images (data-set mode)",
    )
    p.add_argument(
        "--gt",
        default=None,
        help="ground truth: label map (.png/.npy) or BSDS500 .mat; a folder in "
        "data-set mode (files matched by stem)",
    )
    p.add_argument("--phases", "-k", type=int, default=2, help="number of phases K (default 2)")
    p.add_argument(
        "--methods",
        nargs="+",
        default=None,
        choices=method_names(),
        metavar="METHOD",
        help=f"methods to compare (default: {' '.join(DEFAULT_METHODS)}; "
        f"choices: {', '.join(method_names())})",
    )
    p.add_argument(
        "--lam",
        type=float,
        default=None,
        help="λ of the shared Mumford–Shah energy, given to every method "
        "(default 0.125 = Chan–Vese's mu/2 on images scaled to [0, 1])",
    )
    p.add_argument(
        "--max-iter",
        type=int,
        default=None,
        help="iteration budget of every iterative method (max_iter / n_outer)",
    )
    p.add_argument(
        "--max-size",
        type=int,
        default=256,
        help="downscale images whose largest side exceeds this (anti-aliased; "
        "ground truth by nearest neighbour); 0 keeps the full size "
        "(default 256)",
    )
    p.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="[METHOD.]KEY=VALUE",
        help="extra keyword for one method (METHOD.KEY) or for every method that "
        "has KEY; value parsed as JSON; repeatable",
    )
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--device", default=None, help="auto|cpu|cuda for neural methods")
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        help="CPU threads for torch and Numba inside each method (default: their "
        "own defaults, and 1 torch thread for neural); 1 is fastest for small images on a "
        "busy machine",
    )
    p.add_argument(
        "--jobs", "-j", type=int, default=1, help="worker processes in data-set mode (default 1)"
    )
    _add_worker_arguments(p)
    p.add_argument("--no-figures", action="store_true", help="skip the figures")
    p.add_argument(
        "--gif",
        action="store_true",
        help="also write an animated GIF of the Chan–Vese level-set evolution",
    )
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    p.add_argument("-o", "--out", default="varseg-compare", help="output folder")


def _add_worker_arguments(p):
    """``--serial`` / ``--parallel``: where the torch methods of one image run."""
    where = p.add_mutually_exclusive_group()
    where.add_argument(
        "--serial",
        action="store_true",
        help="run every method in this process, one after the other (default when a second "
        "CPU is idle: the torch methods run in one worker process alongside the others)",
    )
    where.add_argument(
        "--parallel",
        action="store_true",
        help="run the torch methods in a worker process even when no CPU is idle",
    )


def _parse_value(val):
    try:
        return json.loads(val)
    except json.JSONDecodeError:
        return val


def _defaults(spec, args):
    """The command line's keywords for one method: its declared ``cli_defaults``, then
    ``--max-iter`` under its declared iteration keyword, then ``--device``."""
    kw = dict(spec.cli_defaults)
    if args.max_iter is not None:
        if spec.iteration_param is None:
            log.info("--max-iter does not apply to %s (not iterative)", spec.name)
        else:
            kw[spec.iteration_param] = args.max_iter
    if args.device is not None and spec.takes_device:
        kw["device"] = args.device
    return kw


def _apply_param(params, specs, item):
    if "=" not in item:
        raise ValueError(f"--param expects [METHOD.]KEY=VALUE; got {item!r}")
    key, val = item.split("=", 1)
    value = _parse_value(val)
    if "." in key and key.split(".", 1)[0] in method_names():
        m, k = key.split(".", 1)
        k = k.replace("-", "_")
        if m not in params:
            raise ValueError(f"--param {item!r}: method {m!r} is not in --methods {list(params)}")
        if not specs[m].accepts(k):
            raise ValueError(
                f"--param {item!r}: method {m!r} has no option {k!r}; it takes "
                f"{sorted(specs[m].options)}"
            )
        params[m][k] = value
        return
    k = key.replace("-", "_")
    targets = [m for m in params if specs[m].accepts(k)]
    if not targets:
        raise ValueError(f"--param {item!r}: no compared method has a parameter {k!r}")
    for m in targets:
        params[m][k] = value


def method_params(args):
    """Per-method keyword arguments from the command line: each method's declared
    :attr:`~varseg.methods.MethodSpec.cli_defaults`, then the options."""
    if args.methods is None:
        args.methods = default_methods(args.phases)
    specs = {m: get_spec(m) for m in args.methods}
    params = {m: _defaults(specs[m], args) for m in args.methods}
    for item in args.param:
        _apply_param(params, specs, item)
    if args.gif and "chan-vese" in params:
        params["chan-vese"].setdefault("return_history", True)
    return {m: p for m, p in params.items() if p}


class _TorchThreadsCall:
    """A method's function run with ``n_threads`` torch CPU threads (restored afterwards).

    A class rather than a closure so that the spec pickles into ``compare``'s worker process.
    """

    def __init__(self, spec, n_threads):
        self.spec, self.n_threads = spec, n_threads

    def __call__(self, image, n_phases, **kw):
        from varseg._threads import torch_threads

        func = self.spec.load()  # a missing torch is reported here, as for the plain spec
        with torch_threads(self.n_threads):
            return func(image, n_phases, **kw)


def _with_torch_threads(spec, n_threads):
    """``spec`` whose calls run with ``n_threads`` torch CPU threads (restored afterwards)."""
    import dataclasses

    return dataclasses.replace(spec, func=_TorchThreadsCall(spec, n_threads))


def compared_methods(args):
    """Return the methods of a single-image comparison: names, or specs run with their declared
    :attr:`~varseg.methods.MethodSpec.cli_threads` torch threads when ``--threads`` is not
    given."""
    out = []
    for m in args.methods:
        spec = get_spec(m)
        use = args.threads is None and spec.cli_threads is not None
        if use:
            log.debug("%s runs on %d torch thread(s) (--threads N overrides)", m, spec.cli_threads)
        out.append(_with_torch_threads(spec, spec.cli_threads) if use else m)
    return out


def default_methods(n_phases=2):
    """Return :data:`~varseg.compare.DEFAULT_METHODS` that can run here.

    Without torch the torch methods are left out (a classical install compares the
    classical methods), and Otsu above :data:`varseg.baselines.OTSU_MAX_PHASES` phases; a
    warning names what was left out.
    """
    from varseg._optional import DEEP_EXTRA_HINT, has_torch
    from varseg.baselines import OTSU_MAX_PHASES

    methods = list(DEFAULT_METHODS)
    if not has_torch():
        skipped = [m for m in methods if get_spec(m).needs_torch]
        log.warning("torch is not installed: skipping %s (%s)", ", ".join(skipped), DEEP_EXTRA_HINT)
        methods = [m for m in methods if m not in skipped]
    if n_phases > OTSU_MAX_PHASES and "otsu" in methods:
        log.warning(
            "otsu handles at most %d phases: left out for --phases %d", OTSU_MAX_PHASES, n_phases
        )
        methods.remove("otsu")
    return methods


def check_args(args):
    """Refuse bad numbers and an unusable output folder before any work is done."""
    from varseg._validation import check_int

    if args.methods is None:
        args.methods = default_methods(args.phases)
    check_int(args.phases, "--phases", minimum=2)
    check_int(args.max_size, "--max-size", minimum=0)
    check_int(args.jobs, "--jobs")
    if args.max_iter is not None:
        check_int(args.max_iter, "--max-iter")
    if args.threads is not None:
        check_int(args.threads, "--threads")
    check_output_dir(args.out)


def _resize(image, shape, order):
    r"""``skimage.transform.resize(image, shape, order=order, preserve_range=True)``.

    The same two :mod:`scipy.ndimage` calls scikit-image makes with its defaults
    (``mode="reflect"``, i.e. ndimage's ``"mirror"``, output clipped to the input's range):
    for ``order > 0`` a Gaussian anti-aliasing filter of standard deviation
    :math:`\sigma_i = \max(0, (f_i - 1) / 2)` for the down-scaling factor :math:`f_i` of
    each axis, then ``ndimage.zoom(..., grid_mode=True)``. Identical pixels (tested), without
    importing ``skimage.transform`` (a few tenths of a second of ``varseg compare``).
    ``order=0`` (labels) is nearest neighbour without anti-aliasing.
    """
    import numpy as np
    from scipy import ndimage

    image = np.asarray(image)
    if order > 0 and not np.issubdtype(image.dtype, np.floating):
        image = image.astype(np.float64)
    factors = np.divide(image.shape, shape)
    filtered = image
    if order > 0:
        sigma = np.maximum(0, (factors - 1) / 2)
        filtered = ndimage.gaussian_filter(image, sigma, cval=0.0, mode="mirror")
    out = ndimage.zoom(
        filtered, [1 / f for f in factors], order=order, mode="mirror", cval=0.0, grid_mode=True
    )
    return np.clip(out, np.min(image), np.max(image), out=out)


def _downscale(image, channel_axis, ground_truth, max_size):
    """Resize so that the largest spatial side is ``max_size`` (returns notes too)."""
    import numpy as np

    if not max_size:
        return image, ground_truth, []
    spatial = (
        image.shape
        if channel_axis is None
        else tuple(np.delete(np.array(image.shape), channel_axis % image.ndim))
    )
    big = max(spatial)
    if big <= max_size:
        return image, ground_truth, []
    f = max_size / big
    new = tuple(max(1, round(s * f)) for s in spatial)
    if channel_axis is None:
        shape = new
    else:
        shape = list(new)
        shape.insert(channel_axis % image.ndim, image.shape[channel_axis])
        shape = tuple(shape)
    img = _resize(image, shape, order=1)

    def lab(g):
        return _resize(np.asarray(g), new, order=0).astype(np.int64)

    gt = ground_truth
    if gt is not None:
        gt = [lab(g) for g in gt] if isinstance(gt, list) else lab(gt)
    note = (
        f"Downscaled from {'×'.join(map(str, spatial))} to {'×'.join(map(str, new))} "
        f"(`--max-size {max_size}`; `--max-size 0` keeps the full size)."
    )
    return img, gt, [note]


def _main_dataset(args, params):
    from varseg.compare import compare_dataset
    from varseg.report import write_dataset_report

    if args.max_size:
        log.warning("--max-size is not applied in data-set mode (images used as they are)")
    t0 = time.perf_counter()
    table = compare_dataset(
        args.image,
        args.methods,
        args.phases,
        lam=args.lam,
        method_params=params,
        seed=args.seed,
        gt_dir=args.gt,
        n_jobs=args.jobs,
        progress=not args.quiet,
        errors="ignore",
    )
    _refuse_all_failed(table)
    written = write_dataset_report(table, args.out, source=args.image)
    print(table.to_string())
    print(f"total {time.perf_counter() - t0:.1f}s")
    for p in written.values():
        print(f"wrote {p}")
    return 0


def main(args):
    from varseg._threads import limit_threads

    check_args(args)
    params = method_params(args)
    if args.threads is not None:
        limit_threads(args.threads)
    if Path(args.image).is_dir():
        return _main_dataset(args, params)
    with _early_worker(args) as worker:
        return _main_image(args, params, worker)


def _early_worker(args):
    """Start a :class:`~varseg.compare.TorchWorker` now, or return a null context.

    Started when the comparison has torch methods and others, a spare CPU
    (:func:`varseg.compare.has_spare_cpu`) or ``--parallel``, torch installed and no
    ``--serial``: torch's import then overlaps the image loading and the Numba methods.
    """
    from contextlib import nullcontext

    from varseg._optional import has_torch
    from varseg.compare import TorchWorker, has_spare_cpu

    torch_methods = [m for m in args.methods if get_spec(m).needs_torch]
    if (
        args.serial
        or not torch_methods
        or len(torch_methods) == len(args.methods)
        or not (getattr(args, "parallel", False) or has_spare_cpu())
        or not has_torch()
    ):
        return nullcontext()
    log.debug("%s run in a worker process (--serial: in this one)", ", ".join(torch_methods))
    worker = TorchWorker()
    if not args.no_figures:
        worker.while_waiting = _import_figure_modules
    return worker


def _import_figure_modules():
    """Import what the report's figures need and load their font.

    About a second (matplotlib, its font, the Hungarian matching's ``scipy.optimize`` that
    colours the comparison panels) spent while the worker finishes instead of after it.
    """
    import scipy.optimize  # noqa: F401 - varseg.metrics.match_labels, for plot_comparison
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from PIL import PngImagePlugin  # noqa: F401 - the figures' encoder

    fig = Figure(figsize=(1, 1))
    FigureCanvasAgg(fig)
    fig.add_subplot().set_title("E = 1")
    fig.canvas.draw()


def _main_image(args, params, worker):
    from varseg.compare import compare, read_ground_truth
    from varseg.io import load_image
    from varseg.report import write_comparison_report

    t0 = time.perf_counter()
    image, channel_axis = load_image(args.image)
    gt = None if args.gt is None else read_ground_truth(args.gt)
    image, gt, notes = _downscale(image, channel_axis, gt, args.max_size)
    table = compare(
        image,
        compared_methods(args),
        gt,
        args.phases,
        lam=args.lam,
        channel_axis=channel_axis,
        method_params=params,
        seed=args.seed,
        progress=not args.quiet,
        errors="ignore",
        torch_worker=False if worker is None else worker,
    )
    t_run = time.perf_counter() - t0
    _refuse_all_failed(table)
    written = write_comparison_report(
        table,
        image,
        args.out,
        ground_truth=gt,
        channel_axis=channel_axis,
        source=args.image,
        notes=notes,
        figures=not args.no_figures,
        evolution_gif=args.gif,
    )
    print(table.to_string())
    print(
        f"shared energy: λ = {table.lam:g} on the image scaled to [0, 1]; lowest: "
        + (table.best("energy") if any(not r.get("error") for r in table.rows) else "-")
    )
    print(f"methods {t_run:.1f}s, total {time.perf_counter() - t0:.1f}s")
    print(f"wrote {written['report']} and {len(written) - 1} more files in {args.out}")
    return 0


def _refuse_all_failed(table):
    """Every method failed: one error line naming them, and no report written."""
    if not table.all_failed:
        for r in (table.per_image or table).rows:
            if r.get("error"):
                log.warning("method %s failed: %s", r["method"], r["error"])
    else:
        errors = {f"{r['method']}: {r['error']}" for r in table.rows}
        raise ValueError("every method failed (nothing written): " + "; ".join(sorted(errors)))

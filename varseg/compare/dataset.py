"""Comparisons over a data set: items from folders, datasets or iterables; worker processes;
shards over the ranks of a ``torchrun`` launch, and their merge."""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from .._environment import environment
from .._threads import limit_threads
from ..energy import DEFAULT_LAM
from ..io import read_ground_truth
from .run import DEFAULT_METHODS, compare, resolve_methods
from .scoring import aggregate_rows
from .table import ComparisonTable

__all__ = [
    "compare_dataset",
    "merge_shards",
    "shard_info",
    "iter_folder",
    "read_ground_truth",
    "init_worker",
]

_IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".gif", ".npy"}
_GT_SUFFIXES = (".png", ".npy", ".mat", ".tif", ".tiff", ".bmp")


def shard_info(rank=None, world_size=None):
    """``(rank, world_size)`` from the arguments or the ``RANK``/``WORLD_SIZE`` environment
    variables set by ``torchrun`` (``(0, 1)`` when absent)."""
    r = int(os.environ.get("RANK", 0)) if rank is None else int(rank)
    w = int(os.environ.get("WORLD_SIZE", 1)) if world_size is None else int(world_size)
    if w < 1 or not 0 <= r < w:
        raise ValueError(f"need 0 <= rank < world_size; got rank={r}, world_size={w}")
    return r, w


def iter_folder(image_dir, gt_dir=None):
    """Yield ``(name, image, ground_truth, channel_axis)`` for the images of a folder.

    Images: files with suffix .png/.jpg/.jpeg/.tif/.tiff/.bmp/.gif/.npy, sorted by name, read
    by :func:`varseg.io.load_image` (as float in [0, 1]). Ground truth: the file of
    ``gt_dir`` with the same stem and suffix .png/.npy/.mat/.tif/.tiff/.bmp (first found;
    see :func:`read_ground_truth`). An image without ground truth in ``gt_dir`` is an error
    (a mean over the others would silently change what is measured).
    """
    from ..io import load_image

    image_dir = Path(image_dir)
    if not image_dir.is_dir():
        raise FileNotFoundError(f"image folder not found: {image_dir}")
    files = sorted(
        p for p in image_dir.iterdir() if p.is_file() and p.suffix.lower() in _IMAGE_SUFFIXES
    )
    if not files:
        raise FileNotFoundError(f"no images ({sorted(_IMAGE_SUFFIXES)}) in {image_dir}")
    gt_dir = None if gt_dir is None else Path(gt_dir)
    if gt_dir is not None and not gt_dir.is_dir():
        raise FileNotFoundError(f"ground-truth folder not found: {gt_dir}")
    gts = {p: _gt_file(gt_dir, p) for p in files} if gt_dir is not None else {}
    missing = [p.name for p, q in gts.items() if q is None]
    if missing:
        raise FileNotFoundError(
            f"no ground truth in {gt_dir} for {len(missing)} image(s): "
            f"{', '.join(missing[:5])}" + (" …" if len(missing) > 5 else "")
        )
    for p in files:
        image, ca = load_image(p)
        gt = read_ground_truth(gts[p]) if gt_dir is not None else None
        yield p.stem, image, gt, ca


def _gt_file(gt_dir, image_path):
    for s in _GT_SUFFIXES:
        q = gt_dir / (image_path.stem + s)
        if q.is_file():
            return q
    return None


def _tensor_to_numpy(x):
    return x.numpy() if hasattr(x, "numpy") else np.asarray(x)


def _dataset_items(dataset):
    """Items of a varseg.data dataset as (name, image, gt, channel_axis)."""
    ignore = getattr(dataset, "ignore_index", None)
    for i in range(len(dataset)):
        item = dataset[i]
        img = _tensor_to_numpy(item["image"])
        ca = None
        if img.ndim == 3 and img.shape[0] == 1:
            img = img[0]
        elif img.ndim == 3:
            img, ca = np.moveaxis(img, 0, -1), -1
        gt = None
        if "ground_truths" in item:
            gt = [np.asarray(g) for g in item["ground_truths"]]
        elif "label" in item and bool(item.get("labeled", True)):
            gt = _tensor_to_numpy(item["label"])
            if ignore is not None and np.all(gt == ignore):
                gt = None
        yield str(item.get("name", i)), img, gt, ca


def _tuple_item(k, it, channel_axis):
    if isinstance(it, Mapping):
        return (
            str(it.get("name", k)),
            it["image"],
            it.get("ground_truth"),
            it.get("channel_axis", channel_axis),
        )
    if len(it) in (2, 3):
        return (str(it[0]), it[1], it[2] if len(it) == 3 else None, channel_axis)
    if len(it) == 4:
        return str(it[0]), it[1], it[2], it[3]
    raise ValueError(
        "dataset items must be (name, image), (name, image, gt) or "
        f"(name, image, gt, channel_axis); item {k} has {len(it)} fields"
    )


def _normalise_items(items, gt_dir=None, channel_axis=None):
    """Any accepted ``items`` → iterator of (name, image, gt, channel_axis)."""
    if isinstance(items, (str, os.PathLike)):
        return iter_folder(items, gt_dir)
    if (
        hasattr(items, "__getitem__")
        and hasattr(items, "__len__")
        and (type(items).__module__.startswith("varseg.data") or hasattr(items, "num_classes"))
    ):
        return _dataset_items(items)
    return (_tuple_item(k, it, channel_axis) for k, it in enumerate(items))


def _run_one(index, name, image, gt, ca, cfg):
    """Worker: compare on one image, return per-image rows (and results if kept)."""
    table = compare(
        image,
        cfg["methods"],
        gt,
        cfg["n_phases"],
        lam=cfg["lam"],
        channel_axis=ca,
        method_params=cfg["method_params"],
        seed=cfg["seed"],
        normalise=cfg["normalise"],
        share_lam=cfg["share_lam"],
        ignore_index=cfg["ignore_index"],
        errors=cfg["errors"],
    )
    rows = [dict({"image": name, "index": int(index)}, **r) for r in table.rows]
    return rows, (table.results if cfg["keep_results"] else None)


def init_worker(n_threads=1):
    """Initialiser of a data-set worker process: ``n_threads`` CPU threads
    (:func:`varseg._threads.limit_threads`), and the per-method failure warnings silenced
    (failures are in the table)."""
    limit_threads(n_threads)
    warnings.filterwarnings("ignore", category=RuntimeWarning, message="compare: method")


def _dataset_table(per_rows, lam, meta, results=None):
    per_rows = sorted(per_rows, key=lambda r: (r.get("index", 0), r.get("_order", 0)))
    for r in per_rows:
        r.pop("_order", None)
    meta = dict(meta, n_images=len({r.get("index") for r in per_rows}))
    per = ComparisonTable(rows=per_rows, lam=lam, meta=meta)
    return ComparisonTable(
        rows=aggregate_rows(per_rows), results=results or {}, lam=lam, meta=meta, per_image=per
    )


class _Collector:
    """Gathers per-image rows (and results) as workers finish, ticking a progress bar."""

    def __init__(self, bar):
        self.rows, self.results, self.bar = [], {}, bar

    def __call__(self, rows, res):
        for j, r in enumerate(rows):
            r["_order"] = j
        self.rows.extend(rows)
        for m, s in (res or {}).items():
            self.results[(rows[0]["image"] if rows else "", m)] = s
        if self.bar is not None:
            self.bar.update(1)


def _execute(stream, cfg, n_jobs, mp_context, collect):
    if n_jobs == 1:
        for i, name, image, gt, ca in stream:
            collect(*_run_one(i, name, image, gt, ca, cfg))
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    threads = max(1, (os.cpu_count() or 1) // n_jobs)
    ctx = multiprocessing.get_context(mp_context)
    with ProcessPoolExecutor(
        n_jobs, mp_context=ctx, initializer=init_worker, initargs=(threads,)
    ) as ex:
        futures = [
            ex.submit(_run_one, i, name, image, gt, ca, cfg) for i, name, image, gt, ca in stream
        ]
        for fut in as_completed(futures):
            collect(*fut.result())


def _progress_bar(progress, items, rank, world):
    if not progress:
        return None
    from tqdm.auto import tqdm

    total = None
    if hasattr(items, "__len__") and not isinstance(items, (str, os.PathLike)):
        total = len(range(rank, len(items), world))
    desc = "compare_dataset" + (f" [rank {rank}/{world}]" if world > 1 else "")
    return tqdm(total=total, desc=desc, unit="image")


def _resolve_shard(shard):
    if shard is False:
        return 0, 1
    return shard_info(*shard) if isinstance(shard, (tuple, list)) else shard_info()


def compare_dataset(
    items,
    methods=DEFAULT_METHODS,
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
    gt_dir=None,
    n_jobs=1,
    progress=True,
    shard=None,
    out_dir=None,
    keep_results=False,
    mp_context="spawn",
):
    r"""Run :func:`varseg.compare.compare` on every image of a data set and aggregate.

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
        As in :func:`varseg.compare.compare`.
    channel_axis : int, optional
        As in :func:`varseg.compare.compare`, for tuple items without their own.
    normalise, share_lam, ignore_index, errors
        As in :func:`varseg.compare.compare`.
    gt_dir : path, optional
        Ground-truth folder for a folder ``items``.
    n_jobs : int
        Worker processes (:class:`concurrent.futures.ProcessPoolExecutor`); 1 runs in this
        process. Each worker limits its BLAS/OpenMP/Numba threads to ``cpu_count // n_jobs``.
        Methods given as callables must then be picklable (module-level functions).
    progress : bool
        tqdm progress bar over the images.
    shard : (rank, world_size), "auto", None or False
        Process only items ``rank::world_size``. ``None``/``"auto"`` reads ``RANK`` and
        ``WORLD_SIZE`` from the environment (set by ``torchrun``); combine the parts with
        :func:`merge_shards`. False: no sharding.
    out_dir : path, optional
        Write this process's table to ``out_dir/shard-RRRRR-of-WWWWW.json``.
    keep_results : bool
        Keep every :class:`varseg.Segmentation` in ``table.results[(image, method)]``.
    mp_context : str
        Start method of the worker processes ("spawn", "forkserver" or "fork").

    Returns
    -------
    ComparisonTable
        Aggregated rows (one per method: means over images, pooled covering, ``n_images``,
        see :func:`varseg.compare.aggregate_rows`) with the per-image rows in
        ``table.per_image`` (columns ``image`` and ``index``).
    """
    from .._validation import check_int

    lam = DEFAULT_LAM if lam is None else float(lam)
    rank, world = _resolve_shard(shard)
    n_jobs = check_int(n_jobs, "n_jobs")
    pairs = resolve_methods(methods)
    if ignore_index is None and not isinstance(items, (str, os.PathLike)):
        ignore_index = getattr(items, "ignore_index", None)
    cfg = {
        "methods": pairs,
        "n_phases": n_phases,
        "lam": lam,
        "method_params": method_params,
        "seed": seed,
        "normalise": normalise,
        "share_lam": share_lam,
        "ignore_index": ignore_index,
        "errors": errors,
        "keep_results": keep_results,
    }
    stream = (
        (i, *it)
        for i, it in enumerate(_normalise_items(items, gt_dir, channel_axis))
        if i % world == rank
    )
    collect = _Collector(_progress_bar(progress, items, rank, world))
    try:
        _execute(stream, cfg, n_jobs, mp_context, collect)
    finally:
        if collect.bar is not None:
            collect.bar.close()
    meta = {
        "n_phases": int(n_phases),
        "normalisation": "min-max to [0, 1]",
        "methods": [n for n, _ in pairs],
        "seed": seed,
        "rank": rank,
        "world_size": world,
        "environment": environment(),
    }
    table = _dataset_table(collect.rows, lam, meta, collect.results)
    if out_dir is not None:
        path = Path(out_dir) / f"shard-{rank:05d}-of-{world:05d}.json"
        table.to_json(path)
        table.meta["shard_path"] = str(path)
    return table


def _read_shards(paths):
    per_rows, lam, meta, worlds = [], None, {}, set()
    for p in paths:
        t = ComparisonTable.from_json(p)
        if t.per_image is None:
            raise ValueError(f"{p} is not a compare_dataset shard (no per_image rows)")
        if lam is not None and not math.isclose(lam, t.lam):
            raise ValueError(f"shards use different λ: {lam} and {t.lam} ({p})")
        lam, meta = t.lam, t.meta
        worlds.add(t.meta.get("world_size"))
        per_rows.extend(dict(r) for r in t.per_image.rows)
    if len(worlds) > 1:
        raise ValueError(f"shards come from different world sizes: {sorted(worlds)}")
    return per_rows, lam, meta


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
    per_rows, lam, meta = _read_shards(paths)
    seen = set()
    for j, r in enumerate(per_rows):
        key = (r.get("index"), r.get("method"))
        if key in seen:
            raise ValueError(f"image index {key[0]} / method {key[1]!r} appears in two shards")
        seen.add(key)
        r["_order"] = j
    meta = {k: v for k, v in meta.items() if k not in ("rank", "shard_path")}
    meta["merged_shards"] = len(paths)
    return _dataset_table(per_rows, lam, meta)

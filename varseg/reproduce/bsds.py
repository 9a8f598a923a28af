r"""``varseg reproduce bsds500``: Kim & Ye 2019, Table VI, on a BSDS500 split.

Protocol (the Berkeley region benchmark, :mod:`varseg.metrics.bsds`):

* every method segments each image at its **full resolution** (the per-image networks may
  compute at a smaller working size, their memberships are resized back before the argmax);
* the label maps are written as 1-based index PNGs, ``OUT/labels/<method>/<id>.png`` (what
  the BSDS MATLAB code reads), with ``<id>.json`` beside each (seconds, iterations,
  convergence);
* they are scored against all human segmentations of the image twice: with
  **regions = label values** (the BSDS code's convention: a label split into several pieces is
  one region) and with **regions = connected components** (4-connectivity);
* over the split, covering is pooled (Σ numerators / Σ denominators), PRI and VI (bits) are
  means over images.

Images whose label PNG and record already exist are not recomputed (resume).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np

from varseg._atomic import atomic_write_text

from .presets import LEVEL_SET_PRESET, METHODS, NEURAL_PRESETS, run_method
from .protocol import (
    bsds_ids,
    data_dir,
    init_worker,
    load_gt,
    load_image,
    read_label_png,
    score_labels,
    summarise,
    write_label_png,
)

__all__ = [
    "bsds_ids",
    "reproduce_bsds500",
    "score_labels",
    "write_label_png",
    "find_bsds500",
    "read_label_png",
    "unet_runner",
    "summarise",
]


def _segment_one(job):
    """Worker: segment one image with one method, write its PNG and record."""
    method, base, split, iid, out_dir, opts = job
    png = out_dir / f"{iid}.png"
    rec_path = out_dir / f"{iid}.json"
    if png.is_file() and rec_path.is_file():
        return json.loads(rec_path.read_text())
    image = load_image(base, split, iid)
    ground_truths = load_gt(base, split, iid)  # read (and check) the inputs before computing
    model = _cached_unet(opts["checkpoint"], opts["device"]) if method == "unet-ms" else None
    t0 = time.perf_counter()
    seg = run_method(
        method,
        image,
        seed=opts["seed"],
        work_size=opts["work_size"],
        model=model,
        device=opts["device"],
    )
    seconds = time.perf_counter() - t0
    if seg.labels.shape != image.shape[:2]:
        raise ValueError(
            f"{method} returned labels of shape {seg.labels.shape} for image "
            f"{iid} of shape {image.shape[:2]}"
        )
    write_label_png(png, seg.labels)
    rec = {
        "id": iid,
        "method": method,
        "seconds": seconds,
        "n_iter": int(seg.n_iter),
        "converged": bool(seg.converged),
        "energy": float(seg.final_energy),
    }
    rec.update(score_labels(seg.labels + 1, ground_truths))
    atomic_write_text(rec_path, json.dumps(rec, indent=1) + "\n")
    return rec


_UNET = {}


def _cached_unet(checkpoint, device):
    key = (str(checkpoint), device)
    if key not in _UNET:
        _UNET[key] = unet_runner(checkpoint, device)
    return _UNET[key]


def unet_runner(checkpoint, device="cpu"):
    """Return a ``model(image) -> Segmentation`` function for a trained U-Net checkpoint.

    The image is scaled to [0, 1] and resized to the training ``image_size`` (as the
    :class:`varseg.data.BSDS500` loader did during training), segmented, and the softmax
    memberships are resized back to the full resolution before the argmax.
    """
    import torch

    from varseg.models import split_output
    from varseg.result import Segmentation
    from varseg.train.builders import rebuild_model
    from varseg.train.checkpoint import load_checkpoint

    ck = load_checkpoint(checkpoint)
    if "model_name" not in ck or "model_config" not in ck:
        raise ValueError(f"{checkpoint} is not a varseg training checkpoint (no model_name)")
    model = rebuild_model(ck["model_name"], ck["model_config"])
    model.load_state_dict(ck["model"])
    model.to(device).eval()
    size = (ck.get("config") or {}).get("image_size")

    def run(image):
        from skimage.transform import resize

        from .presets import full_resolution

        t0 = time.perf_counter()
        x = np.asarray(image, dtype=np.float64) / 255.0
        if size:
            hw = (size, size) if isinstance(size, int) else tuple(size)
            x = resize(x, hw, anti_aliasing=True)
        xt = torch.as_tensor(np.moveaxis(x, -1, 0)[None], dtype=torch.float32, device=device)
        with torch.inference_mode():
            logits, _ = split_output(model(xt))
            y = torch.softmax(logits.double(), 1)[0].cpu().numpy()
        seg = Segmentation(
            labels=y.argmax(0),
            memberships=y.astype(np.float32),
            means=np.zeros((y.shape[0], 3)),
            energy=np.array([np.nan]),
            n_iter=0,
            converged=True,
            elapsed=time.perf_counter() - t0,
            method="unet-ms",
            params={"checkpoint": str(checkpoint)},
        )
        return full_resolution(seg, np.asarray(image).shape[:2])

    return run


def _map(jobs, n_jobs, desc, progress):
    from tqdm.auto import tqdm

    bar = tqdm(total=len(jobs), desc=desc, unit="image", disable=not progress)
    out = []
    if n_jobs <= 1:
        for job in jobs:
            out.append(_segment_one(job))
            bar.update()
    else:
        import multiprocessing as mp

        with mp.get_context("spawn").Pool(n_jobs, initializer=init_worker) as pool:
            for rec in pool.imap(_segment_one, jobs):
                out.append(rec)
                bar.update()
    bar.close()
    return out


def reproduce_bsds500(
    root,
    split="val",
    methods=METHODS,
    *,
    n=None,
    jobs=1,
    out="reproduce",
    checkpoint=None,
    train_config="bsds-unet-ms-cpu",
    seed=0,
    work_size=None,
    device="cpu",
    progress=True,
):
    """Run the Table VI methods on a BSDS500 split and write the results.

    Parameters
    ----------
    root : path
        BSDS500 root (``<root>/data/{images,groundTruth}/<split>/``).
    split : {"train", "val", "test"}
    methods : sequence of str
        Any of :data:`varseg.reproduce.presets.METHODS`.
    n : int, optional
        Only the first ``n`` image ids in sorted order.
    jobs : int
        Worker processes (each single-threaded).
    out : path
        Output folder: ``results.json``, ``results.csv``, ``report.md``, ``labels/``.
    checkpoint : path, optional
        Trained U-Net for ``unet-ms``; without it a U-Net is trained with ``train_config``
        on the train split into ``OUT/unet-ms-train/`` (resumed if it is there).
    train_config : str
        Config trained when no checkpoint is given.
    seed : int
        Seed of the networks.
    work_size : int, optional
        Working size of the per-image networks (default: their presets' 240; 0 = full size).
    device : str
        Torch device of the networks.
    progress : bool
        A progress bar per method.

    Returns
    -------
    list of dict
        One row per method (see :func:`summarise`).
    """
    methods = list(methods)
    bad = [m for m in methods if m not in METHODS]
    if bad:
        raise ValueError(f"unknown method(s) {bad}; expected some of {list(METHODS)}")
    if not methods:
        raise ValueError("methods is empty")
    if n is not None and (isinstance(n, bool) or int(n) < 1):
        raise ValueError(f"n must be a positive integer; got {n!r}")
    if isinstance(jobs, bool) or int(jobs) < 1:
        raise ValueError(f"jobs must be a positive integer; got {jobs!r}")
    base = data_dir(root)
    ids = bsds_ids(root, split)[:n]
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"output {out} exists and is not a folder")
    out.mkdir(parents=True, exist_ok=True)
    if "unet-ms" in methods and checkpoint is None:
        checkpoint = _train_unet(root, out, train_config, seed, progress)
    opts = {"seed": int(seed), "work_size": work_size, "checkpoint": checkpoint, "device": device}
    rows, t_start = [], time.perf_counter()
    for method in methods:
        mdir = out / "labels" / method
        mdir.mkdir(parents=True, exist_ok=True)
        jobs_list = [(method, base, split, iid, mdir, opts) for iid in ids]
        records = _map(jobs_list, int(jobs), method, progress)
        rows.append(summarise(method, records))
    meta = {
        "split": split,
        "n_images": len(ids),
        "root": str(root),
        "seed": int(seed),
        "jobs": int(jobs),
        "checkpoint": None if checkpoint is None else str(checkpoint),
        "wall_seconds": time.perf_counter() - t_start,
        "load_average": _loadavg(),
        "level_set_preset": LEVEL_SET_PRESET,
        "neural_presets": NEURAL_PRESETS,
    }
    _write_outputs(out, rows, meta)
    return rows


def _loadavg():
    try:
        return list(os.getloadavg())
    except OSError:  # pragma: no cover - not on every platform
        return None


def _train_unet(root, out, config, seed, progress):
    from varseg.train import train
    from varseg.train.config import load_config

    cfg = load_config(config)
    cfg.root = str(root)
    cfg.seed = int(seed)
    run = out / "unet-ms-train"
    resume = (run / "last.pt").is_file()
    return train(cfg, run, resume=resume, progress=progress)["checkpoint"]


def _write_outputs(out, rows, meta):
    from .report import render_report

    atomic_write_text(
        out / "results.json", json.dumps({"meta": meta, "rows": rows}, indent=1, default=str) + "\n"
    )
    cols = list(rows[0])
    for r in rows[1:]:
        cols += [c for c in r if c not in cols]
    lines = [",".join(cols)]
    for r in rows:
        lines.append(",".join("" if r.get(c) is None else str(r.get(c)) for c in cols))
    atomic_write_text(out / "results.csv", "\n".join(lines) + "\n")
    atomic_write_text(out / "report.md", render_report(rows, meta))


def find_bsds500(start=None):
    """Locate a BSDS500 folder.

    ``$VARSEG_BSDS500``, else ``shared/data/bsds500`` in or beside a parent of ``start``
    (default: the working directory and this package's folder).

    Returns
    -------
    pathlib.Path or None
        The folder holding ``data/images``, or None when none is found.
    """
    env = os.environ.get("VARSEG_BSDS500")
    if env:
        return Path(env) if (Path(env) / "data" / "images").is_dir() else None
    starts = [Path(start)] if start is not None else [Path.cwd(), Path(__file__).resolve()]
    for s in starts:
        for parent in [s, *s.parents]:
            for cand in (
                parent / "shared" / "data" / "bsds500",
                parent.parent / "shared" / "data" / "bsds500",
            ):
                if (cand / "data" / "images").is_dir():
                    return cand
    return None

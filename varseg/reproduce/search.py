"""How the level-set preset of ``varseg reproduce bsds500`` was chosen.

A grid search on the BSDS500 **train** split (never val or test).

:func:`search_level_set` scores candidate settings with the benchmark's protocol (regions =
label values, covering pooled, PRI and VI means); :func:`load_level_set_search` returns the
search that chose :data:`varseg.reproduce.presets.LEVEL_SET_PRESET`, as it was run (stored in
``level_set_search.json`` beside this module).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

__all__ = ["search_level_set", "load_level_set_search", "candidate_preset"]

_SEARCH_FILE = Path(__file__).with_name("level_set_search.json")


def candidate_preset(
    K, mu, chroma_weight=2.0, init="lloyd", smooth=0.0, max_iter=1000, tol=5e-3, regions=None
):
    """Build a level-set preset (the structure of ``LEVEL_SET_PRESET``) from search parameters.

    ``regions``: clusters of the start (``init_regions`` of :func:`varseg.chan_vese`), for a
    number of regions below the ``K`` phases.
    """
    features = {"space": "lab", "chroma_weight": float(chroma_weight), "smooth": float(smooth)}
    if chroma_weight == 0:
        features = {"space": "rgb", "chroma_weight": 1.0, "smooth": float(smooth)}
    return {
        "features": features,
        "chan_vese": {
            "n_phases": int(K),
            "mu": float(mu),
            "init": init,
            "seed": 0,
            "max_iter": int(max_iter),
            "tol": float(tol),
            "stop": "partition",
            **({} if regions is None else {"init_regions": int(regions)}),
        },
    }


def _score_one(args):
    from .presets import level_set_segment
    from .protocol import data_dir, load_gt, load_image, score_labels

    root, split, iid, preset = args
    base = data_dir(root)
    seg = level_set_segment(load_image(base, split, iid), preset)
    rec = score_labels(seg.labels + 1, load_gt(base, split, iid))
    rec.update({"seconds": seg.elapsed, "converged": bool(seg.converged)})
    return rec


def search_level_set(root, grid, *, split="train", step=5, jobs=1, progress=True):
    """Score level-set candidates on every ``step``-th image of a BSDS500 split.

    Parameters
    ----------
    root : path
        BSDS500 root.
    grid : sequence of dict
        Keyword arguments of :func:`candidate_preset` (``K``, ``mu``, ``chroma_weight``,
        ``init``, ``smooth``, ...).
    split : str
        Split to search on: ``"train"`` (val and test are for reporting only).
    step : int
        Use image ids ``[::step]`` of the sorted split.
    jobs : int
        Worker processes.
    progress : bool

    Returns
    -------
    list of dict
        One row per candidate: its parameters, ``n_images``, ``covering``, ``pri``, ``vi``,
        ``converged`` (fraction of images).
    """
    from tqdm.auto import tqdm

    from .protocol import bsds_ids, init_worker, summarise

    if split != "train":
        raise ValueError(
            f"search on the train split only (got {split!r}): the presets are "
            "reported on val and checked by users on test"
        )
    ids = bsds_ids(root, split)[:: int(step)]
    rows = []
    for cand in tqdm(list(grid), desc="level-set search", disable=not progress):
        preset = candidate_preset(**cand)
        jobs_list = [(root, split, iid, preset) for iid in ids]
        if jobs > 1:
            import multiprocessing as mp

            with mp.get_context("spawn").Pool(jobs, initializer=init_worker) as pool:
                recs = pool.map(_score_one, jobs_list)
        else:
            recs = [_score_one(j) for j in jobs_list]
        row = summarise("level-set", recs)
        rows.append(
            dict(
                cand,
                n_images=len(ids),
                covering=row["covering"],
                pri=row["pri"],
                vi=row["vi"],
                converged=row["converged"],
                seconds_per_image=float(np.mean([r["seconds"] for r in recs])),
            )
        )
    return rows


def load_level_set_search():
    """Load the search that chose the preset: ``{"protocol", "rows", "choice"}``.

    Rows with ``K, mu, features, init, smooth, n_images, covering, pri, vi, converged``.
    """
    return json.loads(_SEARCH_FILE.read_text(encoding="utf-8"))

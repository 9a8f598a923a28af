"""The paper's claim in miniature: cross-entropy alone vs. cross-entropy + λ·Mumford–Shah.

Over labelled fractions (Kim & Ye, IEEE TIP 2019, Eq. 16; Fig. 5 / Table III in spirit).

:func:`run_sweep` trains one network per (labelled fraction, λ, seed) with the settings of a
:class:`~varseg.train.config.TrainConfig` (the shipped ``synthetic-sweep`` config: small U-Net
on :class:`varseg.data.SyntheticShapes`, CPU, a few minutes), evaluates each on held-out
images (a different split, so different images) and writes the table of foreground Dice
(mean over the foreground classes, pooled over the evaluation set)::

    <out>/runs/<fraction>_lam<λ>_seed<s>/   one training run each (resumable)
    <out>/sweep_runs.csv                    one row per run
    <out>/sweep.csv, sweep.md, sweep.json   mean ± std over seeds per (fraction, λ)

The runs use ``mode="semi"`` with paired sampling: every step takes ``batch_size``
labelled images and, when λ > 0, ``batch_size`` unlabelled ones (in a separate forward pass,
so batch-norm statistics never mix the two groups); the cross-entropy sees the labelled
images, the Mumford–Shah loss all of them (Eq. 16-17). With λ = 0 the unlabelled images carry
no loss and are not loaded, so both arms see the same labelled batches in the same order
(same seed), the same initial weights and the same number of steps: the only difference is
the Mumford–Shah term (and the unlabelled images it brings in).
"""

from __future__ import annotations

import csv
import dataclasses
import json
import logging
import math
import time
from fractions import Fraction
from pathlib import Path

import numpy as np

from varseg._atomic import atomic_path, atomic_write_text

from .config import TrainConfig

logger = logging.getLogger(__name__)

#: File that marks a sweep folder (``varseg train --out DIR --resume`` resumes the sweep).
SWEEP_CONFIG_NAME = "sweep_config.json"

__all__ = [
    "SWEEP_CONFIG_NAME",
    "SWEEP_DEFAULTS",
    "sweep_settings",
    "run_sweep",
    "summarise",
    "format_markdown",
]

#: Settings of :func:`run_sweep` (the ``sweep`` object of a config overrides them).
SWEEP_DEFAULTS = {
    "fractions": ["1/8", "1/4", "1"],
    "lambdas": None,  # default [0, config.ms_weight]
    "seeds": [0],
    "eval_split": "test",
    "eval_dataset_kw": {},
    "metric": "dice",
}


def sweep_settings(config: TrainConfig) -> dict:
    """:data:`SWEEP_DEFAULTS` updated with ``config.sweep``; ``ValueError`` on unknown keys."""
    over = dict(config.sweep or {})
    unknown = sorted(set(over) - set(SWEEP_DEFAULTS))
    if unknown:
        raise ValueError(f"unknown sweep setting(s) {unknown}; valid: {', '.join(SWEEP_DEFAULTS)}")
    s = {**SWEEP_DEFAULTS, **over}
    if s["lambdas"] is None:
        s["lambdas"] = [0.0, config.ms_weight] if config.ms_weight > 0 else [0.0, 1.0]
    s["lambdas"] = [float(v) for v in s["lambdas"]]
    s["seeds"] = [int(v) for v in s["seeds"]]
    if not s["fractions"] or not s["lambdas"] or not s["seeds"]:
        raise ValueError("sweep needs at least one fraction, one lambda and one seed")
    return s


def _frac_label(f) -> str:
    return str(Fraction(str(f)).limit_denominator(1000))


def _run_name(frac, lam, seed) -> str:
    return f"{_frac_label(frac).replace('/', '-')}_lam{lam:g}_seed{seed}"


def run_sweep(
    config: TrainConfig, out_dir, *, progress: bool | None = False, log=logger.info
) -> dict:
    """Train and evaluate every (fraction, λ, seed) of the sweep; write the tables.

    Parameters
    ----------
    config : TrainConfig
        Base settings (mode ``"semi"`` is forced; ``labeled_fraction``, ``ms_weight``,
        ``seed`` and ``split_seed`` are set per run).
    out_dir : path
        Output folder; finished runs found there are reused (the sweep is resumable).
    progress : bool or None
        tqdm bars for each run (``None``: only on a terminal).
    log : callable
        Receives one progress line per run (``logging`` at INFO by default; ``None``: quiet).

    Returns
    -------
    dict
        ``runs`` (per-run records), ``summary`` (per fraction and λ), ``markdown`` and the
        paths written.
    """
    from .checkpoint import CHECKPOINT_NAME, load_checkpoint
    from .evaluate import evaluate_checkpoint
    from .run import train

    s = sweep_settings(config)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    config.save(out / SWEEP_CONFIG_NAME)
    base = dataclasses.replace(config, sweep=None, mode="semi").validate()
    records = []
    for frac in s["fractions"]:
        for seed in s["seeds"]:
            for lam in s["lambdas"]:
                cfg = dataclasses.replace(
                    base,
                    labeled_fraction=frac,
                    ms_weight=lam,
                    seed=seed,
                    split_seed=seed,
                    name=f"{config.name}:{_run_name(frac, lam, seed)}",
                )
                cfg = cfg.validate()
                run_dir = out / "runs" / _run_name(frac, lam, seed)
                ckpt = run_dir / CHECKPOINT_NAME
                t0 = time.perf_counter()
                resume = ckpt.is_file()
                summary = train(cfg, run_dir, resume=resume, progress=progress)
                train_s = time.perf_counter() - t0
                res = evaluate_checkpoint(
                    ckpt, split=s["eval_split"], dataset_kw=s["eval_dataset_kw"], device=cfg.device
                )
                step = int(load_checkpoint(ckpt)["step"])
                rec = {
                    "fraction": _frac_label(frac),
                    "ms_weight": lam,
                    "seed": seed,
                    "steps": step,
                    "metric": s["metric"],
                    "value": res[s["metric"]],
                    "dice": res.get("dice"),
                    "iou": res.get("iou"),
                    "precision": res.get("precision"),
                    "recall": res.get("recall"),
                    "n_eval_images": res["n_images"],
                    "train_s": round(train_s, 2),
                    "run": str(run_dir),
                }
                records.append(rec)
                if log is not None:
                    log(
                        f"[sweep] fraction {rec['fraction']:>4}  λ={lam:<6g} seed {seed}: "
                        f"{s['metric']} {rec['value']:.4f}  ({summary['step']} steps, "
                        f"{train_s:.1f} s)"
                    )
    summary = summarise(records, s)
    md = format_markdown(summary, s, config)
    paths = _write(out, records, summary, md, s, config)
    return {"runs": records, "summary": summary, "markdown": md, "paths": paths}


def summarise(records: list[dict], settings: dict) -> list[dict]:
    """Mean and standard deviation over seeds per (fraction, λ), with the gain over λ = 0."""
    rows = []
    for frac in dict.fromkeys(r["fraction"] for r in records):
        base_vals = None
        for lam in settings["lambdas"]:
            vals = [
                r["value"]
                for r in records
                if r["fraction"] == frac and r["ms_weight"] == lam and r["value"] is not None
            ]
            row = {
                "fraction": frac,
                "ms_weight": lam,
                "n_seeds": len(vals),
                "mean": float(np.mean(vals)) if vals else math.nan,
                "std": float(np.std(vals)) if len(vals) > 1 else 0.0,
            }
            if lam == 0:
                base_vals = vals
            if base_vals and lam != 0 and len(base_vals) == len(vals):
                diffs = np.asarray(vals) - np.asarray(base_vals)
                row["gain_vs_ce"] = float(diffs.mean())
                row["wins"] = int((diffs > 0).sum())
            rows.append(row)
    return rows


def format_markdown(summary: list[dict], settings: dict, config: TrainConfig) -> str:
    """Markdown table: one row per labelled fraction, one column per λ (+ gains)."""
    lams = settings["lambdas"]
    metric = settings["metric"]
    head = ["labelled fraction"] + [
        ("CE (λ=0)" if lam == 0 else f"CE + {lam:g}·MS") for lam in lams
    ]
    head += [f"Δ (λ={lam:g})" for lam in lams if lam != 0]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for frac in dict.fromkeys(r["fraction"] for r in summary):
        cells = [frac]
        gains = []
        for lam in lams:
            r = next(x for x in summary if x["fraction"] == frac and x["ms_weight"] == lam)
            cell = f"{r['mean']:.4f}"
            if r["n_seeds"] > 1:
                cell += f" ± {r['std']:.4f}"
            cells.append(cell)
            if lam != 0:
                g = r.get("gain_vs_ce")
                gains.append(
                    "n/a" if g is None else f"{g:+.4f} ({r.get('wins', 0)}/{r['n_seeds']} seeds)"
                )
        lines.append("| " + " | ".join(cells + gains) + " |")
    seeds = settings["seeds"]
    note = (
        f"\nForeground {metric} (mean over foreground classes, pooled over the "
        f"'{settings['eval_split']}' split), mean ± std over seeds {seeds}; config "
        f"'{config.name}', model {config.model} {config.model_kw}, "
        f"{config.max_steps or config.epochs} {'steps' if config.max_steps else 'epochs'}"
        f", batch {config.batch_size}, {config.optimizer} lr {config.lr:g}.\n"
    )
    return "\n".join(lines) + "\n" + note


def _write(out: Path, records, summary, md, settings, config) -> dict:
    paths = {
        "runs_csv": out / "sweep_runs.csv",
        "csv": out / "sweep.csv",
        "markdown": out / "sweep.md",
        "json": out / "sweep.json",
    }
    with atomic_path(paths["runs_csv"]) as tmp, open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(records[0]))
        w.writeheader()
        w.writerows(records)
    cols: list[str] = []
    for r in summary:
        cols += [k for k in r if k not in cols]
    with atomic_path(paths["csv"]) as tmp, open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=cols)
        w.writeheader()
        w.writerows(summary)
    atomic_write_text(paths["markdown"], md)
    atomic_write_text(
        paths["json"],
        json.dumps(
            {"settings": settings, "config": config.to_dict(), "runs": records, "summary": summary},
            indent=1,
            default=_nan_safe,
        )
        + "\n",
    )
    return {k: str(v) for k, v in paths.items()}


def _nan_safe(o):  # pragma: no cover - json fallback
    return str(o)

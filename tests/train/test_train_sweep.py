"""The labelled-fraction sweep (CE vs CE + λ·MS) end to end, with a tiny budget."""

import csv
import json

from train_fixtures import run_cli

from varseg.train import load_config


def test_synthetic_sweep_cli_writes_tables(tmp_path, capsys):
    out = tmp_path / "sweep"
    args = [
        "--config",
        "synthetic-sweep",
        "--max-steps",
        "2",
        "--dataset-kw",
        '{"n_images": 8, "image_size": 16}',
        "--model-kw",
        '{"base_channels": 4, "depth": 1}',
        "--set",
        'sweep.fractions=["1/4"]',
        "--set",
        "sweep.seeds=[0]",
        "--set",
        'sweep.eval_dataset_kw={"n_images": 4}',
        "--no-progress",
        "--out",
        out,
    ]
    assert run_cli("train", args) == 0
    printed = capsys.readouterr().out
    assert "| labelled fraction |" in printed
    md = (out / "sweep.md").read_text()
    assert "CE (λ=0)" in md and "CE + 1·MS" in md and "| 1/4 |" in md
    with open(out / "sweep_runs.csv") as f:
        runs = list(csv.DictReader(f))
    assert [(r["fraction"], float(r["ms_weight"])) for r in runs] == [("1/4", 0.0), ("1/4", 1.0)]
    assert all(0 <= float(r["dice"]) <= 1 and r["steps"] == "2" for r in runs)
    summary = json.loads((out / "sweep.json").read_text())["summary"]
    assert {"fraction", "ms_weight", "mean", "std", "n_seeds"} <= set(summary[0])
    assert "gain_vs_ce" in summary[1]
    # both arms share the labelled split; only the MS arm loads unlabelled images
    runs_dir = out / "runs"
    splits = [
        json.loads((d / "labeled_split.json").read_text())["labeled_indices"]
        for d in sorted(runs_dir.iterdir())
    ]
    assert splits[0] == splits[1] and len(splits[0]) == 2
    # a second call reuses the finished runs (resumable sweep)
    before = (runs_dir / "1-4_lam0_seed0" / "last.pt").stat().st_mtime_ns
    assert run_cli("train", args) == 0
    assert (runs_dir / "1-4_lam0_seed0" / "last.pt").stat().st_mtime_ns == before
    # ``--resume`` on the sweep folder resumes the sweep (not a single run in it)
    assert run_cli("train", ["--out", out, "--resume", "--no-progress"]) == 0
    assert (runs_dir / "1-4_lam0_seed0" / "last.pt").stat().st_mtime_ns == before
    assert not (out / "last.pt").exists() and "| 1/4 |" in capsys.readouterr().out


def test_shipped_sweep_config_compares_ce_with_ce_plus_ms():
    cfg = load_config("synthetic-sweep")
    assert cfg.dataset == "synthetic" and cfg.mode == "semi" and cfg.semi_sampling == "paired"
    assert cfg.sweep["fractions"] == ["1/8", "1/4", "1"]
    assert 0.0 in cfg.sweep["lambdas"] and any(v > 0 for v in cfg.sweep["lambdas"])
    assert cfg.sweep["eval_split"] != cfg.train_split

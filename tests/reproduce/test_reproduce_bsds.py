"""``varseg reproduce bsds500``: Table VI with the BSDS protocol (end to end on real files)."""

import json
from pathlib import Path

import numpy as np
import pytest

from varseg.reproduce import (
    LEVEL_SET_PRESET,
    PAPER_TABLE_VI,
    bsds_features,
    load_level_set_search,
    read_label_png,
    score_labels,
    write_label_png,
)
from varseg.reproduce.bsds import summarise

BSDS = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "bsds500"
needs_bsds = pytest.mark.skipif(
    not (BSDS / "data" / "images" / "val").is_dir(), reason="no ../shared/data/bsds500"
)


def test_label_png_round_trip_is_one_based(tmp_path):
    lab = np.array([[0, 1, 2], [2, 2, 0]])
    write_label_png(tmp_path / "a.png", lab)
    np.testing.assert_array_equal(read_label_png(tmp_path / "a.png"), lab + 1)
    big = np.arange(300).reshape(10, 30)  # more labels than uint8 holds
    write_label_png(tmp_path / "b.png", big)
    np.testing.assert_array_equal(read_label_png(tmp_path / "b.png"), big + 1)
    assert not list(tmp_path.glob(".*tmp"))  # atomic: no temporary left behind
    with pytest.raises(ValueError, match=">= 0"):
        write_label_png(tmp_path / "c.png", lab - 1)


def test_score_labels_counts_label_values_and_components():
    # two separate blobs with one label: one region as label values, two as components
    seg = np.ones((6, 6), dtype=int)
    seg[1:3, 1:3] = 2
    seg[4:6, 4:6] = 2
    gt = np.ones((6, 6), dtype=int)
    gt[1:3, 1:3] = 2
    gt[4:6, 4:6] = 3
    r = score_labels(seg, [gt])
    assert r["n_regions"] == 2 and r["n_components"] == 3
    assert r["cc_covering_num"] / r["cc_covering_den"] == pytest.approx(1.0)
    assert r["cc_VI"] == pytest.approx(0.0, abs=1e-12)
    # label values merge the two blobs: covering of each blob = 4 / 8
    assert r["covering_num"] / r["covering_den"] == pytest.approx((28 + 4 * 0.5 + 4 * 0.5) / 36)
    assert r["VI"] > 0.1


def test_summarise_pools_covering_and_compares_with_the_paper():
    recs = [
        dict(
            covering_num=3.0,
            covering_den=4.0,
            PRI=0.8,
            VI=2.0,
            cc_covering_num=1.0,
            cc_covering_den=4.0,
            cc_PRI=0.7,
            cc_VI=3.0,
            seconds=1.0,
            converged=True,
            n_regions=4,
            n_components=9,
        ),
        dict(
            covering_num=1.0,
            covering_den=12.0,
            PRI=0.6,
            VI=3.0,
            cc_covering_num=2.0,
            cc_covering_den=12.0,
            cc_PRI=0.5,
            cc_VI=4.0,
            seconds=3.0,
            converged=False,
            n_regions=2,
            n_components=5,
        ),
    ]
    row = summarise("level-set", recs)
    assert row["covering"] == pytest.approx(4.0 / 16.0)  # pooled, not the mean 0.417
    assert row["pri"] == pytest.approx(0.7) and row["vi"] == pytest.approx(2.5)
    assert row["cc_covering"] == pytest.approx(3.0 / 16.0)
    assert row["converged"] == pytest.approx(0.5) and row["seconds_per_image"] == 2.0
    assert row["paper_covering"] == PAPER_TABLE_VI["level-set"]["covering"]
    assert row["meets_paper"] is False


def test_features_are_weighted_lab():
    rgb = np.zeros((2, 2, 3), dtype=np.uint8)
    rgb[0, 0] = 255  # red
    rgb[1, 1] = 255, 255, 255  # white
    f = bsds_features(rgb, chroma_weight=2.0)
    from skimage.color import rgb2lab

    lab = rgb2lab(rgb / 255.0)
    np.testing.assert_allclose(f[..., 0], lab[..., 0] / 100)
    np.testing.assert_allclose(f[..., 1], 0.5 + 2 * lab[..., 1] / 100)
    np.testing.assert_allclose(f[1, 1], [1.0, 0.5, 0.5], atol=1e-3)  # white: grey axis
    with pytest.raises(ValueError, match="RGB"):
        bsds_features(np.zeros((4, 4)))


def test_the_stored_search_chose_the_preset_on_train():
    search = load_level_set_search()
    assert "train" in search["protocol"] and "val" not in search["protocol"].split("train")[0]
    chosen = [r for r in search["rows"] if r.get("chosen")]
    assert len(chosen) == 1
    c = chosen[0]
    cv = LEVEL_SET_PRESET["chan_vese"]
    assert (c["K"], c["mu"], c["init"]) == (cv["n_phases"], cv["mu"], cv["init"])
    assert c.get("regions") == cv.get("init_regions")
    assert c["smooth"] == LEVEL_SET_PRESET["features"]["smooth"]
    assert c["n_images"] == 200  # chosen on all of train
    paper = PAPER_TABLE_VI["level-set"]
    assert c["covering"] >= paper["covering"] and c["pri"] >= paper["pri"]
    assert c["vi"] <= paper["vi"]


def test_candidate_regions_reach_chan_vese_and_kmeans():
    from varseg.reproduce.presets import level_set_segment, n_regions
    from varseg.reproduce.search import candidate_preset

    p = candidate_preset(8, 0.5, regions=3, smooth=0.0)
    assert p["chan_vese"]["init_regions"] == 3 and n_regions(p) == 3
    assert "init_regions" not in candidate_preset(4, 0.5)["chan_vese"]
    assert n_regions(candidate_preset(4, 0.5)) == 4
    rng = np.random.default_rng(0)
    rgb = np.zeros((24, 36, 3))
    rgb[:, 12:24] = (0.9, 0.1, 0.1)
    rgb[:, 24:] = (0.1, 0.2, 0.9)
    seg = level_set_segment(np.clip(rgb + rng.normal(0, 0.02, rgb.shape), 0, 1), p)
    assert seg.params["n_phases"] == 8 and len(np.unique(seg.labels)) == 3


@needs_bsds
def test_reproduce_end_to_end_on_two_val_images(tmp_path):
    from varseg.cli import main

    out = tmp_path / "out"
    rc = main(
        [
            "reproduce",
            "bsds500",
            "--root",
            str(BSDS),
            "--split",
            "val",
            "--n",
            "2",
            "--methods",
            "level-set",
            "kmeans",
            "-q",
            "-o",
            str(out),
        ]
    )
    assert rc == 0
    res = json.loads((out / "results.json").read_text())
    rows = {r["method"]: r for r in res["rows"]}
    assert set(rows) == {"level-set", "kmeans"} and res["meta"]["n_images"] == 2
    for r in rows.values():
        assert r["n_images"] == 2
        assert 0 < r["covering"] <= 1 and 0 < r["pri"] <= 1 and r["vi"] > 0
        assert 0 < r["cc_covering"] <= 1
    assert rows["level-set"]["paper_vi"] == 2.722
    ids = sorted(p.stem for p in (BSDS / "data" / "images" / "val").glob("*.jpg"))[:2]
    from PIL import Image

    from varseg.data.bsds import load_bsds_ground_truth
    from varseg.metrics import region_scores

    recs = []
    for iid in ids:
        png = out / "labels" / "level-set" / f"{iid}.png"
        with Image.open(BSDS / "data" / "images" / "val" / f"{iid}.jpg") as im:
            w, h = im.size
        lab = read_label_png(png)
        assert lab.shape == (h, w) and lab.min() >= 1  # full resolution, 1-based
        gts = load_bsds_ground_truth(BSDS / "data" / "groundTruth" / "val" / f"{iid}.mat")
        recs.append(region_scores(lab, gts))
    assert rows["level-set"]["pri"] == pytest.approx(np.mean([r["PRI"] for r in recs]))
    cov = sum(r["covering_num"] for r in recs) / sum(r["covering_den"] for r in recs)
    assert rows["level-set"]["covering"] == pytest.approx(cov)
    report = (out / "report.md").read_text()
    assert "0.403" in report and "connected components" in report
    assert (out / "results.csv").read_text().startswith("method,")
    # resume: a second run recomputes nothing (the records' times are kept)
    before = (out / "labels" / "level-set" / f"{ids[0]}.json").read_text()
    assert (
        main(
            [
                "reproduce",
                "bsds500",
                "--root",
                str(BSDS),
                "--split",
                "val",
                "--n",
                "2",
                "--methods",
                "level-set",
                "-q",
                "-o",
                str(out),
            ]
        )
        == 0
    )
    assert (out / "labels" / "level-set" / f"{ids[0]}.json").read_text() == before


@needs_bsds
def test_reproduce_backprop_ms_at_small_work_size(tmp_path):
    from varseg.reproduce import reproduce_bsds500

    rows = reproduce_bsds500(
        BSDS, "val", ["backprop-ms"], n=1, out=tmp_path, work_size=48, progress=False
    )
    assert rows[0]["n_images"] == 1 and 0 < rows[0]["covering"] <= 1


def test_reproduce_errors(tmp_path):
    from varseg.cli import main

    assert (
        main(["reproduce", "bsds500", "--root", str(tmp_path), "-q", "-o", str(tmp_path / "o")])
        == 2
    )
    assert (
        main(
            ["reproduce", "bsds500", "--root", str(tmp_path), "--n", "0", "-o", str(tmp_path / "o")]
        )
        == 2
    )


def test_reproduce_corrupt_inputs_one_line_exit_2(tmp_path, capsys):
    from varseg.cli import main

    root = tmp_path / "bsds"
    (root / "data" / "images" / "val").mkdir(parents=True)
    (root / "data" / "groundTruth" / "val").mkdir(parents=True)
    (root / "data" / "images" / "val" / "1.jpg").write_bytes(b"not a jpeg")
    (root / "data" / "groundTruth" / "val" / "1.mat").write_bytes(b"not a mat file")
    out = tmp_path / "out"
    args = [
        "reproduce",
        "bsds500",
        "--root",
        str(root),
        "--methods",
        "kmeans",
        "-q",
        "-o",
        str(out),
    ]
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "1.jpg" in err[0] and "Traceback" not in err[0]
    from PIL import Image

    Image.fromarray(np.zeros((8, 8, 3), dtype=np.uint8)).save(
        root / "data" / "images" / "val" / "1.jpg"
    )
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "1.mat" in err[0]
    assert not [p for p in out.rglob("*") if p.is_file()]  # nothing computed, nothing written

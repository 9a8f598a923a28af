"""The comparison harness: one ruler, tables, data sets, shards."""

import math

import numpy as np
import pytest

from varseg.compare import (
    DEFAULT_LAM,
    ComparisonTable,
    compare,
    compare_dataset,
    label_scores,
    merge_shards,
    normalise_image,
    shared_energy,
)
from varseg.energy import energy_from_labels
from varseg.result import Segmentation

FAST = ("kmeans", "otsu")


def synthetic(seed=0, shape=(48, 48), noise=0.08, offset=3.0, scale=50.0):
    """Piecewise-constant two-phase image on an arbitrary intensity scale, with truth."""
    rng = np.random.default_rng(seed)
    gt = np.zeros(shape, np.int64)
    gt[10:38, 8 + seed % 5 : 30 + seed % 5] = 1
    img = offset + scale * (0.25 + 0.5 * gt + noise * rng.standard_normal(shape))
    return img, gt


def perfect_method(truth):
    """A 'method' that returns the ground truth (as a Segmentation)."""

    def perfect(image, n_phases, **kw):
        lab = truth.copy()
        memb = np.stack([lab == k for k in range(n_phases)]).astype(float)
        return Segmentation(
            labels=lab,
            memberships=memb,
            means=np.zeros(n_phases),
            energy=np.array([1.0]),
            n_iter=1,
            converged=True,
            elapsed=0.0,
            method="perfect",
            params={"lam": kw.get("lam")},
        )

    return perfect


def inverted(image, n_phases, *, lam=0.125, channel_axis=None):
    """Module-level (picklable) callable: Otsu with the labels swapped."""
    from varseg.baselines import otsu_segment

    r = otsu_segment(image, n_phases, lam=lam, channel_axis=channel_axis)
    r.labels = (n_phases - 1) - r.labels
    r.method = "inverted"
    return r


def test_energies_are_the_shared_energy_with_one_lambda():
    img, gt = synthetic()
    table = compare(img, FAST + (("inv", inverted),), gt, lam=0.3)
    xn = normalise_image(img)
    assert xn.min() == 0 and xn.max() == 1
    for row in table.rows:
        res = table.results[row["method"]]
        ref = energy_from_labels(xn, res.labels, 0.3, n_phases=2)
        assert row["energy"] == pytest.approx(ref.total, rel=1e-12)
        assert row["data"] == pytest.approx(ref.data, rel=1e-12)
        assert row["length"] == pytest.approx(ref.length, rel=1e-12)
        assert row["lam"] == 0.3
        # methods ran on the normalised image with the shared λ: their own record agrees
        assert row["recorded_energy"] == pytest.approx(row["energy"], rel=1e-9)
        assert res.params["lam"] == 0.3
    # the energy does not depend on how the labels are named
    assert table.row("inv")["energy"] == pytest.approx(table.row("otsu")["energy"])
    assert table.lam == 0.3


def test_default_lambda_and_reevaluation_of_other_lambda():
    img, gt = synthetic(1)
    # share_lam=False: the method records with its own λ (1.0) but the table uses 0.125
    table = compare(img, ["otsu"], share_lam=False, method_params={"otsu": {"lam": 1.0}})
    row, res = table.row("otsu"), table.results["otsu"]
    assert table.lam == DEFAULT_LAM == 0.125
    assert res.params["lam"] == 1.0
    ref = shared_energy(img, res.labels, 0.125)
    assert row["energy"] == pytest.approx(ref.total)
    assert row["recorded_energy"] != pytest.approx(row["energy"])


def test_callable_methods_and_perfect_scores():
    img, gt = synthetic(2)
    table = compare(img, [("truth", perfect_method(gt)), "otsu"], gt)
    row = table.row("truth")
    assert row["dice"] == 1.0 and row["iou"] == 1.0 and row["pixel_accuracy"] == 1.0
    assert table.methods == ["truth", "otsu"]
    assert isinstance(table.results["truth"], Segmentation)
    # a plain callable gets its __name__
    t2 = compare(img, [inverted], gt)
    assert t2.methods == ["inverted"]
    assert t2.rows[0]["dice"] > 0.95  # Hungarian matching undoes the swap


def test_label_scores_known_values():
    gt = np.zeros((10, 10), int)
    gt[:, 5:] = 1
    pred = gt.copy()
    pred[0, 5] = 0  # one wrong pixel
    s = label_scores(1 - pred, gt)  # swapped ids are matched back
    assert s["pixel_accuracy"] == pytest.approx(0.99)
    d1 = 2 * 49 / (49 + 50)
    d0 = 2 * 50 / (51 + 50)
    assert s["dice"] == pytest.approx((d0 + d1) / 2)
    assert s["iou"] == pytest.approx((49 / 50 + 50 / 51) / 2)
    # a list of human segmentations gives BSDS scores
    b = label_scores(pred, [gt, gt])
    assert set(b) >= {"covering", "PRI", "VI"}
    assert 0.9 < b["PRI"] < 1
    from varseg.metrics import variation_of_information

    assert b["VI"] == pytest.approx(variation_of_information(pred, gt))  # same for each human


def test_bsds_ground_truth_in_compare():
    img, gt = synthetic(3)
    table = compare(img, FAST, [gt, gt])
    for r in table.rows:
        assert 0.9 < r["covering"] <= 1 and 0.9 < r["PRI"] <= 1
        direct = label_scores(table.results[r["method"]].labels, [gt, gt])
        assert r["VI"] == pytest.approx(direct["VI"]) and r["PRI"] == pytest.approx(direct["PRI"])


def test_failing_method_is_recorded_or_raised():
    img, _ = synthetic()

    def broken(image, n_phases, **kw):
        raise ValueError("boom")

    with pytest.warns(RuntimeWarning, match="boom"):
        table = compare(img, ["otsu", ("broken", broken)])
    row = table.row("broken")
    assert "boom" in row["error"] and math.isnan(row["energy"])
    assert "broken" not in table.results
    assert "error" in table.to_markdown()
    with pytest.raises(ValueError, match="boom"):
        compare(img, [("broken", broken)], errors="raise")
    with pytest.raises(ValueError, match="unknown method"):
        compare(img, ["no-such-method"])
    with pytest.raises(ValueError, match="ground_truth"):
        compare(img, FAST, np.zeros((3, 3), int))


def test_colour_image_and_channel_axis():
    img, gt = synthetic(4)
    rgb = np.stack([img, img[::-1] * 0 + img, 2 * img], axis=-1)
    table = compare(rgb, FAST, gt, channel_axis=-1)
    xn = np.moveaxis(normalise_image(rgb), -1, 0)
    for r in table.rows:
        lab = table.results[r["method"]].labels
        assert r["energy"] == pytest.approx(energy_from_labels(xn, lab, DEFAULT_LAM).total)
        assert r["dice"] > 0.95


def test_table_exports_round_trip(tmp_path):
    img, gt = synthetic(5)
    table = compare(img, FAST, gt)
    p = table.to_csv(tmp_path / "t.csv")
    back = ComparisonTable.from_csv(p)
    assert back.rows == table.rows
    assert back.lam == table.lam
    d = table.to_dict()
    assert d["rows"] == table.rows and d["lam"] == DEFAULT_LAM
    j = ComparisonTable.from_json(table.to_json(tmp_path / "t.json"))
    assert j.rows == table.rows
    md = table.to_markdown()
    assert md.splitlines()[0].startswith("| method | energy")
    assert len(md.splitlines()) == 2 + len(table)
    text = repr(table)
    assert "ComparisonTable(lam=0.125" in text and "kmeans" in text and "otsu" in text
    assert table.best("energy") in ("kmeans", "otsu")


def test_chan_vese_gets_mu_equal_two_lambda():
    pytest.importorskip("varseg.levelset")
    img, gt = synthetic(6, shape=(32, 32))
    table = compare(img, ["chan-vese"], gt, lam=0.2, method_params={"chan-vese": {"max_iter": 30}})
    res = table.results["chan-vese"]
    assert res.params["mu"] == pytest.approx(0.4)
    assert res.params["lam"] == pytest.approx(0.2)
    assert table.rows[0]["recorded_energy"] == pytest.approx(table.rows[0]["energy"], rel=1e-6)


def _items(n=5):
    out = []
    for i in range(n):
        img, gt = synthetic(i, shape=(32, 32))
        out.append((f"img{i}", img, gt))
    return out


def _strip(rows, approx=False):
    """Rows without timings; with ``approx`` floats compare up to summation order (the
    Numba energy kernel's parallel reduction depends on the thread count of the process)."""
    return [
        {
            k: (pytest.approx(v, rel=1e-12, nan_ok=True) if approx and isinstance(v, float) else v)
            for k, v in r.items()
            if k not in ("time", "total_time")
        }
        for r in rows
    ]


def test_dataset_mode_parallel_equals_serial():
    items = _items(4)
    methods = FAST + (("inv", inverted),)
    t1 = compare_dataset(items, methods, n_jobs=1, progress=False, shard=False)
    t2 = compare_dataset(items, methods, n_jobs=2, progress=False, shard=False)
    assert len(t1.per_image) == 4 * 3
    assert _strip(t1.per_image.rows) == _strip(t2.per_image.rows, approx=True)
    assert _strip(t1.rows) == _strip(t2.rows, approx=True)
    # aggregation: mean over images
    dice = [r["dice"] for r in t1.per_image.rows if r["method"] == "otsu"]
    assert t1.row("otsu")["dice"] == pytest.approx(np.mean(dice))
    assert t1.row("otsu")["n_images"] == 4
    assert t1.meta["n_images"] == 4


def test_dataset_covering_is_pooled():
    items = []
    for i, shape in enumerate([(20, 20), (40, 30)]):
        img, gt = synthetic(i, shape=shape, noise=0.4)
        items.append((f"im{i}", img, [gt]))
    t = compare_dataset(items, ["otsu"], progress=False, shard=False)
    per = t.per_image.rows
    pooled = sum(r["covering_num"] for r in per) / sum(r["covering_den"] for r in per)
    assert t.row("otsu")["covering"] == pytest.approx(pooled)
    assert t.row("otsu")["PRI"] == pytest.approx(np.mean([r["PRI"] for r in per]))


def test_sharding_by_rank_partitions_items(tmp_path, monkeypatch):
    items = _items(5)
    full = compare_dataset(items, FAST, progress=False, shard=False)
    paths, seen = [], []
    for rank in range(2):
        monkeypatch.setenv("RANK", str(rank))
        monkeypatch.setenv("WORLD_SIZE", "2")
        part = compare_dataset(items, FAST, progress=False, out_dir=tmp_path)
        idx = sorted({r["index"] for r in part.per_image.rows})
        assert idx == list(range(rank, 5, 2))
        seen += idx
        paths.append(tmp_path / f"shard-{rank:05d}-of-00002.json")
        assert paths[-1].is_file()
    assert sorted(seen) == list(range(5))
    merged = merge_shards(paths)
    assert _strip(merged.per_image.rows) == _strip(full.per_image.rows)
    assert _strip(merged.rows) == _strip(full.rows)
    assert _strip(merge_shards(tmp_path).rows) == _strip(full.rows)  # a folder works too
    with pytest.raises(ValueError, match="two shards"):
        merge_shards([paths[0], paths[0]])


def test_dataset_from_folder_and_varseg_dataset(tmp_path):
    from PIL import Image

    img_dir, gt_dir = tmp_path / "img", tmp_path / "gt"
    img_dir.mkdir()
    gt_dir.mkdir()
    for i in range(2):
        img, gt = synthetic(i, shape=(24, 24), offset=0, scale=255)
        Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(img_dir / f"a{i}.png")
        Image.fromarray(gt.astype(np.uint8)).save(gt_dir / f"a{i}.png")
    t = compare_dataset(img_dir, FAST, gt_dir=gt_dir, progress=False, shard=False)
    assert [r["image"] for r in t.per_image.rows] == ["a0", "a0", "a1", "a1"]
    assert all(r["dice"] > 0.9 for r in t.per_image.rows)

    data = pytest.importorskip("varseg.data")
    ds = data.SyntheticShapes(3, image_size=24, n_classes=3, noise=0.02)
    t = compare_dataset(ds, ["kmeans"], n_phases=3, progress=False, shard=False)
    assert t.row("kmeans")["n_images"] == 3
    assert t.row("kmeans")["dice"] > 0.9


def test_first_use_methods_are_warmed_up_on_a_crop_before_the_clock():
    """A spec with ``jit`` (Numba kernels, torch's lazy imports: neural) is called once on a
    32-pixel crop before its timed call; the table's row comes from the full-size call."""
    from varseg.baselines import otsu_segment
    from varseg.methods import MethodSpec, get_spec

    assert get_spec("neural").jit and get_spec("chan-vese").jit
    shapes = []

    def recording(image, n_phases, **kw):
        shapes.append(image.shape)
        return otsu_segment(image, n_phases, lam=kw.get("lam", 0.125))

    img = np.zeros((48, 40))
    img[10:30, 8:30] = 1
    spec = MethodSpec("rec", recording, iteration_param=None, takes_seed=False, jit=True)
    table = compare(img, [spec])
    assert shapes == [(32, 32), (48, 40)]
    assert table.results["rec"].labels.shape == (48, 40)
    shapes.clear()
    compare(img, [spec], warmup=False)
    assert shapes == [(48, 40)]

"""labeled_subset / SemiSupervisedDataset / split files / build_dataset / dataset_class."""

from fractions import Fraction

import numpy as np
import pytest
import torch

from varseg.data import (
    BSDS500,
    DATASET_ALIASES,
    DATASET_NAMES,
    LiTS,
    SemiSupervisedDataset,
    SyntheticShapes,
    VOCSegmentation,
    build_dataset,
    canonical_dataset_name,
    dataset_class,
    labeled_subset,
    labeled_subset_by_case,
    load_split,
    parse_fraction,
    save_split,
)


@pytest.mark.parametrize(
    "text,value", [("1/8", 0.125), ("0.25", 0.25), ("12.5%", 0.125), (" 1/23 ", 1 / 23), ("1", 1.0)]
)
def test_parse_fraction(text, value):
    assert parse_fraction(text) == pytest.approx(value)


@pytest.mark.parametrize("bad", ["0", "3/2", "abc", "1/0", -0.1, 0.0, 1.5])
def test_parse_fraction_rejects(bad):
    with pytest.raises(ValueError):
        parse_fraction(bad)


def test_labeled_subset_sizes():
    # VOC train_aug (10,582): AdvSemi's int(fraction * n)
    assert len(labeled_subset(10582, "1/8")) == 1322
    assert len(labeled_subset(10582, 1 / 4)) == 2645
    assert len(labeled_subset(10582, "1/2")) == 5291
    assert len(labeled_subset(10582, 1.0)) == 10582
    # LiTS 118 training scans, BraTS 249
    assert [len(labeled_subset(118, f)) for f in ("1/23", "1/10", "1/3")] == [5, 11, 39]
    assert len(labeled_subset(249, "1/4")) == 62
    assert len(labeled_subset(3, "1/8")) == 1  # at least one
    assert len(labeled_subset(9, Fraction(1, 3))) == 3
    with pytest.raises(ValueError):
        labeled_subset(0, 0.5)


def test_labeled_subset_reproducible_sorted_nested():
    a = labeled_subset(1000, "1/8", seed=5)
    assert np.array_equal(a, labeled_subset(1000, 0.125, seed=5))
    assert not np.array_equal(a, labeled_subset(1000, "1/8", seed=6))
    assert a.dtype == np.int64 and np.all(np.diff(a) > 0)
    assert a.min() >= 0 and a.max() < 1000
    quarter = labeled_subset(1000, "1/4", seed=5)
    half = labeled_subset(1000, "1/2", seed=5)
    assert set(a) <= set(quarter) <= set(half)


def test_labeled_subset_by_case():
    item_cases = np.repeat(np.arange(10), [3, 1, 4, 2, 5, 3, 3, 2, 1, 6])
    idx = labeled_subset_by_case(item_cases, "1/4", seed=0)
    chosen = np.unique(item_cases[idx])
    assert len(chosen) == 2
    assert np.array_equal(idx, np.flatnonzero(np.isin(item_cases, chosen)))


def test_semi_supervised_wrapper_and_collate():
    base = SyntheticShapes(8, image_size=16)
    lab = labeled_subset(len(base), "1/4", seed=0)
    ds = SemiSupervisedDataset(base, lab)
    assert len(ds) == 8 and ds.num_classes == 3 and ds.in_channels == 1
    assert np.array_equal(ds.labeled_indices, lab)
    assert len(ds.unlabeled_indices) == 6
    for i in range(len(ds)):
        item = ds[i]
        if i in lab:
            assert bool(item["labeled"]) and torch.equal(item["label"], base[i]["label"])
        else:
            assert not bool(item["labeled"])
            assert torch.all(item["label"] == base.ignore_index)
        assert torch.equal(item["image"], base[i]["image"])
    batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=8)))
    assert batch["labeled"].tolist() == [i in lab for i in range(8)]
    assert batch["label"].shape == (8, 16, 16)
    with pytest.raises(IndexError):
        SemiSupervisedDataset(base, [8])
    assert SemiSupervisedDataset(base, [], ignore_index=255)[0]["label"].unique().tolist() == [255]


def test_save_and_load_split(tmp_path):
    idx = labeled_subset(100, "1/8", seed=2)
    meta = {"dataset": "voc", "fraction": "1/8", "seed": np.int64(2), "n_items": 100}
    p = save_split(tmp_path / "runs" / "split.json", idx, meta)
    got, got_meta = load_split(p)
    assert np.array_equal(got, idx) and got.dtype == np.int64
    assert got_meta == {"dataset": "voc", "fraction": "1/8", "seed": 2, "n_items": 100}
    with pytest.raises(FileNotFoundError, match="missing.json"):
        load_split(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match="bad.json"):
        load_split(tmp_path / "bad.json")


def test_build_dataset(tmp_path):
    assert DATASET_NAMES == ("voc", "lits", "brats", "bsds500", "synthetic")
    ds = build_dataset("synthetic", split="val", n_images=3, image_size=8)
    assert isinstance(ds, SyntheticShapes) and ds.split == "val" and len(ds) == 3
    with pytest.raises(ValueError, match="unknown dataset"):
        build_dataset("cityscapes", tmp_path)
    with pytest.raises(ValueError, match="root"):
        build_dataset("voc")
    with pytest.raises(FileNotFoundError, match=str(tmp_path / "none")):
        build_dataset("BSDS", tmp_path / "none", split="val")
    for name in ("voc", "VOC2012", "lits", "brats", "brats2015", "bsds500"):
        with pytest.raises(FileNotFoundError, match=str(tmp_path / "none")):
            build_dataset(name, tmp_path / "none")


def test_collate_with_image_only_dataset(tmp_path):
    from PIL import Image

    d = tmp_path / "data" / "images" / "train"
    d.mkdir(parents=True)
    for i in range(2):
        Image.fromarray(np.full((10, 12, 3), 40 * i, np.uint8)).save(d / f"{i}.jpg")
    base = build_dataset("bsds500", tmp_path, labels=False)
    assert isinstance(base, BSDS500)
    ds = SemiSupervisedDataset(base, [])
    item = ds[1]
    assert item["label"].shape == (10, 12) and not bool(item["labeled"])


@pytest.mark.parametrize(
    "name, cls",
    [
        ("voc", VOCSegmentation),
        (" Pascal-VOC ", VOCSegmentation),
        ("LITS17", LiTS),
        ("bsd500", BSDS500),
        ("shapes", SyntheticShapes),
    ],
)
def test_dataset_class_resolves_names_and_aliases(name, cls):
    assert dataset_class(name) is cls
    assert canonical_dataset_name(name) in DATASET_NAMES
    assert dataset_class(canonical_dataset_name(name)) is cls


def test_dataset_class_registry_and_errors():
    import varseg.data as vdata

    assert {n: dataset_class(n) for n in DATASET_NAMES} == vdata._REGISTRY  # kept for now
    assert set(DATASET_ALIASES.values()) <= set(DATASET_NAMES)
    assert all(canonical_dataset_name(a) == n for a, n in DATASET_ALIASES.items())
    with pytest.raises(TypeError):
        DATASET_ALIASES["new"] = "voc"  # read-only view
    with pytest.raises(ValueError, match=r"^unknown dataset 'cityscapes': expected one of voc"):
        dataset_class("cityscapes")
    with pytest.raises(TypeError, match="string"):
        dataset_class(None)


def test_old_sampling_module_reexports_with_warning():
    import importlib
    import sys

    import varseg.data.semi_supervised as semi

    sys.modules.pop("varseg.data.sampling", None)
    with pytest.warns(DeprecationWarning, match="varseg.data.sampling is deprecated"):
        old = importlib.import_module("varseg.data.sampling")
    for name in old.__all__:
        assert getattr(old, name) is getattr(semi, name)


def test_semi_supervised_index_and_is_labeled():
    base = SyntheticShapes(6, image_size=8)
    ds = SemiSupervisedDataset(base, [0, 5])
    assert ds.is_labeled(-1) and ds.is_labeled(0) and not ds.is_labeled(-2)
    assert bool(ds[-1]["labeled"]) and ds[-1]["index"] == 5
    assert not bool(ds[-6 + 1]["labeled"])
    with pytest.raises(IndexError, match="index -7 is out of range for 6 items"):
        ds[-7]
    with pytest.raises(IndexError, match="index 6 is out of range"):
        ds.is_labeled(6)


def test_save_split_failure_keeps_previous_file(tmp_path):
    path = tmp_path / "labeled_split.json"
    save_split(path, [1, 2, 3], {"fraction": "1/8"})
    before = path.read_bytes()
    with pytest.raises(TypeError, match="cannot store object"):
        save_split(path, [4, 5], {"bad": object()})  # fails half-way through the JSON
    assert path.read_bytes() == before
    idx, meta = load_split(path)
    assert idx.tolist() == [1, 2, 3] and meta == {"fraction": "1/8"}
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary left behind


@pytest.mark.parametrize("n_items", [0, -3, 2.5])
def test_labeled_subset_rejects_bad_n_items(n_items):
    with pytest.raises(ValueError, match="^n_items must be a positive integer"):
        labeled_subset(n_items, "1/8")

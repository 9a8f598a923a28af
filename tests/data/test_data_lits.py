"""LiTS loader on tiny NIfTI scans written with nibabel in the official file naming."""

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

from varseg.data import GroupedShuffleSampler, LiTS, labeled_subset_by_case
from varseg.data._io import split_cases
from varseg.data.lits import find_lits_scans, window_hu

NI, NJ, NK = 20, 20, 5


def _volume(offset=0):
    i = np.arange(NI)[:, None, None]
    k = np.arange(NK)[None, None, :]
    vol = (-124 + 40 * k + i + offset) * np.ones((NI, NJ, NK))
    vol[0, 0, :] = -1000  # below the window
    vol[19, 19, :] = 3000  # above the window
    return vol


def _seg():
    seg = np.zeros((NI, NJ, NK), np.uint8)
    seg[5:15, 5:15, 1:4] = 1
    seg[8:10, 8:12, 2] = 2
    return seg


def make_lits(root: Path, n_scans=2, gz_second=True):
    for n in range(n_scans):
        batch = root / ("Training Batch 1" if n % 2 == 0 else "Training Batch 2")
        batch.mkdir(parents=True, exist_ok=True)
        ext = ".nii.gz" if (gz_second and n % 2 == 1) else ".nii"
        vol = _volume(offset=n)
        dtype = np.int16 if n % 2 == 0 else np.float32
        nib.save(
            nib.Nifti1Image(vol.astype(dtype), np.diag([0.7, 0.7, 2.5, 1])),
            batch / f"volume-{n}{ext}",
        )
        nib.save(
            nib.Nifti1Image(_seg(), np.diag([0.7, 0.7, 2.5, 1])), batch / f"segmentation-{n}{ext}"
        )
    return root


def test_find_scans_recursive_both_extensions(tmp_path):
    make_lits(tmp_path, 3)
    nib.save(
        nib.Nifti1Image(np.zeros((4, 4, 2), np.int16), np.eye(4)), tmp_path / "test-volume-7.nii"
    )  # unlabelled test scan: not matched
    scans = find_lits_scans(tmp_path)
    assert sorted(scans) == [0, 1, 2]
    assert scans[1][0].name == "volume-1.nii.gz" and scans[1][1].name == "segmentation-1.nii.gz"
    assert scans[0][0].parent.name == "Training Batch 1"


def test_hu_window_numbers():
    hu = np.array([-1000, -124, 0, 76, 276, 1000], np.float32)
    assert np.allclose(window_hu(hu), [0, 0, 124 / 400, 0.5, 1, 1])
    assert np.allclose(window_hu(hu, (-100, 100)), [0, 0, 0.5, 0.88, 1, 1])


def test_items_windowing_context_and_orientation(tmp_path):
    make_lits(tmp_path, 2)
    ds = LiTS(tmp_path, "all", image_size=None)
    assert len(ds) == 2 * NK and ds.in_channels == 3 and ds.num_classes == 3
    for idx in range(len(ds)):
        item = ds[idx]
        n, k = item["case"], item["slice"]
        assert item["name"] == f"volume-{n}:{k:03d}"
        img = item["image"].numpy()
        assert img.shape == (3, NJ, NI) and img.dtype == np.float32
        for c, kk in enumerate([max(k - 1, 0), k, min(k + 1, NK - 1)]):
            # slice[r, col] = volume[col, r, kk]; HU = -124 + 40 kk + col + n
            expect = np.clip(40 * kk + np.arange(NI) + n, 0, 400) / 400.0
            assert np.allclose(img[c, 5, :], expect, atol=1e-6)
            assert np.allclose(img[c, :, 7], expect[7], atol=1e-6)
        assert img[:, 0, 0].max() == 0.0 and img[:, 19, 19].min() == 1.0
        assert 0.0 <= img.min() and img.max() <= 1.0
        lab = item["label"].numpy()
        assert lab.dtype == np.int64 and np.array_equal(lab, _seg()[:, :, k].T)


def test_context_clamped_at_ends(tmp_path):
    make_lits(tmp_path, 2)
    ds = LiTS(tmp_path, "all", image_size=None, context=2)
    first = ds[0]["image"]
    assert ds[0]["slice"] == 0 and first.shape[0] == 5
    assert torch.equal(first[0], first[2]) and torch.equal(first[1], first[2])
    last = ds[NK - 1]["image"]
    assert ds[NK - 1]["slice"] == NK - 1
    assert torch.equal(last[3], last[2]) and torch.equal(last[4], last[2])
    assert not torch.equal(last[1], last[2])


def test_resize_and_only_liver_slices(tmp_path):
    make_lits(tmp_path, 2)
    ds = LiTS(tmp_path, "all", image_size=8, only_liver_slices=True)
    assert [it[1] for it in ds.items] == [1, 2, 3, 1, 2, 3]
    item = ds[1]
    assert item["image"].shape == (3, 8, 8) and item["label"].shape == (8, 8)
    assert set(torch.unique(item["label"]).tolist()) <= {0, 1, 2}
    assert 1 in item["label"]


def test_scan_level_split(tmp_path):
    make_lits(tmp_path, 2)
    tr = LiTS(tmp_path, "train", image_size=None)
    va = LiTS(tmp_path, "val", image_size=None)
    assert len(tr.cases) == 1 and len(va.cases) == 1
    assert set(tr.cases) | set(va.cases) == {0, 1}
    assert LiTS(tmp_path, "train", image_size=None).cases == tr.cases  # reproducible
    seeds = {tuple(LiTS(tmp_path, "val", seed=s, image_size=None).cases) for s in range(8)}
    assert seeds == {(0,), (1,)}
    # full data: 118 / 13; fewer scans proportionally, >= 1 validation scan
    keys = list(range(131))
    train, val = split_cases(keys, val_cases=13, n_reference=131, seed=0)
    assert (len(train), len(val)) == (118, 13) and not set(train) & set(val)
    assert split_cases(keys, val_cases=13, n_reference=131, seed=0) == (train, val)
    assert split_cases(keys, val_cases=13, n_reference=131, seed=1) != (train, val)
    assert [len(v) for v in split_cases(range(20), val_cases=13, n_reference=131, seed=0)] == [
        18,
        2,
    ]
    assert [len(v) for v in split_cases(range(3), val_cases=13, n_reference=131, seed=0)] == [2, 1]
    with pytest.raises(ValueError, match="empty"):
        LiTS(make_lits(tmp_path / "one", 1), "val")


def test_cache_loads_each_scan_once_in_order(tmp_path):
    make_lits(tmp_path, 2)
    ds = LiTS(tmp_path, "all", image_size=None)
    for i in range(len(ds)):
        ds[i]
    assert ds._cache.misses == 2 and len(ds._cache) == 1
    sampler = GroupedShuffleSampler(ds.item_cases, seed=0)
    order = list(sampler)
    assert sorted(order) == list(range(len(ds)))
    cases = ds.item_cases[order]
    assert (np.diff(cases) != 0).sum() == 1  # each scan's slices are contiguous
    ds2 = LiTS(tmp_path, "all", image_size=None)
    for i in order:
        ds2[i]
    assert ds2._cache.misses == 2
    # whole scans are labelled for the semi-supervised runs
    lab = labeled_subset_by_case(ds.item_cases, 0.5, seed=0)
    assert len(lab) == NK and len(set(ds.item_cases[lab].tolist())) == 1


def test_dataloader_batches(tmp_path):
    make_lits(tmp_path, 2)
    ds = LiTS(tmp_path, "all", image_size=16)
    batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=4)))
    assert batch["image"].shape == (4, 3, 16, 16) and batch["label"].shape == (4, 16, 16)
    assert batch["labeled"].dtype == torch.bool


def test_errors_name_paths(tmp_path):
    missing = tmp_path / "missing"
    with pytest.raises(FileNotFoundError, match=str(missing)):
        LiTS(missing)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match=r"volume-<N>\.nii"):
        LiTS(empty)
    root = make_lits(tmp_path / "noseg", 2)
    seg = next(root.rglob("segmentation-1.nii*"))
    seg.unlink()
    with pytest.raises(FileNotFoundError, match=r"volume-1\.nii.*segmentation-1"):
        LiTS(root, "all")


def test_bad_label_values(tmp_path):
    root = make_lits(tmp_path, 2)
    bad = _seg()
    bad[0, 0, 0] = 5
    p = root / "Training Batch 1" / "segmentation-0.nii"
    nib.save(nib.Nifti1Image(bad, np.eye(4)), p)
    ds = LiTS(root, "all", image_size=None)
    with pytest.raises(ValueError, match=r"segmentation-0\.nii.*5"):
        ds[0]


def test_shape_mismatch(tmp_path):
    root = make_lits(tmp_path, 2)
    p = root / "Training Batch 1" / "segmentation-0.nii"
    nib.save(nib.Nifti1Image(np.zeros((NI, NJ, NK + 1), np.uint8), np.eye(4)), p)
    with pytest.raises(ValueError, match=r"segmentation-0\.nii"):
        LiTS(root, "all")


def test_pickle_drops_cache_and_transform(tmp_path):
    import pickle

    make_lits(tmp_path, 2)
    ds = LiTS(
        tmp_path,
        "all",
        image_size=None,
        transform=lambda item: {**item, "image": item["image"] * 0 + 1},
    )
    ds[0]
    assert len(ds._cache) == 1
    clone = pickle.loads(pickle.dumps(LiTS(tmp_path, "all", image_size=None)))
    assert len(clone._cache) == 0 and len(clone) == len(ds)
    assert torch.all(ds[3]["image"] == 1)


# --------------------------------------------------------------------------------------
# bad data is refused with the file's name (issue 11, loader findings)
# --------------------------------------------------------------------------------------
@pytest.fixture
def lits2(tmp_path):
    """Two scans of NK slices: volume-0.nii (int16) and volume-1.nii.gz (float32)."""
    return make_lits(tmp_path, 2)


def test_lits_negative_index_like_python(lits2):
    ds = LiTS(lits2, "all", image_size=None)
    n = len(ds)
    assert n == 2 * NK
    for i in (-1, -NK, -n):
        assert ds[i]["name"] == ds[i + n]["name"]
    with pytest.raises(IndexError, match=rf"index {-n - 1} is out of range for {n} items"):
        ds[-n - 1]
    with pytest.raises(IndexError, match=rf"index {n} is out of range"):
        ds[n]


def test_lits_nan_voxels_refused(lits2):
    vol = _volume(offset=1).astype(np.float32)
    vol[3, 4, 2] = np.nan
    path = lits2 / "Training Batch 2" / "volume-1.nii.gz"
    nib.save(nib.Nifti1Image(vol, np.eye(4)), path)
    ds = LiTS(lits2, "all", image_size=None)
    assert ds[0]["case"] == 0  # scan 0 is fine
    with pytest.raises(ValueError, match=r"volume-1\.nii\.gz has 1 NaN or Inf voxel"):
        ds[NK]


def test_lits_truncated_nii_gz_names_file(lits2):
    path = lits2 / "Training Batch 2" / "volume-1.nii.gz"
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])  # header intact, voxel data cut
    ds = LiTS(lits2, "all", image_size=None)
    with pytest.raises(ValueError, match=r"could not read .*volume-1\.nii\.gz"):
        ds[NK]
    path.write_bytes(raw[:40])  # header cut too: refused at construction
    with pytest.raises(ValueError, match=r"could not read .*volume-1\.nii\.gz"):
        LiTS(lits2, "all", image_size=None)


@pytest.mark.parametrize(
    "kw, name",
    [
        ({"image_size": 0}, "image_size"),
        ({"image_size": (256, -256)}, "image_size"),
        ({"context": -1}, "context"),
        ({"cache_size": -1}, "cache_size"),
        ({"hu_window": (276, -124)}, "hu_window"),
        ({"hu_window": (-124, float("inf"))}, "hu_window"),
    ],
)
def test_lits_bad_arguments_name_the_argument(lits2, kw, name):
    with pytest.raises(ValueError, match=rf"^{name} must be"):
        LiTS(lits2, "all", **kw)

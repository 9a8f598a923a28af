"""BSDS500 loader and ground-truth reader on .mat files written in the real cell layout."""

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from scipy.io import loadmat, savemat

from varseg.data import BSDS500, collate_keep_lists, load_bsds_ground_truth

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data"


def write_gt(path: Path, segs):
    """Save a MATLAB (1, K) cell of 1x1 structs with Segmentation / Boundaries fields."""
    cell = np.empty((1, len(segs)), dtype=object)
    for k, seg in enumerate(segs):
        st = np.empty((1, 1), dtype=[("Segmentation", "O"), ("Boundaries", "O")])
        st[0, 0]["Segmentation"] = seg.astype(np.uint16)
        bnd = np.zeros(seg.shape, np.uint8)
        bnd[:, 1:] |= (seg[:, 1:] != seg[:, :-1]).astype(np.uint8)
        st[0, 0]["Boundaries"] = bnd
        cell[0, k] = st
    path.parent.mkdir(parents=True, exist_ok=True)
    savemat(path, {"groundTruth": cell})


def _segs(h, w):
    a = np.ones((h, w), np.uint16)
    a[:, w // 2 :] = 2
    b = np.ones((h, w), np.uint16)
    b[h // 2 :, :] = 2
    b[: h // 3, : w // 3] = 3
    return [a, b]


def make_bsds(root: Path, split="train", shapes=((12, 18), (18, 12)), gt=True):
    data = root / "BSR" / "BSDS500" / "data"
    img_dir = data / "images" / split
    img_dir.mkdir(parents=True)
    (img_dir / "Thumbs.db").write_bytes(b"junk")
    rng = np.random.default_rng(0)
    out = {}
    for i, (h, w) in enumerate(shapes):
        id_ = f"{100 + i}"
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(
            img_dir / f"{id_}.jpg"
        )
        segs = _segs(h, w)
        if gt:
            write_gt(data / "groundTruth" / split / f"{id_}.mat", segs)
        out[id_] = segs
    return out


def _structure(mat_path):
    g = loadmat(mat_path)["groundTruth"]
    e = g[0, 0]
    return (
        type(g),
        g.ndim,
        g.shape[0],
        g.dtype,
        e.shape,
        e.dtype.names,
        e["Segmentation"][0, 0].dtype,
        e["Segmentation"][0, 0].ndim,
        e["Boundaries"][0, 0].dtype,
    )


def test_written_mat_round_trips_like_real_files(tmp_path):
    segs = make_bsds(tmp_path)
    p = tmp_path / "BSR" / "BSDS500" / "data" / "groundTruth" / "train" / "100.mat"
    ours = _structure(p)
    assert ours == (
        np.ndarray,
        2,
        1,
        np.dtype(object),
        (1, 1),
        ("Segmentation", "Boundaries"),
        np.dtype(np.uint16),
        2,
        np.dtype(np.uint8),
    )
    real = SHARED / "bsds500-sample" / "data" / "groundTruth" / "train" / "100075.mat"
    if real.is_file():
        assert _structure(real) == ours
    gts = load_bsds_ground_truth(p)
    assert len(gts) == 2 and all(g.dtype == np.uint16 for g in gts)
    assert all(np.array_equal(g, s) for g, s in zip(gts, segs["100"], strict=True))
    bnds = load_bsds_ground_truth(p, field="Boundaries")
    assert bnds[0].dtype == np.uint8 and bnds[0][:, 9].all()


def test_dataset_items_and_parent_root(tmp_path):
    segs = make_bsds(tmp_path)
    for root in (tmp_path / "BSR", tmp_path / "BSR" / "BSDS500", tmp_path):
        ds = BSDS500(root, "train")
        assert ds.ids == ["100", "101"]  # Thumbs.db ignored
    item = ds[1]
    assert item["image"].shape == (3, 18, 12) and item["image"].dtype == torch.float32
    assert 0.0 <= item["image"].min() and item["image"].max() <= 1.0
    assert item["label"].dtype == torch.int64
    assert np.array_equal(item["label"].numpy(), segs["101"][0])  # first human segmentation
    assert item["label"].min() == 1 and bool(item["labeled"])
    assert item["orig_size"].tolist() == [18, 12]
    assert "ground_truths" not in item
    assert ds.in_channels == 3 and ds.num_classes is None


def test_training_resize_and_all_ground_truths(tmp_path):
    segs = make_bsds(tmp_path)
    ds = BSDS500(tmp_path, "train", image_size=(8, 8), return_all_ground_truths=True)
    item = ds[0]
    assert item["image"].shape == (3, 8, 8) and item["label"].shape == (8, 8)
    assert set(torch.unique(item["label"]).tolist()) <= {1, 2}
    gts = item["ground_truths"]
    assert len(gts) == 2 and gts[1].shape == (12, 18)  # kept at full size for evaluation
    assert np.array_equal(gts[1].numpy(), segs["100"][1])
    loader = torch.utils.data.DataLoader(ds, batch_size=2, collate_fn=collate_keep_lists)
    batch = next(iter(loader))
    assert batch["image"].shape == (2, 3, 8, 8)
    assert isinstance(batch["ground_truths"], list) and len(batch["ground_truths"]) == 2
    assert batch["name"] == ["100", "101"] and batch["index"].tolist() == [0, 1]
    full = collate_keep_lists([BSDS500(tmp_path)[i] for i in range(2)])
    assert isinstance(full["image"], list) and full["image"][1].shape == (3, 18, 12)


def test_unlabelled_use_without_ground_truth(tmp_path):
    make_bsds(tmp_path, "test", gt=False)
    with pytest.raises(FileNotFoundError, match=r"groundTruth.*100\.mat"):
        BSDS500(tmp_path, "test")
    ds = BSDS500(tmp_path, "test", labels=False, image_size=16)
    item = ds[0]
    assert "label" not in item and not bool(item["labeled"])
    batch = torch.utils.data.default_collate([ds[0], ds[1]])
    assert batch["image"].shape == (2, 3, 16, 16)


def test_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match=str(tmp_path / "x")):
        BSDS500(tmp_path / "x")
    (tmp_path / "y").mkdir()
    with pytest.raises(
        FileNotFoundError, match=r"y has no data/images/train: expected <root>/data/images/\{train"
    ):
        BSDS500(tmp_path / "y")
    with pytest.raises(ValueError, match="split"):
        BSDS500(tmp_path / "y", "training")
    with pytest.raises(FileNotFoundError, match=r"nope\.mat"):
        load_bsds_ground_truth(tmp_path / "nope.mat")
    savemat(tmp_path / "other.mat", {"x": np.zeros(3)})
    with pytest.raises(ValueError, match=r"other\.mat.*groundTruth"):
        load_bsds_ground_truth(tmp_path / "other.mat")


@pytest.mark.skipif(not (SHARED / "bsds500-sample").is_dir(), reason="no ../shared/data")
def test_real_bsds_sample():
    ds = BSDS500(SHARED / "bsds500-sample", "train", return_all_ground_truths=True)
    assert len(ds) == 6
    item = ds[0]
    h, w = item["image"].shape[1:]
    assert {h, w} == {321, 481}
    gts = item["ground_truths"]
    assert len(gts) >= 4 and all(g.shape == (h, w) for g in gts)
    assert all(int(g.min()) == 1 for g in gts)
    assert torch.equal(item["label"], gts[0])
    raw = load_bsds_ground_truth(ds.ground_truth_files[0])
    assert raw[0].dtype == np.uint16
    small = BSDS500(SHARED / "bsds500-sample", "train", image_size=(64, 64), labels=False)
    assert torch.utils.data.default_collate([small[0], small[1]])["image"].shape == (2, 3, 64, 64)


# --------------------------------------------------------------------------------------
# bad data is refused with the file's name (issue 11, loader findings)
# --------------------------------------------------------------------------------------
@pytest.fixture
def bsds6(tmp_path):
    """A BSDS500 root with six train images and their ground truth."""
    segs = make_bsds(tmp_path, shapes=[(12, 18)] * 3 + [(18, 12)] * 3)
    return tmp_path, segs


def _write_raw_gt(path: Path, seg: np.ndarray):
    """One-annotator ground truth with the labels stored as given (dtype kept)."""
    st = np.empty((1, 1), dtype=[("Segmentation", "O"), ("Boundaries", "O")])
    st[0, 0]["Segmentation"] = seg
    st[0, 0]["Boundaries"] = np.zeros(seg.shape, np.uint8)
    cell = np.empty((1, 1), dtype=object)
    cell[0, 0] = st
    savemat(path, {"groundTruth": cell})


@pytest.mark.parametrize("low, dtype", [(0, np.uint16), (-3, np.int16), (0.5, np.float64)])
def test_bsds_labels_below_one_refused(bsds6, low, dtype):
    root, segs = bsds6
    seg = segs["102"][0].astype(dtype)
    seg[0, :4] = low
    gt = root / "BSR" / "BSDS500" / "data" / "groundTruth" / "train" / "102.mat"
    _write_raw_gt(gt, seg)
    with pytest.raises(ValueError, match=r"102\.mat .*(below 1|non-integer)"):
        load_bsds_ground_truth(gt)
    ds = BSDS500(root, "train")
    assert torch.equal(ds[1]["label"], torch.from_numpy(segs["101"][0].astype(np.int64)))
    with pytest.raises(ValueError, match=r"102\.mat"):
        ds[2]
    # the boundary maps (0/1) are not region labels and stay readable
    assert load_bsds_ground_truth(gt, "Boundaries")[0].max() == 0


def test_bsds_negative_index_like_python(bsds6):
    root, _ = bsds6
    ds = BSDS500(root, "train", labels=False)
    names = [ds[i]["name"] for i in range(6)]
    assert [ds[i]["name"] for i in range(-6, 0)] == names
    with pytest.raises(IndexError, match="index -7 is out of range for 6 items"):
        ds[-7]
    with pytest.raises(IndexError, match="index 6 is out of range"):
        ds[6]


@pytest.mark.parametrize("image_size", [0, -4, (0, 16), (16, -1), (16,), 2.5])
def test_bsds_bad_image_size_names_argument(bsds6, image_size):
    with pytest.raises(ValueError, match="^image_size must be"):
        BSDS500(bsds6[0], "train", image_size=image_size)


@pytest.mark.parametrize("kind", ["jpg", "mat"])
def test_bsds_truncated_files_name_the_file(bsds6, kind):
    root, _ = bsds6
    data = root / "BSR" / "BSDS500" / "data"
    path = (
        data / "images" / "train" / "103.jpg"
        if kind == "jpg"
        else data / "groundTruth" / "train" / "103.mat"
    )
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])
    ds = BSDS500(root, "train")
    assert ds[0]["name"] == "100"
    with pytest.raises(ValueError, match=rf"could not read .*103\.{kind}"):
        ds[3]

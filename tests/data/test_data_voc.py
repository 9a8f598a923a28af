"""PASCAL VOC 2012 / SBD loader: real on-disk formats written to tmp_path."""

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from scipy import sparse
from scipy.io import loadmat, savemat

from varseg.data import VOCSegmentation, convert_sbd
from varseg.data.transforms import IMAGENET_MEAN, IMAGENET_STD

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data"

PALETTE = [v for i in range(256) for v in ((i * 37) % 256, (i * 91) % 256, (i * 13) % 256)]


def _write_palette_png(path, labels):
    labels = np.ascontiguousarray(labels, dtype=np.uint8)
    im = Image.frombytes("P", (labels.shape[1], labels.shape[0]), labels.tobytes())
    im.putpalette(PALETTE)
    im.save(path)


def _mask(h, w, cls, void=True):
    m = np.zeros((h, w), np.uint8)
    m[h // 4 : 3 * h // 4, w // 4 : 3 * w // 4] = cls
    if void:
        m[h // 4, w // 4 : 3 * w // 4] = 255  # void boundary line
    return m


def make_voc(root: Path, ids_train, ids_val, size=(30, 40), with_sets=True, seed=0):
    """VOCdevkit/VOC2012 with JPEGs, palette masks and split lists; returns masks/images."""
    voc = root / "VOCdevkit" / "VOC2012"
    (voc / "JPEGImages").mkdir(parents=True)
    (voc / "SegmentationClass").mkdir()
    rng = np.random.default_rng(seed)
    masks, images = {}, {}
    for i, id_ in enumerate(list(ids_train) + list(ids_val)):
        h, w = size
        img = rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
        Image.fromarray(img).save(voc / "JPEGImages" / f"{id_}.jpg", quality=95)
        m = _mask(h, w, 1 + i % 20)
        _write_palette_png(voc / "SegmentationClass" / f"{id_}.png", m)
        masks[id_] = m
        with Image.open(voc / "JPEGImages" / f"{id_}.jpg") as im:
            images[id_] = np.array(im.convert("RGB"))
    if with_sets:
        sets = voc / "ImageSets" / "Segmentation"
        sets.mkdir(parents=True)
        (sets / "train.txt").write_text("".join(f"{i}\n" for i in ids_train))
        (sets / "val.txt").write_text("".join(f"{i}\n" for i in ids_val))
    return voc, masks, images


def test_palette_masks_read_as_indices(tmp_path):
    voc, masks, images = make_voc(tmp_path, ["2007_000001", "2007_000002"], ["2007_000003"])
    ds = VOCSegmentation(voc, "val")
    assert len(ds) == 1 and not ds.augment
    item = ds[0]
    assert item["name"] == "2007_000003" and item["index"] == 0
    assert item["label"].dtype == torch.int64 and item["image"].dtype == torch.float32
    assert np.array_equal(item["label"].numpy(), masks["2007_000003"])
    assert set(np.unique(item["label"].numpy())) == {0, 3, 255}
    assert bool(item["labeled"])
    # ImageNet normalisation of RGB in [0, 1]
    mean = torch.tensor(IMAGENET_MEAN)[:, None, None]
    std = torch.tensor(IMAGENET_STD)[:, None, None]
    expect = (torch.from_numpy(images["2007_000003"]).permute(2, 0, 1) / 255.0 - mean) / std
    assert torch.allclose(item["image"], expect, atol=1e-5)
    assert ds.num_classes == 21 and ds.in_channels == 3 and ds.ignore_index == 255


def test_parent_vocdevkit_accepted_and_train_augmentation(tmp_path):
    _, masks, _ = make_voc(tmp_path, ["a1", "a2"], ["b1"], size=(30, 40))
    ds = VOCSegmentation(
        tmp_path / "VOCdevkit", "train", crop_size=48, scale_range=(0.5, 0.6), seed=3
    )
    assert ds.split == "train" and ds.augment
    item = ds[0]
    assert item["image"].shape == (3, 48, 48) and item["label"].shape == (48, 48)
    lab = item["label"]
    # the scaled image (<= 18 x 24) is smaller than the crop: mostly void padding
    assert (lab == 255).float().mean() > 0.5
    assert set(torch.unique(lab).tolist()) <= {0, 1, 255}
    # reproducible with an integer seed
    again = ds[0]
    assert torch.equal(again["image"], item["image"]) and torch.equal(again["label"], lab)


def test_padding_uses_mean_and_void(tmp_path):
    voc, masks, _ = make_voc(tmp_path, ["a1"], ["b1"], size=(30, 40))
    ds = VOCSegmentation(voc, "train", crop_size=48, scale_range=None, flip=False, seed=0)
    item = ds[0]
    assert torch.all(item["image"][:, 30:, :] == 0) and torch.all(item["image"][:, :, 40:] == 0)
    assert torch.all(item["label"][30:, :] == 255) and torch.all(item["label"][:, 40:] == 255)
    assert np.array_equal(item["label"][:30, :40].numpy(), masks["a1"])
    # without mean/std normalisation the padding is the ImageNet mean colour
    raw = VOCSegmentation(
        voc, "train", crop_size=48, scale_range=None, flip=False, seed=0, normalise="none"
    )[0]
    assert torch.allclose(raw["image"][:, 40, 45], torch.tensor(IMAGENET_MEAN))


def test_augment_flip_and_crop_keep_pairs_aligned(tmp_path):
    voc, masks, _ = make_voc(tmp_path, ["a1"], ["b1"], size=(40, 40))
    ds = VOCSegmentation(
        voc, "train", crop_size=24, scale_range=None, flip=True, seed=0, normalise="none"
    )
    for epoch in range(6):
        ds.set_epoch(epoch)
        item = ds[0]
        lab = item["label"].numpy()
        assert lab.shape == (24, 24)
        # the crop is a window of the (possibly flipped) mask
        full = masks["a1"]
        found = False
        for m in (full, full[:, ::-1]):
            for t in range(0, 17):
                for l_ in range(0, 17):
                    if np.array_equal(m[t : t + 24, l_ : l_ + 24], lab):
                        found = True
        assert found


def test_eval_pad_to_collates(tmp_path):
    voc, _, _ = make_voc(tmp_path, ["a1"], ["b1", "b2"], size=(30, 40))
    ds = VOCSegmentation(voc, "val", eval_pad_to=50)
    batch = torch.utils.data.default_collate([ds[0], ds[1]])
    assert batch["image"].shape == (2, 3, 50, 50)
    assert torch.all(batch["label"][:, 30:, :] == 255)
    assert torch.all(batch["image"][:, :, :, 40:] == 0)


def test_missing_split_file_names_path(tmp_path):
    voc, _, _ = make_voc(tmp_path, ["a1"], ["b1"])
    with pytest.raises(FileNotFoundError, match=r"trainval\.txt"):
        VOCSegmentation(voc, "trainval")
    with pytest.raises(FileNotFoundError, match="train_aug"):
        VOCSegmentation(voc, "train", use_sbd=True)


def test_missing_root_and_missing_files(tmp_path):
    missing = tmp_path / "nope"
    with pytest.raises(FileNotFoundError, match=str(missing)):
        VOCSegmentation(missing, "val")
    voc, _, _ = make_voc(tmp_path, ["a1"], ["b1"])
    (voc / "SegmentationClass" / "b1.png").unlink()
    with pytest.raises(FileNotFoundError, match=r"b1\.png"):
        VOCSegmentation(voc, "val")


def test_bad_label_values_raise_with_file_and_values(tmp_path):
    voc, _, _ = make_voc(tmp_path, ["a1"], ["b1"])
    bad = _mask(30, 40, 1)
    bad[0, 0] = 42
    _write_palette_png(voc / "SegmentationClass" / "b1.png", bad)
    ds = VOCSegmentation(voc, "val")
    with pytest.raises(ValueError, match=r"b1\.png.*42"):
        ds[0]


def test_fallback_without_imagesets(tmp_path):
    voc, masks, _ = make_voc(tmp_path, ["a1", "a2"], ["b1"], with_sets=False)
    # an image without a mask is not part of the fallback list
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(voc / "JPEGImages" / "zz.jpg")
    with pytest.warns(UserWarning, match="ImageSets"):
        ds = VOCSegmentation(voc, "val")
    assert ds.ids == ["a1", "a2", "b1"]


def _write_sbd(root: Path, ids_train, ids_val, size=(30, 40), cls=7):
    ds = root / "benchmark_RELEASE" / "dataset"
    (ds / "cls").mkdir(parents=True)
    (ds / "img").mkdir()
    rng = np.random.default_rng(1)
    segs = {}
    for id_ in list(ids_train) + list(ids_val):
        seg = _mask(*size, cls, void=False)
        # real SBD: Boundaries is a 20x1 cell of sparse edge maps, one per class
        bnd = np.empty((20, 1), dtype=object)
        for c in range(20):
            bnd[c, 0] = sparse.csc_matrix(size, dtype=bool)
        gtcls = {
            "Segmentation": seg,
            "Boundaries": bnd,
            "CategoriesPresent": np.array([[cls]], dtype=np.uint8),
        }
        savemat(ds / "cls" / f"{id_}.mat", {"GTcls": gtcls})
        img = rng.integers(0, 256, size=size + (3,), dtype=np.uint8)
        Image.fromarray(img).save(ds / "img" / f"{id_}.jpg")
        segs[id_] = seg
    (ds / "train.txt").write_text("".join(f"{i}\n" for i in ids_train))
    (ds / "val.txt").write_text("".join(f"{i}\n" for i in ids_val))
    return ds, segs


def test_sbd_mat_layout_matches_reference_indexing(tmp_path):
    ds, segs = _write_sbd(tmp_path, ["s1"], [])
    m = loadmat(ds / "cls" / "s1.mat")
    seg = m["GTcls"][0]["Segmentation"][0]
    assert seg.dtype == np.uint8 and np.array_equal(seg, segs["s1"])


def test_convert_sbd_builds_train_aug(tmp_path):
    # VOC train {v1, v2}, val {v3, s3}; SBD train {s1, v1, v3}, val {s2, s3}
    voc, masks, _ = make_voc(tmp_path, ["v1", "v2"], ["v3", "s3"])
    sbd, segs = _write_sbd(tmp_path, ["s1", "v1", "v3"], ["s2", "s3"])
    lst = convert_sbd(sbd.parent, voc)
    expected = sorted(({"s1", "v1", "v3"} | {"s2", "s3"} | {"v1", "v2"}) - {"v3", "s3"})
    assert lst.read_text().split() == expected == ["s1", "s2", "v1", "v2"]
    aug = voc / "SegmentationClassAug"
    # SBD-only ids: SBD labels; ids with a VOC mask: the VOC mask (with void)
    assert np.array_equal(np.asarray(Image.open(aug / "s1.png")), segs["s1"])
    assert np.array_equal(np.asarray(Image.open(aug / "v1.png")), masks["v1"])
    assert (voc / "JPEGImages" / "s2.jpg").is_file()  # copied from SBD img/
    assert not list(voc.glob("SegmentationClassAug.tmp-*"))

    ds = VOCSegmentation(voc, "train", crop_size=16, seed=0)
    assert ds.split == "train_aug" and ds.ids == expected
    assert ds[0]["label"].shape == (16, 16)
    val = VOCSegmentation(voc, "val")
    assert val.ids == ["v3", "s3"] and val.mask_dir.name == "SegmentationClass"
    plain = VOCSegmentation(voc, "train", use_sbd=False)
    assert plain.ids == ["v1", "v2"]


def test_sbd_converted_on_first_use(tmp_path):
    voc, _, _ = make_voc(tmp_path, ["v1"], ["v2"])
    sbd, _ = _write_sbd(tmp_path, ["s1"], ["s2"])
    assert not (voc / "SegmentationClassAug").exists()
    ds = VOCSegmentation(voc, "train", sbd_root=sbd, crop_size=None, scale_range=None, flip=False)
    assert (voc / "SegmentationClassAug").is_dir()
    assert ds.ids == ["s1", "s2", "v1"]
    assert np.array_equal(np.unique(ds[0]["label"].numpy()), [0, 7])


@pytest.mark.skipif(not (SHARED / "voc2012-sample").is_dir(), reason="no ../shared/data")
def test_real_voc_sample():
    with pytest.warns(UserWarning, match="ImageSets"):
        ds = VOCSegmentation(SHARED / "voc2012-sample", "val")
    assert len(ds) == 6
    for i in range(len(ds)):
        item = ds[i]
        vals = set(torch.unique(item["label"]).tolist())
        assert vals <= set(range(21)) | {255} and 255 in vals and len(vals) >= 3
        assert item["image"].shape[1:] == item["label"].shape
    with pytest.warns(UserWarning):
        tr = VOCSegmentation(SHARED / "voc2012-sample", "train", seed=0)
    b = torch.utils.data.default_collate([tr[0], tr[1]])
    assert b["image"].shape == (2, 3, 321, 321) and b["label"].shape == (2, 321, 321)


# --------------------------------------------------------------------------------------
# bad data is refused with the file's name (issue 11, loader findings)
# --------------------------------------------------------------------------------------
@pytest.fixture
def voc6(tmp_path):
    """A VOC root whose ``val`` list holds six images (no augmentation)."""
    ids = [f"2007_00000{i}" for i in range(6)]
    voc, masks, _ = make_voc(tmp_path, ["t0"], ids)
    return voc, masks, ids


def _write_png16(path, values):
    """A single-channel 16-bit PNG (PIL mode I;16), as some tools store label maps."""
    Image.fromarray(np.ascontiguousarray(values, dtype=np.uint16)).save(path)
    with Image.open(path) as im:  # the fixture really is a 16-bit file
        assert im.mode == "I;16"


def test_voc_16bit_mask_checked_on_raw_values(voc6):
    voc, _, ids = voc6
    bad = np.zeros((30, 40), np.uint16)
    bad[:10] = 276  # would wrap to class 20 when cast to uint8
    bad[10:20] = 256  # would wrap to class 0
    _write_png16(voc / "SegmentationClass" / f"{ids[2]}.png", bad)
    ds = VOCSegmentation(voc, "val")
    with pytest.raises(ValueError, match=rf"{ids[2]}\.png.*276"):
        ds[2]
    # a 16-bit mask holding valid classes is still read, value for value
    good = np.zeros((30, 40), np.uint16)
    good[:5], good[5:7] = 20, 255
    _write_png16(voc / "SegmentationClass" / f"{ids[3]}.png", good)
    assert np.array_equal(ds[3]["label"].numpy(), good.astype(np.int64))


@pytest.mark.parametrize("content", ["", "\n  \n"])
def test_voc_empty_split_list_names_file(tmp_path, content):
    voc, _, _ = make_voc(tmp_path, ["a1"], ["b1"])
    (voc / "ImageSets" / "Segmentation" / "val.txt").write_text(content)
    with pytest.raises(ValueError, match=r"val\.txt is empty"):
        VOCSegmentation(voc, "val")


def test_voc_negative_index_like_python(voc6):
    voc, masks, ids = voc6
    ds = VOCSegmentation(voc, "val")
    assert len(ds) == 6
    for i in range(-6, 6):
        item = ds[i]
        assert item["name"] == ids[i] and item["index"] == i % 6
        assert np.array_equal(item["label"].numpy(), masks[ids[i]])
    for bad in (-7, 6, 100):
        with pytest.raises(IndexError, match=rf"index {bad} is out of range for 6 items"):
            ds[bad]
    with pytest.raises(TypeError, match="integer"):
        ds[1.0]


@pytest.mark.parametrize(
    "kw, name",
    [
        ({"crop_size": 0}, "crop_size"),
        ({"crop_size": (321, -1)}, "crop_size"),
        ({"crop_size": (10, 10, 10)}, "crop_size"),
        ({"scale_range": (-0.5, 1.5)}, "scale_range"),
        ({"scale_range": (0.0, 1.5)}, "scale_range"),
        ({"scale_range": (1.5, 0.5)}, "scale_range"),
        ({"scale_range": (0.5, float("nan"))}, "scale_range"),
        ({"eval_pad_to": 0}, "eval_pad_to"),
    ],
)
def test_voc_bad_sizes_name_the_argument(tmp_path, kw, name):
    voc, _, _ = make_voc(tmp_path, ["a1"], ["b1"])
    with pytest.raises(ValueError, match=rf"^{name} must be"):
        VOCSegmentation(voc, "train", **kw)


def test_voc_truncated_jpeg_names_file(voc6):
    voc, _, ids = voc6
    jpg = voc / "JPEGImages" / f"{ids[1]}.jpg"
    data = jpg.read_bytes()
    jpg.write_bytes(data[: len(data) // 2])
    ds = VOCSegmentation(voc, "val")
    assert ds[0]["name"] == ids[0]  # other items still load
    with pytest.raises(ValueError, match=rf"could not read .*{ids[1]}\.jpg"):
        ds[1]


def test_sbd_truncated_mat_names_file(tmp_path):
    from varseg.data.voc import read_sbd_mat

    sbd, _ = _write_sbd(tmp_path, ["s1"], ["s2"])
    mat = sbd / "cls" / "s1.mat"
    data = mat.read_bytes()
    mat.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=r"could not read SBD annotation .*s1\.mat"):
        read_sbd_mat(mat)


def test_normalize_spelling_is_a_deprecated_alias(tmp_path):
    from varseg.data.transforms import normalise_rgb, normalize_rgb

    voc, _, _ = make_voc(tmp_path, ["a1"], ["b1"])
    new = VOCSegmentation(voc, "val", normalise="none")
    with pytest.warns(DeprecationWarning, match="normalize= is deprecated"):
        old = VOCSegmentation(voc, "val", normalize="none")
    assert old.normalise == new.normalise == "none"
    with pytest.warns(DeprecationWarning, match="normalize attribute"):
        assert new.normalize == "none"
    assert torch.equal(old[0]["image"], new[0]["image"])
    assert float(new[0]["image"].max()) <= 1.0  # 'none': RGB in [0, 1]
    rgb = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    with pytest.warns(DeprecationWarning, match="normalise_rgb"):
        assert torch.equal(normalize_rgb(rgb, "caffe"), normalise_rgb(rgb, "caffe"))
    with pytest.raises(TypeError, match="pass only normalise="):
        VOCSegmentation(voc, "val", normalise="caffe", normalize="none")

"""BraTS 2015 loader: official .mha layout (SimpleITK) and preprocessed NIfTI layout."""

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk
import torch

from varseg.data import BraTS
from varseg.data.brats import find_brats_cases

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data"
Z, Y, X = 5, 16, 16
SEQS = ("T1", "T1c", "T2", "Flair")


def _seq(m, shift=0):
    z = np.arange(Z)[:, None, None]
    x = np.arange(X)[None, None, :]
    vol = ((m + 1) * 100 + 10 * z + x + shift) * np.ones((Z, Y, X))
    vol[:, :3, :] = 0  # background outside the skull-stripped brain
    vol[:, :, -2:] = 0
    return vol.astype(np.int16)


def _ot():
    ot = np.zeros((Z, Y, X), np.uint8)
    ot[2, 4:6, 4:6] = 1
    ot[2, 6:8, 4:6] = 2
    ot[2, 8:10, 4:6] = 3
    ot[2, 10:12, 4:6] = 4
    ot[1, 5:9, 5:9] = 2
    return ot


def _write_mha(path: Path, arr):
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(sitk.GetImageFromArray(arr), str(path))


def make_case(case_dir: Path, shift=0, seqs=SEQS, ot=None):
    for i, s in enumerate(seqs):
        name = f"VSD.Brain.XX.O.MR_{s}.{54512 + i}"
        _write_mha(case_dir / name / f"{name}.mha", _seq(SEQS.index(s), shift))
    name = "VSD.Brain_3more.XX.O.OT.54517"
    _write_mha(case_dir / name / f"{name}.mha", _ot() if ot is None else ot)


def make_brats(root: Path):
    base = root / "BRATS2015_Training"
    make_case(base / "HGG" / "brats_tcia_pat101_0001", shift=0)
    make_case(base / "LGG" / "brats_tcia_pat101_0001", shift=7)  # same case name
    return root


def test_mha_read_shape_and_layout(tmp_path):
    make_brats(tmp_path)
    layout, cases = find_brats_cases(tmp_path)
    assert layout == "mha"
    assert sorted(cases) == [("HGG", "brats_tcia_pat101_0001"), ("LGG", "brats_tcia_pat101_0001")]
    files = cases[("HGG", "brats_tcia_pat101_0001")]
    assert set(files) == {"dir", "T1", "T1c", "T2", "Flair", "OT"}
    assert ".MR_T1." in files["T1"].name and ".MR_T1c." in files["T1c"].name
    assert sitk.GetArrayFromImage(sitk.ReadImage(str(files["T1"]))).shape == (Z, Y, X)


def test_twelve_channels_zscore_and_complete_tumour(tmp_path):
    make_brats(tmp_path / "p")
    ds = BraTS(tmp_path / "p" / "BRATS2015_Training", "all")
    assert len(ds.cases) == 2 and len(ds) == 2 * Z
    assert ds.in_channels == 12 and ds.num_classes == 2 and ds.modalities == SEQS
    item = ds[2]
    assert item["name"] == "HGG/brats_tcia_pat101_0001:002" and item["slice"] == 2
    img = item["image"].numpy()
    assert img.shape == (12, Y, X) and img.dtype == np.float32
    for m in range(4):
        vol = _seq(m).astype(np.float64)
        brain = vol != 0
        z = np.where(brain, (vol - vol[brain].mean()) / vol[brain].std(), 0)
        for c, k in enumerate((1, 2, 3)):
            assert np.allclose(img[3 * m + c], z[k], atol=1e-5)
    lab = item["label"].numpy()
    assert lab.dtype == np.int64
    assert np.array_equal(lab, (_ot()[2] > 0).astype(np.int64))
    # second case (LGG, same name) is a different patient
    assert ds[Z + 2]["name"].startswith("LGG/")


def test_context_clamped_and_targets(tmp_path):
    make_brats(tmp_path)
    ds = BraTS(tmp_path, "all", normalise="none", modalities=("Flair",), context=1)
    assert ds.in_channels == 3
    first = ds[0]["image"]
    assert torch.equal(first[0], first[1])
    assert torch.allclose(first[1], torch.from_numpy(_seq(3)[0]).float())
    ot = _ot()[2]
    expected = {
        "complete": np.isin(ot, [1, 2, 3, 4]),
        "core": np.isin(ot, [1, 3, 4]),
        "enhancing": ot == 4,
        "multiclass": ot,
    }
    for target, exp in expected.items():
        d = BraTS(tmp_path, "all", target=target, modalities=("T1",))
        assert d.num_classes == (5 if target == "multiclass" else 2)
        assert np.array_equal(d[2]["label"].numpy(), exp.astype(np.int64)), target
    with pytest.raises(ValueError, match="target"):
        BraTS(tmp_path, target="necrosis")


def test_patient_split_and_resize(tmp_path):
    make_brats(tmp_path)
    tr = BraTS(tmp_path, "train", image_size=8)
    va = BraTS(tmp_path, "val", image_size=8)
    assert len(tr.cases) == 1 and len(va.cases) == 1 and set(tr.cases).isdisjoint(va.cases)
    item = tr[0]
    assert item["image"].shape == (12, 8, 8) and item["label"].shape == (8, 8)
    only = BraTS(tmp_path, "all", only_tumour_slices=True)
    assert [k for _, k in only.items] == [1, 2, 1, 2]


def test_missing_modality_and_bad_labels(tmp_path):
    make_case(tmp_path / "a" / "HGG" / "case1", seqs=("T1c", "Flair"))
    msg = r"HGG/case1 has no T1, T2 file\(s\) \(available: T1c, Flair\)"
    with pytest.raises(FileNotFoundError, match=msg):
        BraTS(tmp_path / "a", "all")
    ds = BraTS(tmp_path / "a", "all", modalities="available")
    assert ds.modalities == ("T1c", "Flair") and ds.in_channels == 6

    bad = _ot()
    bad[0, 0, 0] = 7
    make_case(tmp_path / "b" / "LGG" / "case2", ot=bad)
    ds = BraTS(tmp_path / "b", "all")
    with pytest.raises(ValueError, match=r"OT\.54517\.mha.*7"):
        ds[0]


def test_missing_root_and_missing_ot(tmp_path):
    with pytest.raises(FileNotFoundError, match=str(tmp_path / "nothing")):
        BraTS(tmp_path / "nothing")
    case = tmp_path / "c" / "HGG" / "case3"
    make_case(case)
    for p in case.glob("*OT*/*.mha"):
        p.unlink()
    with pytest.raises(FileNotFoundError, match=r"HGG/case3.*label"):
        BraTS(tmp_path / "c", "all")
    (tmp_path / "d").mkdir()
    with pytest.raises(FileNotFoundError, match="no cases"):
        BraTS(tmp_path / "d")


def test_nifti_layout_matches_mha(tmp_path):
    """A NIfTI copy of the same volumes gives the same tensors (axis convention)."""
    make_case(tmp_path / "mha" / "HGG" / "case1")
    nii = tmp_path / "nii" / "case1"
    nii.mkdir(parents=True)
    for m, s in enumerate(SEQS):
        nib.save(
            nib.Nifti1Image(_seq(m).astype(np.float32).transpose(2, 1, 0), np.eye(4)),
            nii / f"{s}.nii.gz",
        )
    nib.save(
        nib.Nifti1Image(_ot().astype(np.float32).transpose(2, 1, 0), np.eye(4)),
        nii / "OTMultiClass.nii.gz",
    )
    a = BraTS(tmp_path / "mha", "all", target="multiclass")
    b = BraTS(tmp_path / "nii", "all", target="multiclass")
    assert b.layout == "nifti" and len(a) == len(b) == Z
    for k in range(Z):
        assert torch.allclose(a[k]["image"], b[k]["image"], atol=1e-5)
        assert torch.equal(a[k]["label"], b[k]["label"])


@pytest.mark.skipif(not (SHARED / "brats2015-sample").is_dir(), reason="no ../shared/data")
def test_real_brats_nifti_sample():
    root = SHARED / "brats2015-sample"
    with pytest.raises(FileNotFoundError, match="T1, T2.*modalities='available'"):
        BraTS(root, "all")
    ds = BraTS(root, "all", modalities="available", target="multiclass")
    assert ds.layout == "nifti" and ds.modalities == ("T1c", "Flair")
    assert len(ds) == 155 and ds.in_channels == 6
    case_dir = ds.files[ds.cases[0]]["Flair"].parent
    ot = sitk.GetArrayFromImage(sitk.ReadImage(str(case_dir / "OTMultiClass.nii.gz")))
    k = int(np.argmax((ot > 0).sum(axis=(1, 2))))  # slice with most tumour
    item = ds[k]
    assert item["image"].shape == (6, 240, 240)
    assert np.array_equal(item["label"].numpy(), ot[k].astype(np.int64))
    assert set(np.unique(item["label"].numpy())) <= {0, 1, 2, 3, 4}
    flair = sitk.GetArrayFromImage(sitk.ReadImage(str(case_dir / "Flair_subtrMeanDivStd.nii.gz")))
    # already normalised in the file: used as is, same slice as SimpleITK reads it
    assert np.allclose(item["image"][4].numpy(), flair[k], atol=1e-6)
    comp = BraTS(root, "all", modalities=["flair"])  # complete tumour (no volume read here)
    labels = ds.volume(ds.cases[0])[1]
    assert np.array_equal(comp.map_target(labels[k]), (ot[k] > 0).astype(np.int64))


def test_missing_optional_dependency_message(monkeypatch):
    import sys

    from varseg.data._io import require_nibabel, require_simpleitk

    monkeypatch.setitem(sys.modules, "SimpleITK", None)
    monkeypatch.setitem(sys.modules, "nibabel", None)
    with pytest.raises(ImportError, match=r"pip install varseg\[medical\]"):
        require_simpleitk()
    with pytest.raises(ImportError, match=r"pip install varseg\[medical\]"):
        require_nibabel()


# --------------------------------------------------------------------------------------
# bad data is refused with the file's name (issue 11, loader findings)
# --------------------------------------------------------------------------------------
@pytest.fixture
def brats_nii(tmp_path):
    """One NIfTI-layout case (FLAIR and T1c, float32, gzip) with OT labels 0-4."""
    case = tmp_path / "nii" / "case1"
    case.mkdir(parents=True)
    for s in ("T1c", "Flair"):
        vol = _seq(SEQS.index(s)).astype(np.float32)
        nib.save(nib.Nifti1Image(vol.transpose(2, 1, 0), np.eye(4)), case / f"{s}.nii.gz")
    nib.save(
        nib.Nifti1Image(_ot().astype(np.float32).transpose(2, 1, 0), np.eye(4)),
        case / "OTMultiClass.nii.gz",
    )
    return tmp_path / "nii", case


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_brats_nan_voxels_refused(brats_nii, bad):
    root, case = brats_nii
    vol = _seq(SEQS.index("Flair")).astype(np.float32)
    vol[2, 7, 7] = bad
    vol[3, 7, 7] = bad
    nib.save(nib.Nifti1Image(vol.transpose(2, 1, 0), np.eye(4)), case / "Flair.nii.gz")
    ds = BraTS(root, "all", modalities="available")
    with pytest.raises(ValueError, match=r"Flair\.nii\.gz has 2 NaN or Inf voxel"):
        ds[0]


def test_brats_negative_index_like_python(brats_nii):
    ds = BraTS(brats_nii[0], "all", modalities="available", target="multiclass")
    assert len(ds) == Z
    for i in range(-Z, 0):
        assert ds[i]["slice"] == i + Z
        assert torch.equal(ds[i]["label"], ds[i + Z]["label"])
    with pytest.raises(IndexError, match=rf"index {-Z - 1} is out of range for {Z} items"):
        ds[-Z - 1]


def test_brats_truncated_files_name_the_file(brats_nii, tmp_path):
    root, case = brats_nii
    path = case / "T1c.nii.gz"
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])
    ds = BraTS(root, "all", modalities="available")
    with pytest.raises(ValueError, match=r"could not read .*T1c\.nii\.gz"):
        ds[0]
    make_case(tmp_path / "mha" / "HGG" / "c1")
    ot = next((tmp_path / "mha").rglob("*OT*.mha"))
    raw = ot.read_bytes()
    ot.write_bytes(raw[:-40])  # MetaImage header intact, voxel data cut
    with pytest.raises(ValueError, match=r"could not read .*OT.*\.mha"):
        BraTS(tmp_path / "mha", "all", only_tumour_slices=True)


@pytest.mark.parametrize(
    "kw, name",
    [
        ({"image_size": 0}, "image_size"),
        ({"image_size": (-1, 8)}, "image_size"),
        ({"context": -1}, "context"),
        ({"cache_size": -2}, "cache_size"),
        ({"normalise": "minmax"}, "normalise"),
    ],
)
def test_brats_bad_arguments_name_the_argument(brats_nii, kw, name):
    with pytest.raises(ValueError, match=rf"^{name} must be"):
        BraTS(brats_nii[0], "all", modalities="available", **kw)

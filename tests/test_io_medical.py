"""Medical volumes through varseg.io: NIfTI, MetaImage, NRRD, DICOM series; one axis order."""

import sys

import numpy as np
import pytest

from varseg.io import (
    load_image,
    read_image,
    read_sitk,
    save_label_nifti,
    sitk_affine,
)

nib = pytest.importorskip("nibabel")
sitk = pytest.importorskip("SimpleITK")

SPACING_XYZ = (0.5, 0.75, 2.0)  # ITK order
ORIGIN = (10.0, -20.0, 5.0)
# a rotation about z by 90 degrees and a flip of z: not the identity, not diagonal
DIRECTION = (0.0, -1.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, -1.0)


def _volume():
    """A (z, y, x) = (4, 5, 6) float32 volume whose every voxel value is distinct."""
    return np.arange(4 * 5 * 6, dtype=np.float32).reshape(4, 5, 6) / 7.0


def _sitk_image(vol):
    img = sitk.GetImageFromArray(vol)
    img.SetSpacing(SPACING_XYZ)
    img.SetOrigin(ORIGIN)
    img.SetDirection(DIRECTION)
    return img


@pytest.mark.parametrize("suffix", [".mha", ".mhd", ".nrrd"])
def test_sitk_formats_zyx_and_spacing(tmp_path, suffix):
    vol = _volume()
    sitk.WriteImage(_sitk_image(vol), str(tmp_path / f"v{suffix}"))
    arr, meta = read_image(tmp_path / f"v{suffix}")
    np.testing.assert_array_equal(arr, vol)  # (z, y, x), as GetArrayFromImage
    assert arr.shape == (4, 5, 6)
    assert meta.spacing == (2.0, 0.75, 0.5)  # (dz, dy, dx)
    assert meta.source_format == ("nrrd" if suffix == ".nrrd" else "metaimage")
    assert meta.header["origin"] == pytest.approx(ORIGIN)


def test_nifti_and_mha_agree_on_axes_and_affine(tmp_path):
    """SimpleITK writes the same image as .mha and .nii.gz; nibabel reads the NIfTI.

    Both paths must give the same (z, y, x) array and spacing, and the affine built from the
    MHA's origin/spacing/direction must equal the one ITK wrote into the NIfTI header.
    """
    vol = _volume()
    img = _sitk_image(vol)
    sitk.WriteImage(img, str(tmp_path / "v.mha"))
    sitk.WriteImage(img, str(tmp_path / "v.nii.gz"))
    a_mha, m_mha = read_image(tmp_path / "v.mha")
    a_nii, m_nii = read_image(tmp_path / "v.nii.gz")
    np.testing.assert_array_equal(a_nii, a_mha)
    assert m_nii.spacing == pytest.approx(m_mha.spacing)
    np.testing.assert_allclose(m_mha.affine, nib.load(tmp_path / "v.nii.gz").affine, atol=1e-5)
    np.testing.assert_allclose(m_nii.affine, m_mha.affine, atol=1e-5)
    # the world point of voxel (i, j, k) = (x, y, z) = (1, 2, 3): LPS from ITK, flipped to RAS
    lps = np.array(img.TransformIndexToPhysicalPoint((1, 2, 3)))
    np.testing.assert_allclose(m_mha.affine @ [1, 2, 3, 1], [-lps[0], -lps[1], lps[2], 1])


def test_nifti_written_by_nibabel(tmp_path):
    data = np.random.default_rng(0).random((6, 5, 4)).astype(np.float32)  # (x, y, z)
    affine = np.diag([1.5, 2.0, 3.0, 1.0])
    affine[:3, 3] = (-4.0, 7.0, 1.0)
    nib.save(nib.Nifti1Image(data, affine), tmp_path / "v.nii")
    nib.save(nib.Nifti1Image(data[..., None], affine), tmp_path / "v4.nii.gz")  # (X,Y,Z,1)
    for name in ("v.nii", "v4.nii.gz"):
        img, axis, meta = load_image(tmp_path / name, return_meta=True)
        assert axis is None and img.dtype == np.float64 and img.shape == (4, 5, 6)
        np.testing.assert_array_equal(img, data.T)  # physical values kept, not rescaled
        assert meta.spacing == (3.0, 2.0, 1.5)
        np.testing.assert_array_equal(meta.affine, affine)
    nib.save(nib.Nifti1Image(np.zeros((3, 3, 3, 2), np.float32), affine), tmp_path / "t.nii")
    with pytest.raises(ValueError, match=r"t\.nii has shape"):
        read_image(tmp_path / "t.nii")


def _write_dicom_series(folder, vol, spacing_xyz, origin):
    """A minimal DICOM MR series, one file per slice (SimpleITK's series example).

    GDCM's writer resets the C locale; it is restored so that later tests read text as UTF-8.
    """
    import locale

    saved = locale.setlocale(locale.LC_ALL)
    try:
        _write_dicom_files(folder, vol, spacing_xyz, origin)
    finally:
        locale.setlocale(locale.LC_ALL, saved)


def _write_dicom_files(folder, vol, spacing_xyz, origin):
    img = sitk.GetImageFromArray(vol.astype(np.int16))
    img.SetSpacing(spacing_xyz)
    img.SetOrigin(origin)
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    series = "1.2.826.0.1.3680043.2.1125.1.42"
    for k in range(img.GetDepth()):
        s = img[:, :, k]
        for tag, value in (
            ("0008|0060", "MR"),
            ("0020|000d", series + ".1"),
            ("0020|000e", series),
            ("0020|0013", str(k + 1)),
            ("0020|0037", "1\\0\\0\\0\\1\\0"),
            ("0008|0008", "ORIGINAL\\PRIMARY"),
            ("0020|0032", "\\".join(str(c) for c in img.TransformIndexToPhysicalPoint((0, 0, k)))),
            ("0018|0050", str(spacing_xyz[2])),
        ):
            s.SetMetaData(tag, value)
        writer.SetFileName(str(folder / f"slice{k:03d}.dcm"))
        writer.Execute(s)


def test_dicom_series_folder(tmp_path):
    vol = (np.arange(3 * 4 * 5).reshape(3, 4, 5) * 10).astype(np.int16)
    folder = tmp_path / "series"
    folder.mkdir()
    _write_dicom_series(folder, vol, (0.8, 0.9, 2.5), (1.0, 2.0, 3.0))
    img, axis, meta = load_image(folder, return_meta=True)
    np.testing.assert_array_equal(img, vol)
    assert axis is None and meta.source_format == "dicom"
    assert meta.spacing == pytest.approx((2.5, 0.9, 0.8))
    assert len(meta.header["files"]) == 3
    np.testing.assert_allclose(meta.affine[:3, 3], (-1.0, -2.0, 3.0))  # LPS origin → RAS
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no dicom here")
    with pytest.raises(ValueError, match="holds no DICOM series"):
        read_image(tmp_path / "empty")


def test_label_nifti_keeps_nifti_affine_and_header(tmp_path):
    affine = np.array([[-1.0, 0, 0, 90], [0, 1.2, 0, -120], [0, 0, 3.0, -60], [0, 0, 0, 1]])
    src = nib.Nifti1Image(np.zeros((6, 5, 4), np.float32), affine)
    src.header.set_xyzt_units("mm", "sec")
    nib.save(src, tmp_path / "in.nii.gz")
    _, meta = read_image(tmp_path / "in.nii.gz")
    labels = np.zeros((4, 5, 6), dtype=np.int64)
    labels[1:3, 2:4, 1:5] = 3
    out = save_label_nifti(tmp_path / "lab.nii.gz", labels, meta, n_labels=4)
    back = nib.load(out)
    assert back.shape == (6, 5, 4) and back.get_data_dtype() == np.uint8
    np.testing.assert_array_equal(back.affine, nib.load(tmp_path / "in.nii.gz").affine)
    np.testing.assert_allclose(back.affine, affine, rtol=1e-7)  # float32 in the header
    assert back.header.get_xyzt_units() == ("mm", "sec")
    np.testing.assert_array_equal(np.asarray(back.dataobj).T, labels)
    # more than 256 labels: uint16
    big = np.arange(300).reshape(3, 10, 10)
    back16 = nib.load(save_label_nifti(tmp_path / "big.nii", big, meta))
    assert back16.get_data_dtype() == np.uint16
    np.testing.assert_array_equal(np.asarray(back16.dataobj).T, big)
    with pytest.raises(ValueError, match="values 0..3"):
        save_label_nifti(tmp_path / "bad.nii", labels + 1, meta, n_labels=4)


def test_label_nifti_from_mha_geometry(tmp_path):
    """Labels of an MHA volume, written as NIfTI, lie where ITK says the input lies."""
    sitk.WriteImage(_sitk_image(_volume()), str(tmp_path / "v.mha"))
    _, meta = read_sitk(tmp_path / "v.mha")
    labels = (_volume() > 10).astype(np.uint8)
    save_label_nifti(tmp_path / "lab.nii.gz", labels, meta)
    back = sitk.ReadImage(str(tmp_path / "lab.nii.gz"))
    np.testing.assert_array_equal(sitk.GetArrayFromImage(back), labels)
    np.testing.assert_allclose(back.GetSpacing(), SPACING_XYZ, atol=1e-5)
    np.testing.assert_allclose(back.GetOrigin(), ORIGIN, atol=1e-4)
    np.testing.assert_allclose(back.GetDirection(), DIRECTION, atol=1e-5)
    np.testing.assert_allclose(sitk_affine(SPACING_XYZ, ORIGIN, DIRECTION), meta.affine)


@pytest.mark.parametrize("name", ["v.nii.gz", "v.mha"])
def test_truncated_volume_one_line_error(tmp_path, name):
    vol = np.random.default_rng(1).random((8, 9, 10)).astype(np.float32)
    sitk.WriteImage(sitk.GetImageFromArray(vol), str(tmp_path / name))
    data = (tmp_path / name).read_bytes()
    (tmp_path / name).write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="could not read") as exc:
        load_image(tmp_path / name)
    assert name in str(exc.value) and "\n" not in str(exc.value)


def test_missing_medical_extra_says_install(tmp_path, monkeypatch):
    nib.save(nib.Nifti1Image(np.zeros((2, 2, 2), np.float32), np.eye(4)), tmp_path / "v.nii")
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((2, 2, 2))), str(tmp_path / "v.nrrd"))
    monkeypatch.setitem(sys.modules, "nibabel", None)
    monkeypatch.setitem(sys.modules, "SimpleITK", None)
    for name in ("v.nii", "v.nrrd"):
        with pytest.raises(ImportError, match=r"install varseg\[medical\]") as exc:
            load_image(tmp_path / name)
        assert "\n" not in str(exc.value)


def test_training_loaders_share_the_reader(tmp_path):
    """varseg.data's readers are the same functions: same array, same one-line errors."""
    from varseg.data._io import read_mha, read_nifti

    vol = _volume()
    sitk.WriteImage(_sitk_image(vol), str(tmp_path / "v.mha"))
    sitk.WriteImage(_sitk_image(vol), str(tmp_path / "v.nii.gz"))
    np.testing.assert_array_equal(read_mha(tmp_path / "v.mha"), read_image(tmp_path / "v.mha")[0])
    data, img = read_nifti(tmp_path / "v.nii.gz")
    np.testing.assert_array_equal(data.T, read_image(tmp_path / "v.nii.gz")[0])
    raw = (tmp_path / "v.nii.gz").read_bytes()
    (tmp_path / "t.nii.gz").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(ValueError, match=r"could not read BraTS file .*t\.nii\.gz") as exc:
        read_nifti(tmp_path / "t.nii.gz", what="BraTS file")
    assert "\n" not in str(exc.value)


def test_reading_dicom_keeps_the_locale(tmp_path):
    """GDCM resets the C locale; reading a series must not turn Python's text I/O ASCII."""
    import locale

    _write_dicom_series(tmp_path, np.zeros((3, 4, 5), np.int16), (1.0, 1.0, 2.0), (0, 0, 0))
    before = locale.getpreferredencoding(False)
    arr, _ = read_image(tmp_path)
    assert arr.shape == (3, 4, 5)
    assert locale.getpreferredencoding(False) == before

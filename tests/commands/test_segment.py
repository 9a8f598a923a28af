"""``varseg segment``: volumes in and label NIfTI out, index label PNGs, clean early errors."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from varseg.cli import main
from varseg.result import Segmentation

ROOT = Path(__file__).resolve().parents[2]
BRATS_FLAIR = (
    ROOT
    / ".."
    / "shared"
    / "data"
    / "brats2015-sample"
    / "brats_2013_pat0005_1"
    / "Flair_subtrMeanDivStd.nii.gz"
)


def _cube_volume():
    """(x, y, z) = (14, 12, 10) NIfTI data: a bright box in noise, and its mask."""
    mask = np.zeros((14, 12, 10), dtype=bool)
    mask[3:10, 4:9, 2:7] = True
    noise = np.random.default_rng(0).normal(0, 0.1, mask.shape)
    return (100.0 + 300.0 * mask + 30.0 * noise).astype(np.float32), mask


def test_volume_nifti_in_label_nifti_out(tmp_path, capsys):
    nib = pytest.importorskip("nibabel")
    data, mask = _cube_volume()
    affine = np.array([[-0.9, 0, 0, 60], [0, 1.1, 0, -40], [0, 0, 2.5, -12], [0, 0, 0, 1]])
    src = nib.Nifti1Image(data, affine)
    src.header.set_xyzt_units("mm")
    nib.save(src, tmp_path / "vol.nii.gz")
    out = tmp_path / "out"
    assert (
        main(
            [
                "segment",
                str(tmp_path / "vol.nii.gz"),
                "--method",
                "kmeans",
                "--phases",
                "2",
                "-o",
                str(out),
            ]
        )
        == 0
    )
    assert "kmeans: K=2" in capsys.readouterr().out
    lab_img = nib.load(out / "kmeans_labels.nii.gz")
    assert lab_img.shape == data.shape and lab_img.get_data_dtype() == np.uint8
    np.testing.assert_array_equal(lab_img.affine, nib.load(tmp_path / "vol.nii.gz").affine)
    assert lab_img.header.get_xyzt_units()[0] == "mm"
    lab = np.asarray(lab_img.dataobj)
    assert set(np.unique(lab)) == {0, 1}
    box = np.bincount(lab[mask]).argmax()
    assert (lab[mask] == box).mean() > 0.98 and (lab[~mask] != box).mean() > 0.98
    res = Segmentation.load(out / "kmeans.npz")
    np.testing.assert_array_equal(res.labels, lab.T)  # (z, y, x) in the result
    preview = np.array(Image.open(out / "kmeans_preview.png"))
    assert preview.shape == (12, 14, 3)  # middle z slice, (y, x)
    assert sorted(p.name for p in out.iterdir()) == [
        "kmeans.npz",
        "kmeans_labels.nii.gz",
        "kmeans_overlay.png",
        "kmeans_preview.png",
    ]


def test_volume_mha_in_label_nifti_with_its_geometry(tmp_path):
    sitk = pytest.importorskip("SimpleITK")
    data, mask = _cube_volume()
    img = sitk.GetImageFromArray(data.T.copy())  # (z, y, x) array
    img.SetSpacing((0.7, 0.8, 3.0))
    img.SetOrigin((5.0, -3.0, 12.0))
    sitk.WriteImage(img, str(tmp_path / "vol.mha"))
    out = tmp_path / "out"
    assert (
        main(
            [
                "segment",
                str(tmp_path / "vol.mha"),
                "--method",
                "kmeans",
                "--phases",
                "2",
                "-o",
                str(out),
            ]
        )
        == 0
    )
    back = sitk.ReadImage(str(out / "kmeans_labels.nii.gz"))
    assert back.GetSize() == img.GetSize()
    np.testing.assert_allclose(back.GetSpacing(), img.GetSpacing(), atol=1e-5)
    np.testing.assert_allclose(back.GetOrigin(), img.GetOrigin(), atol=1e-4)
    lab = sitk.GetArrayFromImage(back)
    box = np.bincount(lab[mask.T]).argmax()
    assert (lab[mask.T] == box).mean() > 0.98


@pytest.mark.skipif(not BRATS_FLAIR.is_file(), reason="shared BraTS sample not present")
def test_brats_flair_label_nifti_matches_input(tmp_path):
    nib = pytest.importorskip("nibabel")
    out = tmp_path / "out"
    assert (
        main(
            [
                "segment",
                str(BRATS_FLAIR),
                "--method",
                "chan-vese",
                "--phases",
                "2",
                "--max-iter",
                "1",
                "-o",
                str(out),
            ]
        )
        == 0
    )
    src, lab = nib.load(BRATS_FLAIR), nib.load(out / "chan-vese_labels.nii.gz")
    assert lab.shape == src.shape == (240, 240, 155)
    np.testing.assert_array_equal(lab.affine, src.affine)
    assert lab.get_data_dtype() == np.uint8
    assert set(np.unique(np.asarray(lab.dataobj))) <= {0, 1}


def test_2d_labels_png_holds_the_result_labels(tmp_path):
    lab = np.zeros((24, 24), dtype=np.uint8)
    lab[6:18, 4:20] = 1
    img = (50 + 150 * lab + np.random.default_rng(1).normal(0, 8, lab.shape)).clip(0, 255)
    Image.fromarray(img.astype(np.uint8)).save(tmp_path / "in.png")
    out = tmp_path / "out"
    assert (
        main(
            [
                "segment",
                str(tmp_path / "in.png"),
                "--method",
                "kmeans",
                "--phases",
                "3",
                "-o",
                str(out),
            ]
        )
        == 0
    )
    res = Segmentation.load(out / "kmeans.npz")
    with Image.open(out / "kmeans_labels.png") as im:
        assert im.mode == "L"
        np.testing.assert_array_equal(np.array(im), res.labels)
    assert np.array(Image.open(out / "kmeans_preview.png")).shape == (24, 24, 3)


def _bad_inputs(tmp_path):
    Image.fromarray(np.zeros((8, 8, 2), np.uint8), mode="LA").save(tmp_path / "la.png")
    (tmp_path / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)
    (tmp_path / "notes.txt").write_text("hello")
    return {
        "la.png": "2 channels",
        "corrupt.png": "could not read image",
        "notes.txt": "unsupported image format",
    }


def test_bad_images_exit_2_before_computing(tmp_path, capsys):
    out = tmp_path / "out"
    for name, message in _bad_inputs(tmp_path).items():
        assert main(["segment", str(tmp_path / name), "-o", str(out)]) == 2
        err = capsys.readouterr().err
        assert message in err and name in err and err.count("\n") == 1, err
        assert "imageio" not in err and "plugin" not in err
        assert not out.exists()


def _ok_image(tmp_path):
    np.save(tmp_path / "ok.npy", np.random.default_rng(0).random((8, 8)))
    return str(tmp_path / "ok.npy")


def test_bad_output_locations_exit_2(tmp_path, capsys):
    image = _ok_image(tmp_path)
    (tmp_path / "afile").write_text("keep me")
    cases = {
        str(tmp_path / "afile"): "is an existing file",
        str(tmp_path / "afile" / "sub"): "lies inside the file",
    }
    if Path("/proc/self").is_dir():  # Linux: no file can be created in /proc, even by root
        cases["/proc/varseg-test-out"] = "is not writable"
    for out, message in cases.items():
        assert main(["segment", image, "--method", "kmeans", "-o", out]) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, err
    assert (tmp_path / "afile").read_text() == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile", "ok.npy"]


def test_cuda_without_cuda_exit_2(tmp_path, capsys):
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    out = tmp_path / "out"
    assert (
        main(
            [
                "segment",
                _ok_image(tmp_path),
                "--method",
                "unrolled",
                "--device",
                "cuda",
                "-o",
                str(out),
            ]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert "CUDA is not available" in err and err.count("\n") == 1
    assert not out.exists()


def test_failure_while_writing_leaves_nothing(tmp_path, monkeypatch, capsys):
    import varseg.io

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(varseg.io, "save_preview_png", broken)
    out = tmp_path / "out"
    assert main(["segment", _ok_image(tmp_path), "--method", "kmeans", "-o", str(out)]) == 2
    assert "disk full" in capsys.readouterr().err
    assert not out.exists()  # the label PNG written before the failure was removed
    (tmp_path / "kept").mkdir()
    (tmp_path / "kept" / "mine.txt").write_text("x")
    assert (
        main(["segment", _ok_image(tmp_path), "--method", "kmeans", "-o", str(tmp_path / "kept")])
        == 2
    )
    assert [p.name for p in (tmp_path / "kept").iterdir()] == ["mine.txt"]


def test_subprocess_corrupt_image_one_line_no_traceback(tmp_path):
    (tmp_path / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0" + b"\x00" * 50)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "varseg.cli",
            "segment",
            str(tmp_path / "corrupt.jpg"),
            "-o",
            str(tmp_path / "out"),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and proc.stderr.count("\n") == 1, proc.stderr
    assert "corrupt.jpg" in proc.stderr
    assert not (tmp_path / "out").exists()


def test_spacing_hook_only_for_methods_that_declare_it(caplog):
    from varseg.commands.segment import spacing_keyword
    from varseg.io import ImageMeta
    from varseg.methods import MethodSpec

    with_spacing = MethodSpec("a", lambda image, n_phases, spacing=None: None, options=("spacing",))
    without = MethodSpec("b", lambda image, n_phases, mu=0.1: None, options=("mu",))
    meta = ImageMeta(spacing=(3.0, 1.0, 0.5), source_format="nifti")
    vol = np.zeros((4, 5, 6))
    assert spacing_keyword(with_spacing, {}, vol, None, meta) == {"spacing": (3.0, 1.0, 0.5)}
    assert spacing_keyword(with_spacing, {"spacing": [1, 1, 1]}, vol, None, meta) == {
        "spacing": [1, 1, 1]
    }
    assert spacing_keyword(with_spacing, {}, np.zeros((5, 6)), None, meta) == {}
    with caplog.at_level("WARNING", logger="varseg.commands.segment"):
        assert spacing_keyword(without, {"mu": 1}, vol, None, meta) == {"mu": 1}
    assert "spacing (3.0, 1.0, 0.5)" in caplog.text


def test_2d_nifti_gets_a_label_nifti(tmp_path):
    nib = pytest.importorskip("nibabel")
    data = np.zeros((20, 16), np.float32)  # (x, y)
    data[5:15, 4:12] = 1.0
    affine = np.diag([0.5, 0.6, 1.0, 1.0])
    nib.save(nib.Nifti1Image(data, affine), tmp_path / "slice.nii")
    out = tmp_path / "out"
    assert main(["segment", str(tmp_path / "slice.nii"), "--method", "otsu", "-o", str(out)]) == 0
    lab = nib.load(out / "otsu_labels.nii.gz")
    assert lab.shape == (20, 16)
    np.testing.assert_array_equal(lab.affine, nib.load(tmp_path / "slice.nii").affine)
    np.testing.assert_array_equal(np.asarray(lab.dataobj) == lab.dataobj[10, 8], data == 1)


def test_method_kwargs_follow_the_declared_metadata():
    import argparse

    from varseg.commands.segment import method_kwargs
    from varseg.methods import get_spec

    def args(**kw):
        base = dict(lam=None, max_iter=None, mu=None, seed=None, device=None, param=[])
        return argparse.Namespace(**{**base, **kw})

    cv = get_spec("chan-vese")
    assert method_kwargs(cv, args(lam=0.1, max_iter=7)) == {"mu": pytest.approx(0.2), "max_iter": 7}
    lic = get_spec("lic")
    assert method_kwargs(lic, args(max_iter=5))[lic.iteration_param] == 5
    with pytest.raises(ValueError, match="'otsu' is not iterative"):
        method_kwargs(get_spec("otsu"), args(max_iter=3))
    with pytest.raises(ValueError, match="does not take option 'nope'"):
        method_kwargs(cv, args(param=["nope=1"]))
    assert method_kwargs(cv, args(param=['init="kmeans"', "tol=0.01"])) == {
        "init": "kmeans",
        "tol": 0.01,
    }

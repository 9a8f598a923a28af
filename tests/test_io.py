"""Image loading for the command line: files, samples and clear errors."""

import numpy as np
import pytest
from PIL import Image

from varseg import io as io_module
from varseg.io import load_image, sample_names


def test_sample_and_files(tmp_path):
    img, ax = load_image("sample:camera")
    assert img.shape == (512, 512) and ax is None and 0 <= img.min() and img.max() <= 1
    rgb, ax = load_image("sample:astronaut")
    assert rgb.shape[-1] == 3 and ax == -1
    arr = np.arange(64, dtype=np.uint8).reshape(8, 8) * 4
    Image.fromarray(arr).save(tmp_path / "a.png")
    got, ax = load_image(tmp_path / "a.png")
    np.testing.assert_allclose(got, arr / 255.0)
    np.save(tmp_path / "b.npy", np.ones((4, 5)))
    assert load_image(tmp_path / "b.npy")[0].shape == (4, 5)
    assert "camera" in sample_names()


@pytest.mark.parametrize("name", sorted(io_module._BUNDLED_PNG_SAMPLES))
def test_bundled_samples_equal_skimage_data(name):
    """The Pillow fast path reads the very pixels ``skimage.data.<name>()`` returns."""
    from skimage import data

    fast = io_module._bundled_sample(name)
    assert fast is not None, f"skimage ships no {name}.png here"
    ref = getattr(data, name)()
    assert fast.dtype == ref.dtype and fast.shape == ref.shape
    np.testing.assert_array_equal(fast, ref)


def test_sample_without_bundled_file_falls_back(monkeypatch):
    """A sample not shipped as a PNG (or a missing file) is read through ``skimage.data``."""
    from skimage import data

    monkeypatch.setattr(io_module, "_bundled_sample", lambda name: None)
    img, ax = load_image("sample:camera", as_float=False)
    np.testing.assert_array_equal(img, data.camera())
    assert io_module._bundled_sample("horse") is None  # horse is thresholded by skimage


def test_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        load_image(tmp_path / "nope.png")
    with pytest.raises(ValueError, match="unknown sample"):
        load_image("sample:lena")
    (tmp_path / "bad.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match="could not read"):
        load_image(tmp_path / "bad.png")


def test_label_png_holds_index_values(tmp_path):
    from varseg.io import save_label_png, save_preview_png

    lab = np.arange(4).repeat(6).reshape(4, 6) % 4
    save_label_png(tmp_path / "l.png", lab)
    with Image.open(tmp_path / "l.png") as im:
        assert im.mode == "L"
        back = np.array(im)
    assert back.dtype == np.uint8
    np.testing.assert_array_equal(back, lab)  # {0, 1, 2, 3}, not {0, 85, 170, 255}
    big = np.arange(300).reshape(15, 20)
    save_label_png(tmp_path / "big.png", big)
    np.testing.assert_array_equal(load_image(tmp_path / "big.png", as_float=False)[0], big)
    with pytest.raises(ValueError, match="values 0..1"):
        save_label_png(tmp_path / "bad.png", lab, n_labels=2)
    save_preview_png(tmp_path / "p.png", lab)
    rgb = np.array(Image.open(tmp_path / "p.png"))
    assert rgb.shape == (4, 6, 3)
    assert len(np.unique(rgb.reshape(-1, 3), axis=0)) == 4  # one colour per label


def test_sixteen_bit_png_scaled_by_its_range(tmp_path):
    arr = np.array([[0, 1000], [40000, 65535]], dtype=np.uint16)
    Image.fromarray(arr).save(tmp_path / "g16.png")
    got, ax = load_image(tmp_path / "g16.png")
    assert ax is None
    np.testing.assert_allclose(got, arr / 65535.0)


def _corrupt_pictures(tmp_path):
    rng = np.random.default_rng(0)
    Image.fromarray((rng.random((64, 64, 3)) * 255).astype(np.uint8)).save(tmp_path / "g.jpg")
    Image.fromarray((rng.random((64, 64)) * 255).astype(np.uint8)).save(tmp_path / "g.png")
    for name in ("g.jpg", "g.png"):
        data = (tmp_path / name).read_bytes()
        (tmp_path / f"trunc_{name}").write_bytes(data[: len(data) // 2])
    (tmp_path / "empty.png").write_bytes(b"")
    return ["trunc_g.jpg", "trunc_g.png", "empty.png"]


def test_truncated_pictures_one_line_error(tmp_path):
    for name in _corrupt_pictures(tmp_path):
        with pytest.raises(ValueError, match="could not read") as exc:
            load_image(tmp_path / name)
        assert name in str(exc.value) and "\n" not in str(exc.value)


def test_unsupported_or_odd_files(tmp_path):
    (tmp_path / "notes.txt").write_text("not an image")
    with pytest.raises(ValueError, match="unsupported image format '.txt'") as exc:
        load_image(tmp_path / "notes.txt")
    assert "imageio" not in str(exc.value) and "plugin" not in str(exc.value)
    Image.fromarray(np.zeros((4, 4, 2), np.uint8), mode="LA").save(tmp_path / "la.png")
    with pytest.raises(ValueError, match="2 channels"):
        load_image(tmp_path / "la.png")
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[..., 0] = 255
    Image.fromarray(rgba, mode="RGBA").save(tmp_path / "rgba.png")
    img, ax = load_image(tmp_path / "rgba.png")
    assert img.shape == (4, 4, 3) and ax == -1 and img[..., 0].min() == 1.0
    np.save(tmp_path / "obj.npy", np.array([None, 1], dtype=object))
    with pytest.raises(ValueError, match="could not read array"):
        load_image(tmp_path / "obj.npy")


def test_index_png_reader_refuses_values_above_255(tmp_path):
    from varseg.data._io import read_index_png

    mask = np.array([[276, 256], [20, 0]], dtype=np.uint16)
    Image.fromarray(mask).save(tmp_path / "m16.png")
    with pytest.raises(ValueError, match="values 0..276"):
        read_index_png(tmp_path / "m16.png")
    Image.fromarray(np.array([[20, 255], [0, 1]], dtype=np.uint16)).save(tmp_path / "ok.png")
    np.testing.assert_array_equal(read_index_png(tmp_path / "ok.png"), [[20, 255], [0, 1]])


def test_multipage_tiff_is_a_volume(tmp_path):
    from varseg.io import read_image

    pages = (np.arange(3 * 5 * 7).reshape(3, 5, 7) * 3).astype(np.uint8)
    first, *rest = [Image.fromarray(p) for p in pages]
    first.save(tmp_path / "stack.tif", save_all=True, append_images=rest)
    img, ax = load_image(tmp_path / "stack.tif")
    assert ax is None and img.shape == (3, 5, 7)
    np.testing.assert_allclose(img, pages / 255.0)
    assert read_image(tmp_path / "stack.tif")[1].spacing == (1.0, 1.0, 1.0)
    Image.fromarray(pages[0]).save(tmp_path / "one.tif")
    assert load_image(tmp_path / "one.tif")[0].shape == (5, 7)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_load_image_names_the_file_with_non_finite_values(tmp_path, bad):
    a = np.random.default_rng(0).random((6, 7))
    a[2, 3] = bad
    a[4, 1] = bad
    np.save(tmp_path / "bad.npy", a)
    with pytest.raises(ValueError, match=r"bad\.npy has 2 NaN or Inf value\(s\)"):
        load_image(tmp_path / "bad.npy")
    np.save(tmp_path / "ok.npy", np.nan_to_num(a, posinf=0.0))
    assert np.isfinite(load_image(tmp_path / "ok.npy")[0]).all()

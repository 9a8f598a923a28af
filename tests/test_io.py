"""Image loading for the command line: files, samples and clear errors."""
import numpy as np
import pytest
from PIL import Image

from varseg.io import load_image, sample_names


def test_sample_and_files(tmp_path):
    img, ax = load_image("sample:camera")
    assert img.shape == (512, 512) and ax is None and 0 <= img.min() and img.max() <= 1
    rgb, ax = load_image("sample:astronaut")
    assert rgb.shape[-1] == 3 and ax == -1
    arr = (np.arange(64, dtype=np.uint8).reshape(8, 8) * 4)
    Image.fromarray(arr).save(tmp_path / "a.png")
    got, ax = load_image(tmp_path / "a.png")
    np.testing.assert_allclose(got, arr / 255.0)
    np.save(tmp_path / "b.npy", np.ones((4, 5)))
    assert load_image(tmp_path / "b.npy")[0].shape == (4, 5)
    assert "camera" in sample_names()


def test_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        load_image(tmp_path / "nope.png")
    with pytest.raises(ValueError, match="unknown sample"):
        load_image("sample:lena")
    (tmp_path / "bad.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match="could not read"):
        load_image(tmp_path / "bad.png")

"""The loaders' shared checks (varseg.data._checks) against Python's own rules."""

import numpy as np
import pytest
import torch

from varseg.data._checks import (
    check_finite_volume,
    check_index,
    check_positive_labels,
    check_scale_range,
    check_size,
    reading,
)


@pytest.mark.parametrize("n", [1, 6])
def test_check_index_agrees_with_list_indexing(n):
    items = list(range(n))
    for i in range(-n - 3, n + 3):
        try:
            expected = items[i]
        except IndexError:
            with pytest.raises(IndexError, match=rf"^demo index {i} is out of range for {n}"):
                check_index(i, n, "demo")
        else:
            assert check_index(i, n, "demo") == expected
    assert check_index(np.int64(-1), n, "demo") == n - 1
    assert check_index(torch.tensor(-1), n, "demo") == n - 1


@pytest.mark.parametrize("bad", [True, 1.0, "1", None])
def test_check_index_refuses_non_integers(bad):
    with pytest.raises(TypeError, match="^demo index must be an integer"):
        check_index(bad, 6, "demo")


def test_check_size_and_scale_range():
    assert check_size(None, "s") is None
    assert check_size(7, "s") == (7, 7)
    assert check_size([3, np.int64(4)], "s") == (3, 4)
    assert check_scale_range((0.5, 1.5)) == (0.5, 1.5)
    assert check_scale_range([1, 1]) == (1.0, 1.0)
    assert check_scale_range(None) is None
    for bad in ("32", (3, 4, 5), (3.0, 4), True):
        with pytest.raises(ValueError, match="^s must be"):
            check_size(bad, "s")
    for bad in (0.5, (0.5,), (-1, 1), (1, float("inf"))):
        with pytest.raises(ValueError, match="^scale_range must be"):
            check_scale_range(bad)


def test_finite_and_positive_label_checks():
    check_finite_volume(np.zeros((2, 2), np.float32), "v.nii", "volume")
    check_finite_volume(np.zeros((2, 2), np.int16), "v.nii", "volume")
    with pytest.raises(ValueError, match=r"^volume v\.nii has 3 NaN or Inf voxel\(s\) of 4"):
        check_finite_volume(np.array([[np.nan, np.inf], [-np.inf, 0.0]]), "v.nii", "volume")
    check_positive_labels(np.array([[1, 2], [3, 1]], np.uint16), "g.mat", "gt")
    check_positive_labels(np.array([[1.0, 2.0]]), "g.mat", "gt")
    with pytest.raises(ValueError, match=r"^gt g\.mat has labels \[-3, 0\] below 1"):
        check_positive_labels(np.array([[1, 0], [-3, 0]]), "g.mat", "gt")
    with pytest.raises(ValueError, match="non-integer"):
        check_positive_labels(np.array([[1.5, 2.0]]), "g.mat", "gt")


def test_reading_names_the_file_and_lets_missing_files_through(tmp_path):
    p = tmp_path / "x.nii.gz"
    with pytest.raises(ValueError, match=rf"^could not read volume {p}: Compressed file"):
        with reading(p, "volume"):
            raise EOFError("Compressed file ended before the end-of-stream marker")
    with pytest.raises(FileNotFoundError, match="gone"):
        with reading(p, "volume"):
            raise FileNotFoundError("gone")
    own = ValueError(f"volume {p} has bad labels")
    with pytest.raises(ValueError) as info:
        with reading(p, "volume"):
            raise own
    assert info.value is own  # already names the file: unchanged

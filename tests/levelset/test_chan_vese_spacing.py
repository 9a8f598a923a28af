"""Voxel spacing in chan_vese: an anisotropic volume evolves like its isotropic resampling."""

import numpy as np
import pytest
from numpy.testing import assert_array_equal
from scipy import ndimage

from varseg.levelset import chan_vese


def _cube(n=24, seed=0):
    """A noisy cube (sharp corners: the curvature term rounds them) and a ball as the
    initial level set, in physical units (voxel size 1)."""
    rng = np.random.default_rng(seed)
    z, y, x = np.mgrid[:n, :n, :n].astype(float)
    c = (n - 1) / 2
    cube = (np.abs(z - c) < 7) & (np.abs(y - c) < 7) & (np.abs(x - c) < 7)
    img = cube + 0.6 * rng.standard_normal((n, n, n))
    phi = 9.0 - np.sqrt((z - c) ** 2 + (y - c) ** 2 + (x - c) ** 2)
    return img, phi


def test_anisotropic_volume_matches_isotropic_resampling():
    img, phi = _cube()
    kw = {"mu": 0.3, "max_iter": 400, "dtype": np.float64}
    iso = chan_vese(img, init=phi, **kw)
    # every other slice: voxels twice as long along z
    ani = chan_vese(img[::2], init=phi[::2], spacing=(2.0, 1.0, 1.0), **kw)
    raw = chan_vese(img[::2], init=phi[::2], **kw)  # the same volume taken as isotropic
    ref = iso.labels[::2]
    fg = ref[6, 12, 12]
    band = ndimage.binary_dilation(ref == fg) & ~ndimage.binary_erosion(ref == fg)
    diff = ani.labels != ref
    assert iso.converged and ani.converged
    assert diff.sum() <= 0.01 * diff.size  # measured: 14 of 6912 voxels
    assert not np.any(diff & ~band)  # only a thin band at the surface differs
    assert (raw.labels != ref).sum() > 5 * diff.sum()  # measured: 292 voxels without spacing
    assert ani.params["spacing"] == [2.0, 1.0, 1.0]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_unit_spacing_is_the_default_scheme(dtype):
    img = np.random.default_rng(3).random((20, 23))
    a = chan_vese(img, max_iter=15, tol=0, dtype=dtype)
    b = chan_vese(img, max_iter=15, tol=0, dtype=dtype, spacing=(1, 1))
    assert_array_equal(a.level_sets, b.level_sets)
    assert_array_equal(a.energy, b.energy)
    assert b.params["spacing"] is None


def test_2d_spacing_changes_the_flow_only_through_the_length_term():
    img = np.random.default_rng(4).random((20, 23))
    a = chan_vese(img, max_iter=10, tol=0, dtype=np.float64, mu=0.0)
    b = chan_vese(img, max_iter=10, tol=0, dtype=np.float64, mu=0.0, spacing=(1.0, 3.0))
    assert_array_equal(a.labels, b.labels)  # mu = 0: no curvature term, spacing is moot
    c = chan_vese(img, max_iter=10, tol=0, dtype=np.float64, mu=0.5, spacing=(1.0, 3.0))
    d = chan_vese(img, max_iter=10, tol=0, dtype=np.float64, mu=0.5)
    assert np.abs(c.level_sets - d.level_sets).max() > 1e-3


@pytest.mark.parametrize(
    "spacing, match",
    [
        ((1.0,), "2 positive"),
        ((1.0, 0.0), "positive"),
        ((1.0, np.nan), "positive"),
        ("ab", "spacing"),
    ],
)
def test_bad_spacing_raises(spacing, match):
    with pytest.raises(ValueError, match=match):
        chan_vese(np.zeros((6, 7)), spacing=spacing)

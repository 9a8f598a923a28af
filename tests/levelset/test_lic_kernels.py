"""Pieces of the LIC kernels (varseg.levelset._lic_kernels) against NumPy references."""

import numpy as np
import pytest
from numba import njit

from varseg.levelset import _lic_kernels as kern
from varseg.levelset.heaviside import atan_vec, heaviside


@njit(cache=True)
def _atan_array(x, out):
    for j in range(x.shape[0]):
        out[j] = atan_vec(x[j])


def _ulps(got, want):
    return np.abs(got - want) / np.spacing(np.abs(want))


def test_atan_vec_within_two_ulp_of_numpy():
    """Every branch of the range reduction (|x| < 0.66, up to tan(3 pi / 8), beyond), both
    signs, the thresholds themselves, tiny and huge arguments."""
    rng = np.random.default_rng(0)
    scales = (1e-8, 1e-2, 0.3, 1.0, 2.0, 10.0, 1e3, 1e12)
    x = np.concatenate([rng.standard_normal(20000) * s for s in scales])
    edges = np.array([0.66, 2.41421356237309504880, 1.0, 1e-300, 5e-324, 1e300])
    x = np.concatenate([x, edges, -edges, np.nextafter(edges, 0), np.nextafter(edges, 10)])
    out = np.empty_like(x)
    _atan_array(x, out)
    assert _ulps(out, np.arctan(x)).max() <= 2


def test_atan_vec_special_values():
    x = np.array([0.0, -0.0, np.inf, -np.inf, np.nan])
    out = np.empty_like(x)
    _atan_array(x, out)
    assert out[0] == 0.0 and not np.signbit(out[0]) and np.signbit(out[1])
    assert out[2] == pytest.approx(np.pi / 2, rel=1e-16) and out[3] == -out[2]
    assert np.isnan(out[4])


@pytest.mark.parametrize("eps", [0.5, 1.0, 2.5])
def test_heaviside_row_is_heaviside(eps):
    u = np.linspace(-40, 40, 4001)
    out = np.empty_like(u)
    kern.heaviside_row(u, eps, out)
    np.testing.assert_allclose(out, heaviside(u, eps), rtol=0, atol=4e-16)
    assert out[2000] == 0.5


@pytest.mark.parametrize("k", [3, 4])
def test_forces_slice_rows_are_data_forces_by_hand(k):
    """The row kernels against Li's formulas written out with NumPy's Heaviside."""
    rng = np.random.default_rng(k)
    phi = rng.standard_normal((2, 5, 9)) * 3
    e = rng.uniform(0, 4, (k, 5, 9))
    out = np.empty_like(phi)
    kern._forces_slice(phi[:, None], e[:, None], 0, 1.0, out[:, None], np.empty((2, 9)))
    h1, h2 = heaviside(phi[0], 1.0), heaviside(phi[1], 1.0)
    if k == 3:
        want = [-(e[0] * h2 + e[1] * (1 - h2) - e[2]), -h1 * (e[0] - e[1])]
    else:
        want = [
            -(h2 * (e[0] - e[2]) + (1 - h2) * (e[1] - e[3])),
            -(h1 * (e[0] - e[1]) + (1 - h1) * (e[2] - e[3])),
        ]
    np.testing.assert_allclose(out, np.stack(want), rtol=1e-14, atol=1e-14)


def test_data_forces_3d_slices_are_the_2d_rows():
    """In 3D, data_forces is the slice kernel on every slice (K = 2 needs no Heaviside)."""
    rng = np.random.default_rng(7)
    for k, m in ((2, 1), (3, 2), (4, 2)):
        phi = rng.standard_normal((m, 3, 4, 5)) * 2
        e = rng.uniform(0, 4, (k, 3, 4, 5))
        out = np.empty_like(phi)
        kern.data_forces(phi, e, 0.8, out)
        for d in range(3):
            want = np.empty((m, 1, 4, 5))
            sl = np.ascontiguousarray(phi[:, d : d + 1]), np.ascontiguousarray(e[:, d : d + 1])
            kern._forces_slice(*sl, 0, 0.8, want, np.empty((2, 5)))
            np.testing.assert_array_equal(out[:, d], want[:, 0])
        if k == 2:
            np.testing.assert_array_equal(out[0], e[1] - e[0])


@pytest.mark.parametrize("shape", [(2, 9, 11), (3, 40, 33), (1, 5, 4)])
@pytest.mark.parametrize("taps", [1, 5, 17])
def test_smooth_stack_is_zero_padded_separable_correlation(shape, taps):
    """Every channel against scipy.ndimage.correlate1d along W then H (zero padding), also
    with a kernel wider than the image."""
    from scipy import ndimage

    rng = np.random.default_rng(taps)
    u = rng.standard_normal(shape)
    k = rng.random(taps)
    k = k + k[::-1]  # symmetric, as the Gaussian factor
    out = np.empty_like(u)
    kern.smooth_stack(u, k, np.empty_like(u), out)
    want = ndimage.correlate1d(u, k, axis=2, mode="constant")
    want = ndimage.correlate1d(want, k, axis=1, mode="constant")
    np.testing.assert_allclose(out, want, rtol=1e-12, atol=1e-12)
    one = np.empty(shape[1:])
    kern.smooth_2d(np.ascontiguousarray(u[0]), k, np.empty(shape[1:]), one)
    np.testing.assert_array_equal(one, out[0])


@pytest.mark.parametrize("k", [2, 3, 4])
def test_memberships_labels_are_li_memberships_and_numpy_argmax(k):
    """Against the formulas with NumPy's Heaviside and numpy.argmax, ties included (level
    sets at 0 and equal memberships: the first maximum wins)."""
    rng = np.random.default_rng(k)
    m = 1 if k == 2 else 2
    phi = rng.standard_normal((m, 3001)) * 3
    phi[:, :40] = 0.0  # H = 1/2: ties between memberships
    phi[0, 40:60] = np.inf
    phi[-1, 60:80] = -np.inf
    memb = np.empty((k, phi.shape[1]))
    labels = np.empty(phi.shape[1], dtype=np.int64)
    kern.memberships_labels(phi, 1.0, memb, labels)
    h1 = heaviside(phi[0], 1.0)
    if k == 2:
        want = np.stack([h1, 1 - h1])
    else:
        h2 = heaviside(phi[1], 1.0)
        if k == 3:
            want = np.stack([h1 * h2, h1 * (1 - h2), 1 - h1])
        else:
            want = np.stack([h1 * h2, h1 * (1 - h2), (1 - h1) * h2, (1 - h1) * (1 - h2)])
    np.testing.assert_allclose(memb, want, rtol=0, atol=1e-15)
    np.testing.assert_array_equal(labels, memb.argmax(0))
    assert (labels == want.argmax(0)).mean() == 1.0


@pytest.mark.parametrize("k", [2, 3, 4])
def test_gray_bias_sources_and_residuals_equal_the_pixel_loop_bit_for_bit(k):
    """The gray paths (one loop per phase) give the pixel loop's values exactly: a second
    channel of zeros with zero centres adds exact zeros, and takes the general loop."""
    rng = np.random.default_rng(k)
    n = 1037
    x = rng.random((1, n))
    c = rng.random((k, 1)) - 0.3
    memb, w, sx2, k1w, kb, kb2 = rng.random((k, n)), *rng.random((5, n))
    x2 = np.vstack([x, np.zeros((1, n))])
    c2 = np.hstack([c, np.zeros((k, 1))])
    got, ref = [np.empty(n) for _ in range(2)], [np.empty(n) for _ in range(2)]
    kern.bias_sources(x, c, memb, w, *got)
    kern.bias_sources(x2, c2, memb, w, *ref)
    for a, b in zip(got, ref, strict=True):
        np.testing.assert_array_equal(a, b)
    e, e_ref = np.empty((k, n)), np.empty((k, n))
    kern.residuals(x, c, sx2, k1w, kb, kb2, w, e)
    kern.residuals(x2, c2, sx2, k1w, kb, kb2, w, e_ref)
    np.testing.assert_array_equal(e, e_ref)
    # and the formulas themselves (Li 2011 Eq. 17 and 22), by hand
    cx = c[:, 0, None] * x[0]
    np.testing.assert_allclose(e, w * (sx2 * k1w - 2 * cx * kb + c**2 * kb2), rtol=1e-12)
    np.testing.assert_allclose(got[0], w * (memb * cx).sum(0), rtol=1e-12)
    np.testing.assert_allclose(got[1], w * (memb * c**2).sum(0), rtol=1e-12)

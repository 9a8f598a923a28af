"""The Numba kernels of ms_fixed_point (varseg._fixed_point_kernels) piece by piece."""

import numpy as np
import pytest

from varseg import _fixed_point_kernels as fpk
from varseg.energy import energy_from_labels


@pytest.mark.parametrize(
    "shape, k", [((1, 7, 9), 3), ((3, 5, 6), 4), ((2, 8, 1), 2), ((4, 6, 5), 8), ((1, 1, 5), 5)]
)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_hard_row_is_the_shared_energy_of_random_labels(shape, k, dtype):
    """Row by row, the branch-free length counts and the data term add up to
    energy_from_labels (random labels: every neighbour pattern of 2 to 4 labels occurs)."""
    rng = np.random.default_rng(k)
    lab = rng.integers(0, k, size=shape).astype(np.int32)
    x = rng.random((2,) + shape)
    hard = rng.random((k, 2))
    row = np.zeros(shape[2], dtype=dtype)
    data = length = 0.0
    for d in range(shape[0]):
        for i in range(shape[1]):
            dq, lq = fpk._hard_row(x, lab, d, i, hard, row)
            data += dq
            length += lq
    spatial = shape if shape[0] > 1 else shape[1:]
    terms = energy_from_labels(x.reshape((2,) + spatial), lab.reshape(spatial), 1.0, n_phases=k)
    assert length == pytest.approx(terms.length, rel=1e-13)
    want = sum(((x[c] - hard[lab, c]) ** 2).sum() for c in range(2))
    assert data == pytest.approx(want, rel=1e-13)


def test_length_row_hand_values():
    """2D, labels [[0, 1], [2, 2]]: pixel (0,0) has s_0 = 2 (right and down differ), s_1 = 1,
    s_2 = 1 -> sqrt 2 + 2; pixel (0,1): s_1 = 1 (down), s_2 = 1 -> 2; row 1: 0 2 -> 0."""
    lab = np.array([[[0, 1], [2, 2]]], dtype=np.int32)
    row = np.zeros(2)
    first = fpk._length_row(lab[0, 0], lab[0, 1], lab[0, 0], row)
    last = fpk._length_row(lab[0, 1], lab[0, 1], lab[0, 1], row)
    assert first == pytest.approx(np.sqrt(2) + 4, rel=1e-15) and last == 0.0


def _pair_logits(w, dtype, seed=0):
    """Two logit rows with ties, small and huge differences (past the exp clamp)."""
    rng = np.random.default_rng(seed)
    z = rng.normal(scale=3.0, size=(2, 1, 1, w))
    z[1, 0, 0, :4] = z[0, 0, 0, :4]  # ties: label 0 (the first maximum)
    z[0, 0, 0, 4] = 800.0  # exp(-800) and exp(-100) are clamped to exp(-708) / exp(-87)
    z[1, 0, 0, 5] = 100.0
    return z.astype(dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_pair_softmax_is_the_general_path_bit_for_bit(dtype):
    """K = 2 takes one exponential per pixel; the numbers are those of the general rule
    exp(z_n - max) / sum (each class through _exp_row, summed in class order)."""
    w = 37
    z = _pair_logits(w, dtype)
    tmp = np.zeros((6, w), dtype=dtype)
    labr = np.zeros(w, dtype=np.int32)
    fpk._row_max_exp(z, 0, 0, tmp, labr)
    mx = z.max(0)[0, 0]
    e = np.zeros((2, w), dtype=dtype)
    bits = np.zeros(w, dtype=dtype)
    for n in range(2):
        fpk._exp_row(np.ascontiguousarray(z[n, 0, 0]), mx, e[n], bits)
    np.testing.assert_array_equal(tmp[0], e[0])
    np.testing.assert_array_equal(tmp[1], e[1])
    np.testing.assert_array_equal(tmp[3], dtype(1.0) / (e[0] + e[1]))
    np.testing.assert_array_equal(labr, z[:, 0, 0].argmax(0))
    np.testing.assert_array_equal(tmp[5], labr.astype(dtype))
    # and the exponentials are exp(z_n - max) within a few ulps of the type per unit of the
    # argument (z_n - max is rounded in the type; exp turns its error into a relative one)
    arg = z[:, 0, 0].astype(np.float64) - mx.astype(np.float64)
    ref = np.exp(arg)
    ok = ref > (1e-300 if dtype == np.float64 else 1e-37)
    rtol = 4 * np.finfo(dtype).eps * np.maximum(1.0, np.abs(arg[ok]))
    assert (np.abs(e[ok] - ref[ok]) <= rtol * ref[ok]).all()


@pytest.mark.parametrize("k", [3, 5, 8])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_row_max_exp_labels_are_the_first_maximum(k, dtype):
    """K > 2: the labels are numpy's argmax (the first of tied maxima; integer logits make
    ties of 2 to k classes common), also as floats, the exponentials are exp(z_n - max) and
    the last row 1 / their sum in class order."""
    w = 61
    rng = np.random.default_rng(k)
    z = rng.integers(-2, 3, size=(k, 1, 1, w)).astype(dtype)
    z[:, 0, 0, 0] = 1.0  # every class tied
    z[-1, 0, 0, 1] = 9.0  # the last class alone
    tmp = np.full((k + 4, w), np.nan, dtype=dtype)
    labr = np.full(w, -1, dtype=np.int32)
    fpk._row_max_exp(z, 0, 0, tmp, labr)
    want = z[:, 0, 0].argmax(0)
    assert want[0] == 0 and want[1] == k - 1
    np.testing.assert_array_equal(labr, want)
    np.testing.assert_array_equal(tmp[k + 3], want.astype(dtype))
    np.testing.assert_array_equal(tmp[k], z[:, 0, 0].max(0))
    ref = np.exp(z[:, 0, 0].astype(np.float64) - z[:, 0, 0].max(0))
    np.testing.assert_allclose(tmp[:k], ref, rtol=8 * np.finfo(dtype).eps)
    s = np.zeros(w, dtype=dtype)
    for n in range(k):
        s += tmp[n]
    np.testing.assert_array_equal(tmp[k + 1], dtype(1.0) / s)


@pytest.mark.parametrize("shape, channels", [((1, 6, 9), 1), ((3, 5, 7), 2)])
def test_pair_force_is_the_second_class_force(shape, channels):
    """K = 2: g_1 from g_0 (kappa_1 = -kappa_0) equals the force of class 1 computed in
    full from y_1 = 1 - y_0, row by row (float64, to rounding)."""
    rng = np.random.default_rng(channels)
    d, h, w = shape
    y = np.empty((2,) + shape)
    y[0] = rng.random(shape)
    y[1] = 1.0 - y[0]
    x = rng.random((channels,) + shape)
    soft = rng.random((2, channels))
    lam, eps2 = 0.3, 0.04
    pyrow = np.zeros((2, 2, w))
    rows = np.zeros((5, w))
    g = np.zeros((2, w))
    g1 = np.zeros(w)
    for dd in range(d):
        for i in range(h):
            for n in range(2):
                fpk._force_class(x, y, dd, i, n, pyrow, 0, True, rows, g[n], soft, lam, eps2)
            fpk._pair_force(x, dd, i, g[0], g1, soft)
            np.testing.assert_allclose(g1, g[1], rtol=0, atol=1e-12)
    # the data part alone, by hand: g_0 + g_1 = |x - c_0|^2 + |x - c_1|^2 on the last row
    want = sum(
        (x[c, -1, -1] - soft[0, c]) ** 2 + (x[c, -1, -1] - soft[1, c]) ** 2 for c in range(channels)
    )
    np.testing.assert_allclose(g[0] + g1, want, rtol=1e-13)


def test_kernels_are_compiled_without_reference_counting():
    """Every Numba kernel of the fixed point carries NO_NRT (no atomic reference counts on
    the row views), and NO_NRT is {"_nrt": False} on this Numba."""
    from numba.core.registry import CPUDispatcher

    from varseg._jit import NO_NRT

    assert NO_NRT == {"_nrt": False}
    kernels = [v for v in vars(fpk).values() if isinstance(v, CPUDispatcher)]
    assert len(kernels) >= 20
    for kernel in kernels:
        assert kernel.targetoptions.get("_nrt") is False, kernel.py_func.__name__

"""Tests of the Chan–Vese row kernels (varseg.levelset._cv_kernels) and of the solver's
independence of the thread count.

Tolerances: the fused passes are compared exactly (same per-pixel values; the squared changes
to 1e-12 relative, their summation order may differ); results for 1 and 2 threads exactly.
"""

import numba
import numpy as np
import pytest
from numpy.testing import assert_array_equal

from varseg._energy_kernels import hard_energy_serial
from varseg.levelset import _cv_kernels as kern
from varseg.levelset import chan_vese
from varseg.levelset._cv_setup_kernels import classify_threads, final_energy_threads


@pytest.mark.parametrize("m", [2, 3])
def test_fused_post_matches_separate_passes(m):
    """_post2/_post3 (one pass) give the labels, squared changes and exact-zero flag of
    _sq_diff + _labels_row."""
    rng = np.random.default_rng(m)
    W = 37
    out = rng.standard_normal((m, 1, 1, W)).astype(np.float32)
    phi = rng.standard_normal((m, 1, 1, W)).astype(np.float32)
    for fam in (kern.FAST, kern.IEEE):
        for zeros in (False, True):
            o = out.copy()
            if zeros:
                o[m - 1, 0, 0, 5] = 0.0
            lo = np.empty((1, 1, W), np.uint8)
            ref = np.empty_like(lo)
            pd = np.zeros((1, m))
            hz = fam._post_multi(o, phi, 0, 0, lo[0, 0], pd, 0)
            hz_ref = fam._labels_row(o, 0, 0, ref[0, 0], m)
            assert hz == hz_ref == zeros
            assert_array_equal(lo, ref)
            # squares in the working precision, sums in float64 (as _sq_diff)
            want = [((o[j] - phi[j]) ** 2).astype(np.float64).sum() for j in range(m)]
            sep = [fam._sq_diff(o[j, 0, 0], phi[j, 0, 0]) for j in range(m)]
            np.testing.assert_allclose(sep, want, rtol=1e-12)
            np.testing.assert_allclose(pd[0], want, rtol=1e-12)
            # labels by hand: bit j where phi_j < 0
            bits = sum((o[j, 0, 0] < 0).astype(np.uint8) << j for j in range(m))
            assert_array_equal(lo[0, 0], bits)


@pytest.mark.parametrize("K", [4, 8])
@pytest.mark.parametrize("D", [1, 3])
def test_energy_rows_match_hard_energy(K, D):
    """Data and length terms of the row helpers (integer counts of the length terms) equal
    the shared hard-partition energy kernel."""
    rng = np.random.default_rng(K + D)
    x = rng.random((2, D, 9, 11))
    lab = rng.integers(0, K, (D, 9, 11)).astype(np.uint8)
    data_ref, length_ref, means = hard_energy_serial(x, lab.astype(np.int64), K, True)
    for threads in (1, 2):
        data, length, _ = final_energy_threads(x, lab, np.ascontiguousarray(means), threads)
        assert data == pytest.approx(data_ref, rel=1e-12)
        assert length == pytest.approx(length_ref, rel=1e-12)


@pytest.mark.parametrize("K", [2, 4, 8])
def test_results_independent_of_thread_count(K):
    """Same level sets, labels, energies and iteration count with 1 and 2 threads (the
    image is large enough for the threaded path, block partials reduced in block order)."""
    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("needs 2 Numba threads")
    rng = np.random.default_rng(K)
    img = rng.random((150, 230))
    img[40:110, 60:170] += 1.0
    before = numba.get_num_threads()
    runs = []
    try:
        for th in (1, 2):
            numba.set_num_threads(th)
            runs.append(chan_vese(img, K, max_iter=25, tol=0, init="checkerboard"))
    finally:
        numba.set_num_threads(before)
    a, b = runs
    assert_array_equal(a.level_sets, b.level_sets)
    assert_array_equal(a.labels, b.labels)
    assert_array_equal(a.energy, b.energy)
    assert a.n_iter == b.n_iter == 25


@pytest.mark.parametrize("K", [2, 4, 8])
@pytest.mark.parametrize("W", [1, 2, 37])
def test_length2d_matches_pixel_length(K, W):
    """The 2D row length from labels (_length2d: 2 for one differing forward neighbour,
    2 sqrt 2 for two equal ones, 2 + sqrt 2 for two different ones) equals the general
    per-pixel counts (_energyk with no z neighbour), also at the last row (Neumann)."""
    rng = np.random.default_rng(K * 100 + W)
    lab = rng.integers(0, K, (2, W)).astype(np.uint8)
    if W > 20:
        lab[:, 5:15] = 1  # runs of equal labels
    e = np.zeros((K, W))
    for fam in (kern.FAST, kern.IEEE):
        for ld in (lab[1], lab[0]):
            want = fam._energyk(lab[0], ld, lab[0], e)[1]
            assert fam._length2d(lab[0], ld) == pytest.approx(want, rel=1e-15)
    # by hand: labels [0, 1] over [1, 1]: pixel 0 has both neighbours 1 (equal):
    # 2 sqrt 2; pixel 1 only its lower one is equal and no right neighbour: 0
    two = np.array([[0, 1], [1, 1]], np.uint8)
    assert kern.FAST._length2d(two[0], two[1]) == pytest.approx(2 * np.sqrt(2), rel=1e-15)
    # [0, 1] over [2, 1]: pixel 0 both differ and differ from each other: 2 + sqrt 2
    two[1, 0] = 2
    assert kern.FAST._length2d(two[0], two[1]) == pytest.approx(2 + np.sqrt(2), rel=1e-15)


@pytest.mark.parametrize("m", [2, 3])
def test_fused_forces_in_working_precision(m):
    """FAST fused m = 2, 3 rows compute the data forces from the float32 image: one step
    stays within a few float32 ulps of the IEEE step from the same float32 start, the
    recorded energy of the old partition is the same float64 value in both (1e-12)."""
    rng = np.random.default_rng(7 + m)
    x = rng.random((1, 1, 23, 41))
    x[0, 0, 5:15, 10:30] += 1.0
    x /= x.max()
    phi = rng.standard_normal((m, 1, 23, 41)).astype(np.float32)
    xtot = np.append(x.reshape(1, -1).sum(1), float(x[0].size))
    lam = np.linspace(0.9, 1.3, 2**m)
    outs = []
    for T, fast in ((np.float64, False), (np.float32, True)):
        p = np.ascontiguousarray(phi, dtype=T)
        lab = np.empty((1, 23, 41), np.uint8)
        cnt, sums, ccnt, csums, nd = classify_threads(x, p, lab, xtot)
        assert nd == 0
        m_lab, m_evo = kern.means_from_sums(cnt, sums, ccnt, csums)
        st = kern.Stepper(x, xtot, lam, T(0.25), T(0.5), T(1.0), T(1e-16), m, 1, fast=fast)
        assert st.xw.dtype == T
        out = np.empty_like(p)
        res = st.step(p, out, lab, np.empty_like(lab), m_lab, m_evo, True, True)
        outs.append((out, res))
    (a, ra), (b, rb) = outs
    np.testing.assert_allclose(b, a, rtol=8 * np.finfo(np.float32).eps, atol=2e-7)
    assert rb[4] == pytest.approx(ra[4], rel=1e-12)
    assert rb[5] == ra[5]

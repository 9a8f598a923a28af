"""Tests of the fast paths of the Chan–Vese solver: the fused m = 1 row pass
(forces + old-partition energy, update, post pass), the one-division float32 update, and the
vectorised float32 memberships (``phase_memberships`` with a polynomial arc tangent).

References: scikit-image's update written out in NumPy (bit-identical in float64), NumPy
sums over the labels, the shared hard-partition energy kernel, ``numpy.arctan`` in float64.
"""

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from varseg._energy_kernels import hard_energy_serial
from varseg.levelset import _cv_kernels as kern
from varseg.levelset import heaviside as hv
from varseg.levelset._cv_setup_kernels import classify_threads

MU, DT, EPS, ETA = 0.25, 0.5, 1.0, 1e-16


def _skimage_step(p, x, c0, c1, lam=(1.0, 1.0)):
    """One step of skimage.segmentation.chan_vese (0.26) in its order of operations."""
    P = np.pad(p, 1, mode="edge")
    c, xp, xm, yp, ym = P[1:-1, 1:-1], P[1:-1, 2:], P[1:-1, :-2], P[2:, 1:-1], P[:-2, 1:-1]
    phixp, phixn, phix0 = xp - c, c - xm, (xp - xm) / 2.0
    phiyp, phiyn, phiy0 = yp - c, c - ym, (yp - ym) / 2.0
    C1 = 1.0 / np.sqrt(ETA + phixp**2 + phiy0**2)
    C2 = 1.0 / np.sqrt(ETA + phixn**2 + phiy0**2)
    C3 = 1.0 / np.sqrt(ETA + phix0**2 + phiyp**2)
    C4 = 1.0 / np.sqrt(ETA + phix0**2 + phiyn**2)
    K = xp * C1 + xm * C2 + yp * C3 + ym * C4
    delta = EPS / (EPS * EPS + p * p)
    f = -lam[0] * (x - c0) ** 2 + lam[1] * (x - c1) ** 2
    return (p + DT * delta * (MU * K + f)) / (1 + MU * DT * delta * (C1 + C2 + C3 + C4))


def _one_step(phi, x, dtype, fast, lam=(1.0, 1.0), mu=MU, record=True):
    """One Stepper step (m = 1, gray, 2D: the fused path); returns out, labels, results."""
    x4 = np.ascontiguousarray(x[None, None])
    p4 = np.ascontiguousarray(phi[None, None], dtype=dtype)
    xtot = np.append(x4.reshape(1, -1).sum(1), float(x.size))
    lab = np.empty((1,) + x.shape, np.uint8)
    cnt, sums, ccnt, csums, nd = classify_threads(x4, p4, lab, xtot)
    m_lab, m_evo = kern.means_from_sums(cnt, sums, ccnt, csums)
    T = np.dtype(dtype).type
    lam = np.asarray(lam, dtype=np.float64)
    st = kern.Stepper(x4, xtot, lam, T(mu), T(DT), T(EPS), T(ETA), 1, 1, fast=fast)
    out = np.empty_like(p4)
    lab2 = np.empty_like(lab)
    res = st.step(p4, out, lab, lab2, m_lab, m_evo, record, nd == 0)
    return out[0, 0], lab2[0], lab[0], m_lab, m_evo, res


@pytest.fixture(scope="module")
def problem():
    rng = np.random.default_rng(5)
    x = rng.random((37, 53))
    x[10:30, 12:40] += 1.0
    x /= x.max()
    yy, xx = np.mgrid[:37, :53]
    phi = np.sin(np.pi / 5 * (yy + 0.5)) * np.sin(np.pi / 5 * (xx + 0.5)) * 2.3
    assert np.all(phi != 0)  # no exact zero: the recorded steps take the fused path
    return x, phi


def test_fused_ieee_step_is_skimage_bit_for_bit(problem):
    """float64: the fused m = 1 pass gives scikit-image's new level set exactly."""
    x, phi = problem
    lam = (1.0, 1.7)
    out, *_, m_lab, m_evo, _ = _one_step(phi, x, np.float64, False, lam)
    # skimage's means: phase 0 where phi > 0
    assert m_evo[0, 0] == pytest.approx(x[phi > 0].mean(), rel=1e-14)
    assert m_evo[1, 0] == pytest.approx(x[phi <= 0].mean(), rel=1e-14)
    assert_array_equal(out, _skimage_step(phi, x, m_evo[0, 0], m_evo[1, 0], lam))


@pytest.mark.parametrize("dtype, fast", [(np.float64, False), (np.float32, True)])
def test_fused_step_sums_and_energy(problem, dtype, fast):
    """Means, squared changes and labels of the new iterate and the shared energy of the old
    partition, from the fused pass, equal NumPy sums and the hard-energy kernel."""
    x, phi = problem
    out, lab_new, lab_old, m_lab, _, res = _one_step(phi, x, dtype, fast)
    m_lab2, m_evo2, ndiff, dsq, data, length = res
    assert_array_equal(lab_new, (out < 0).astype(np.uint8))
    for s in (0, 1):
        assert m_lab2[s, 0] == pytest.approx(x[lab_new == s].mean(), rel=1e-12)
    assert ndiff == np.count_nonzero(out == 0)
    p = phi.astype(dtype)
    want = float(((out - p) ** 2).astype(np.float64).sum())
    assert dsq[0] == pytest.approx(want, rel=1e-6 if fast else 1e-12)
    d_ref, l_ref, _ = hard_energy_serial(x[None, None], lab_old[None].astype(np.int64), 2, True)
    assert data == pytest.approx(d_ref, rel=1e-12)
    assert length == pytest.approx(l_ref, rel=1e-12)


def test_fused_fast_step_close_to_ieee(problem):
    """float32 (fast-math, one division per pixel) against the float64 IEEE step."""
    x, phi = problem
    phi32 = phi.astype(np.float32).astype(np.float64)  # the same start in both precisions
    a = _one_step(phi32, x, np.float64, False)[0]
    b = _one_step(phi32, x, np.float32, True)[0]
    assert_allclose(b, a, rtol=2e-6, atol=1e-6)


def test_fused_step_exact_zeros_corrected(problem):
    """Exact zeros in the new iterate (mu = 0 and zero data weights: the step keeps phi):
    labels (phi < 0) and evolution means (phi > 0) differ there, both exact."""
    x, phi = problem
    phi = phi.copy()
    phi[:, 26] = 0.0
    phi[3, 5] = 0.0
    out, lab_new, _, _, _, res = _one_step(phi, x, np.float64, False, (0.0, 0.0), 0.0, False)
    assert_array_equal(out, phi)
    m_lab2, m_evo2, ndiff, _, data, length = res
    assert ndiff == np.count_nonzero(phi == 0) == 37 + 1
    assert data == length == 0.0  # not recorded
    pos = phi > 0
    assert m_evo2[0, 0] == pytest.approx(x[pos].mean(), rel=1e-12)
    assert m_evo2[1, 0] == pytest.approx(x[~pos].mean(), rel=1e-12)
    assert m_lab2[0, 0] == pytest.approx(x[lab_new == 0].mean(), rel=1e-12)
    assert m_lab2[1, 0] == pytest.approx(x[phi < 0].mean(), rel=1e-12)


def test_atan_f32_within_3_ulps():
    rng = np.random.default_rng(0)
    t = np.concatenate([rng.standard_normal(20000) * s for s in (1e-3, 0.3, 1, 3, 30, 1e5)])
    special = [0.0, -0.0, 1.0, -1.0, 0.41421357, 2.4142137, 1e-30, 3e38, np.inf, -np.inf]
    t = np.concatenate([t, special]).astype(np.float32)
    fn = hv._F32._atan
    sel = np.concatenate([t[::37], t[-10:]])
    got = np.array([fn(v) for v in sel], dtype=np.float32)
    exact = np.arctan(sel.astype(np.float64))
    ulp = np.spacing(np.abs(exact).astype(np.float32)).astype(np.float64)
    assert np.all(np.abs(got - exact) <= 3 * ulp)
    assert fn(np.float32(np.inf)) == np.float32(np.pi / 2)
    assert np.signbit(fn(np.float32(-0.0)))


@pytest.mark.parametrize("m", [1, 2, 3])
def test_float32_memberships_match_numpy(m):
    """The fused float32 kernel equals the NumPy products of the NumPy Heaviside to 1e-6
    and sums to 1; float64 keeps the NumPy code."""
    rng = np.random.default_rng(m)
    phi = (rng.standard_normal((m, 70, 3000)) * 4).astype(np.float32)  # > 1 chunk per row
    phi[0, 0, :5] = [0.0, -0.0, np.inf, -np.inf, 1e-30]
    got = hv.phase_memberships(phi, 0.7)
    h = hv.heaviside(phi, np.float32(0.7))
    want = np.ones((2**m,) + phi.shape[1:], np.float64)
    for k in range(2**m):
        for j in range(m):
            want[k] *= (1 - h[j]) if (k >> j) & 1 else h[j]
    assert got.dtype == np.float32
    assert_allclose(got, want, atol=1e-6, rtol=0)
    assert_allclose(got.sum(0), 1.0, atol=1e-6)
    assert_array_equal(got.argmax(0), hv.phase_labels(phi))


def _stepper_run(x4, phi4, lam, dtype, fast, record=True):
    """One Stepper step of level sets ``phi4`` (m, D, H, W) on ``x4`` (C, D, H, W)."""
    m = phi4.shape[0]
    xtot = np.append(x4.reshape(x4.shape[0], -1).sum(1), float(x4[0].size))
    lab = np.empty(x4.shape[1:], np.uint8)
    cnt, sums, ccnt, csums, nd = classify_threads(x4, phi4, lab, xtot)
    m_lab, m_evo = kern.means_from_sums(cnt, sums, ccnt, csums)
    T = np.dtype(dtype).type
    st = kern.Stepper(x4, xtot, lam, T(MU), T(DT), T(EPS), T(ETA), m, 1, fast=fast)
    out = np.empty_like(phi4)
    lab2 = np.empty_like(lab)
    res = st.step(phi4, out, lab, lab2, m_lab, m_evo, record, nd == 0)
    return out, lab2, lab, res


@pytest.mark.parametrize("m", [2, 3])
@pytest.mark.parametrize("dtype, fast", [(np.float64, False), (np.float32, True)])
def test_fused_multiphase_step_matches_general_path(problem, m, dtype, fast):
    """m = 2, 3 (gray 2D: the fused force + energy rows) against the general path (the
    same image with a second, all-zero channel: the same residuals, separate passes). IEEE:
    the same new level sets and labels bit for bit, the same means, and the energy of the
    old partition equal to the hard-energy kernel; fast-math: within 4 float32 ulps."""
    x, phi = problem
    rng = np.random.default_rng(m)
    phis = np.stack([np.roll(phi, (3 * j, 2 * j), axis=(0, 1)) for j in range(m)])
    phis += 0.01 * rng.standard_normal(phis.shape)  # no exact zero
    phi4 = np.ascontiguousarray(phis[:, None], dtype=dtype)
    lam = np.linspace(0.8, 1.5, 2**m)
    x1 = np.ascontiguousarray(x[None, None])
    x2 = np.ascontiguousarray(np.stack([x, np.zeros_like(x)])[:, None])
    out1, lab1, lab_old, res1 = _stepper_run(x1, phi4, lam, dtype, fast)
    out2, lab2, _, res2 = _stepper_run(x2, phi4, lam, dtype, fast)
    d_ref, l_ref, _ = hard_energy_serial(x1, lab_old.astype(np.int64), 2**m, True)
    assert res1[4] == pytest.approx(d_ref, rel=1e-12)
    assert res1[5] == pytest.approx(l_ref, rel=1e-12)
    if fast:  # fast-math: the compiler may contract other products into FMAs per path
        assert_allclose(out1, out2, rtol=4 * np.finfo(np.float32).eps, atol=1e-7)
        assert np.count_nonzero(lab1 != lab2) <= 2
        return
    assert_array_equal(out1, out2)  # IEEE: bit for bit
    assert_array_equal(lab1, lab2)
    assert_allclose(res1[0], res2[0][:, :1], rtol=1e-12)  # means of the new labels
    assert_allclose(res1[3], res2[3], rtol=1e-12)  # squared changes
    assert res1[4] == pytest.approx(res2[4], rel=1e-12)
    assert res1[5] == pytest.approx(res2[5], rel=1e-12)

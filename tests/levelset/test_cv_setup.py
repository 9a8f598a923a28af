"""Set-up and finish of ``chan_vese`` (``_cv_setup_kernels``, ``split_bounds``): bit-identical to
the plain NumPy / one-thread versions, for any number of threads, and no aliasing of the reused
scratch buffers with the results."""

import numpy as np
import pytest

from varseg._threads import split_bounds
from varseg.energy import normalise_image
from varseg.levelset import _cv_kernels as ck
from varseg.levelset import chan_vese, initial_level_sets
from varseg.levelset._cv_setup_kernels import (
    classify_threads,
    final_energy_threads,
    normalised,
)
from varseg.levelset.heaviside import phase_memberships

RNG = np.random.default_rng(3)
U8 = RNG.integers(3, 250, size=(1, 37, 53), dtype=np.uint8)


def _same(a, b):
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


@pytest.mark.parametrize(
    "raw",
    [
        U8,
        U8.astype(np.float64) / 7.0 - 3.0,
        (U8 / 255.0).astype(np.float32),
        U8.astype(np.int16) - 300,
        U8 > 100,
        np.full((1, 5, 6), 7.5),
        np.array([[[-1e308, 1e308], [0.0, 1.0]]]),
        np.moveaxis(RNG.random((9, 11, 3)), -1, 0),  # a colour image, not contiguous
    ],
    ids=["uint8", "float64", "float32", "int16", "bool", "constant", "huge", "colour"],
)
@pytest.mark.parametrize("wdtype", [np.float32, np.float64])
def test_normalised_is_normalise_image_bit_for_bit(raw, wdtype):
    ref, rmin, rscale = normalise_image(raw, return_scale=True)
    x, xw, xmin, scale, constant = normalised(raw, wdtype)
    assert _same(x, ref) and x.flags.c_contiguous
    assert (xmin, scale) == (rmin, rscale)
    assert _same(xw, ref.astype(wdtype))
    assert constant == (float(ref.max()) == 0.0)


def test_normalised_by_hand():
    x, xw, xmin, scale, constant = normalised(np.array([[[2, 4], [6, 10]]], np.uint8), np.float32)
    np.testing.assert_array_equal(x, [[[0.0, 0.25], [0.5, 1.0]]])
    assert (xmin, scale, constant) == (2.0, 8.0, False)


def _problem(m, shape=(3, 29, 41)):
    x = normalise_image(RNG.random((2,) + shape))
    phi = RNG.standard_normal((m,) + shape).astype(np.float32)
    phi[0, 1, 2, :5] = 0.0  # exact zeros: the phi > 0 corrections
    xtot = np.append(x.reshape(2, -1).sum(axis=1), float(np.prod(shape)))
    return x, phi, xtot


@pytest.mark.parametrize("m", [1, 2, 3])
def test_classify_and_final_energy_do_not_depend_on_threads(m):
    x, phi, xtot = _problem(m)
    lab_ref = np.empty(x.shape[1:], np.uint8)
    ref = classify_threads(x, phi, lab_ref, xtot, 1)  # one thread: the serial block order
    m_lab, _ = ck.means_from_sums(*ref[:4])
    e_ref = final_energy_threads(x, lab_ref, m_lab, 1)[:2]
    assert ref[4] > 0  # the zeros were seen
    for threads in (2, 3, 7):
        lab = np.empty_like(lab_ref)
        got = classify_threads(x, phi, lab, xtot, threads)
        assert np.array_equal(lab, lab_ref)
        for a, b in zip(got, ref, strict=True):
            assert _same(np.asarray(a), np.asarray(b))
        data, length, lab64 = final_energy_threads(x, lab, m_lab, threads)
        assert (data, length) == e_ref  # the serial row order, exactly
        assert lab64.dtype == np.int64 and np.array_equal(lab64, lab_ref)


def test_final_energy_by_hand():
    x = np.zeros((1, 1, 2, 2))
    x[0, 0, :, 1] = 1.0  # two columns, means 0 and 1: no data term, 2 vertical edges
    lab = np.array([[[0, 1], [0, 1]]], np.uint8)
    data, length, lab64 = final_energy_threads(x, lab, np.array([[0.0], [1.0]]), 2)
    assert data == 0.0
    assert length == pytest.approx(4.0)  # each edge counted once from each side
    assert lab64.tolist() == lab.tolist()


@pytest.mark.parametrize("m", [1, 2, 3])
def test_memberships_do_not_depend_on_threads(m):
    phi = (RNG.standard_normal((m, 70, 130)) * 3).astype(np.float32)
    ref = phase_memberships(phi, 0.8)
    for threads in (2, 3, 5):
        assert _same(phase_memberships(phi, 0.8, threads), ref)
    np.testing.assert_allclose(ref.sum(axis=0), 1.0, rtol=1e-5)


@pytest.mark.parametrize("shape", [(17, 23), (4, 9, 11)])
@pytest.mark.parametrize("m", [1, 2, 3])
@pytest.mark.parametrize("init", ["checkerboard", "disk"])
def test_initial_level_sets_in_float32_are_the_rounded_float64(shape, m, init):
    ref = initial_level_sets(shape, m, init)
    got = initial_level_sets(shape, m, init, dtype=np.float32)
    assert _same(got, ref.astype(np.float32))
    assert ref.dtype == np.float64


def test_split_bounds_cover_the_range():
    for n, parts, align in [(10, 3, 1), (10000, 2, 4096), (5, 8, 1), (1, 2, 4096), (0, 2, 1)]:
        b = split_bounds(n, parts, align)
        assert b[0][0] == 0 and b[-1][1] == n
        assert all(p[1] == q[0] for p, q in zip(b[:-1], b[1:], strict=True))
        assert all(a % align == 0 for a, _ in b)
    assert split_bounds(10000, 2, 4096) == [(0, 4096), (4096, 10000)]


@pytest.mark.parametrize("n_iter", [3, 4])
def test_results_do_not_share_the_reused_buffers(n_iter):
    img = np.add.outer(np.arange(40.0), np.arange(50.0)) % 17
    first = chan_vese(img, 4, max_iter=n_iter, tol=0.0)
    keep = {k: np.copy(getattr(first, k)) for k in ("labels", "level_sets", "memberships")}
    again = chan_vese(img, 4, max_iter=n_iter, tol=0.0)
    chan_vese(img[::-1], 4, max_iter=n_iter + 1, tol=0.0)  # reuses the scratch buffers
    for k, v in keep.items():
        assert np.array_equal(getattr(first, k), v), k
        assert np.array_equal(getattr(again, k), v), k
        assert not np.shares_memory(getattr(first, k), getattr(again, k)), k
    assert first.labels.dtype == np.int64

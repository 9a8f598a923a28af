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

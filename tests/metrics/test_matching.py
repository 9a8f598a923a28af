"""Hungarian matching of unsupervised clusters to classes."""

import numpy as np
import pytest

from varseg import metrics as M


def test_recovers_a_permutation_exactly():
    rng = np.random.default_rng(0)
    target = rng.integers(0, 5, (16, 16))
    perm = rng.permutation(5)
    pred = perm[target] + 10  # arbitrary cluster ids
    out, mapping = M.match_labels(pred, target, return_mapping=True)
    np.testing.assert_array_equal(out, target)
    assert mapping == {int(perm[c]) + 10: c for c in range(5)}
    assert M.hungarian_dice(pred, target) == {c: 1.0 for c in range(5)}


def test_extra_clusters_new_or_best():
    target = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    pred = np.array([5, 5, 5, 7, 9, 9, 9, 9])
    # overlaps: 5->0: 3, 7->0: 1, 9->1: 4; Hungarian: 5->0, 9->1; 7 is left over
    np.testing.assert_array_equal(
        M.match_labels(pred, target), [0, 0, 0, 2, 1, 1, 1, 1]
    )  # "new": fresh id 2
    np.testing.assert_array_equal(
        M.match_labels(pred, target, unmatched="best"), [0, 0, 0, 0, 1, 1, 1, 1]
    )  # joins class 0
    # Dice after strict matching: class 0: 2*3/(3+4) = 6/7 ; class 1: 1
    d = M.hungarian_dice(pred, target)
    assert d[0] == pytest.approx(6 / 7) and d[1] == 1.0
    assert M.hungarian_dice(pred, target, unmatched="best") == {0: 1.0, 1: 1.0}


def test_fewer_clusters_and_ignore_index():
    target = np.array([0, 0, 1, 1, 2, 2, 255])
    pred = np.array([3, 3, 3, 3, 4, 4, 8])  # cluster 8 only on the ignored pixel
    out = M.match_labels(pred, target, ignore_index=255)
    # 3 overlaps classes 0 and 1 twice each (tie), 4 -> 2; 8 has no valid overlap, so the
    # solver's zero-overlap assignment of 8 is dropped and 8 gets a fresh id
    assert out[4] == 2 and out[5] == 2 and out[0] == out[2] in (0, 1)
    assert out[6] == 3  # fresh id: max class 2 + 1 (never 255)
    d = M.hungarian_dice(pred, target, ignore_index=255)
    assert sorted(d) == [0, 1, 2] and d[2] == 1.0
    # one class got the merged cluster: Dice 2*2/(4+2) = 2/3, the other none: 0
    assert sorted([d[0], d[1]]) == pytest.approx([0.0, 2 / 3])


def test_new_ids_skip_ignore_index():
    pred = np.array([10, 11, 12, 13])
    target = np.array([0, 1, 1, 1])
    out = M.match_labels(pred, target, ignore_index=2)
    # 10 -> 0, 11 -> 1 (first of the ties); 12 and 13 get fresh ids 3, 4, skipping 2
    np.testing.assert_array_equal(out, [0, 1, 3, 4])


def test_torch_and_errors():
    torch = pytest.importorskip("torch")
    target = np.array([[0, 1], [1, 1]])
    pred = np.array([[4, 2], [2, 2]])
    out = M.match_labels(torch.from_numpy(pred), torch.from_numpy(target))
    assert isinstance(out, np.ndarray)
    np.testing.assert_array_equal(out, target)
    with pytest.raises(ValueError, match="same shape"):
        M.match_labels(pred, target.ravel())
    with pytest.raises(ValueError, match="unmatched"):
        M.match_labels(pred, target, unmatched="drop")
    with pytest.raises(ValueError, match="pred contains NaN"):
        M.hungarian_dice(np.full((2, 2), np.nan), target)

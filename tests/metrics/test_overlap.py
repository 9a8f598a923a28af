"""Overlap metrics (confusion matrix, IoU/mIoU, Dice, precision, recall, accuracy):
hand-computed tiny cases, conventions for empty masks / absent classes, input checks,
torch vs NumPy."""

import numpy as np
import pytest

from varseg import metrics as M

# 2 x 3 three-class example used throughout.
# pixel:   a  b  c  d  e  f
# target:  0  1  2  2  2  1
# pred:    0  1  1  2  2  0
# confusion (rows = target, cols = pred):
#   t0: [1, 0, 0]   t1: [1, 1, 0]   t2: [0, 1, 2]
PRED = np.array([[0, 1, 1], [2, 2, 0]])
TARGET = np.array([[0, 1, 2], [2, 2, 1]])
CM = np.array([[1, 0, 0], [1, 1, 0], [0, 1, 2]])
# IoU  c0: 1/(1+2-1)=1/2   c1: 1/(2+2-1)=1/3   c2: 2/(3+2-2)=2/3   mean = 1.5/3 = 0.5
# Dice c0: 2/3             c1: 2/4               c2: 4/5
# prec c0: 1/2             c1: 1/2               c2: 2/2
# rec  c0: 1/1             c1: 1/2               c2: 2/3
# accuracy: 4 correct of 6
IOU = np.array([1 / 2, 1 / 3, 2 / 3])
DICE = np.array([2 / 3, 1 / 2, 4 / 5])
PREC = np.array([1 / 2, 1 / 2, 1.0])
REC = np.array([1.0, 1 / 2, 2 / 3])


def test_confusion_matrix_hand():
    cm = M.confusion_matrix(PRED, TARGET, 3)
    assert cm.dtype == np.int64 and cm.shape == (3, 3)
    np.testing.assert_array_equal(cm, CM)


def test_per_class_hand():
    np.testing.assert_allclose(M.iou(PRED, TARGET, 3), IOU)
    np.testing.assert_allclose(M.dice(PRED, TARGET, 3), DICE)
    np.testing.assert_allclose(M.precision(PRED, TARGET, 3), PREC)
    np.testing.assert_allclose(M.recall(PRED, TARGET, 3), REC)
    assert M.mean_iou(PRED, TARGET, 3) == pytest.approx(0.5)
    assert M.iou(PRED, TARGET, 3, average="macro") == pytest.approx(0.5)
    assert M.mean_iou(PRED, TARGET) == pytest.approx(0.5)  # num_classes inferred
    assert M.pixel_accuracy(PRED, TARGET) == pytest.approx(4 / 6)


def test_absent_class_is_nan_and_excluded():
    # K = 5: classes 3 and 4 occur nowhere -> NaN, the mean over present classes is unchanged
    per = M.iou(PRED, TARGET, 5)
    np.testing.assert_allclose(per[:3], IOU)
    assert np.isnan(per[3:]).all()
    assert M.mean_iou(PRED, TARGET, 5) == pytest.approx(0.5)


def test_class_in_target_never_predicted_counts_as_zero():
    pred = np.array([0, 0, 0, 0])
    target = np.array([0, 0, 1, 1])
    # c0: tp 2, |T| 2, |P| 4 -> 2/4 ; c1: tp 0, |T| 2 -> 0 (counted, not skipped)
    np.testing.assert_allclose(M.iou(pred, target, 2), [0.5, 0.0])
    assert M.mean_iou(pred, target, 2) == pytest.approx(0.25)  # AdvSemi-style would give 0.5
    # precision of the never-predicted class is undefined (NaN); recall is 0
    prec = M.precision(pred, target, 2)
    assert prec[0] == pytest.approx(0.5) and np.isnan(prec[1])
    np.testing.assert_allclose(M.recall(pred, target, 2), [1.0, 0.0])


def test_predicted_class_absent_from_target():
    pred = np.array([0, 1, 1, 0])
    target = np.array([0, 0, 0, 0])
    # c1 predicted twice, never in target: IoU 0 (counted), recall undefined (NaN)
    np.testing.assert_allclose(M.iou(pred, target, 2), [0.5, 0.0])
    rec = M.recall(pred, target, 2)
    assert rec[0] == pytest.approx(0.5) and np.isnan(rec[1])
    assert M.recall(pred, target, 2, average="macro") == pytest.approx(0.5)


def test_ignore_index():
    pred = np.array([0, 1, 7, 0])  # the 7 sits on an ignored pixel: never looked at
    target = np.array([0, 1, 255, 1])
    # kept pixels (t, p): (0,0) (1,1) (1,0) -> cm [[1,0],[1,1]]
    np.testing.assert_array_equal(
        M.confusion_matrix(pred, target, 2, ignore_index=255), [[1, 0], [1, 1]]
    )
    # c0: 1/(1+2-1) = 1/2 ; c1: 1/(2+1-1) = 1/2
    assert M.mean_iou(pred, target, 2, ignore_index=255) == pytest.approx(0.5)
    assert M.mean_iou(pred, target, ignore_index=255) == pytest.approx(0.5)
    assert M.pixel_accuracy(pred, target, ignore_index=255) == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="target contains label 255"):
        M.confusion_matrix(pred, target, 2)
    # binary mode: ignored pixels leave the counts too
    assert M.dice(np.array([1, 1, 0]), np.array([1, 255, 0]), ignore_index=255) == 1.0


def test_binary_hand():
    pred = np.array([1, 1, 0, 0, 1])
    target = np.array([1, 0, 0, 1, 1])
    # tp = 2, |P| = 3, |T| = 3, |P u T| = 4
    assert M.dice(pred, target) == pytest.approx(4 / 6)
    assert M.iou(pred, target) == pytest.approx(2 / 4)
    assert M.precision(pred, target) == pytest.approx(2 / 3)
    assert M.recall(pred, target) == pytest.approx(2 / 3)
    # another positive label: positive=0 -> P = {2,3}, T = {1,2}, tp = 1
    assert M.dice(pred, target, positive=0) == pytest.approx(2 / 4)
    # booleans work
    assert M.iou(pred.astype(bool), target.astype(bool)) == pytest.approx(0.5)


def test_binary_empty_masks():
    empty = np.zeros((3, 3), int)
    full = np.ones((3, 3), int)
    for f in (M.dice, M.iou, M.precision, M.recall):
        assert f(empty, empty) == 1.0  # two empty masks agree perfectly
        assert np.isnan(f(empty, empty, empty_score=np.nan))
        assert f(empty, full) == 0.0  # missed structure (precision: one-sided 0/0 -> 0)
        assert f(full, empty) == 0.0  # hallucinated structure (recall: one-sided 0/0 -> 0)


def test_per_sample():
    pred = np.array([[[1, 1]], [[0, 0]], [[1, 0]]])
    target = np.array([[[1, 0]], [[0, 0]], [[1, 0]]])
    # sample 0: tp 1, |P| 2, |T| 1 -> 2/3 ; sample 1: both empty -> 1 ; sample 2: exact -> 1
    np.testing.assert_allclose(M.dice(pred, target, per_sample=True), [2 / 3, 1.0, 1.0])
    # pooled: tp 2, |P| 3, |T| 2 -> 4/5
    assert M.dice(pred, target) == pytest.approx(4 / 5)
    per = M.iou(pred, target, 2, per_sample=True)
    assert per.shape == (3, 2)
    # sample 1 has only class 0 -> class 1 NaN
    np.testing.assert_allclose(per[1], [1.0, np.nan])
    np.testing.assert_allclose(M.pixel_accuracy(pred, target, per_sample=True), [0.5, 1, 1])
    macro = M.iou(pred, target, 2, average="macro", per_sample=True)
    # sample 0: c0 tp 0 of |T0 u P0| = 1 -> 0 ; c1 tp 1 of |T1 u P1| = 2 -> 1/2 ; mean 1/4
    np.testing.assert_allclose(macro, [(0 + 1 / 2) / 2, 1.0, 1.0])


def test_streaming_confusion_matrix():
    rng = np.random.default_rng(0)
    preds = [rng.integers(0, 4, (2, 5, 6)) for _ in range(3)]
    targets = [rng.integers(0, 4, (2, 5, 6)) for _ in range(3)]
    targets[1][0, 0, :] = 255
    acc = M.ConfusionMatrix(4, ignore_index=255, class_names="abcd")
    for p, t in zip(preds, targets, strict=True):
        acc.update(p, t)
    res = acc.compute()
    P, T = np.concatenate(preds), np.concatenate(targets)
    np.testing.assert_array_equal(
        res["confusion_matrix"], M.confusion_matrix(P, T, 4, ignore_index=255)
    )
    assert res["mIoU"] == pytest.approx(M.mean_iou(P, T, 4, ignore_index=255))
    assert res["accuracy"] == pytest.approx(M.pixel_accuracy(P, T, ignore_index=255))
    np.testing.assert_allclose(res["iou"], M.iou(P, T, 4, ignore_index=255))
    np.testing.assert_allclose(res["recall"], M.recall(P, T, 4, ignore_index=255))
    assert res["mean_recall"] == pytest.approx(np.mean(res["recall"]))
    assert res["n_pixels"] == P.size - 6 and res["class_names"] == list("abcd")
    other = M.ConfusionMatrix(4, ignore_index=255).update(preds[0], targets[0])
    acc.merge(other)
    assert acc.n_pixels == res["n_pixels"] + preds[0].size
    acc.reset()
    assert acc.n_pixels == 0 and np.isnan(acc.compute()["mIoU"])


def test_torch_and_numpy_agree():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    p = rng.integers(0, 3, (2, 7, 5))
    t = rng.integers(0, 3, (2, 7, 5))
    pt, tt = torch.from_numpy(p), torch.from_numpy(t)
    np.testing.assert_array_equal(M.confusion_matrix(pt, tt, 3), M.confusion_matrix(p, t, 3))
    for f in (M.iou, M.dice, M.precision, M.recall):
        np.testing.assert_allclose(f(pt, tt, 3), f(p, t, 3))
        assert f(pt, tt) == f(p, t)
        np.testing.assert_allclose(f(pt, tt, per_sample=True), f(p, t, per_sample=True))
    assert M.mean_iou(pt, tt, 3) == M.mean_iou(p, t, 3)
    assert M.pixel_accuracy(pt.float(), tt) == M.pixel_accuracy(p, t)
    assert M.dice(pt > 0, tt > 0) == M.dice(p > 0, t > 0)
    acc = M.ConfusionMatrix(3).update(pt, tt)
    assert acc.compute()["mIoU"] == M.mean_iou(p, t, 3)


def test_input_errors_name_the_argument():
    t = np.zeros((2, 3), int)
    with pytest.raises(ValueError, match="pred and target must have the same shape"):
        M.iou(np.zeros((3, 2), int), t)
    with pytest.raises(ValueError, match="pred contains NaN"):
        M.dice(np.full((2, 3), np.nan), t)
    with pytest.raises(ValueError, match="target must hold integer labels"):
        M.mean_iou(t, np.full((2, 3), 0.5), 2)
    with pytest.raises(ValueError, match="pred contains infinite"):
        M.pixel_accuracy(np.full((2, 3), np.inf), t)
    with pytest.raises(ValueError, match="pred must be an integer or boolean"):
        M.recall(np.full((2, 3), "a"), t)
    with pytest.raises(ValueError, match="pred contains label 3"):
        M.confusion_matrix(np.full((2, 3), 3), t, 3)
    with pytest.raises(ValueError, match="target contains label -1"):
        M.confusion_matrix(t, -np.ones((2, 3), int), 3)
    with pytest.raises(ValueError, match="num_classes"):
        M.confusion_matrix(t, t, 0)
    with pytest.raises(ValueError, match="average"):
        M.iou(t, t, 2, average="micro")
    with pytest.raises(ValueError, match="average='macro' needs num_classes"):
        M.iou(t, t, average="macro")
    # integer-valued floats are fine
    assert M.pixel_accuracy(t.astype(float), t) == 1.0

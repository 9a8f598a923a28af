"""Evaluation: the paper's metrics computed right, for known predictions."""

import json

import numpy as np
import pytest
import torch
from torch import nn
from train_fixtures import run_cli, write_bsds

from varseg.data import SyntheticShapes, build_dataset
from varseg.data.synthetic import class_levels
from varseg.metrics import bsds_region_scores
from varseg.train import TrainConfig, train
from varseg.train.evaluate import evaluate_model, write_results


class NearestLevel(nn.Module):
    """Logits ``-(x - level_k)^2``: exact on noiseless synthetic images; ``shift`` permutes
    the output channels (an unsupervised network's arbitrary cluster ids)."""

    def __init__(self, k, shift=0):
        super().__init__()
        self.register_buffer("levels", torch.from_numpy(class_levels(k)[0]))
        self.shift = shift

    def forward(self, x):
        logits = -((x[:, :1] - self.levels.view(1, -1, 1, 1)) ** 2)
        return torch.roll(logits, self.shift, dims=1)


class ColourRegions(nn.Module):
    """BSDS fixture images are colour coded: region id = brightest channel."""

    def forward(self, x):
        return x


def test_foreground_metrics_of_a_perfect_and_a_permuted_model():
    ds = SyntheticShapes(6, image_size=20, n_classes=3, noise=0.0, split="test")
    res = evaluate_model(NearestLevel(3), ds, dataset_name="synthetic", num_classes=3)
    assert res["dice"] == res["precision"] == res["recall"] == res["iou"] == 1.0
    assert res["accuracy"] == 1.0 and res["n_images"] == 6
    assert set(res["per_class"]) == {"class_1", "class_2"}
    shifted = evaluate_model(NearestLevel(3, shift=1), ds, dataset_name="synthetic", num_classes=3)
    assert shifted["dice"] < 0.5
    matched = evaluate_model(
        NearestLevel(3, shift=1), ds, dataset_name="synthetic", num_classes=3, unsupervised=True
    )
    assert matched["dice"] == 1.0 and matched["matching"] == "hungarian-per-image"


def test_bsds_scores_use_all_human_segmentations(tmp_path):
    root = write_bsds(tmp_path / "data", splits=(("test", 2),), size=(24, 28))
    ds = build_dataset("bsds500", root, "test", return_all_ground_truths=True, labels=False)
    res = evaluate_model(ColourRegions(), ds, dataset_name="bsds500", num_classes=3)
    segs = [ds[i]["image"].argmax(0).numpy() for i in range(len(ds))]
    gts = [[g.numpy() for g in ds[i]["ground_truths"]] for i in range(len(ds))]
    ref = bsds_region_scores(segs, gts)
    for key in ("covering", "PRI", "VI"):
        assert res[key] == pytest.approx(ref[key])
    assert res["PRI"] < 1.0  # the second annotator merged two regions
    # inference at a smaller size is resized back to the ground truth
    small = build_dataset(
        "bsds500", root, "test", return_all_ground_truths=True, labels=False, image_size=12
    )
    res_small = evaluate_model(ColourRegions(), small, dataset_name="bsds500", num_classes=3)
    assert 0 < res_small["covering"] <= 1


def test_evaluate_cli_writes_json(tmp_path, capsys):
    cfg = TrainConfig(
        dataset="synthetic",
        dataset_kw={"n_images": 4, "image_size": 16},
        model="unet",
        model_kw={"base_channels": 4, "depth": 1},
        max_steps=1,
        batch_size=2,
        device="cpu",
    ).validate()
    train(cfg, tmp_path / "run")
    out = tmp_path / "eval" / "metrics.json"
    assert (
        run_cli(
            "evaluate",
            [
                "--checkpoint",
                tmp_path / "run" / "last.pt",
                "--dataset-kw",
                '{"n_images": 3}',
                "--batch-size",
                "2",
                "--out",
                out,
            ],
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "dice" in printed and "time/image" in printed
    res = json.loads(out.read_text())
    assert {
        "dice",
        "precision",
        "recall",
        "iou",
        "time_per_image_s",
        "checkpoint",
        "split",
        "n_images",
        "step",
    } <= set(res)
    assert res["split"] == "test" and res["n_images"] == 3 and res["step"] == 1
    assert all(0 <= res[k] <= 1 for k in ("dice", "precision", "recall", "iou"))
    assert run_cli("evaluate", ["--checkpoint", tmp_path / "nothing.pt"]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_write_results_turns_nan_into_null(tmp_path):
    p = write_results(
        {"mIoU": float("nan"), "x": np.float32(0.5), "per": [1.0, float("inf")]},
        tmp_path / "r.json",
    )
    assert json.loads(p.read_text()) == {"mIoU": None, "x": 0.5, "per": [1.0, None]}


def test_scores_from_confusion_agree_with_the_pixel_metrics():
    from varseg.metrics import confusion_matrix, dice, iou, precision, recall
    from varseg.metrics.overlap import scores_from_confusion

    rng = np.random.default_rng(1)
    pred, target = rng.integers(0, 4, (2, 30, 30))
    pred[pred == 3] = 2  # class 3 is never predicted: precision 0/0 -> 0
    cm = confusion_matrix(pred, target, 4)
    for c in range(4):
        got = scores_from_confusion(cm, c)
        for name, fn in (
            ("dice", dice),
            ("precision", precision),
            ("recall", recall),
            ("iou", iou),
        ):
            assert got[name] == pytest.approx(fn(pred, target, positive=c)), (c, name)
    assert scores_from_confusion(cm, 3)["precision"] == 0.0
    # hand-computed: TP 2, FP 1, FN 2
    assert scores_from_confusion([[5, 1], [2, 2]], 1) == pytest.approx(
        {"dice": 4 / 7, "precision": 2 / 3, "recall": 0.5, "iou": 0.4}
    )
    assert scores_from_confusion(np.zeros((2, 2)), 1)["dice"] == 1.0  # both empty
    with pytest.raises(ValueError, match="c must be in 0..1"):
        scores_from_confusion([[1, 0], [0, 1]], 2)

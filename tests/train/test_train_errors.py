"""Bad inputs to training and evaluation (issue 11): one line, exit 2, nothing half-done."""

import json
import warnings

import numpy as np
import pytest
import torch
from test_train_evaluate import NearestLevel
from train_fixtures import run_cli

from varseg.data import SyntheticShapes
from varseg.train import TrainConfig, list_configs, load_config, train
from varseg.train.evaluate import evaluate_model

TINY = {"base_channels": 4, "depth": 1}


def _tiny(**kw):
    base = dict(
        dataset="synthetic",
        dataset_kw={"n_images": 4, "image_size": 16},
        model="unet",
        model_kw=TINY,
        max_steps=1,
        batch_size=2,
        device="cpu",
    )
    base.update(kw)
    return TrainConfig(**base)


def _one_line(capsys):
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    return err


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    run = tmp_path_factory.mktemp("ev") / "run"
    train(_tiny().validate(), run)
    return run / "last.pt"


@pytest.mark.parametrize(
    "flag,value,unknown,accepted",
    [
        ("--model-kw", '{"foo": 1}', "foo", "base_channels"),
        ("--dataset-kw", '{"foo": 1}', "foo", "n_images"),
    ],
)
def test_unknown_keyword_arguments_name_the_key_and_the_accepted_ones(
    tmp_path, capsys, flag, value, unknown, accepted
):
    args = [
        "--dataset",
        "synthetic",
        "--model",
        "unet",
        "--max-steps",
        "1",
        "--device",
        "cpu",
        "--no-progress",
        "--out",
        tmp_path / "run",
        flag,
        value,
    ]
    assert run_cli("train", args) == 2
    err = _one_line(capsys)
    assert f"['{unknown}']" in err and accepted in err
    assert not (tmp_path / "run").exists()


def test_evaluate_refuses_unknown_dataset_kw_and_split(checkpoint, capsys):
    assert run_cli("evaluate", ["--checkpoint", checkpoint, "--dataset-kw", '{"foo": 1}']) == 2
    assert "['foo']" in _one_line(capsys)
    assert run_cli("evaluate", ["--checkpoint", checkpoint, "--split", "nope"]) == 2
    err = _one_line(capsys)
    assert "'nope'" in err and "train, val, test" in err


def test_frozen_batch_norm_needs_pretrained_weights():
    with pytest.raises(ValueError, match="freeze_bn.*pretrained_backbone"):
        _tiny(model="deeplabv2", model_kw={"depth": 50, "freeze_bn": True}).validate()
    ok = _tiny(
        model="deeplabv2",
        model_kw={"depth": 50, "freeze_bn": True, "pretrained_backbone": "resnet50.pth"},
    )
    assert ok.validate().model_kw["freeze_bn"] is True
    for name in list_configs():  # no shipped config freezes a random backbone
        kw = load_config(name).model_kw
        assert not kw.get("freeze_bn") or kw.get("pretrained_backbone"), name


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-CUDA message")
def test_cuda_without_cuda_is_one_line(tmp_path, checkpoint, capsys):
    args = [
        "--dataset",
        "synthetic",
        "--model",
        "unet",
        "--model-kw",
        json.dumps(TINY),
        "--max-steps",
        "1",
        "--device",
        "cuda",
        "--no-progress",
        "--out",
        tmp_path / "r",
    ]
    assert run_cli("train", args) == 2
    assert "CUDA is not available" in _one_line(capsys)
    assert not (tmp_path / "r" / "config.json").exists()
    assert run_cli("evaluate", ["--checkpoint", checkpoint, "--device", "cuda"]) == 2
    assert "CUDA is not available" in _one_line(capsys)


class _DropLabel(torch.utils.data.Dataset):
    """Synthetic images where item ``missing`` has no ground truth (all pixels void)."""

    def __init__(self, missing):
        self.ds = SyntheticShapes(4, image_size=16, n_classes=3, noise=0.0, split="test")
        self.missing = missing

    def __len__(self):
        return len(self.ds)

    def __getitem__(self, i):
        item = dict(self.ds[i])
        if i == self.missing:
            item["label"] = torch.full_like(item["label"], self.ds.ignore_index)
        return item


def test_an_image_without_ground_truth_is_an_error_or_explicitly_skipped():
    ds = _DropLabel(missing=2)
    with pytest.raises(ValueError, match="synthetic-test-00002 has no ground truth"):
        evaluate_model(NearestLevel(3), ds, dataset_name="synthetic", num_classes=3)
    res = evaluate_model(
        NearestLevel(3), ds, dataset_name="synthetic", num_classes=3, skip_missing=True
    )
    assert res["n_images"] == 3 and res["n_skipped"] == 1
    assert res["skipped"] == ["synthetic-test-00002"] and res["dice"] == 1.0


def test_ms_weight_and_its_deprecated_alias():
    with pytest.warns(DeprecationWarning, match="lambda_ms"):
        cfg = TrainConfig.from_dict({"max_steps": 1, "lambda_ms": 0.25})
    assert cfg.ms_weight == 0.25
    with pytest.warns(DeprecationWarning):
        assert cfg.replace(lambda_ms=0.5).ms_weight == 0.5
    with pytest.warns(DeprecationWarning):
        assert cfg.set_option("lambda-ms", 0.75).ms_weight == 0.75
    with pytest.warns(DeprecationWarning):
        assert cfg.lambda_ms == 0.25
    with pytest.raises(ValueError, match="disagree"), warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        TrainConfig.from_dict({"max_steps": 1, "lambda_ms": 0.25, "ms_weight": 1.0})
    assert "lambda_ms" not in cfg.to_dict() and cfg.to_dict()["ms_weight"] == 0.25
    assert all("lambda_ms" not in load_config(n).to_dict() for n in list_configs())


def test_deprecated_cli_flag_gives_the_same_run(tmp_path):
    common = [
        "--dataset",
        "synthetic",
        "--dataset-kw",
        '{"n_images": 4, "image_size": 16}',
        "--model",
        "unet",
        "--model-kw",
        json.dumps(TINY),
        "--max-steps",
        "1",
        "--batch-size",
        "2",
        "--device",
        "cpu",
        "--no-progress",
    ]
    assert run_cli("train", [*common, "--ms-weight", "0.5", "--out", tmp_path / "a"]) == 0
    with pytest.warns(DeprecationWarning, match="--lambda-ms"):
        assert run_cli("train", [*common, "--lambda-ms", "0.5", "--out", tmp_path / "b"]) == 0
    rows = [json.loads((tmp_path / d / "metrics.json").read_text())[0] for d in "ab"]
    assert rows[0]["ms"] == rows[1]["ms"] and np.isfinite(rows[0]["ms"])

"""Smoke runs of the shipped paper configs on tiny fixtures in the real formats, then
``varseg evaluate`` with the paper's metrics (a few CPU steps each, tiny networks)."""

import json

import numpy as np
import pytest
import torch
from train_fixtures import run_cli, write_brats, write_bsds, write_lits, write_voc

TINY_UNET = '{"base_channels": 4, "depth": 2}'
COMMON = ["--device", "cpu", "--no-progress", "--num-workers", "0", "--log-every", "1"]


def _train_then_evaluate(tmp_path, train_args, eval_args):
    run = tmp_path / "run"
    assert run_cli("train", [*train_args, *COMMON, "--out", run]) == 0
    assert (run / "last.pt").is_file() and (run / "metrics.csv").is_file()
    rows = json.loads((run / "metrics.json").read_text())
    assert rows and all(torch.isfinite(torch.tensor(r["loss"])) for r in rows if "loss" in r)
    out = tmp_path / "eval.json"
    assert (
        run_cli(
            "evaluate",
            [
                "--checkpoint",
                run / "last.pt",
                *eval_args,
                "--device",
                "cpu",
                "--no-progress",
                "--out",
                out,
            ],
        )
        == 0
    )
    res = json.loads(out.read_text())
    assert res["n_images"] > 0 and np.isfinite(res["time_per_image_s"])
    return run, res


def _in_unit(*values):
    return all(v is not None and 0.0 <= v <= 1.0 for v in values)


def test_voc_advsemi_ms_smoke(tmp_path):
    root = write_voc(tmp_path / "data")
    run, res = _train_then_evaluate(
        tmp_path,
        [
            "--config",
            "voc-advsemi-ms-1-8",
            "--root",
            root,
            "--model",
            "unet",
            "--set",
            f"model_kw={TINY_UNET}",
            "--crop-size",
            "33",
            "--batch-size",
            "1",
            "--max-steps",
            "2",
            "--set",
            "advsemi.ndf=8",
            "--set",
            "advsemi.semi_start=1",
            "--set",
            "advsemi.mask_T=0.0",
        ],
        ["--dataset", "voc", "--root", root, "--split", "val"],
    )
    rows = [r for r in json.loads((run / "metrics.json").read_text()) if r["kind"] == "step"]
    assert {"ce", "adv", "semi", "semi_adv", "ms", "d_loss", "loss"} <= set(rows[0])
    assert rows[0]["semi"] == 0 and rows[1]["semi"] > 0  # self-training from step 1
    ck = torch.load(run / "last.pt", weights_only=True)
    assert "discriminator" in ck["mode_state"] and "d_optimizer" in ck["mode_state"]
    lrs = [r["lr"] for r in rows]
    assert lrs[1] < lrs[0]  # poly schedule
    assert {"mIoU", "accuracy", "recall", "precision", "per_class_iou"} <= set(res)
    assert _in_unit(res["mIoU"], res["accuracy"], res["recall"])
    assert len(res["per_class_iou"]) == 21


def test_deeplab_optimizer_groups_follow_advsemi():
    from varseg.models import DeepLabV2
    from varseg.train import load_config
    from varseg.train.builders import build_optimizer

    cfg = load_config("voc-advsemi-ms-1-8")
    net = DeepLabV2(3, 21, depth=50, freeze_bn=True)
    opt = build_optimizer(cfg, net)
    assert isinstance(opt, torch.optim.SGD)
    backbone, head = opt.param_groups
    assert backbone["lr"] == 2.5e-4 and head["lr"] == pytest.approx(2.5e-3)
    assert head["momentum"] == 0.9 and head["weight_decay"] == 5e-4
    frozen = {
        id(p)
        for m in net.backbone.modules()
        if isinstance(m, torch.nn.BatchNorm2d)
        for p in m.parameters()
    }
    assert not frozen & {id(p) for g in opt.param_groups for p in g["params"]}


def test_lits_semi_supervised_smoke(tmp_path):
    root = write_lits(tmp_path / "data")
    run, res = _train_then_evaluate(
        tmp_path,
        [
            "--config",
            "lits-unet-ms-1-3",
            "--root",
            root,
            "--model-kw",
            TINY_UNET,
            "--image-size",
            "16",
            "--batch-size",
            "2",
            "--max-steps",
            "3",
            "--lr",
            "1e-3",
        ],
        ["--dataset", "lits", "--root", root, "--split", "val"],
    )
    split = json.loads((run / "labeled_split.json").read_text())
    assert split["meta"]["by_case"] is True and split["n_labeled"] == 4  # 1 of 2 scans
    assert {"dice", "precision", "recall", "iou"} <= set(res)
    assert _in_unit(res["dice"], res["precision"], res["recall"], res["iou"])
    assert set(res["per_class"]) == {"liver", "tumour"}


def test_brats_supervised_ms_smoke(tmp_path):
    root = write_brats(tmp_path / "data")
    run, res = _train_then_evaluate(
        tmp_path,
        [
            "--config",
            "brats-unet-ms-1-4",
            "--root",
            root,
            "--model-kw",
            TINY_UNET,
            "--mode",
            "supervised",
            "--ms-weight",
            "1e-4",
            "--batch-size",
            "2",
            "--max-steps",
            "2",
        ],
        ["--split", "val"],
    )  # dataset and root default to the training ones
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["mode"] == "supervised" and cfg["dataset"] == "brats"
    ck = torch.load(run / "last.pt", weights_only=True)
    assert ck["model_config"]["in_channels"] == 12 and ck["model_name"] == "polyphase-unet"
    assert _in_unit(res["dice"], res["precision"], res["recall"], res["iou"])
    assert res["dataset"] == "brats" and res["split"] == "val"


def test_bsds_unsupervised_bias_smoke(tmp_path):
    root = write_bsds(tmp_path / "data")
    run, res = _train_then_evaluate(
        tmp_path,
        [
            "--config",
            "bsds-unet-ms",
            "--root",
            root,
            "--model-kw",
            TINY_UNET,
            "--image-size",
            "32",
            "--num-classes",
            "3",
            "--batch-size",
            "2",
            "--max-steps",
            "2",
        ],
        ["--dataset", "bsds500", "--root", root, "--split", "test"],
    )
    ck = torch.load(run / "last.pt", weights_only=True)
    assert ck["model_config"]["bias_field"] is True and ck["model_config"]["num_classes"] == 3
    assert {"covering", "PRI", "VI"} <= set(res)
    assert _in_unit(res["covering"], res["PRI"]) and np.isfinite(res["VI"])
    assert res["n_images"] == 2


@pytest.mark.parametrize("bad,msg", [(["--dataset", "voc"], "root"), (["--model", "vgg"], "unet")])
def test_cli_argument_errors(tmp_path, capsys, bad, msg):
    args = ["--dataset", "synthetic", "--max-steps", "1", *bad, "--out", tmp_path / "r"]
    assert run_cli("train", args) == 2
    assert msg in capsys.readouterr().err

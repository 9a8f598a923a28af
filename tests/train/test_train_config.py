"""Shipped experiment configs, validation and command-line overrides."""

import json

import pytest
from train_fixtures import run_cli

from varseg.train import TrainConfig, list_configs, load_config
from varseg.train.config import config_path


def test_every_shipped_config_loads_and_validates():
    names = list_configs()
    expected = {
        "synthetic-sweep",
        "bsds-unet-ms",
        "brats-unet-1-4",
        "brats-unet-ms-1-4",
        "voc-advsemi-1-8",
        "voc-advsemi-ms-1-8",
        "voc-advsemi-ms-1-4",
        "voc-advsemi-ms-1-2",
        "voc-deeplab-1-8",
        "voc-unsup-unet-ms-bias",
        "lits-unet-1-23",
        "lits-unet-ms-1-23",
        "lits-unet-ms-1-10",
        "lits-unet-ms-1-3",
    }
    assert expected <= set(names)
    for name in names:
        cfg = load_config(name)
        assert cfg.name == name
        assert cfg.description
        raw = json.loads(config_path(name).read_text())
        assert set(raw) <= set(TrainConfig.field_names())


def test_paper_schedules():
    lits = load_config("lits-unet-ms-1-10")
    assert (lits.optimizer, lits.schedule, lits.lr_step_epochs, lits.lr_gamma) == (
        "adam",
        "step",
        20,
        0.5,
    )
    assert (lits.batch_size, lits.epochs, lits.model, lits.mode) == (
        4,
        50,
        "polyphase-unet",
        "semi",
    )
    assert lits.labeled_fraction == "1/10" and lits.ms_weight > 0
    assert load_config("lits-unet-1-10").ms_weight == 0
    brats = load_config("brats-unet-ms-1-4")
    assert (brats.epochs, brats.batch_size, brats.schedule) == (40, 4, "step")
    assert brats.labeled_fraction == "1/4"
    bsds = load_config("bsds-unet-ms")
    assert (bsds.model, bsds.optimizer, bsds.epochs, bsds.batch_size) == ("unet", "adam", 700, 4)
    assert bsds.mode == "unsupervised" and bsds.bias_field
    voc = load_config("voc-advsemi-ms-1-8")
    assert (voc.optimizer, voc.lr, voc.momentum, voc.weight_decay) == ("sgd", 2.5e-4, 0.9, 5e-4)
    assert (voc.schedule, voc.poly_power, voc.max_steps, voc.batch_size, voc.crop_size) == (
        "poly",
        0.9,
        20000,
        10,
        321,
    )
    assert voc.head_lr_mult == 10 and voc.mode == "advsemi" and voc.ms_weight > 0
    a = voc.advsemi
    assert (
        a["d_lr"],
        a["d_betas"],
        a["lambda_adv"],
        a["lambda_semi"],
        a["mask_T"],
        a["semi_start"],
    ) == (1e-4, [0.9, 0.99], 0.01, 0.1, 0.2, 5000)
    assert load_config("voc-advsemi-1-8").ms_weight == 0


@pytest.mark.parametrize(
    "field,value,word",
    [
        ("dataset", "imagenet", "voc"),
        ("model", "resnet", "unet"),
        ("mode", "magic", "advsemi"),
        ("optimizer", "lbfgs", "sgd"),
        ("schedule", "cosine", "poly"),
    ],
)
def test_unknown_choices_list_the_valid_ones(field, value, word):
    with pytest.raises(ValueError, match=word):
        TrainConfig(max_steps=1).replace(**{field: value})


def test_unknown_config_name_and_key():
    with pytest.raises(ValueError, match="synthetic-sweep"):
        load_config("no-such-experiment")
    with pytest.raises(ValueError, match="valid keys"):
        TrainConfig.from_dict({"max_steps": 1, "learning_rate": 0.1})
    with pytest.raises(ValueError, match="epochs or max_steps"):
        TrainConfig().validate()
    with pytest.raises(ValueError, match="advsemi"):
        TrainConfig(max_steps=1, mode="advsemi", advsemi={"lambda_foo": 1}).validate()


def test_set_option_nested_and_aliases():
    cfg = load_config("voc-advsemi-ms-1-8").set_option("advsemi.mask_T", 0.3)
    assert cfg.advsemi["mask_T"] == 0.3 and cfg.advsemi["lambda_adv"] == 0.01
    assert TrainConfig(max_steps=1, dataset="BSDS").validate().dataset == "bsds500"


def test_cli_overrides_and_list(tmp_path, capsys):
    from varseg.commands.train import add_arguments, build_config

    assert run_cli("train", ["--list-configs"]) == 0
    out = capsys.readouterr().out
    assert "synthetic-sweep" in out and "lits-unet-ms-1-23" in out
    import argparse

    p = argparse.ArgumentParser()
    add_arguments(p)
    args = p.parse_args(
        [
            "--config",
            "lits-unet-ms-1-10",
            "--root",
            str(tmp_path),
            "--lr",
            "3e-4",
            "--max-steps",
            "7",
            "--image-size",
            "64,48",
            "--model-kw",
            '{"base_channels": 8}',
            "--set",
            "advsemi.ndf=16",
            "--out",
            str(tmp_path / "run"),
        ]
    )
    cfg = build_config(args)
    assert cfg.lr == 3e-4 and cfg.max_steps == 7 and cfg.epochs == 50
    assert cfg.image_size == [64, 48]
    assert cfg.model_kw == {"base_channels": 8, "depth": 4}
    assert cfg.advsemi == {"ndf": 16}
    assert run_cli("train", ["--config", "nope", "--out", tmp_path / "x"]) == 2
    assert "unknown config" in capsys.readouterr().err

"""varseg.bench.models: the throughput benchmark runs end to end (no timing thresholds)."""

import argparse

import pytest

from varseg.bench.models import add_arguments, main


def test_arguments_defaults():
    args = add_arguments(argparse.ArgumentParser()).parse_args([])
    assert args.batch_size == 2 and args.repeats == 3 and args.device == "auto"
    assert not args.small


def test_small_run_reports_positive_numbers(capsys):
    parser = add_arguments(argparse.ArgumentParser())
    args = parser.parse_args(
        [
            "--models",
            "kanezaki",
            "polyphase-unet",
            "--device",
            "cpu",
            "--batch-size",
            "1",
            "--repeats",
            "1",
            "--small",
        ]
    )
    report = main(args)
    assert report["device"] == "cpu" and report["small"]
    keys = set(report["results"])
    assert keys == {
        "kanezaki/BSDS",
        "polyphase-unet/LiTS",
        "polyphase-unet/BraTS",
        "polyphase-unet/BSDS",
    }
    for r in report["results"].values():
        assert r["images_per_second"] == pytest.approx(
            r["input_shape"][0] / r["seconds_per_iteration"], rel=1e-9
        )
        assert r["parameters"] > 0
    assert report["results"]["polyphase-unet/BraTS"]["input_shape"][1] == 12
    assert "img/s" in capsys.readouterr().out

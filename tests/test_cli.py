"""The varseg command line: --help everywhere, segment end to end, clean errors."""

import numpy as np
import pytest
from PIL import Image

from varseg.cli import COMMANDS, main
from varseg.result import Segmentation


@pytest.mark.parametrize(
    "argv", [[]] + [[c] for c in COMMANDS] + [["bench", t] for t in ("chan-vese", "loss", "models")]
)
def test_help_on_every_subcommand(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv + ["--help"])
    assert exc.value.code == 0
    assert "usage: varseg" in capsys.readouterr().out


@pytest.mark.parametrize("method", ["chan-vese", "fixed-point", "lic", "kmeans"])
def test_segment_writes_outputs(tmp_path, method):
    rng = np.random.default_rng(0)
    lab = np.zeros((40, 40), dtype=np.uint8)
    lab[10:30, 8:28] = 1
    img = (60 + 140 * lab + rng.normal(0, 10, lab.shape)).clip(0, 255).astype(np.uint8)
    Image.fromarray(img).save(tmp_path / "in.png")
    out = tmp_path / "out"
    assert (
        main(
            [
                "segment",
                str(tmp_path / "in.png"),
                "--method",
                method,
                "--phases",
                "2",
                "--max-iter",
                "60",
                "-o",
                str(out),
            ]
        )
        == 0
    )
    for name in (f"{method}_labels.png", f"{method}_overlay.png", f"{method}.npz"):
        assert (out / name).exists()
    res = Segmentation.load(out / f"{method}.npz")
    inside = res.labels[lab == 1]
    outside = res.labels[lab == 0]
    # the square is one region, the background another
    assert (inside == np.bincount(inside).argmax()).mean() > 0.98
    assert (outside != np.bincount(inside).argmax()).mean() > 0.98


def test_segment_errors_write_nothing(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["segment", str(tmp_path / "missing.png"), "-o", str(out)]) == 2
    assert "not found" in capsys.readouterr().err
    assert not out.exists()
    np.save(tmp_path / "nan.npy", np.full((8, 8), np.nan))
    assert main(["segment", str(tmp_path / "nan.npy"), "-o", str(out)]) == 2
    assert "NaN" in capsys.readouterr().err
    np.save(tmp_path / "ok.npy", np.random.default_rng(0).random((8, 8)))
    assert main(["segment", str(tmp_path / "ok.npy"), "--phases", "3", "-o", str(out)]) == 2
    assert "power of two" in capsys.readouterr().err
    assert not out.exists()


def test_segment_rejects_options_the_method_lacks(tmp_path, capsys):
    np.save(tmp_path / "ok.npy", np.random.default_rng(0).random((8, 8)))
    assert (
        main(
            [
                "segment",
                str(tmp_path / "ok.npy"),
                "--method",
                "otsu",
                "--mu",
                "0.1",
                "-o",
                str(tmp_path / "o"),
            ]
        )
        == 2
    )
    assert "does not take option 'mu'" in capsys.readouterr().err

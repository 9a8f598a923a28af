"""``varseg compare``: the command writes the report, the CSV, figures and results."""
import csv

import numpy as np
import pytest
from PIL import Image

from varseg.cli import main
from varseg.compare import ComparisonTable
from varseg.result import Segmentation


@pytest.fixture
def image_file(tmp_path):
    rng = np.random.default_rng(0)
    gt = np.zeros((40, 48), np.uint8)
    gt[8:30, 10:36] = 1
    img = np.clip(60 + 120 * gt + 12 * rng.standard_normal(gt.shape), 0, 255).astype(np.uint8)
    Image.fromarray(img).save(tmp_path / "img.png")
    Image.fromarray(gt).save(tmp_path / "gt.png")
    return tmp_path / "img.png", tmp_path / "gt.png"


def test_compare_command_writes_report(tmp_path, image_file, capsys):
    img, gt = image_file
    out = tmp_path / "out"
    rc = main(["compare", str(img), "--gt", str(gt), "--methods", "kmeans", "otsu",
               "--lam", "0.2", "-q", "-o", str(out)])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "kmeans" in printed and "otsu" in printed and "report.md" in printed
    for name in ("report.md", "results.csv", "results.json", "comparison.png",
                 "energy_iteration.png", "energy_time.png", "kmeans.npz", "otsu.npz",
                 "otsu_labels.png", "otsu_overlay.png"):
        assert (out / name).is_file(), name
    report = (out / "report.md").read_text()
    assert "| method | energy" in report and "![" in report and "comparison.png" in report
    assert "λ = 0.2" in report
    with open(out / "results.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["method"] for r in rows] == ["kmeans", "otsu"]
    assert float(rows[0]["dice"]) > 0.95 and float(rows[0]["lam"]) == 0.2
    table = ComparisonTable.from_csv(out / "results.csv")
    res = Segmentation.load(out / "otsu.npz")
    assert res.labels.shape == (40, 48)
    assert table.row("otsu")["energy"] == pytest.approx(
        __import__("varseg.compare", fromlist=["x"]).shared_energy(
            np.asarray(Image.open(img), float), res.labels, 0.2).total)


def test_compare_command_params_and_max_size(tmp_path, image_file):
    img, _ = image_file
    out = tmp_path / "o2"
    rc = main(["compare", str(img), "--methods", "kmeans", "--param", "kmeans.max_iter=3",
               "--phases", "3", "--max-size", "20", "--no-figures", "-q", "-o", str(out)])
    assert rc == 0
    res = Segmentation.load(out / "kmeans.npz")
    assert res.labels.shape == (17, 20)  # downscaled: largest side 20
    assert res.params["max_iter"] == 3 and res.n_phases == 3
    assert not (out / "comparison.png").exists()
    assert "Downscaled" in (out / "report.md").read_text()


def test_compare_command_errors(tmp_path, image_file, capsys):
    img, _ = image_file
    assert main(["compare", str(tmp_path / "missing.png"), "-o", str(tmp_path / "x")]) == 2
    assert "not found" in capsys.readouterr().err
    assert main(["compare", str(img), "--methods", "otsu", "--param", "nokey=1", "-q",
                 "-o", str(tmp_path / "y")]) == 2
    assert "nokey" in capsys.readouterr().err


def test_compare_command_dataset_mode(tmp_path, image_file):
    img, gt = image_file
    d_img, d_gt = tmp_path / "imgs", tmp_path / "gts"
    d_img.mkdir()
    d_gt.mkdir()
    for k in range(2):
        (d_img / f"i{k}.png").write_bytes(img.read_bytes())
        (d_gt / f"i{k}.png").write_bytes(gt.read_bytes())
    out = tmp_path / "ds"
    rc = main(["compare", str(d_img), "--gt", str(d_gt), "--methods", "otsu", "-q",
               "-o", str(out)])
    assert rc == 0
    for name in ("report.md", "results.csv", "per_image.csv", "results.json"):
        assert (out / name).is_file()
    t = ComparisonTable.from_json(out / "results.json")
    assert t.row("otsu")["n_images"] == 2 and len(t.per_image) == 2

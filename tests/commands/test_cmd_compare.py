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
    rc = main(
        [
            "compare",
            str(img),
            "--gt",
            str(gt),
            "--methods",
            "kmeans",
            "otsu",
            "--lam",
            "0.2",
            "-q",
            "-o",
            str(out),
        ]
    )
    assert rc == 0
    printed = capsys.readouterr().out
    assert "kmeans" in printed and "otsu" in printed and "report.md" in printed
    for name in (
        "report.md",
        "results.csv",
        "results.json",
        "comparison.png",
        "energy_iteration.png",
        "energy_time.png",
        "kmeans.npz",
        "otsu.npz",
        "otsu_labels.png",
        "otsu_overlay.png",
    ):
        assert (out / name).is_file(), name
    report = (out / "report.md").read_text(encoding="utf-8")
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
        __import__("varseg.compare", fromlist=["x"])
        .shared_energy(np.asarray(Image.open(img), float), res.labels, 0.2)
        .total
    )


def test_compare_command_params_and_max_size(tmp_path, image_file):
    img, _ = image_file
    out = tmp_path / "o2"
    rc = main(
        [
            "compare",
            str(img),
            "--methods",
            "kmeans",
            "--param",
            "kmeans.max_iter=3",
            "--phases",
            "3",
            "--max-size",
            "20",
            "--no-figures",
            "-q",
            "-o",
            str(out),
        ]
    )
    assert rc == 0
    res = Segmentation.load(out / "kmeans.npz")
    assert res.labels.shape == (17, 20)  # downscaled: largest side 20
    assert res.params["max_iter"] == 3 and res.n_phases == 3
    assert not (out / "comparison.png").exists()
    assert "Downscaled" in (out / "report.md").read_text(encoding="utf-8")


def test_compare_command_errors(tmp_path, image_file, capsys):
    img, _ = image_file
    assert main(["compare", str(tmp_path / "missing.png"), "-o", str(tmp_path / "x")]) == 2
    assert "not found" in capsys.readouterr().err
    assert (
        main(
            [
                "compare",
                str(img),
                "--methods",
                "otsu",
                "--param",
                "nokey=1",
                "-q",
                "-o",
                str(tmp_path / "y"),
            ]
        )
        == 2
    )
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
    rc = main(["compare", str(d_img), "--gt", str(d_gt), "--methods", "otsu", "-q", "-o", str(out)])
    assert rc == 0
    for name in ("report.md", "results.csv", "per_image.csv", "results.json"):
        assert (out / name).is_file()
    t = ComparisonTable.from_json(out / "results.json")
    assert t.row("otsu")["n_images"] == 2 and len(t.per_image) == 2


def _one_error_line(err):
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["--max-size", "-5"], "--max-size must be a non-negative integer"),
        (["--phases", "1"], "--phases must be a >= 2 integer"),
        (["--jobs", "0"], "--jobs must be a positive integer"),
        (["--max-iter", "0"], "--max-iter must be a positive integer"),
        (["--param", "kmeans.nokey=1"], "method 'kmeans' has no option 'nokey'"),
    ],
)
def test_compare_command_refuses_bad_numbers_before_work(
    tmp_path, image_file, capsys, argv, needle
):
    img, _ = image_file
    out = tmp_path / "never"
    rc = main(["compare", str(img), "--methods", "kmeans", "-q", "-o", str(out), *argv])
    assert rc == 2
    assert needle in _one_error_line(capsys.readouterr().err)
    assert not out.exists()


def test_compare_command_output_must_be_a_usable_folder(tmp_path, image_file, capsys):
    img, _ = image_file
    a_file = tmp_path / "taken.txt"
    a_file.write_text("keep me")
    for target in (a_file, a_file / "inside"):
        rc = main(["compare", str(img), "--methods", "kmeans", "-q", "-o", str(target)])
        assert rc == 2
        line = _one_error_line(capsys.readouterr().err)
        assert "-o/--out" in line and str(a_file) in line
    assert a_file.read_text() == "keep me"


def test_compare_command_every_method_failing_is_an_error(tmp_path, image_file, capsys):
    img, _ = image_file
    out = tmp_path / "fail"
    # a negative number of histogram bins makes Otsu fail on every image
    rc = main(
        [
            "compare",
            str(img),
            "--methods",
            "otsu",
            "--param",
            "otsu.nbins=-3",
            "--no-figures",
            "-q",
            "-o",
            str(out),
        ]
    )
    assert rc == 2
    line = _one_error_line(capsys.readouterr().err)
    assert "every method failed" in line and "otsu" in line and "bins" in line
    assert not (out / "report.md").exists() and not (out / "results.csv").exists()


def test_compare_command_writes_html_report(tmp_path, image_file):
    img, gt = image_file
    out = tmp_path / "html"
    assert (
        main(
            [
                "compare",
                str(img),
                "--gt",
                str(gt),
                "--methods",
                "kmeans",
                "otsu",
                "-q",
                "-o",
                str(out),
            ]
        )
        == 0
    )
    page = (out / "report.html").read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and "</html>" in page
    assert "http://" not in page and "https://" not in page  # self-contained
    assert page.count('src="data:image/png;base64,') >= 3  # figures inlined
    assert "<th>dice</th>" in page and "numpy" in page and "load average" in page
    import json

    meta = json.loads((out / "results.json").read_text())["meta"]
    assert meta["parameters"]["kmeans"]["lam"] == 0.125
    assert meta["environment"]["versions"]["numpy"] == np.__version__


def test_default_methods_without_torch_are_the_classical_ones(monkeypatch, caplog):
    from varseg.commands.compare import default_methods
    from varseg.compare import DEFAULT_METHODS

    assert default_methods() == list(DEFAULT_METHODS)
    monkeypatch.setattr("varseg._optional.has_torch", lambda: False)
    with caplog.at_level("WARNING"):
        methods = default_methods()
    # the Numba fixed point of Eq. 15 needs no torch: only the per-image network is left out
    assert methods == ["chan-vese", "lic", "fixed-point", "kmeans", "otsu"]
    assert "varseg[deep]" in caplog.text and "skipping neural (" in caplog.text
    assert "otsu" not in default_methods(8) and "kmeans" in default_methods(8)


@pytest.mark.parametrize(
    ("shape", "channel_axis", "max_size"),
    [((64, 48), None, 20), ((37, 50), None, 16), ((40, 30, 3), -1, 13), ((3, 40, 30), 0, 25)],
)
def test_downscale_equals_skimage_resize(shape, channel_axis, max_size):
    """The image and label maps come out pixel for pixel as ``skimage.transform.resize``."""
    from skimage.transform import resize

    from varseg.commands.compare import _downscale

    rng = np.random.default_rng(3)
    image = rng.random(shape)
    nd = len(shape)
    spatial_axes = [i for i in range(nd) if channel_axis is None or i != channel_axis % nd]
    labels = rng.integers(0, 4, tuple(shape[i] for i in spatial_axes))
    img, gt, notes = _downscale(image, channel_axis, [labels], max_size)
    out_shape = img.shape
    assert max(out_shape[i] for i in spatial_axes) == max_size
    ref = resize(image, out_shape, order=1, anti_aliasing=True, preserve_range=True)
    np.testing.assert_array_equal(img, ref)
    new = gt[0].shape
    ref_lab = resize(labels, new, order=0, anti_aliasing=False, preserve_range=True)
    np.testing.assert_array_equal(gt[0], ref_lab.astype(np.int64))
    assert gt[0].dtype == np.int64 and "Downscaled" in notes[0]
    uint8 = (image * 255).astype(np.uint8)
    ref8 = resize(uint8, out_shape, order=1, anti_aliasing=True, preserve_range=True)
    np.testing.assert_array_equal(_downscale(uint8, channel_axis, None, max_size)[0], ref8)


def test_cli_threads_wrap_the_call_and_restore_torch_threads():
    """A spec's ``cli_threads`` holds for its call only; ``--threads`` leaves names as given."""
    import argparse
    import dataclasses

    torch = pytest.importorskip("torch")
    from varseg.commands.compare import _with_torch_threads, compared_methods
    from varseg.methods import get_spec

    seen = []

    def fake(image, n_phases, **kw):
        seen.append((torch.get_num_threads(), n_phases, kw))
        return "result"

    before = torch.get_num_threads()
    spec = dataclasses.replace(get_spec("neural"), func=fake)
    wrapped = _with_torch_threads(spec, 1)
    assert wrapped.name == "neural" and wrapped.options == spec.options
    assert wrapped.load()(np.zeros((4, 4)), 3, lam=0.5) == "result"
    assert seen == [(1, 3, {"lam": 0.5})] and torch.get_num_threads() == before

    args = argparse.Namespace(methods=["neural", "kmeans"], threads=None)
    got = compared_methods(args)
    assert got[0].name == "neural" and got[0].func is not get_spec("neural").func
    assert got[1] == "kmeans"
    args.threads = 2
    assert compared_methods(args) == ["neural", "kmeans"]


def test_compare_neural_budget_beats_the_clustering_baselines():
    """compare's neural budget (cli_defaults, one thread) still lowers the shared energy
    below k-means and Otsu, on a noisy two-region image with a non-convex shape."""
    pytest.importorskip("torch")
    import argparse

    from varseg.commands.compare import compared_methods, method_params
    from varseg.compare import compare

    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[:64, :64]
    shape = ((yy - 28) ** 2 + (xx - 30) ** 2 < 18**2) & ~((yy > 30) & (abs(xx - 30) < 5))
    img = 0.3 + 0.4 * shape + 0.25 * rng.standard_normal(shape.shape)
    args = argparse.Namespace(
        methods=["neural", "kmeans", "otsu"],
        phases=2,
        max_iter=None,
        device=None,
        param=[],
        gif=False,
        threads=None,
    )
    params = method_params(args)
    assert params["neural"]["max_iter"] == 20 and params["neural"]["hidden_channels"] == 8
    table = compare(img, compared_methods(args), method_params=params, errors="raise")
    e = {r["method"]: r["energy"] for r in table.rows}
    assert e["neural"] < min(e["kmeans"], e["otsu"])
    assert table.row("neural")["n_iter"] == 20

"""Reports: the HTML page is self-contained and renders in a real headless browser."""

import shutil
import subprocess

import numpy as np
import pytest

from varseg.compare import compare
from varseg.report import html_page, write_comparison_report, write_dataset_report

BROWSER = (
    shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
)
_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _two_regions():
    rng = np.random.default_rng(0)
    gt = np.zeros((32, 40), int)
    gt[6:26, 8:30] = 1
    return 0.2 + 0.6 * gt + 0.05 * rng.standard_normal(gt.shape), gt


def test_html_page_escapes_and_loads_nothing_from_elsewhere():
    page = html_page("a <b> title", [("h & h", "<p>x</p>")])
    assert "<title>a &lt;b&gt; title</title>" in page and "<h2>h &amp; h</h2>" in page
    assert "http" not in page and "<script" not in page


def test_dataset_report_writes_markdown_and_html(tmp_path):
    from varseg.compare import compare_dataset

    img, gt = _two_regions()
    table = compare_dataset([("a", img, gt), ("b", img[::-1], gt[::-1])], ["otsu"], progress=False)
    written = write_dataset_report(table, tmp_path, source="two images")
    page = written["html"].read_text(encoding="utf-8")
    assert "Per image" in page and page.count("<tr>") >= 4 and "https://" not in page
    assert "| otsu |" in written["report"].read_text(encoding="utf-8").replace("  ", " ")


@pytest.mark.skipif(BROWSER is None, reason="no Chromium installed")
def test_comparison_report_renders_in_headless_chromium(tmp_path):
    img, gt = _two_regions()
    table = compare(img, ["kmeans", "otsu"], gt)
    written = write_comparison_report(table, img, tmp_path, ground_truth=gt, source="synthetic")
    url = written["html"].resolve().as_uri()
    profile = tmp_path / "profile"
    dom = subprocess.run(
        [BROWSER, *_FLAGS, f"--user-data-dir={profile}", "--dump-dom", url],
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout
    assert "<table" in dom and "kmeans" in dom and "otsu" in dom
    shot = tmp_path / "shot.png"
    subprocess.run(
        [
            BROWSER,
            *_FLAGS,
            f"--user-data-dir={profile}",
            f"--screenshot={shot}",
            "--window-size=1000,1400",
            url,
        ],
        capture_output=True,
        timeout=120,
    )
    from PIL import Image

    pix = np.asarray(Image.open(shot).convert("L"), dtype=float)
    assert pix.shape == (1400, 1000)
    # rendered: dark text and figures on the white page, not a blank page
    assert (pix < 128).mean() > 0.01 and pix.std() > 20


def test_html_text_has_no_markdown_marks(tmp_path):
    img, gt = _two_regions()
    table = compare(img, ["otsu"], gt)
    page = write_comparison_report(table, img, tmp_path, source="a`b", figures=False)[
        "html"
    ].read_text(encoding="utf-8")
    text = page.split("<body>", 1)[1]
    assert "`" not in text and "*length*" not in text and "length is" in text

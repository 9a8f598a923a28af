"""Off-screen figures and one-pass saving: the report's figures cost less, look the same."""

import io
import json
import subprocess
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from PIL import Image  # noqa: E402

from varseg import plot  # noqa: E402
from varseg.result import Segmentation  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def _seg(labels, energy, method, bias=None):
    k = int(labels.max()) + 1
    return Segmentation(
        labels=labels,
        memberships=np.stack([labels == i for i in range(k)]).astype(float),
        means=np.arange(k, dtype=float),
        energy=np.asarray(energy, float),
        n_iter=len(energy),
        converged=True,
        elapsed=1.0,
        method=method,
        params={"lam": 0.125},
        times=np.linspace(0.01, 0.5, len(energy)),
        bias=bias,
    )


@pytest.fixture
def figures():
    rng = np.random.default_rng(0)
    gt = np.zeros((40, 48), int)
    gt[8:30, 10:36] = 1
    image = gt + 0.1 * rng.standard_normal(gt.shape)
    bias = 1 + 0.2 * np.linspace(0, 1, gt.size).reshape(gt.shape)
    res = {
        "a": _seg(gt, [5.0, 3.0, 2.0, 1.5], "a", bias=bias),
        "b": _seg(1 - gt, [4.0, 2.2], "b"),
    }
    return {
        "comparison": lambda: plot.plot_comparison(image, res, gt),
        "energy": lambda: plot.plot_energy(res, x="time", title="E(t)"),
        "bias": lambda: plot.plot_bias_field(res["a"], image),
    }


def _pixels(data):
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGBA"))


@pytest.mark.parametrize("name", ["comparison", "energy", "bias"])
def test_save_figure_gives_savefigs_pixels_in_one_draw(figures, name, monkeypatch):
    ref = io.BytesIO()
    figures[name]().savefig(ref, dpi=80, format="png")
    fig = figures[name]()
    draws = []
    real_draw = type(fig).draw
    monkeypatch.setattr(type(fig), "draw", lambda self, r: draws.append(1) or real_draw(self, r))
    out = io.BytesIO()
    assert plot.save_figure(fig, out, dpi=80, format="png", compress_level=1) is fig
    assert len(draws) == 1  # savefig alone draws twice with a layout engine
    assert fig.get_layout_engine() is None
    np.testing.assert_array_equal(_pixels(out.getvalue()), _pixels(ref.getvalue()))


def test_save_figure_compress_level_is_lossless(figures, tmp_path):
    sizes = {}
    for level in (1, 9):
        path = tmp_path / f"fig{level}.png"
        plot.save_figure(figures["comparison"](), path, dpi=60, compress_level=level)
        sizes[level] = path.stat().st_size
        np.testing.assert_array_equal(
            _pixels(path.read_bytes()), _pixels((tmp_path / "fig1.png").read_bytes())
        )
    assert sizes[9] < sizes[1]


def test_offscreen_figures_stay_out_of_pyplot(figures):
    import matplotlib.pyplot as plt

    before = plt.get_fignums()
    with plot.offscreen():
        figs = [make() for make in figures.values()]
    assert plt.get_fignums() == before
    assert all(f.canvas.manager is None for f in figs)
    assert len(figs[0].axes) == 2 * 2 + 2  # the same panels as a pyplot figure
    fig = figures["energy"]()  # outside the block: pyplot again
    assert fig.number in plt.get_fignums()


def test_comparison_report_never_imports_pyplot(tmp_path):
    code = (
        "import json, sys; sys.path.insert(0, sys.argv[1]); import numpy as np;"
        "from varseg.compare import compare; from varseg.report import write_comparison_report;"
        "img = np.zeros((24, 24)); img[6:18, 6:18] = 1;"
        "img += np.random.default_rng(0).normal(0, 0.05, img.shape);"
        "t = compare(img, ['kmeans', 'otsu', 'lic']);"
        "w = write_comparison_report(t, img, sys.argv[2]);"
        "print(json.dumps({'pyplot': 'matplotlib.pyplot' in sys.modules, 'keys': sorted(w)}))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(ROOT), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["pyplot"] is False
    for key in ("comparison", "energy_iteration", "energy_time", "bias_field:lic", "html"):
        assert key in out["keys"]
    for png in ("comparison.png", "energy_iteration.png", "energy_time.png", "bias_field_lic.png"):
        assert Image.open(tmp_path / png).size[0] > 300

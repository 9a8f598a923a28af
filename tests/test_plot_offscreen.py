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


def test_inner_boundaries_are_scikit_images():
    from skimage.segmentation import find_boundaries

    rng = np.random.default_rng(3)
    for shape in [(20, 30), (7, 9, 11), (1, 5), (6,)]:
        for k in (2, 3, 5):
            lab = rng.integers(0, k, shape)
            np.testing.assert_array_equal(
                plot._inner_boundaries(lab), find_boundaries(lab, mode="inner")
            )
    lab = np.zeros((4, 5), int)
    lab[1:3, 1:4] = 1  # a 2×3 block: each of its pixels touches the background
    expected = np.zeros((4, 5), bool)
    expected[1:3, 1:4] = True
    np.testing.assert_array_equal(plot._inner_boundaries(lab), expected)


def _extent(artist, renderer):
    return artist.get_window_extent(renderer)


@pytest.mark.parametrize("with_gt", [False, True])
def test_comparison_layout_keeps_titles_clear_of_the_panels(with_gt):
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    rng = np.random.default_rng(0)
    gt = np.zeros((40, 48), int)
    gt[8:30, 10:36] = 1
    image = gt + 0.1 * rng.standard_normal(gt.shape)
    res = {name: _seg(gt, [2.0, 1.0], name) for name in ("fixed-point", "chan-vese", "kmeans")}
    for kw in ({}, {"panel_width": 1.71}, {"suptitle": "a title"}, {"figsize": (9, 4)}):
        fig = plot.plot_comparison(image, res, gt if with_gt else None, **kw)
        assert fig.get_layout_engine() is None
        renderer = FigureCanvasAgg(fig).get_renderer()
        fig.draw_without_rendering()
        width, height = fig.bbox.width, fig.bbox.height
        boxes = [ax.get_window_extent(renderer) for ax in fig.axes]
        for ax, box in zip(fig.axes, boxes, strict=True):
            title = _extent(ax.title, renderer)
            assert title.y0 >= box.y1 - 0.5  # above its own panel
            assert 0 <= title.x0 and title.x1 <= width + 0.5 and title.y1 <= height + 0.5
            assert box.x0 >= 0 and box.y0 >= 0 and box.x1 <= width + 0.5
            for other in boxes:  # below the panel above it (and not on any other panel)
                if other is not box:
                    assert not title.overlaps(other)
                    assert not box.overlaps(other)
        if "panel_width" in kw:  # 1.71 in at 150 dpi: a 256-pixel image pixel for pixel
            assert abs(boxes[0].width * 150 / fig.dpi - 1.71 * 150) < 2


def test_energy_time_axis_labels_are_plain_numbers(figures):
    fig = figures["energy"]()
    fig.canvas.draw()
    labels = [t.get_text() for t in fig.axes[0].get_xticklabels() if t.get_text()]
    assert labels and all("$" not in t for t in labels)
    assert {"0.1", "1"} & set(labels)


def test_panel_colours_match_as_match_labels():
    from varseg.metrics import match_labels

    rng = np.random.default_rng(5)
    base = rng.integers(0, 4, (30, 30))
    for k_pred, k_true in [(2, 2), (3, 2), (2, 4), (4, 4), (5, 3), (6, 6)]:
        target = rng.integers(0, k_true, (30, 30))
        target[:15] = base[:15] % k_true  # structure, so that the optimum is unique
        pred = (target + rng.integers(0, 2, target.shape)) % k_pred
        pred[rng.random(pred.shape) < 0.3] = rng.integers(0, k_pred)
        np.testing.assert_array_equal(plot._match_colours(pred, target), match_labels(pred, target))
    lab = np.array([[0, 0, 1], [1, 2, 2]])  # clusters 1, 2 tie for class 0: 2 gets a new label
    np.testing.assert_array_equal(
        plot._match_colours(lab, np.array([[1, 1, 0], [0, 0, 0]])), [[1, 1, 0], [0, 2, 2]]
    )

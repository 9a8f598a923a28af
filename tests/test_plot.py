"""Figures: axes counts, curve data, GIF frames (Agg, no display needed)."""

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from varseg import plot  # noqa: E402
from varseg.result import Segmentation  # noqa: E402


def seg(labels, energy, method, times=None, n_iter=None, bias=None, extras=None):
    k = int(labels.max()) + 1
    memb = np.stack([labels == i for i in range(k)]).astype(float)
    return Segmentation(
        labels=labels,
        memberships=memb,
        means=np.arange(k, dtype=float),
        energy=np.asarray(energy, float),
        n_iter=len(energy) if n_iter is None else n_iter,
        converged=True,
        elapsed=1.0,
        method=method,
        params={"lam": 0.125},
        times=None if times is None else np.asarray(times, float),
        bias=bias,
        extras=extras or {},
    )


@pytest.fixture(autouse=True)
def _close_figures():
    import matplotlib.pyplot as plt

    yield
    plt.close("all")


def test_figures_are_managed_by_pyplot():
    import matplotlib.pyplot as plt

    before = len(plt.get_fignums())
    r = seg(np.zeros((8, 8), int) + np.eye(8, dtype=int), [2.0, 1.0], "a")
    fig = plot.plot_energy(r)
    assert len(plt.get_fignums()) == before + 1  # visible to notebooks and sphinx-gallery
    assert fig.number in plt.get_fignums()


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    gt = np.zeros((24, 32), int)
    gt[6:18, 8:24] = 1
    image = gt + 0.1 * rng.standard_normal(gt.shape)
    results = {
        "a": seg(gt, [5.0, 3.0, 2.0, 1.5], "a", times=[0.1, 0.2, 0.3, 0.4]),
        "b": seg(1 - gt, [4.0, 2.5, 2.2], "b", n_iter=2),  # records the initial state too
        "c": seg(gt, [1.7], "c", n_iter=10),  # one-shot
    }
    return image, gt, results


def test_plot_comparison_axes(data):
    image, gt, results = data
    fig = plot.plot_comparison(image, results)
    assert isinstance(fig, Figure)
    assert len(fig.axes) == 2 * 3 + 1
    fig = plot.plot_comparison(image, results, gt)
    assert len(fig.axes) == 2 * 3 + 2
    titles = [ax.get_title() for ax in fig.axes]
    assert "ground truth" in titles and any(t.startswith("b\n") for t in titles)
    fig = plot.plot_comparison(
        np.stack([image] * 3, -1), list(results.values()), [gt, gt], channel_axis=-1
    )
    assert len(fig.axes) == 2 * 3 + 2
    fig.savefig(__import__("io").BytesIO(), format="png")


def test_plot_comparison_from_table():
    from varseg.compare import compare

    rng = np.random.default_rng(1)
    img = np.zeros((20, 20))
    img[5:15, 5:15] = 1
    img += 0.05 * rng.standard_normal(img.shape)
    table = compare(img, ["kmeans", "otsu"])
    fig = plot.plot_comparison(img, table)
    assert len(fig.axes) == 5
    e = table.row("otsu")["energy"]
    assert any(f"{e:.4g}" in ax.get_title() for ax in fig.axes)


@pytest.mark.parametrize("x", ["iteration", "time"])
def test_plot_energy_curves_equal_histories(data, x):
    _, _, results = data
    fig = plot.plot_energy(results, x=x)
    ax = fig.axes[0]
    lines = {ln.get_label(): ln for ln in ax.get_lines()}
    assert set(lines) == {"a", "b", "c"}
    for name, r in results.items():
        np.testing.assert_array_equal(lines[name].get_ydata(), r.energy)
    if x == "iteration":
        np.testing.assert_array_equal(lines["a"].get_xdata(), [1, 2, 3, 4])
        np.testing.assert_array_equal(lines["b"].get_xdata(), [0, 1, 2])
        np.testing.assert_array_equal(lines["c"].get_xdata(), [10])
    else:
        np.testing.assert_array_equal(lines["a"].get_xdata(), [0.1, 0.2, 0.3, 0.4])
        np.testing.assert_array_equal(lines["c"].get_xdata(), [1.0])
    with pytest.raises(ValueError, match="iteration"):
        plot.plot_energy(results, x="bogus")


def test_plot_energy_into_given_axes(data):
    _, _, results = data
    fig = Figure()
    ax = fig.add_subplot()
    assert plot.plot_energy(results["a"], ax=ax) is fig
    assert len(ax.get_lines()) == 1


def test_plot_bias_field(data):
    image, gt, _ = data
    yy, xx = np.mgrid[0:24, 0:32]
    bias = 1 + 0.3 * xx / 32
    r = seg(gt, [1.0], "lic", bias=bias, extras={"corrected": image / bias})
    fig = plot.plot_bias_field(r, image * bias)
    assert len(fig.axes) == 5  # four panels and the colour bar
    r2 = seg(gt, [1.0], "lic", bias=bias)  # no corrected image: x / b
    assert len(plot.plot_bias_field(r2, image).axes) == 5
    with pytest.raises(ValueError, match="bias"):
        plot.plot_bias_field(seg(gt, [1.0], "x"), image)


def _snapshots(n=4):
    yy, xx = np.mgrid[0:24, 0:32]
    return np.stack([(6.0 + 2 * i - np.hypot(yy - 12, xx - 16))[None] for i in range(n)])


def test_plot_evolution(data):
    image, _, _ = data
    snaps = _snapshots(7)
    fig = plot.plot_evolution(snaps, image, iterations=range(0, 70, 10))
    assert len(fig.axes) == 7
    assert fig.axes[-1].get_title() == "iteration 60"
    # a Segmentation with snapshots, 2 level sets each
    two = np.concatenate([snaps[:3], -snaps[:3]], axis=1)
    r = seg(
        np.zeros((24, 32), int) + (snaps[0, 0] > 0),
        [1.0],
        "chan-vese",
        extras={"snapshots": two, "snapshot_iters": np.array([0, 5, 9])},
    )
    fig = plot.plot_evolution(r)
    assert len(fig.axes) == 3 and fig.axes[1].get_title() == "iteration 5"
    with pytest.raises(ValueError, match="snapshots"):
        plot.plot_evolution(seg(np.zeros((4, 4), int), [1.0], "x"))


def test_save_evolution_gif_has_n_frames(tmp_path, data):
    from PIL import Image

    image, _, _ = data
    path = plot.save_evolution_gif(_snapshots(5), tmp_path / "evo.gif", image)
    with Image.open(path) as im:
        assert im.n_frames == 5
        assert im.is_animated

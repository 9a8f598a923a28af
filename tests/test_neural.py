"""The per-image neural minimiser (unsupervised "Backprop" / "Backprop + MS")."""

import numpy as np
import pytest
import torch

from varseg.energy import energy_from_labels
from varseg.levelset import kmeans_partition
from varseg.metrics import match_labels
from varseg.neural import neural_segment
from varseg.result import Segmentation


def two_phase(n=40, seed=0):
    rng = np.random.default_rng(seed)
    lab = np.zeros((n, n), dtype=np.int64)
    yy, xx = np.mgrid[:n, :n]
    lab[(yy - n / 2) ** 2 + (xx - n / 2.5) ** 2 < (n / 4) ** 2] = 1
    lab[: n // 5, :] = 1
    return np.array([0.2, 0.8])[lab] + rng.normal(0, 0.08, lab.shape), lab


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def test_ms_fit_recovers_partition_and_lowers_energy():
    img, lab = two_phase()
    res = neural_segment(img, 2, seed=0, lr=0.05, max_iter=150, progress=False)
    assert isinstance(res, Segmentation) and res.method == "neural"
    assert (match_labels(res.labels, lab) == lab).mean() > 0.98
    x = (img - img.min()) / (img.max() - img.min())
    start = energy_from_labels(x, kmeans_partition(x[None], 2), 0.125, n_phases=2).total
    assert res.energy[-1] < start  # the length term cleans the k-means start
    from varseg import chan_vese

    assert res.energy[-1] <= 1.02 * chan_vese(img, init="kmeans").final_energy
    assert res.energy[-1] == pytest.approx(
        energy_from_labels(x, res.labels, 0.125, n_phases=2).total, rel=1e-12
    )
    assert res.extras["device"] == "cpu"
    assert len(res.energy) == res.n_iter + 1 and len(res.times) == len(res.energy)


def test_seed_reproducible():
    img, _ = two_phase(24)
    a = neural_segment(img, 2, seed=3, max_iter=15, progress=False)
    b = neural_segment(img, 2, seed=3, max_iter=15, progress=False)
    np.testing.assert_array_equal(a.labels, b.labels)
    np.testing.assert_array_equal(a.extras["loss"], b.extras["loss"])


def test_backprop_baseline_segments():
    img, lab = two_phase(32)
    ce = neural_segment(
        img, 2, kanezaki_ce=True, ms_loss=False, superpixels=50, seed=0, max_iter=60, progress=False
    )
    assert ce.params["kanezaki_ce"] and not ce.params["ms_loss"]
    assert (match_labels(ce.labels, lab) == lab).mean() > 0.9
    both = neural_segment(img, 2, kanezaki_ce=True, seed=0, max_iter=60, progress=False)
    assert (match_labels(both.labels, lab) == lab).mean() > 0.95


def test_any_model_for_test_time_optimisation():
    from varseg.models import UNet

    img, lab = two_phase(32)
    torch.manual_seed(0)
    net = UNet(1, 2, base_channels=4, depth=2)
    res = neural_segment(img, 2, model=net, lr=0.02, seed=0, max_iter=80, progress=False)
    assert res.params["model"] == "UNet"
    assert (match_labels(res.labels, lab) == lab).mean() > 0.9
    with pytest.raises(ValueError, match="model output"):
        neural_segment(
            img, 3, model=UNet(1, 2, base_channels=4, depth=2), max_iter=2, progress=False
        )


def test_errors():
    img, _ = two_phase(16)
    with pytest.raises(ValueError, match="nothing to minimise"):
        neural_segment(img, 2, ms_loss=False)
    with pytest.raises(ValueError, match="NaN"):
        neural_segment(np.full((8, 8), np.inf), 2)
    with pytest.raises(ValueError, match="optimizer"):
        neural_segment(img, 2, optimizer="lbfgs")
    with pytest.raises(ValueError, match="2D"):
        neural_segment(np.zeros((4, 8, 8)), 2)
    with pytest.raises(ValueError, match="restarts must be a positive integer"):
        neural_segment(img, 2, restarts=0)
    with pytest.raises(ValueError, match="warm_steps must be a non-negative integer"):
        neural_segment(img, 2, warm_steps=-1)
    with pytest.raises(ValueError, match="bias_model"):
        neural_segment(img, 2, bias_field=True, bias_model="spline")
    with pytest.raises(ValueError, match="bias_sigma"):
        neural_segment(img, 2, bias_field=True, bias_model="network", bias_sigma=-1.0)
    with pytest.raises(ValueError, match="max_iter must be a positive integer"):
        neural_segment(img, 2, max_iter=True)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_device_auto():
    img, lab = two_phase(24)
    res = neural_segment(img, 2, seed=0, max_iter=20, progress=False, device="auto")
    assert res.extras["device"].startswith("cuda")


# --------------------------------------------------------------------------------------------
# no collapse: K well-separated noisy constant regions, every seed (issue: real data first)
# --------------------------------------------------------------------------------------------
def regions(K, kind, n=32, sigma=0.05, seed=0, values=None):
    """K constant regions (rectangles, bars or disks) in [0, 1] plus Gaussian noise."""
    yy, xx = np.mgrid[:n, :n]
    lab = np.zeros((n, n), dtype=np.int64)
    if kind == "bars":
        lab = xx * K // n
    elif kind == "disks":
        for k, (cy, cx) in enumerate([(0.3, 0.3), (0.7, 0.7), (0.3, 0.72)][: K - 1], 1):
            lab[(yy - cy * n) ** 2 + (xx - cx * n) ** 2 < (0.17 * n) ** 2] = k
    else:
        for k, (y0, y1, x0, x1) in enumerate(
            [(4, 14, 4, 20), (18, 29, 10, 28), (5, 15, 22, 30)][: K - 1], 1
        ):
            lab[y0 * n // 32 : y1 * n // 32, x0 * n // 32 : x1 * n // 32] = k
    rng = np.random.default_rng(seed)
    vals = np.linspace(0.1, 0.9, K) if values is None else np.asarray(values)
    img = vals[rng.permutation(K)][lab] + rng.normal(0, sigma, lab.shape)
    return img, lab


def agreement(a, b):
    """Pixel agreement after the Hungarian matching of the labels of a to those of b."""
    return float((match_labels(a, b) == b).mean())


@pytest.mark.parametrize("K,kind", [(2, "bars"), (3, "disks"), (4, "rect")])
def test_no_collapse_every_seed(K, kind):
    from varseg import chan_vese

    # regions large enough that merging costs energy; at n=40 (as at 48) init="random" (the
    # start the k-means one replaced) still fails every case: bars 1 seed, disks/rect all 5
    img, lab = regions(K, kind, n=40)
    cv = chan_vese(img, 4 if K == 3 else K, init="kmeans")  # Chan–Vese has 2^m phases
    for seed in range(5):
        res = neural_segment(img, K, seed=seed, progress=False)
        assert agreement(res.labels, lab) >= 0.95, (K, kind, seed)
        assert res.final_energy <= 1.02 * cv.final_energy, (K, kind, seed)
        assert len(np.unique(res.labels)) == K


def test_random_start_merges_regions_kmeans_start_does_not():
    # the failure the k-means start fixes: from random weights four noisy rectangles end in
    # a merged-region local minimum of the loss
    img, lab = regions(4, "rect", n=48)
    rand = [neural_segment(img, 4, init="random", seed=s, progress=False) for s in range(2)]
    km = neural_segment(img, 4, seed=0, progress=False)
    assert max(agreement(r.labels, lab) for r in rand) < 0.9
    assert agreement(km.labels, lab) >= 0.98
    assert km.final_energy < min(r.final_energy for r in rand)


def test_converged_is_false_for_a_collapsed_partition():
    img, _ = regions(2, "bars")

    class Collapsed(torch.nn.Module):
        """Every pixel in class 0 whatever its weight (zero gradient: the loss stalls)."""

        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(()))

        def forward(self, x):
            z = torch.zeros(x.shape[0], 2, *x.shape[2:])
            z[:, 0] = 5.0
            return z + 0.0 * self.w

    res = neural_segment(img, 2, model=Collapsed(), init="random", progress=False, patience=5)
    assert len(np.unique(res.labels)) == 1
    assert not res.converged


def test_stop_rule_is_relative_improvement_over_the_window():
    img, _ = regions(2, "bars")
    res = neural_segment(img, 2, seed=0, progress=False)
    loss = res.extras["loss"]
    assert res.converged and res.n_iter < 500
    p = res.params["patience"]
    assert loss[-p - 1] - loss[-1] <= res.params["tol"] * abs(loss[-1])
    assert all(
        loss[k - p] - loss[k] > res.params["tol"] * abs(loss[k]) for k in range(p, len(loss) - 1)
    )


def test_caller_rng_state_untouched():
    img, _ = regions(2, "bars", n=16)
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    neural_segment(img, 2, seed=7, max_iter=5, progress=False)
    assert torch.equal(torch.rand(3), expected)


def test_restarts_keep_the_lowest_energy():
    img, _ = regions(3, "disks")
    res = neural_segment(img, 3, seed=0, restarts=2, init="random", max_iter=40, progress=False)
    e = res.extras["restart_energies"]
    assert len(e) == 2 and res.final_energy == pytest.approx(e.min())
    assert res.extras["seed"] == int(np.argmin(e))


@pytest.mark.parametrize(
    "K,kind", [(2, "disks"), (3, "rect"), (4, "disks"), (2, "bars"), (3, "bars")]
)
def test_bias_field_recovers_regions_and_a_smooth_bias(K, kind):
    # bars: bands along the bias gradient, where a cubic bias mimicked per-band factors
    # (Pearson 0.69-0.89); the default quadratic recovers the ramp (measured >= 0.975 at
    # n=48, >= 0.955 at n=32); at n=32, as at 48, the cubic fails the 3-bars bound (0.38-0.55)
    n = 32
    img, lab = regions(K, kind, n=n, sigma=0.0, values=np.linspace(0.3, 0.9, K))
    yy, xx = np.mgrid[:n, :n] / (n - 1.0)
    b = 0.9 + 0.2 * (0.6 * xx + 0.4 * yy)
    obs = img * b + np.random.default_rng(K).normal(0, 0.02, img.shape)
    for seed in (0, 1):
        res = neural_segment(obs, K, bias_field=True, seed=seed, progress=False)
        assert agreement(res.labels, lab) >= 0.95, (K, kind, seed)
        assert np.corrcoef(res.bias.ravel(), b.ravel())[0, 1] >= 0.9, (K, kind, seed)
        assert res.bias.mean() == pytest.approx(1.0, rel=1e-5)  # unit mean (the gauge)
        assert res.converged


def test_smooth_bias_and_polynomial_bias():
    from varseg.losses import smooth_bias
    from varseg.neural import PolynomialBias

    b = torch.ones(1, 1, 20, 30)
    b[..., 15:] = 2.0  # a step
    s = smooth_bias(b, 3.0)
    assert torch.allclose(s.mean(), b.mean(), rtol=2e-2)
    assert float((s[..., 1:] - s[..., :-1]).abs().max()) < 0.25  # the step is spread out
    assert torch.allclose(
        smooth_bias(torch.full((1, 1, 9, 9), 1.5), 2.0), torch.full((1, 1, 9, 9), 1.5)
    )
    poly = PolynomialBias((10, 12), degree=2)
    assert torch.equal(poly(), torch.ones(1, 1, 10, 12))  # starts at b = 1
    assert poly.coef.numel() == 5  # 6 monomials of total degree <= 2, without the constant

"""The per-image neural minimiser (unsupervised "Backprop" / "Backprop + MS")."""
import numpy as np
import pytest
import torch

from varseg.energy import energy_from_labels
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
    assert res.energy[-1] < 0.2 * res.energy[0]
    x = (img - img.min()) / (img.max() - img.min())
    assert res.energy[-1] == pytest.approx(
        energy_from_labels(x, res.labels, 0.125, n_phases=2).total, rel=1e-12)
    assert res.extras["device"] == "cpu"
    assert len(res.energy) == res.n_iter + 1 and len(res.times) == len(res.energy)


def test_seed_reproducible():
    img, _ = two_phase(24)
    a = neural_segment(img, 2, seed=3, max_iter=15, progress=False)
    b = neural_segment(img, 2, seed=3, max_iter=15, progress=False)
    np.testing.assert_array_equal(a.labels, b.labels)
    np.testing.assert_array_equal(a.extras["loss"], b.extras["loss"])


def test_backprop_baseline_and_bias_field_variants():
    img, lab = two_phase(32)
    ce = neural_segment(img, 2, kanezaki_ce=True, ms_loss=False, superpixels=50, seed=0,
                        max_iter=30, progress=False)
    assert ce.params["kanezaki_ce"] and not ce.params["ms_loss"]
    both = neural_segment(img, 2, kanezaki_ce=True, seed=0, max_iter=30, progress=False)
    assert np.isfinite(both.energy).all()
    bias = neural_segment(img * np.linspace(0.7, 1.3, 32)[None], 2, bias_field=True, seed=0,
                          max_iter=60, lr=0.05, progress=False)
    assert bias.bias.shape == img.shape and (bias.bias > 0).all()


def test_any_model_for_test_time_optimisation():
    from varseg.models import UNet

    img, lab = two_phase(32)
    torch.manual_seed(0)
    net = UNet(1, 2, base_channels=4, depth=2)
    res = neural_segment(img, 2, model=net, lr=0.02, seed=0, max_iter=80, progress=False)
    assert res.params["model"] == "UNet"
    assert (match_labels(res.labels, lab) == lab).mean() > 0.9
    with pytest.raises(ValueError, match="model output"):
        neural_segment(img, 3, model=UNet(1, 2, base_channels=4, depth=2), max_iter=2,
                       progress=False)


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


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_device_auto():
    img, lab = two_phase(24)
    res = neural_segment(img, 2, seed=0, max_iter=20, progress=False, device="auto")
    assert res.extras["device"].startswith("cuda")

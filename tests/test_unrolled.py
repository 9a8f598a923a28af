"""Eq. 15: the fixed-point solver and the unrolled trainable network."""
import numpy as np
import pytest
import torch

from varseg.energy import batched_terms, energy_from_labels, mumford_shah_energy
from varseg.losses import mumford_shah_loss
from varseg.result import Segmentation
from varseg.unrolled import (
    UnrolledMumfordShah,
    curvature,
    fixed_point_step,
    ms_fixed_point,
    unrolled_segment,
)


def four_regions(n=64, noise=0.06, seed=0):
    rng = np.random.default_rng(seed)
    lab = np.zeros((n, n), dtype=np.int64)
    h = n // 2
    lab[:h, h:] = 1
    lab[h:, :h] = 2
    lab[h:, h:] = 3
    yy, xx = np.mgrid[:n, :n]
    lab[(yy - h) ** 2 + (xx - h) ** 2 < (n // 5) ** 2] = 1
    img = np.array([0.1, 0.4, 0.65, 0.9])[lab] + rng.normal(0, noise, lab.shape)
    return img, lab


def _smoothed_tv(y, eps):
    dx = torch.zeros_like(y)
    dy = torch.zeros_like(y)
    dx[..., :, :-1] = y[..., :, 1:] - y[..., :, :-1]
    dy[..., :-1, :] = y[..., 1:, :] - y[..., :-1, :]
    return torch.sqrt(dx**2 + dy**2 + eps**2).sum()


def test_curvature_is_minus_gradient_of_smoothed_tv():
    y = torch.rand(1, 2, 6, 7, dtype=torch.float64, requires_grad=True)
    _smoothed_tv(y, 0.1).backward()
    np.testing.assert_allclose(curvature(y.detach(), 0.1), -y.grad, atol=1e-12)


def test_softmax_gradient_update_is_exact_gradient_descent():
    g = torch.Generator().manual_seed(0)
    z = torch.randn(2, 3, 6, 6, generator=g, dtype=torch.float64, requires_grad=True)
    x = torch.rand(2, 2, 6, 6, generator=g, dtype=torch.float64)
    lam, eta, eps = 0.3, 0.5, 0.1
    y = torch.softmax(z, 1)
    data, _, _ = batched_terms(x, y)  # means of Eq. 13 kept in the graph
    loss = data.sum() + lam * _smoothed_tv(y, eps)
    loss.backward()
    new = fixed_point_step(z.detach(), x, lam, eta, curvature_eps=eps)
    np.testing.assert_allclose(new, z.detach() - eta * z.grad, atol=1e-10)


def test_two_phase_is_chan_vese_flow():
    # phi = z1 - z2 moves by -2 eta y1 y2 [(x-c1)^2 - (x-c2)^2 - 2 lam kappa(y1)]:
    # the Chan–Vese flow with delta(phi) = y1 y2 and mu = 2 lam.
    g = torch.Generator().manual_seed(1)
    z = torch.randn(1, 2, 8, 8, generator=g, dtype=torch.float64)
    x = torch.rand(1, 1, 8, 8, generator=g, dtype=torch.float64)
    lam, eta = 0.2, 0.7
    y = torch.softmax(z, 1)
    c = [(x[0, 0] * y[0, n]).sum() / y[0, n].sum() for n in range(2)]
    kap = curvature(y, 0.1)[0, 0]
    force = (x[0, 0] - c[0]) ** 2 - (x[0, 0] - c[1]) ** 2 - 2 * lam * kap
    want = (z[0, 0] - z[0, 1]) - 2 * eta * y[0, 0] * y[0, 1] * force
    new = fixed_point_step(z, x, lam, eta)
    np.testing.assert_allclose(new[0, 0] - new[0, 1], want, atol=1e-12)


def test_paper_update_uses_dirac_weight():
    z = torch.tensor([[[[0.0, 2.0]], [[1.0, -1.0]]]], dtype=torch.float64)
    x = torch.tensor([[[[0.0, 1.0]]]], dtype=torch.float64)
    new = fixed_point_step(z, x, 0.0, 1.0, update="paper", dirac_eps=1.0)
    y = torch.softmax(z, 1)
    c = (x[0, 0] * y[0]).sum((-1, -2)) / y[0].sum((-1, -2))
    g = (x[0, 0][None] - c[:, None, None]) ** 2
    delta = (1 / np.pi) / (1 + z[0] ** 2)
    np.testing.assert_allclose(new[0], z[0] - delta * g, atol=1e-12)


@pytest.mark.parametrize("update", ["softmax-gradient", "paper"])
def test_fixed_point_decreases_energy_and_segments(update):
    img, lab = four_regions()
    res = ms_fixed_point(img, 4, update=update, max_iter=200)
    assert isinstance(res, Segmentation)
    # energy of the initial partition, then one record per iteration
    assert len(res.energy) == res.n_iter + 1
    assert res.energy[-1] < 0.5 * res.energy[0]
    # every region recovered (labels are ordered by the quantile start)
    assert (res.labels == lab).mean() > 0.97
    # the recorded energy is the shared one, on the [0, 1]-scaled image
    x = (img - img.min()) / (img.max() - img.min())
    assert res.energy[-1] == pytest.approx(
        energy_from_labels(x, res.labels, 0.125, n_phases=4).total, rel=1e-12)


def test_fixed_point_agrees_with_chan_vese():
    from varseg.levelset.chan_vese import chan_vese
    from varseg.metrics import match_labels

    img, _ = four_regions()
    fp = ms_fixed_point(img, 4, max_iter=200)
    # multiphase Chan–Vese needs a start with every phase present (see its docstring)
    cv = chan_vese(img, 4, max_iter=300, init="kmeans", mu=0.25)
    matched = match_labels(fp.labels, cv.labels)
    for k in range(4):
        a, b = matched == k, cv.labels == k
        dice = 2 * (a & b).sum() / (a.sum() + b.sum())
        assert dice >= 0.9


def test_fixed_point_errors_and_constant_image():
    img, _ = four_regions(16)
    with pytest.raises(ValueError, match="init array"):
        ms_fixed_point(img, 3, init=np.zeros((2, 16, 16)))
    with pytest.raises(ValueError, match="unknown update"):
        ms_fixed_point(img, 2, update="newton")
    with pytest.raises(ValueError, match="NaN"):
        ms_fixed_point(np.full((8, 8), np.nan), 2)
    with pytest.raises(ValueError, match="n_phases"):
        ms_fixed_point(img, 1)
    res = ms_fixed_point(np.full((8, 8), 3.0), 2, max_iter=5)
    assert res.energy[-1] == 0.0 and np.isfinite(res.memberships).all()


def _synthetic_batch(n, size=24, seed=0):
    rng = np.random.default_rng(seed)
    levels = np.array([0.05, 0.3, 0.95])
    imgs = []
    for _ in range(n):
        lab = np.zeros((size, size), dtype=np.int64)
        for k in (1, 2):
            r0, c0 = rng.integers(0, size - 8, 2)
            h, w = rng.integers(5, 12, 2)
            lab[r0:r0 + h, c0:c0 + w] = k
        imgs.append(levels[lab] + rng.normal(0, 0.05, lab.shape))
    return torch.tensor(np.stack(imgs)[:, None], dtype=torch.float32)


def test_unrolled_training_lowers_the_loss():
    torch.manual_seed(0)
    train, held = _synthetic_batch(16, seed=1), _synthetic_batch(8, seed=2)
    net = UnrolledMumfordShah(3, 1, n_iter=3, lam=0.05, step=0.5, learn_kernels=True)
    untrained = UnrolledMumfordShah(3, 1, n_iter=3, lam=0.05, step=0.5, learn_kernels=True)
    untrained.load_state_dict(net.state_dict())
    with torch.no_grad():
        before = mumford_shah_loss(net(held), held, 0.05).item()
    opt = torch.optim.Adam(net.parameters(), lr=0.05)
    losses = []
    for _ in range(40):
        opt.zero_grad()
        loss = mumford_shah_loss(net(train), train, 0.05)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    with torch.no_grad():
        after = mumford_shah_loss(net(held), held, 0.05).item()
        still = mumford_shah_loss(untrained(held), held, 0.05).item()
    assert losses[-1] < 0.8 * losses[0]
    assert after < 0.8 * before and still == pytest.approx(before)
    # it can also be trained with cross-entropy: shapes and gradients flow
    out = net(train[:2])
    assert out.shape == (2, 3, 24, 24)


def test_unrolled_segment_result_and_fit():
    img, lab = four_regions(32)
    res = unrolled_segment(img, 4, n_iter=10, seed=0)
    assert res.method == "unrolled" and len(res.energy) == 10
    fitted = unrolled_segment(img, 4, n_iter=10, fit_steps=15, seed=0)
    assert fitted.energy[-1] <= res.energy[-1] * 1.05
    x = (img - img.min()) / (img.max() - img.min())
    assert res.energy[-1] == pytest.approx(
        mumford_shah_energy(x, np.eye(4)[res.labels].transpose(2, 0, 1), 0.125), rel=1e-10)
    with pytest.raises(ValueError, match="n_phases"):
        unrolled_segment(img, 3, model=UnrolledMumfordShah(4))

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
        energy_from_labels(x, res.labels, 0.125, n_phases=4).total, rel=1e-12
    )


def test_fixed_point_agrees_with_chan_vese():
    from varseg.levelset import chan_vese
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
            lab[r0 : r0 + h, c0 : c0 + w] = k
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
    fitted = unrolled_segment(img, 4, n_iter=10, max_iter=15, seed=0)
    assert fitted.energy[-1] <= res.energy[-1] * 1.05
    x = (img - img.min()) / (img.max() - img.min())
    assert res.energy[-1] == pytest.approx(
        mumford_shah_energy(x, np.eye(4)[res.labels].transpose(2, 0, 1), 0.125), rel=1e-10
    )
    with pytest.raises(ValueError, match="n_phases"):
        unrolled_segment(img, 3, model=UnrolledMumfordShah(4))


# --------------------------------------------------------------------------------------
# The Numba solver of ms_fixed_point against the torch fixed_point_step
# --------------------------------------------------------------------------------------
def _numba_step(z, x, lam, step, update, ceps=0.1, deps=1.0):
    """One step of the Numba kernels on (K, *S) logits and (C, *S) image (float64)."""
    from varseg._fixed_point_kernels import UPDATE_CODES, Workspace, iterate_blocks, softmax_blocks

    spatial = z.shape[1:]
    pad = (1,) * (3 - len(spatial))
    z4 = np.ascontiguousarray(z.reshape((z.shape[0],) + pad + spatial))
    x4 = np.ascontiguousarray(x.reshape((x.shape[0],) + pad + spatial))
    ws = Workspace(x4, z.shape[0])
    softmax_blocks(0, ws.nb, z4, x4, ws.ys[0], ws.labs[0], ws.parts[0], ws.grow)
    lab = ws.labs[0].copy()  # the hard partition of softmax(z), whose energy the step records
    iterate_blocks(
        0,
        ws.nb,
        z4,
        x4,
        ws.ys,
        ws.labs,
        ws.parts,
        0,
        ws.means,
        ws.pyrow,
        ws.rows,
        ws.grow,
        lam,
        step,
        UPDATE_CODES[update],
        ceps,
        deps,
    )
    data, length = ws.parts[1, :, -2:].sum(0)
    return z4.reshape(z.shape), data, length, lab.reshape(spatial)


@pytest.mark.parametrize("update", ["softmax-gradient", "paper"])
@pytest.mark.parametrize(
    "spatial, channels, k", [((7, 9), 1, 2), ((12, 10), 3, 5), ((3, 5, 6), 2, 3), ((1, 8), 1, 4)]
)
def test_numba_step_agrees_with_torch(update, spatial, channels, k):
    rng = np.random.default_rng(k)
    z = rng.normal(size=(k,) + spatial) * 2
    x = rng.random((channels,) + spatial)
    new, data, length, lab = _numba_step(z.copy(), x, 0.3, 0.7, update, 0.2, 0.8)
    ref = fixed_point_step(
        torch.tensor(z)[None],
        torch.tensor(x)[None],
        0.3,
        0.7,
        update=update,
        curvature_eps=0.2,
        dirac_eps=0.8,
    )[0].numpy()
    np.testing.assert_allclose(new, ref, atol=1e-10, rtol=0)
    # the fused hard energy is that of the argmax partition of softmax(z)
    labels = z.argmax(0)
    assert (lab == labels).all()
    terms = energy_from_labels(x, labels, 0.3, n_phases=k)
    assert data == pytest.approx(terms.data, rel=1e-12, abs=1e-12)
    assert length == pytest.approx(terms.length, rel=1e-12, abs=1e-12)


@pytest.mark.parametrize("update", ["softmax-gradient", "paper"])
def test_ms_fixed_point_follows_torch_iterates(update):
    img, _ = four_regions(40)
    x = (img - img.min()) / (img.max() - img.min())
    z0 = np.random.default_rng(3).normal(size=(3,) + img.shape)
    n = 30
    res = ms_fixed_point(img, 3, init=z0, max_iter=n, tol=0.0, update=update, dtype=torch.float64)
    z = torch.tensor(z0)[None]
    xt = torch.tensor(x)[None, None]
    energies = [energy_from_labels(x, z[0].argmax(0).numpy(), 0.125, n_phases=3).total]
    for _ in range(n):
        z = fixed_point_step(z, xt, 0.125, 2.0, update=update)
        energies.append(
            energy_from_labels(x, torch.softmax(z, 1)[0].argmax(0).numpy(), 0.125, n_phases=3).total
        )
    y = torch.softmax(z, 1)[0].numpy()
    assert res.n_iter == n and not res.converged
    np.testing.assert_allclose(res.memberships, y, atol=1e-6)  # stored as float32
    assert (res.labels == y.argmax(0)).all()
    np.testing.assert_allclose(res.energy, energies, rtol=1e-10)
    assert res.params["dtype"] == "float64" and len(res.times) == n + 1


def test_ms_fixed_point_float32_and_thread_count_independence():
    import numba

    img, _ = four_regions(128)
    ref = ms_fixed_point(img, 2, max_iter=20, tol=0.0, dtype=torch.float64)
    f32 = ms_fixed_point(img, 2, max_iter=20, tol=0.0)
    assert (f32.labels != ref.labels).mean() < 1e-3
    assert f32.energy[-1] == pytest.approx(ref.energy[-1], rel=1e-3)
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = ms_fixed_point(img, 2, max_iter=20, tol=0.0)
        numba.set_num_threads(min(2, numba.config.NUMBA_NUM_THREADS))
        two = ms_fixed_point(img, 2, max_iter=20, tol=0.0)
    finally:
        numba.set_num_threads(before)
    np.testing.assert_array_equal(one.memberships, two.memberships)
    np.testing.assert_array_equal(one.energy, two.energy)


def test_ms_fixed_point_stops_at_tol():
    img, _ = four_regions(32)
    res = ms_fixed_point(img, 4, max_iter=500, tol=1e-3)
    assert res.converged and res.n_iter < 500 and len(res.energy) == res.n_iter + 1


def test_warm_up_announces_only_real_compiles_and_stays_out_of_elapsed(monkeypatch, caplog):
    """The warm-up goes through varseg._jit.ensure_compiled: one line when Numba really
    compiles (a never-compiled function stands in for a cold cache), none when the kernels
    only load or were run already, and a (simulated) 1 s compilation is not in elapsed."""
    import logging
    import time

    from numba import njit

    import varseg.fixed_point as mod
    from varseg import _jit

    key = ("fixed_point", "float32")
    real = mod._run_tiny
    fresh = njit(lambda v: v + 1)  # never compiled, not cached

    def cold(np_dtype):
        real(np_dtype)
        fresh(1.5)
        time.sleep(1.0)

    monkeypatch.setattr(mod, "_run_tiny", cold)
    monkeypatch.delitem(_jit._DONE, key, raising=False)
    img = np.eye(8)
    with caplog.at_level(logging.INFO, logger="varseg._jit"):
        t0 = time.perf_counter()
        seg = ms_fixed_point(img, 2, max_iter=2)
        wall = time.perf_counter() - t0
        ms_fixed_point(img, 2, max_iter=2)
    lines = [r.getMessage() for r in caplog.records]
    assert lines == ["compiling Numba kernels once, about 30 s (('fixed_point', 'float32'))"]
    assert wall >= 1.0 and seg.elapsed < wall - 0.9 and seg.times[-1] <= seg.elapsed
    assert _jit.compiled_keys()[key] >= 1.0
    # the real warm-up of kernels already compiled in this process: no line
    monkeypatch.setattr(mod, "_run_tiny", real)
    monkeypatch.delitem(_jit._DONE, key)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="varseg._jit"):
        ms_fixed_point(img, 2, max_iter=2)
    assert caplog.records == [] and key in _jit.compiled_keys()


# --------------------------------------------------------------------------------------
# Bad arguments: one-line errors naming the argument
# --------------------------------------------------------------------------------------
def test_ms_fixed_point_bad_arguments():
    img = np.random.default_rng(0).random((16, 16))
    with pytest.raises(TypeError, match="dtype must be torch.float32 or torch.float64"):
        ms_fixed_point(img, dtype=torch.int64)
    with pytest.raises(TypeError, match="dtype"):
        ms_fixed_point(img, dtype=np.int32)
    for kw, name in [
        ({"curvature_eps": 0}, "curvature_eps"),
        ({"update": "paper", "dirac_eps": 0}, "dirac_eps"),
        ({"lam": -1}, "lam"),
        ({"lam": float("nan")}, "lam"),
        ({"step": 0}, "step"),
        ({"max_iter": 0}, "max_iter"),
        ({"tol": -1}, "tol"),
    ]:
        with pytest.raises(ValueError, match=name):
            ms_fixed_point(img, **kw)


@pytest.mark.parametrize(
    "kw, name",
    [
        ({"n_iter": -1}, "n_iter"),
        ({"n_iter": 0}, "n_iter"),
        ({"step": -1}, "step"),
        ({"sharpness": -1}, "sharpness"),
        ({"lam": float("nan")}, "lam"),
        ({"curvature_eps": 0}, "curvature_eps"),
        ({"in_channels": 0}, "in_channels"),
    ],
)
def test_unrolled_network_bad_arguments(kw, name):
    with pytest.raises(ValueError, match=name):
        UnrolledMumfordShah(2, **kw)


def test_unrolled_segment_bad_arguments():
    img = np.random.default_rng(0).random((8, 8))
    for kw, name in [
        ({"lam": -1}, "lam"),
        ({"lam": float("nan")}, "lam"),
        ({"n_iter": 0}, "n_iter"),
        ({"max_iter": -1}, "max_iter"),
        ({"lr": 0}, "lr"),
        ({"device": "tpu9"}, "device"),
    ]:
        with pytest.raises(ValueError, match=name):
            unrolled_segment(img, 2, **kw)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_unrolled_segment_cuda_without_cuda():
    with pytest.raises(ValueError, match="CUDA is not available") as err:
        unrolled_segment(np.eye(8), 2, device="cuda")
    assert "\n" not in str(err.value)


def test_ms_fixed_point_leaves_init_array_alone():
    img, _ = four_regions(16)
    z0 = np.random.default_rng(0).normal(size=(2, 16, 16))
    keep = z0.copy()
    ms_fixed_point(img, 2, init=z0, max_iter=3, dtype=torch.float64)
    np.testing.assert_array_equal(z0, keep)


def test_fit_steps_is_a_deprecated_spelling_of_max_iter():
    img = np.zeros((12, 12))
    img[3:9, 3:9] = 1
    with pytest.warns(DeprecationWarning, match="fit_steps= is deprecated, use max_iter="):
        old = unrolled_segment(img, 2, n_iter=3, fit_steps=2, seed=0)
    new = unrolled_segment(img, 2, n_iter=3, max_iter=2, seed=0)
    np.testing.assert_array_equal(old.labels, new.labels)
    assert old.params["max_iter"] == new.params["max_iter"] == 2
    with pytest.raises(TypeError, match="pass only max_iter="):
        unrolled_segment(img, 2, max_iter=3, fit_steps=2)

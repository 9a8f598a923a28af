"""Mumford–Shah losses (Eq. 12-13, 16-18, 19-20): values, gradients, edge cases."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from varseg.bench.loss import official_ms_loss
from varseg.energy import labels_to_memberships, mumford_shah_energy
from varseg.losses import (
    BiasFieldMumfordShahLoss,
    MumfordShahLoss,
    SemiSupervisedLoss,
    bias_field_mumford_shah_loss,
    mumford_shah_loss,
    positive_bias,
    semi_supervised_loss,
)


def _rand(*shape, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(*shape, generator=g, dtype=dtype)


@pytest.mark.parametrize("tv", ["isotropic", "anisotropic"])
def test_one_hot_equals_shared_energy(tv):
    rng = np.random.default_rng(0)
    lab = rng.integers(0, 3, size=(2, 9, 11))
    img = rng.random((2, 2, 9, 11))
    y = torch.tensor(np.stack([labels_to_memberships(lab[i], 3) for i in range(2)]))
    x = torch.tensor(img)
    per = mumford_shah_loss(y, x, 0.3, probabilities=True, tv=tv, reduction="none")
    for i in range(2):
        want = mumford_shah_energy(img[i], labels_to_memberships(lab[i], 3), 0.3, tv=tv)
        assert per[i].item() == pytest.approx(want, rel=1e-6)
    tot = mumford_shah_loss(y, x, 0.3, probabilities=True, tv=tv, reduction="sum")
    assert tot.item() == pytest.approx(per.sum().item(), rel=1e-12)
    mean = mumford_shah_loss(y, x, 0.3, probabilities=True, tv=tv, reduction="mean")
    assert mean.item() == pytest.approx(per.sum().item() / (2 * 99), rel=1e-12)


def test_equals_official_formula_and_hand_value():
    z = _rand(3, 4, 8, 8, seed=1) * 4
    x = _rand(3, 3, 8, 8, seed=2)
    ours = mumford_shah_loss(z, x, 1e-3, tv="anisotropic", reduction="sum")
    assert ours.item() == pytest.approx(official_ms_loss(z, x, 1e-3).item(), rel=1e-10)
    # 3D: per-sample means, by hand
    z3 = _rand(2, 2, 3, 4, 5, seed=3)
    x3 = _rand(2, 1, 3, 4, 5, seed=4)
    y3 = torch.softmax(z3, 1)
    want = 0.0
    for b in range(2):
        for n in range(2):
            c = (x3[b, 0] * y3[b, n]).sum() / y3[b, n].sum()
            want += ((x3[b, 0] - c) ** 2 * y3[b, n]).sum()
    assert mumford_shah_loss(z3, x3, 0.0, reduction="sum").item() == pytest.approx(
        want.item(), rel=1e-12
    )


def test_means_are_per_image_not_per_batch():
    # two images with opposite contrast: per-image means give zero data term for the exact
    # partition, per-batch means would not
    lab = torch.zeros(8, 8, dtype=torch.long)
    lab[:, 4:] = 1
    y = F.one_hot(lab, 2).permute(2, 0, 1).double()
    x = torch.stack([lab.double(), 5 - 3 * lab.double()])[:, None]
    loss = mumford_shah_loss(torch.stack([y, y]), x, 0.0, probabilities=True, reduction="sum")
    assert loss.item() == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("tv", ["isotropic", "anisotropic"])
def test_gradcheck(tv):
    z = _rand(2, 3, 5, 6, seed=5).requires_grad_(True)
    x = _rand(2, 2, 5, 6, seed=6)
    assert torch.autograd.gradcheck(
        lambda z: mumford_shah_loss(z, x, 0.2, tv=tv, reduction="sum"), (z,), eps=1e-6, atol=1e-5
    )


def test_bias_loss_gradcheck_and_hand_value():
    z = _rand(2, 2, 5, 5, seed=7).requires_grad_(True)
    raw = _rand(2, 1, 5, 5, seed=8).requires_grad_(True)
    x = _rand(2, 1, 5, 5, seed=9)

    def f(z, raw):
        return bias_field_mumford_shah_loss(z, positive_bias(raw), x, 0.1, 0.05, reduction="sum")

    assert torch.autograd.gradcheck(f, (z, raw), eps=1e-6, atol=1e-5)
    # by hand: Eq. 20 means, Eq. 19 value
    y = torch.softmax(z, 1).detach()
    b = positive_bias(raw).detach()
    want = 0.0
    for i in range(2):
        for n in range(2):
            c = (b[i, 0] * x[i, 0] * y[i, n]).sum() / (b[i, 0] ** 2 * y[i, n]).sum()
            want += ((x[i, 0] - b[i, 0] * c) ** 2 * y[i, n]).sum()
    tv_y = sum(
        mumford_shah_loss(z[i : i + 1], x[i : i + 1], 1.0, reduction="sum")
        - mumford_shah_loss(z[i : i + 1], x[i : i + 1], 0.0, reduction="sum")
        for i in range(2)
    )
    dbx = torch.zeros_like(b)
    dby = torch.zeros_like(b)
    dbx[..., :, :-1] = b[..., :, 1:] - b[..., :, :-1]
    dby[..., :-1, :] = b[..., 1:, :] - b[..., :-1, :]
    tv_b = torch.sqrt(dbx**2 + dby**2).sum()
    got = BiasFieldMumfordShahLoss(0.1, 0.05, reduction="sum")(z, b, x)
    assert got.item() == pytest.approx((want + 0.1 * tv_y + 0.05 * tv_b).item(), rel=1e-10)


def test_bias_field_recovers_zero_data_term():
    lab = torch.zeros(1, 6, 6, dtype=torch.long)
    lab[..., 3:] = 1
    y = F.one_hot(lab, 2).permute(0, 3, 1, 2).double()
    b = 0.5 + _rand(1, 1, 6, 6, seed=10)
    x = b * torch.tensor([0.2, 0.8], dtype=torch.float64)[lab][:, None]
    loss = bias_field_mumford_shah_loss(y, b, x, 0.0, 0.0, probabilities=True, reduction="sum")
    assert loss.item() == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(ValueError, match="strictly positive"):
        bias_field_mumford_shah_loss(y, -b, x, 0.0, 0.0, probabilities=True)


def test_permutation_invariance():
    z = _rand(2, 4, 7, 7, seed=11)
    x = _rand(2, 3, 7, 7, seed=12)
    perm = torch.tensor([2, 0, 3, 1])
    a = mumford_shah_loss(z, x, 0.3)
    b = mumford_shah_loss(z[:, perm], x, 0.3)
    assert a.item() == pytest.approx(b.item(), rel=1e-12)


def test_empty_class_and_constant_image_no_nan():
    z = torch.full((1, 3, 6, 6), -1e4, dtype=torch.float64)
    z[:, 0] = 1e4  # classes 1 and 2 have (numerically) zero mass
    z.requires_grad_(True)
    x = torch.full((1, 1, 6, 6), 0.7, dtype=torch.float64)
    loss = mumford_shah_loss(z, x, 0.5)
    loss.backward()
    assert loss.item() == pytest.approx(0.0, abs=1e-12)
    assert torch.isfinite(z.grad).all()
    z2 = torch.randn(2, 2, 6, 6, requires_grad=True)
    loss2 = mumford_shah_loss(z2, torch.zeros(2, 1, 6, 6), 0.5)
    loss2.backward()
    assert torch.isfinite(loss2) and torch.isfinite(z2.grad).all()


def test_semi_supervised_mixed_batch():
    z = _rand(3, 3, 6, 6, seed=13).requires_grad_(True)
    x = _rand(3, 1, 6, 6, seed=14)
    t = torch.randint(0, 3, (3, 6, 6), generator=torch.Generator().manual_seed(0))
    t[0, 0, :3] = 255
    labeled = torch.tensor([True, False, True])
    lam = 0.01
    got = semi_supervised_loss(z, t, x, labeled, lam, length_weight=0.2)
    # by hand: CE over labelled, non-ignored pixels of samples 0 and 2; MS over all samples
    logp = torch.log_softmax(z, 1)
    nll = []
    for b in (0, 2):
        for i in range(6):
            for j in range(6):
                if t[b, i, j] != 255:
                    nll.append(-logp[b, t[b, i, j], i, j])
    want = torch.stack(nll).mean() + lam * mumford_shah_loss(z, x, 0.2)
    assert got.item() == pytest.approx(want.item(), rel=1e-10)
    got.backward()
    assert torch.isfinite(z.grad).all()
    # no labelled sample: pure lam * MS
    none = SemiSupervisedLoss(lam, length_weight=0.2)(z, t, x, torch.zeros(3, dtype=torch.bool))
    assert none.item() == pytest.approx(lam * mumford_shah_loss(z, x, 0.2).item(), rel=1e-12)
    per = semi_supervised_loss(z, t, x, labeled, lam, length_weight=0.2, reduction="none")
    assert per.shape == (3,)
    assert per[1].item() == pytest.approx(
        lam * mumford_shah_loss(z[1:2], x[1:2], 0.2, reduction="sum").item(), rel=1e-10
    )
    ce0 = torch.stack(nll[:33]).mean()  # sample 0 has 3 ignored pixels: 33 labelled ones
    assert per[0].item() == pytest.approx(
        (ce0 + lam * mumford_shah_loss(z[:1], x[:1], 0.2, reduction="sum")).item(), rel=1e-10
    )


def test_module_matches_functional_and_errors():
    z = torch.randn(2, 2, 8, 8)
    x = torch.rand(2, 1, 8, 8)
    assert MumfordShahLoss(0.1)(z, x).item() == pytest.approx(mumford_shah_loss(z, x, 0.1).item())
    with pytest.raises(ValueError, match="does not match"):
        mumford_shah_loss(z, torch.rand(2, 1, 7, 8), 0.1)
    with pytest.raises(ValueError, match="reduction"):
        mumford_shah_loss(z, x, 0.1, reduction="avg")
    with pytest.raises(ValueError, match=r"\(B, K, H, W\)"):
        mumford_shah_loss(torch.randn(8, 8), x, 0.1)
    with pytest.raises(ValueError, match="outside"):
        semi_supervised_loss(z, torch.full((2, 8, 8), 7), x, torch.ones(2, dtype=torch.bool), 0.1)
    with pytest.raises(ValueError, match="one flag per sample"):
        semi_supervised_loss(z, torch.zeros(2, 8, 8, dtype=torch.long), x, [True], 0.1)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    z = _rand(2, 3, 16, 16, seed=15)
    x = _rand(2, 3, 16, 16, seed=16)
    a = mumford_shah_loss(z, x, 0.1)
    b = mumford_shah_loss(z.cuda(), x.cuda(), 0.1)
    assert b.item() == pytest.approx(a.item(), rel=1e-10)


def test_unit_mean_bias_removes_the_scale_gauge():
    from varseg.losses import bias_field_mumford_shah_loss, unit_mean_bias

    torch.manual_seed(0)
    z = torch.randn(2, 3, 12, 12)
    x = torch.rand(2, 1, 12, 12)
    b = torch.rand(2, 1, 12, 12) + 0.5
    nb = unit_mean_bias(b)
    assert torch.allclose(nb.mean((2, 3)), torch.ones(2, 1))
    # Eq. 19's data term is invariant under b -> s b; its beta TV(b) term is not, so without
    # the normalisation a smaller bias always "wins"; with it, the loss ignores the scale
    l1 = bias_field_mumford_shah_loss(z, b, x, 0.1, 1.0)
    l2 = bias_field_mumford_shah_loss(z, 0.1 * b, x, 0.1, 1.0)
    assert l2 < l1
    l3 = bias_field_mumford_shah_loss(z, unit_mean_bias(0.1 * b), x, 0.1, 1.0)
    assert torch.allclose(l3, bias_field_mumford_shah_loss(z, nb, x, 0.1, 1.0), rtol=1e-5)


def test_smooth_bias_is_a_normalised_gaussian():
    from scipy.ndimage import gaussian_filter

    from varseg.losses import smooth_bias

    torch.manual_seed(1)
    b = torch.rand(1, 1, 30, 40, dtype=torch.float64) + 0.5
    ours = smooth_bias(b, 2.0)[0, 0].numpy()
    ref = gaussian_filter(b[0, 0].numpy(), 2.0, mode="mirror", truncate=3.0)
    np.testing.assert_allclose(ours, ref, rtol=1e-3)


def test_semi_supervised_ms_weight_and_its_deprecated_spelling():
    torch = pytest.importorskip("torch")
    g = torch.Generator().manual_seed(0)
    z = torch.randn(2, 3, 6, 6, generator=g)
    t = torch.randint(0, 3, (2, 6, 6), generator=g)
    x = torch.rand(2, 1, 6, 6, generator=g)
    labeled = torch.tensor([True, False])
    new = semi_supervised_loss(z, t, x, labeled, ms_weight=0.3)
    with pytest.warns(DeprecationWarning, match="lam= is deprecated, use ms_weight="):
        old = semi_supervised_loss(z, t, x, labeled, lam=0.3)
    assert float(new) == pytest.approx(float(old))
    zero = semi_supervised_loss(z, t, x, labeled, 0.0)
    ms = mumford_shah_loss(z, x, 1e-3)
    assert float(new - zero) == pytest.approx(0.3 * float(ms), rel=1e-6)
    with pytest.raises(TypeError, match="needs ms_weight"):
        semi_supervised_loss(z, t, x, labeled)
    assert "ms_weight=0.3" in repr(SemiSupervisedLoss(0.3))

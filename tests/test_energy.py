"""The shared Mumford–Shah energy (varseg.energy): hand-computed values, NumPy/torch
agreement, gradients against finite differences, the fast hard-partition path."""

import numpy as np
import pytest
import torch

from varseg.energy import (
    batched_terms,
    data_term,
    energy_from_labels,
    gaussian_kernel,
    labels_to_memberships,
    length_term,
    lic_energy,
    mumford_shah_energy,
    mumford_shah_terms,
    region_means,
    total_variation,
)


def _half_split(h=5, w=8, col=3):
    lab = np.zeros((h, w), dtype=np.int64)
    lab[:, col:] = 1
    return lab


def _softmax(z, axis=0):
    e = np.exp(z - z.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


@pytest.mark.parametrize("tv", ["isotropic", "anisotropic"])
def test_exact_partition_zero_data_and_perimeter(tv):
    # image = 0.2 left of column 3, 0.9 right; the boundary is 5 pixels long and each of the
    # two characteristic functions sees it once: length term = 2 * 5.
    lab = _half_split()
    img = np.where(lab == 1, 0.9, 0.2)
    terms = mumford_shah_terms(img, labels_to_memberships(lab), lam=0.7, tv=tv)
    assert terms.data == pytest.approx(0.0, abs=1e-12)
    assert terms.length == pytest.approx(10.0)
    assert terms.total == pytest.approx(7.0)
    np.testing.assert_allclose(terms.means, [0.2, 0.9])


def test_square_perimeter_anisotropic_and_isotropic_by_hand():
    # a 3x3 square inside a 7x7 image: anisotropic TV of its indicator = perimeter 12.
    u = np.zeros((7, 7))
    u[2:5, 2:5] = 1
    assert total_variation(u, tv="anisotropic") == pytest.approx(12.0)
    # isotropic with forward differences: the 3 left pixels (x-jump only) + 3 top pixels
    # (y-jump only), the 2+2 inner right/bottom edge pixels with one jump, and the
    # bottom-right corner pixel with both jumps: 3 + 3 + 2 + 2 + sqrt(2).
    assert total_variation(u) == pytest.approx(10 + np.sqrt(2))


def test_shifted_boundary_costs_what_we_compute_by_hand():
    # true boundary at column 3 (image 0 | 1); the partition puts it at column 4, so column 3
    # (5 pixels of value 1) joins class 0: class-0 mean = 5/20 = 0.25 over 20 pixels.
    lab_true = _half_split(col=3)
    img = lab_true.astype(float)
    lab = _half_split(col=4)
    y = labels_to_memberships(lab)
    # class 0: 15 zeros and 5 ones around mean 0.25: 15*0.0625 + 5*0.5625 = 3.75
    # class 1: all ones, mean 1: 0. Length unchanged: 2*5 = 10.
    assert data_term(img, y) == pytest.approx(3.75)
    assert mumford_shah_energy(img, y, lam=0.5) == pytest.approx(3.75 + 5.0)
    assert mumford_shah_energy(img, y, lam=0.5, reduction="mean") == pytest.approx(8.75 / 40)


def test_multichannel_data_term_and_means():
    lab = _half_split(h=2, w=4, col=2)
    img = np.stack([lab * 1.0, np.array([[1.0, 3.0, 0.0, 0.0], [1.0, 3.0, 0.0, 0.0]])])
    y = labels_to_memberships(lab)
    means = region_means(img, y)
    np.testing.assert_allclose(means, [[0.0, 2.0], [1.0, 0.0]])
    # channel 1 of class 0 deviates by +-1 at 4 pixels
    assert data_term(img, y) == pytest.approx(4.0)


def test_bias_field_means_eq20_and_zero_data():
    rng = np.random.default_rng(1)
    lab = _half_split(h=6, w=6)
    b = 0.5 + rng.random((6, 6))
    c = np.array([0.3, 1.2])
    img = b * c[lab]
    y = labels_to_memberships(lab)
    terms = mumford_shah_terms(img, y, 0.0, bias=b)
    np.testing.assert_allclose(terms.means, c)
    assert terms.data == pytest.approx(0.0, abs=1e-12)
    # hand formula of Eq. 20 with soft memberships
    ys = _softmax(rng.normal(size=(2, 6, 6)))
    want = (b * img * ys).sum((1, 2)) / (b * b * ys).sum((1, 2))
    np.testing.assert_allclose(region_means(img, ys, bias=b), want)


def test_soft_memberships_hand_computed():
    rng = np.random.default_rng(0)
    img = rng.random((4, 5))
    y = _softmax(rng.normal(size=(3, 4, 5)))
    c = (img * y).sum((1, 2)) / y.sum((1, 2))
    data = sum(((img - c[n]) ** 2 * y[n]).sum() for n in range(3))
    length = 0.0
    for n in range(3):
        dx = np.zeros((4, 5))
        dy = np.zeros((4, 5))
        dx[:, :-1] = y[n][:, 1:] - y[n][:, :-1]
        dy[:-1, :] = y[n][1:, :] - y[n][:-1, :]
        length += np.sqrt(dx**2 + dy**2).sum()
    assert mumford_shah_energy(img, y, 0.3) == pytest.approx(data + 0.3 * length, rel=1e-12)
    assert length_term(y) == pytest.approx(length, rel=1e-12)


def test_empty_class_and_constant_image():
    img = np.full((4, 4), 0.5)
    y = np.zeros((3, 4, 4))
    y[0] = 1.0  # classes 1 and 2 have zero mass
    t = mumford_shah_terms(img, y, 1.0)
    np.testing.assert_allclose(t.means, [0.5, 0.0, 0.0])
    assert t.total == 0.0
    yt = torch.tensor(y, requires_grad=True)
    e = mumford_shah_energy(torch.tensor(img), yt, 1.0)
    e.backward()
    assert torch.isfinite(yt.grad).all()


@pytest.mark.parametrize("tv", ["isotropic", "anisotropic"])
@pytest.mark.parametrize("shape,channels", [((6, 7), 0), ((6, 7), 3), ((3, 4, 5), 0)])
def test_numpy_and_torch_agree(tv, shape, channels):
    rng = np.random.default_rng(2)
    img = rng.random(((channels,) if channels else ()) + shape)
    y = _softmax(rng.normal(size=(4,) + shape))
    e_np = mumford_shah_energy(img, y, 0.25, tv=tv)
    e_t = mumford_shah_energy(torch.tensor(img), torch.tensor(y), 0.25, tv=tv)
    assert isinstance(e_np, float)
    assert e_t.ndim == 0
    assert e_t.item() == pytest.approx(e_np, rel=1e-6)
    # float32 tensors agree to float32 precision
    e32 = mumford_shah_energy(torch.tensor(img).float(), torch.tensor(y).float(), 0.25, tv=tv)
    assert e32.item() == pytest.approx(e_np, rel=1e-5)


@pytest.mark.parametrize("tv", ["isotropic", "anisotropic"])
def test_torch_gradient_matches_finite_differences(tv):
    rng = np.random.default_rng(3)
    img = torch.tensor(rng.random((2, 5, 6)))
    z = torch.tensor(rng.normal(size=(3, 5, 6)), requires_grad=True)
    b = torch.tensor(0.5 + rng.random((5, 6)), requires_grad=True)

    def f(z, b):
        return mumford_shah_energy(img, torch.softmax(z, 0), 0.4, bias=b, tv=tv)

    assert torch.autograd.gradcheck(f, (z, b), eps=1e-6, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("tv", ["isotropic", "anisotropic"])
@pytest.mark.parametrize("shape", [(13, 17), (4, 6, 5)])
def test_fast_hard_path_equals_generic(tv, shape):
    rng = np.random.default_rng(4)
    lab = rng.integers(0, 4, size=shape)
    img = rng.random((2,) + shape)
    fast = energy_from_labels(img, lab, 0.3, n_phases=4, tv=tv)
    ref = mumford_shah_terms(img, labels_to_memberships(lab, 4), 0.3, tv=tv)
    assert fast.data == pytest.approx(ref.data, rel=1e-10)
    assert fast.length == pytest.approx(ref.length, rel=1e-10)
    np.testing.assert_allclose(fast.means, ref.means, rtol=1e-10)
    # float32 images give the same value to float32 round-off
    f32 = energy_from_labels(img.astype(np.float32), lab, 0.3, n_phases=4, tv=tv)
    assert f32.total == pytest.approx(ref.total, rel=1e-5)
    # ... and exactly the numbers of their float64 copy (the kernel works in float64)
    f64 = energy_from_labels(img.astype(np.float32).astype(np.float64), lab, 0.3, n_phases=4, tv=tv)
    assert (f32.data, f32.length) == (f64.data, f64.length)
    np.testing.assert_array_equal(f32.means, f64.means)


def test_batched_terms_per_sample():
    rng = np.random.default_rng(5)
    x = torch.tensor(rng.random((3, 2, 5, 5)))
    y = torch.softmax(torch.tensor(rng.normal(size=(3, 4, 5, 5))), 1)
    data, length, means = batched_terms(x, y)
    assert data.shape == (3,) and length.shape == (3,) and means.shape == (3, 4, 2)
    for i in range(3):
        t = mumford_shah_terms(x[i], y[i], 1.0)
        assert data[i].item() == pytest.approx(t.data.item(), rel=1e-12)
        assert length[i].item() == pytest.approx(t.length.item(), rel=1e-12)


def test_lic_energy_by_hand_and_delta_kernel_limit():
    rng = np.random.default_rng(6)
    img = rng.random((9, 9))
    b = 0.8 + 0.4 * rng.random((9, 9))
    y = _softmax(rng.normal(size=(2, 9, 9)))
    c = np.array([0.2, 0.7])
    k = gaussian_kernel(1.0)
    assert k.shape == (5, 5) and k.sum() == pytest.approx(1.0)
    # brute force double sum of Eq. 6 with zero outside the image
    want = 0.0
    r = k.shape[0] // 2
    for i in range(9):
        for j in range(9):
            for di in range(-r, r + 1):
                for dj in range(-r, r + 1):
                    ii, jj = i + di, j + dj
                    if 0 <= ii < 9 and 0 <= jj < 9:
                        w = k[di + r, dj + r]
                        for n in range(2):
                            want += w * (img[i, j] - b[ii, jj] * c[n]) ** 2 * y[n, i, j]
    got = lic_energy(img, y, b, sigma=1.0, means=c)
    assert got == pytest.approx(want, rel=1e-10)
    # torch agrees
    got_t = lic_energy(
        torch.tensor(img), torch.tensor(y), torch.tensor(b), sigma=1.0, means=torch.tensor(c)
    )
    assert got_t.item() == pytest.approx(want, rel=1e-10)
    # with a tiny sigma the kernel is a delta and Eq. 6 is the bias data term of Eq. 19
    tiny = lic_energy(img, y, b, sigma=0.1)
    assert tiny == pytest.approx(data_term(img, y, bias=b), rel=1e-10)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(image=np.zeros((4, 4)), memberships=np.ones((2, 4, 5)) / 2), "does not match"),
        (dict(image=np.full((4, 4), np.nan), memberships=np.ones((2, 4, 4)) / 2), "NaN"),
        (dict(image=np.zeros((4, 4)), memberships=np.ones((2, 4, 4))), "sum to 1"),
        (dict(image=np.zeros((4, 4)), memberships=np.ones((4, 4))), "memberships must have"),
    ],
)
def test_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        mumford_shah_energy(lam=1.0, **kwargs)


def test_option_errors():
    y = np.ones((2, 3, 3)) / 2
    with pytest.raises(ValueError, match="tv must be"):
        mumford_shah_energy(np.zeros((3, 3)), y, 1.0, tv="l3")
    with pytest.raises(ValueError, match="reduction"):
        mumford_shah_energy(np.zeros((3, 3)), y, 1.0, reduction="max")
    with pytest.raises(ValueError, match="lam"):
        mumford_shah_energy(np.zeros((3, 3)), y, -1.0)
    with pytest.raises(ValueError, match="labels must lie"):
        labels_to_memberships(np.array([[0, 3]]), 2)


def test_normalise_image_is_the_chan_vese_scaling():
    from varseg.energy import normalise_image

    x = np.array([[2.0, 4.0], [6.0, 10.0]])
    y, xmin, scale = normalise_image(x, return_scale=True)
    np.testing.assert_allclose(y, [[0.0, 0.25], [0.5, 1.0]])
    assert (xmin, scale) == (2.0, 8.0)
    np.testing.assert_array_equal(normalise_image(np.full((3, 3), 7.0)), np.zeros((3, 3)))
    with pytest.raises(ValueError, match="NaN"):
        normalise_image(np.array([1.0, np.nan]))
    with pytest.raises(ValueError, match="empty"):
        normalise_image(np.zeros((0, 3)))

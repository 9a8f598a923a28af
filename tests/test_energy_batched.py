"""The public batched core of the energy (used by the losses and the unrolled network)."""

import numpy as np
import pytest

from varseg.energy import batched_means, batched_residual, batched_terms, batched_tv


def test_batched_means_by_hand_and_empty_class():
    x = np.array([1.0, 3.0, 5.0, 7.0]).reshape(1, 1, 2, 2)
    y = np.zeros((1, 3, 2, 2))
    y[0, 0, 0] = 1  # first row: values 1, 3
    y[0, 1, 1] = 1  # second row: values 5, 7; class 2 empty
    m = batched_means(x, y)
    np.testing.assert_allclose(m[0, :, 0], [2.0, 6.0, 0.0])
    b = np.full((1, 1, 2, 2), 2.0)  # c = Σ x b y / Σ b² y = (2·4)/(4·2) = 1 for class 0
    np.testing.assert_allclose(batched_means(x, y, b)[0, :2, 0], [1.0, 3.0])


def test_batched_residual_and_tv_by_hand():
    x = np.array([0.0, 1.0]).reshape(1, 1, 1, 2)
    means = np.array([[[0.0], [1.0]]])
    np.testing.assert_allclose(batched_residual(x, means)[0], [[[0.0, 1.0]], [[1.0, 0.0]]])
    y = np.zeros((1, 2, 3, 3))
    y[0, 0, :, :2] = 1
    y[0, 1] = 1 - y[0, 0]
    # one vertical edge of length 3 in each of the two memberships
    assert batched_tv(y)[0] == pytest.approx(6.0)
    assert batched_tv(y, "anisotropic")[0] == pytest.approx(6.0)
    with pytest.raises(ValueError, match="tv must be one of"):
        batched_tv(y, "l3")


def test_numpy_and_torch_agree_with_batched_terms():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    x = rng.random((2, 3, 5, 6))
    y = rng.random((2, 4, 5, 6))
    y /= y.sum(1, keepdims=True)
    m = batched_means(x, y)
    np.testing.assert_allclose(m, batched_means(torch.tensor(x), torch.tensor(y)).numpy())
    data = (batched_residual(x, m) * y).sum(axis=(1, 2, 3))
    terms = batched_terms(x, y)
    np.testing.assert_allclose(data, np.asarray(terms[0]), rtol=1e-12)
    np.testing.assert_allclose(batched_tv(y), np.asarray(terms[1]), rtol=1e-12)


def test_spacing_divides_the_length_term_by_the_voxel_size():
    from varseg.energy import energy_from_labels

    lab = np.zeros((4, 6, 6), int)
    lab[2:] = 1  # one boundary plane across z: 36 voxel faces
    img = lab.astype(float)
    unit = energy_from_labels(img, lab, 1.0)
    assert unit.length == pytest.approx(72.0)  # 36 faces, counted in both memberships
    same = energy_from_labels(img, lab, 1.0, spacing=(1, 1, 1))
    assert same.length == unit.length and same.data == unit.data
    z2 = energy_from_labels(img, lab, 1.0, spacing=(2.0, 1.0, 1.0))
    assert z2.length == pytest.approx(36.0) and z2.data == unit.data
    # a boundary across x does not feel dz
    lab_x = np.zeros((4, 6, 6), int)
    lab_x[..., 3:] = 1
    ex = energy_from_labels(lab_x.astype(float), lab_x, 1.0, spacing=(2.0, 1.0, 1.0))
    assert ex.length == pytest.approx(2 * 24.0)
    y = np.stack([lab == 0, lab == 1]).astype(float)[None]
    assert batched_tv(y, spacing=(2.0, 1.0, 1.0))[0] == pytest.approx(36.0)
    for bad in ((1.0, 1.0), (0.0, 1.0, 1.0), (np.nan, 1, 1), "abc"):
        with pytest.raises(ValueError, match="spacing must be"):
            energy_from_labels(img, lab, 1.0, spacing=bad)

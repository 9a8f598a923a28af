"""k-means and Otsu baselines: exact recovery, shared energy, conventions."""
import numpy as np
import pytest

from varseg.baselines import DEFAULT_LAM, kmeans_segment, otsu_segment
from varseg.energy import energy_from_labels, labels_to_memberships, mumford_shah_terms
from varseg.result import Segmentation


def three_level(noise=0.02, seed=0, shape=(48, 64)):
    rng = np.random.default_rng(seed)
    truth = np.zeros(shape, np.int64)
    truth[8:30, 10:40] = 1
    truth[20:44, 30:60] = 2
    levels = np.array([0.1, 0.5, 0.9])
    image = levels[truth] + noise * rng.standard_normal(shape)
    return image, truth


@pytest.mark.parametrize("fn", [kmeans_segment, otsu_segment])
def test_recovers_three_levels_exactly(fn):
    image, truth = three_level()
    res = fn(image, 3)
    assert isinstance(res, Segmentation)
    np.testing.assert_array_equal(res.labels, truth)  # sorted by intensity: same ids
    np.testing.assert_allclose(res.means, [image[truth == k].mean() for k in range(3)])
    assert res.memberships.shape == (3,) + image.shape
    np.testing.assert_array_equal(res.memberships.argmax(0), res.labels)


@pytest.mark.parametrize("fn", [kmeans_segment, otsu_segment])
@pytest.mark.parametrize("lam", [None, 0.7])
def test_energy_is_the_shared_energy(fn, lam):
    image, _ = three_level(noise=0.1, seed=1)
    res = fn(image, 3, lam=lam)
    used = DEFAULT_LAM if lam is None else lam
    assert res.params["lam"] == used
    assert res.energy.shape == (1,)
    ref = energy_from_labels(image, res.labels, used, n_phases=3).total
    ref2 = mumford_shah_terms(image, labels_to_memberships(res.labels, 3), used).total
    assert res.final_energy == pytest.approx(ref, rel=1e-12)
    assert res.final_energy == pytest.approx(ref2, rel=1e-9)
    assert res.n_iter >= 1 and res.elapsed >= 0
    assert res.times is not None and len(res.times) == 1


def test_colour_images_and_channel_axis():
    image, truth = three_level()
    rgb = np.stack([image, 0.5 * image, 0.2 + 0.8 * image], axis=-1)
    km = kmeans_segment(rgb, 3, channel_axis=-1, seed=0)
    assert km.means.shape == (3, 3)
    assert np.all(np.diff(km.means.mean(1)) > 0)  # sorted by mean over channels
    ot = otsu_segment(rgb, 3, channel_axis=-1)
    # thresholds on the luminance; the partition is still the 3 levels
    from varseg.metrics import match_labels
    for r in (km, ot):
        np.testing.assert_array_equal(match_labels(r.labels, truth), truth)
    x = np.moveaxis(rgb, -1, 0)
    assert ot.final_energy == pytest.approx(energy_from_labels(x, ot.labels, DEFAULT_LAM).total)


def test_kmeans_seeded_reproducible_and_errors():
    image, _ = three_level(noise=0.3, seed=3)
    a = kmeans_segment(image, 4, seed=5)
    b = kmeans_segment(image, 4, seed=5)
    np.testing.assert_array_equal(a.labels, b.labels)
    with pytest.raises(ValueError, match="n_phases"):
        kmeans_segment(image, 1)
    with pytest.raises(ValueError, match="lam"):
        otsu_segment(image, 2, lam=-1.0)
    with pytest.raises(ValueError, match="max_iter"):
        kmeans_segment(image, 2, max_iter=0)


def test_registry_entries():
    from varseg.methods import get_method

    assert get_method("kmeans") is kmeans_segment
    assert get_method("otsu") is otsu_segment

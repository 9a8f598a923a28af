"""One test per reproducer of issue 11 (API findings) and the shared validation helpers.

Reproducers: ``img16 = rng(0).random((16, 16)); lab = img16 > 0.5`` and
``img = rng(0).random((32, 32)); img[8:24, 8:24] += 1``.
"""

import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch

from varseg._validation import (
    check_image,
    check_labels,
    check_nonnegative,
    check_positive,
    resolve_device,
)
from varseg.baselines import DEFAULT_LAM, kmeans_segment, otsu_segment
from varseg.compare import shared_energy
from varseg.energy import (
    energy_from_labels,
    labels_to_memberships,
    mumford_shah_terms,
    normalise_image,
)
from varseg.losses import bias_field_mumford_shah_loss, mumford_shah_loss
from varseg.neural import neural_segment

IMG16 = np.random.default_rng(0).random((16, 16))
LAB = (IMG16 > 0.5).astype(int)
IMG = np.random.default_rng(0).random((32, 32))
IMG[8:24, 8:24] += 1


@pytest.fixture
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


# ------------------------------------------------------------------ labels
@pytest.mark.parametrize(
    "labels, n_phases, pattern",
    [
        (np.where(LAB == 1, 10**6, 0), 2, r"^labels must lie in 0\.\.1"),  # was a segfault
        (LAB * 5, 2, r"^labels must lie in 0\.\.1"),
        (LAB - 1, None, r"^labels must be non-negative"),
        (LAB - 1, 2, r"^labels must lie in 0\.\.1"),
        (LAB, 0, r"^n_phases must be a positive integer"),
        (LAB, 1, r"^labels must lie in 0\.\.0"),
        (LAB, 2.0, r"^n_phases must be a positive integer"),
    ],
)
def test_labels_out_of_range(labels, n_phases, pattern):
    with pytest.raises(ValueError, match=pattern):
        energy_from_labels(IMG16, labels, 0.1, n_phases=n_phases)
    with pytest.raises(ValueError, match=pattern):
        labels_to_memberships(labels, n_phases)


@pytest.mark.parametrize(
    "labels", [LAB + 0.5, np.where(LAB == 1, np.nan, 0.0), LAB.astype(complex), LAB.astype(str)]
)
def test_non_integer_labels_are_refused_not_truncated(labels):
    with pytest.raises(TypeError, match="^labels must be integers"):
        energy_from_labels(IMG16, labels, 0.1, n_phases=2)
    with pytest.raises(TypeError, match="^labels must be integers"):
        labels_to_memberships(labels, 2)


@pytest.mark.parametrize("labels", [LAB.astype(np.float32), LAB.astype(bool), LAB.astype(np.uint8)])
def test_integral_labels_of_other_dtypes_are_accepted(labels):
    ref = energy_from_labels(IMG16, LAB, 0.1, n_phases=2)
    got = energy_from_labels(IMG16, labels, 0.1, n_phases=2)
    assert got.total == ref.total
    np.testing.assert_array_equal(labels_to_memberships(labels, 2), labels_to_memberships(LAB))


def test_valid_labels_give_the_reference_energy():
    """The checks do not change a valid call: the kernel equals the membership form, and one
    phase (K = 1) is the variance of the image."""
    fast = energy_from_labels(IMG16, LAB, 0.1, n_phases=3)  # an empty third class is valid
    ref = mumford_shah_terms(IMG16, labels_to_memberships(LAB, 3), 0.1)
    assert fast.total == pytest.approx(ref.total, rel=1e-12)
    one = energy_from_labels(IMG16, np.zeros_like(LAB), 0.1, n_phases=1)
    assert one.total == pytest.approx(IMG16.size * IMG16.var(), rel=1e-12)
    assert one.length == 0


# ------------------------------------------------------------------ lam and image
@pytest.mark.parametrize("lam", [-1, np.nan, np.inf, "0.1", True, None, [0.1]])
def test_bad_lam(lam):
    with pytest.raises(ValueError, match="^lam must be a"):
        energy_from_labels(IMG16, LAB, lam, n_phases=2)
    with pytest.raises(ValueError, match="^lam must be a"):
        mumford_shah_terms(IMG16, labels_to_memberships(LAB, 2), lam)


@pytest.mark.parametrize(
    "image, exc, pattern",
    [
        (np.where(LAB == 1, np.nan, IMG16), ValueError, "^image contains NaN or Inf"),
        (np.where(LAB == 1, np.inf, IMG16), ValueError, "^image contains NaN or Inf"),
        (IMG16 * 1e300, ValueError, "^image values are too large"),  # data term overflows
        (IMG16 + 1j, TypeError, "^image must be a real numeric array"),
        (IMG16.astype(object), TypeError, "^image must be a real numeric array"),
    ],
)
def test_bad_image(image, exc, pattern):
    with pytest.raises(exc, match=pattern):
        energy_from_labels(image, LAB, 0.1, n_phases=2)
    with pytest.raises(exc, match=pattern):
        mumford_shah_terms(image, labels_to_memberships(LAB, 2), 0.1)


@pytest.mark.parametrize("scale, shift", [(1e-300, 0.0), (1e300, 0.0), (1e308, -1.5e308)])
def test_normalise_image_extreme_scales(scale, shift):
    y, xmin, s = normalise_image(IMG16 * scale + shift, return_scale=True)
    np.testing.assert_allclose(y, normalise_image(IMG16), atol=1e-12)
    assert y.min() == 0 and y.max() == 1 and np.isfinite(s) and s > 0


# ------------------------------------------------------------------ baselines
@pytest.mark.parametrize("k", [6, 7, 8, 9])
def test_otsu_refuses_more_than_five_phases(k):
    with pytest.raises(ValueError, match=f"^n_phases must be at most 5 .*got {k}"):
        otsu_segment(IMG, k)


def test_otsu_five_phases_is_bounded():
    res = otsu_segment(IMG, 5)  # 64 bins at K = 5 (was minutes at 256 bins for K >= 6)
    assert res.params["nbins"] == 64
    assert sorted(np.unique(res.labels)) == [0, 1, 2, 3, 4]


@pytest.mark.parametrize("scale", [1e300, 1e-300, 255.0])
def test_kmeans_extreme_scale(scale):
    ref = kmeans_segment(IMG, 2, seed=0)
    res = kmeans_segment(IMG * scale, 2, seed=0)  # 1e300 was an IndexError inside scipy
    np.testing.assert_array_equal(res.labels, ref.labels)
    assert res.labels[8:24, 8:24].mean() > 0.95 and res.labels[:8].mean() < 0.05
    assert res.final_energy == pytest.approx(ref.final_energy, rel=1e-9)


@pytest.mark.parametrize("method", ["kmeans", "otsu", "chan-vese"])
@pytest.mark.parametrize("scale", [1.0, 255.0])
def test_one_ruler(method, scale):
    """Every method records the shared energy on the [0, 1]-normalised image (k-means and
    Otsu recorded 5.43e6 at x 255 instead of the 41.4 of the normalised image)."""
    from varseg.methods import get_method

    res = get_method(method)(IMG * scale, 2)
    lam = res.params["lam"]
    assert res.final_energy == pytest.approx(
        shared_energy(IMG * scale, res.labels, lam).total, rel=1e-9
    )
    assert res.final_energy < 100  # normalised scale: about 41 for this image


# ------------------------------------------------------------------ losses
def _probs(seed=0, shape=(2, 3, 8, 8)):
    g = torch.Generator().manual_seed(seed)
    return torch.softmax(torch.randn(shape, generator=g), 1), torch.rand(
        (shape[0], 1) + shape[2:], generator=g
    )


@pytest.mark.parametrize(
    "make, pattern",
    [
        (lambda p: p - 0.1, "^input .*must be non-negative"),  # returned -0.348
        (lambda p: 2 * p, "^input .*must sum to 1"),
        (lambda p: p + 2e-4 / 3, "^input .*must sum to 1"),
        (lambda p: torch.where(p > 0.5, torch.nan, p), "^input .*NaN"),
    ],
)
def test_loss_bad_probabilities(make, pattern):
    p, x = _probs()
    with pytest.raises(ValueError, match=pattern):
        mumford_shah_loss(make(p), x, 0.1, probabilities=True)


def test_loss_probabilities_within_tolerance_accepted():
    p, x = _probs()
    ref = mumford_shah_loss(p, x, 0.1, probabilities=True)
    near = mumford_shah_loss(p + 0.5e-4 / 3, x, 0.1, probabilities=True)
    assert float(near) == pytest.approx(float(ref), rel=1e-3)


@pytest.mark.parametrize(
    "lam, beta, name",
    [(-1.0, 0.1, "lam"), (np.nan, 0.1, "lam"), (0.1, -1.0, "beta"), (0.1, np.inf, "beta")],
)
def test_loss_bad_weights(lam, beta, name):
    p, x = _probs()
    z = torch.log(p)
    bias = torch.ones_like(x)
    with pytest.raises(ValueError, match=f"^{name} must be a finite non-negative"):
        bias_field_mumford_shah_loss(z, bias, x, lam, beta)
    if name == "lam":
        with pytest.raises(ValueError, match="^lam must be a finite non-negative"):
            mumford_shah_loss(z, x, lam)


@pytest.mark.parametrize("value", [np.nan, np.inf, 0.0, -1.0])
def test_loss_bad_bias(value):
    p, x = _probs()
    bias = torch.ones_like(x)
    bias[0, 0, 3, 3] = value
    with pytest.raises(ValueError, match="^bias must be finite and strictly positive"):
        bias_field_mumford_shah_loss(torch.log(p), bias, x, 0.1, 0.1)


def test_loss_empty_batch():
    with pytest.raises(ValueError, match=r"^input has an empty batch \(B = 0\)"):
        mumford_shah_loss(torch.zeros(0, 2, 8, 8), torch.zeros(0, 1, 8, 8), 0.1)


def test_loss_nan_image():
    p, x = _probs()
    x[0, 0, 0, 0] = torch.nan
    with pytest.raises(ValueError, match="^image contains NaN or Inf"):
        mumford_shah_loss(torch.log(p), x, 0.1)


def test_loss_fp16_accumulates_in_fp32():
    """21 x 256² in float16 overflowed to inf; now the float32 value within fp16 rounding."""
    g = torch.Generator().manual_seed(0)
    z = torch.randn(21, 2, 256, 256, generator=g).half()
    x = (10 * torch.rand(21, 1, 256, 256, generator=g)).half()
    ref = mumford_shah_loss(z.float(), x.float(), 0.1, reduction="none")
    assert float(ref.min()) > 65504  # a float16 accumulator would overflow
    for reduction in ("none", "sum", "mean"):
        got = mumford_shah_loss(z, x, 0.1, reduction=reduction)
        want = mumford_shah_loss(z.float(), x.float(), 0.1, reduction=reduction)
        assert got.dtype == torch.float32 and bool(torch.isfinite(got).all())
        torch.testing.assert_close(got, want, rtol=1e-3, atol=0)


# ------------------------------------------------------------------ neural_segment
_TINY = dict(max_iter=3, warm_steps=2, hidden_channels=4, progress=False)
_SMALL_IMG = IMG[::4, ::4]  # 8 x 8


def test_neural_leaves_global_rng_alone(one_thread):
    torch.manual_seed(1234)
    state = torch.get_rng_state()
    a = neural_segment(_SMALL_IMG, 2, seed=5, **_TINY)
    assert torch.equal(torch.get_rng_state(), state)  # was re-seeded with 5
    torch.manual_seed(99)  # a different global state does not change the result
    b = neural_segment(_SMALL_IMG, 2, seed=5, **_TINY)
    np.testing.assert_array_equal(a.memberships, b.memberships)
    c = neural_segment(_SMALL_IMG, 2, seed=6, **_TINY)
    assert not np.array_equal(a.memberships, c.memberships)  # the seed matters


def test_neural_threads_match_serial(one_thread):
    seeds = [0, 0, 1, 1]
    serial = {s: neural_segment(_SMALL_IMG, 2, seed=s, **_TINY).memberships for s in (0, 1)}
    barrier = threading.Barrier(2)

    def run(s):
        barrier.wait(timeout=60)  # start both threads together
        return neural_segment(_SMALL_IMG, 2, seed=s, **_TINY).memberships

    with ThreadPoolExecutor(2) as pool:
        got = list(pool.map(run, seeds))
    for s, m in zip(seeds, got, strict=True):
        np.testing.assert_array_equal(m, serial[s])


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the machine without CUDA")
@pytest.mark.parametrize("device", ["cuda", "cuda:0", torch.device("cuda")])
def test_neural_cuda_without_cuda(device):
    with pytest.raises(ValueError, match="^device .*CUDA is not available"):
        neural_segment(_SMALL_IMG, 2, device=device, **_TINY)


@pytest.mark.parametrize("image", [np.ones((1, 1)), np.zeros((1, 1, 3))])
def test_neural_too_small(image):
    kw = {"channel_axis": -1} if image.ndim == 3 else {}
    with pytest.raises(ValueError, match="^image is too small"):
        neural_segment(image, 2, **kw, **_TINY)


def test_neural_constant_image_is_the_trivial_partition(one_thread):
    """A constant image has the one-region minimiser (energy 0), as in chan_vese."""
    res = neural_segment(np.full((6, 6), 3.0), 2, seed=0, **_TINY)
    np.testing.assert_array_equal(res.labels, 0)
    assert res.final_energy == 0.0 and res.converged and res.n_iter == 0
    np.testing.assert_array_equal(res.memberships.sum(0), 1)


@pytest.mark.parametrize(
    "kw, name",
    [
        ({"superpixels": -5, "kanezaki_ce": True}, "superpixels"),
        ({"superpixels": 0}, "superpixels"),
        ({"seed": -1}, "seed"),
        ({"seed": "a"}, "seed"),
        ({"lam": -1.0}, "lam"),
    ],
)
def test_neural_bad_counts(kw, name):
    with pytest.raises(ValueError, match=f"^{name} must be a"):
        neural_segment(_SMALL_IMG, 2, **{**_TINY, **kw})


# ------------------------------------------------------------------ helpers
@pytest.mark.parametrize(
    "device, expected", [(None, None), ("auto", None), ("cpu", "cpu"), (torch.device("cpu"), "cpu")]
)
def test_resolve_device(device, expected):
    dev = resolve_device(device)
    if expected is None:
        expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert isinstance(dev, torch.device) and dev.type == expected


@pytest.mark.parametrize("device", ["gpu", "cuda:x", 3, "mps"])
def test_resolve_device_bad(device):
    with pytest.raises(ValueError, match="^device"):
        resolve_device(device)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_resolve_device_cuda_index_beyond_devices():
    assert resolve_device("cuda:0").type == "cuda"
    with pytest.raises(ValueError, match="^device 'cuda:99'"):
        resolve_device("cuda:99")


def test_check_helpers():
    assert check_positive(np.float32(2.5), "a") == 2.5
    assert check_nonnegative(0, "a") == 0.0
    assert check_nonnegative(np.array(3.0), "a") == 3.0
    for bad in (0, -1, np.nan, "1", True):
        with pytest.raises(ValueError, match="^a must be a"):
            check_positive(bad, "a")
    x = check_image(np.arange(4).reshape(2, 2), "img")
    assert x.dtype == np.float64 and check_image(x.astype(np.float32)).dtype == np.float32
    with pytest.raises(ValueError, match="^img is empty"):
        check_image(np.zeros((0, 3)), "img")
    lab, k = check_labels(np.array([[0, 2]]))
    assert lab.dtype == np.int64 and k == 3
    with pytest.raises(ValueError, match="^gt is empty"):
        check_labels(np.zeros((0,), int), 2, name="gt")
    assert DEFAULT_LAM == 0.125


# ------------------------------------------------------------------ found by the property suite
def test_huge_label_ids_without_n_phases_are_refused_not_allocated():
    """Labels up to 10**6 with n_phases=None mean K = 10**6 + 1 classes: the kernel's
    (rows, K, C + 1) work array would take 1.2 GiB at 256 rows, so it is refused."""
    lab = np.zeros((256, 4), int)
    lab[0, 0] = 10**6
    with pytest.raises(ValueError, match=r"^labels give K = 1000001 classes"):
        energy_from_labels(np.zeros((256, 4)), lab, 0.1)
    small = np.zeros((4, 4), int)
    small[0, 0] = 10**3  # K = 1001 on 4 rows: allowed, empty classes cost nothing
    assert energy_from_labels(np.zeros((4, 4)), small, 0.1).data == 0.0


def test_energy_of_views_is_the_energy_of_copies():
    """Non-contiguous views are made C-contiguous (a transposed image compiled a new Numba
    signature, 8.7 s per call) and give the same number."""
    x = np.random.default_rng(1).random((7, 5))
    lab = (x > 0.5).astype(int)
    a = energy_from_labels(x.T, lab.T, 0.3, n_phases=2).total
    b = energy_from_labels(x.T.copy(), lab.T.copy(), 0.3, n_phases=2).total
    assert a == b


def test_kmeans_with_fewer_distinct_values_than_k():
    """k-means++ divided by zero inside scipy (NaN probabilities) when the image has fewer
    distinct values than K; now one cluster per value, the exact minimiser."""
    image = np.repeat([[0.0, 0.0, 1.0, 2.0]], 3, axis=0)
    with np.errstate(all="raise"):
        res = kmeans_segment(image, 4, seed=0)
    np.testing.assert_array_equal(res.labels, np.repeat([[0, 0, 1, 2]], 3, axis=0))
    assert res.n_iter == 0 and res.converged
    assert res.final_energy == pytest.approx(DEFAULT_LAM * 2 * 2 * 3)  # two vertical edges
    np.testing.assert_array_equal(kmeans_segment(np.ones((3, 3)), 2).labels, 0)


def test_loss_overflow_is_refused():
    p, x = _probs()
    with pytest.raises(ValueError, match="^lam/beta or image too large"):
        mumford_shah_loss(torch.log(p), x, 1e300)  # was inf in float32
    assert torch.isfinite(mumford_shah_loss(torch.log(p).double(), x.double(), 1e300))


def test_loss_fp16_probabilities_accepted():
    """Half-precision rounding moves a sum of K probabilities by up to K eps (about 1e-3 for
    K = 3), beyond the float32 tolerance 1e-4: the tolerance widens with the dtype."""
    p, x = _probs(shape=(2, 3, 16, 16))
    ph = p.half()
    assert float((ph.float().sum(1) - 1).abs().max()) > 1e-4
    got = mumford_shah_loss(ph, x.half(), 0.1, probabilities=True)
    pf = ph.float() / ph.float().sum(1, keepdim=True)  # float32 refuses the fp16 rounding
    want = mumford_shah_loss(pf, x.half().float(), 0.1, probabilities=True)
    torch.testing.assert_close(got, want, rtol=1e-3, atol=0)


def test_sort_labels_checks_labels():
    from varseg.baselines import sort_labels_by_intensity

    x = np.arange(4.0).reshape(1, 2, 2)
    np.testing.assert_array_equal(
        sort_labels_by_intensity(x, np.array([[1, 1], [0, 0]]), 2), [[0, 0], [1, 1]]
    )
    with pytest.raises(ValueError, match="^labels must lie in 0..1"):
        sort_labels_by_intensity(x, np.array([[2, 1], [0, 0]]), 2)

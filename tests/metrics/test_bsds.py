"""BSDS region benchmark: covering, PRI, VI — hand cases, brute force, scikit-image, real data."""

import itertools
from pathlib import Path

import numpy as np
import pytest

from varseg import metrics as M

BSDS = (
    Path(__file__).resolve().parents[2].parent
    / "shared"
    / "data"
    / "bsds500-sample"
    / "data"
    / "groundTruth"
    / "train"
    / "100075.mat"
)

# Four pixels: S = [0 0 1 1], G = [0 0 0 1]
S = np.array([[0, 0], [1, 1]])
G = np.array([[0, 0], [0, 1]])
# Pairs (6): (1,2) agree-same, (1,3) disagree, (1,4) agree-diff, (2,3) disagree,
# (2,4) agree-diff, (3,4) disagree  ->  RI = 3/6 = 0.5
# formula: n_u = [2, 2] (sum sq 8), n_v = [3, 1] (sum sq 10), n_uv = 2, 1, 1 (sum sq 6):
#          1 - ((8 + 10)/2 - 6) / C(4,2) = 1 - 3/6 = 0.5
RI_SG = 0.5
# VI: H(S) = 1 bit, H(G) = -(3/4 log2 3/4 + 1/4 log2 1/4) = 0.811278,
#     H(S,G) = -(1/2 log2 1/2 + 2 * 1/4 log2 1/4) = 1.5  ->  VI = 2 H(S,G) - H(S) - H(G)
H_G = -(0.75 * np.log2(0.75) + 0.25 * np.log2(0.25))
VI_SG = 2 * 1.5 - 1.0 - H_G  # = 1.188722...
# Covering of G by S: G region {1,2,3} (3 px): best IoU with S0 = {1,2}: 2/3
#                     G region {4}     (1 px): best IoU with S1 = {3,4}: 1/2
#                     (3 * 2/3 + 1 * 1/2) / 4 = 2.5 / 4 = 0.625
COV_G_BY_S = 0.625
# Covering of S by G (roles swapped): S0 {1,2}: IoU with G0 = 2/3 -> 2 * 2/3 = 4/3
#                                     S1 {3,4}: best IoU with G1 = 1/2 -> 2 * 1/2 = 1
#                                     (4/3 + 1) / 4 = 7/12
COV_S_BY_G = 7 / 12


def test_hand_case():
    assert M.rand_index(S, G) == pytest.approx(RI_SG)
    assert M.probabilistic_rand_index(S, G) == pytest.approx(RI_SG)
    assert M.variation_of_information(S, G) == pytest.approx(VI_SG)
    assert VI_SG == pytest.approx(1.188722, abs=1e-6)
    assert M.segmentation_covering(S, G) == pytest.approx(COV_G_BY_S)
    num, den = M.covering_counts(S, G)
    assert num == pytest.approx(2.5) and den == 4
    r = M.region_scores(S, [G])
    assert (r["covering"], r["PRI"], r["VI"]) == pytest.approx((COV_G_BY_S, RI_SG, VI_SG))


def test_covering_not_symmetric():
    assert M.segmentation_covering(G, S) == pytest.approx(COV_S_BY_G)
    assert M.segmentation_covering(S, G) != pytest.approx(M.segmentation_covering(G, S))
    # docstring example: seg [0 0 0 1] vs one all-zero human map
    a, b = np.array([0, 0, 0, 1]), np.zeros(4, int)
    assert M.segmentation_covering(a, b) == pytest.approx(0.75)  # 4 * (3/4) / 4
    assert M.segmentation_covering(b, a) == pytest.approx(0.625)  # (3*3/4 + 1*1/4) / 4


def test_several_ground_truths():
    gts = [S.copy(), G]
    # PRI: mean(RI(S,S)=1, 0.5) = 0.75 ; VI: mean(0, VI_SG) ; covering pooled (4 + 2.5) / 8
    assert M.probabilistic_rand_index(S, gts) == pytest.approx(0.75)
    assert M.variation_of_information(S, gts) == pytest.approx(VI_SG / 2)
    assert M.segmentation_covering(S, gts) == pytest.approx(6.5 / 8)
    assert M.covering_counts(S, gts) == pytest.approx((6.5, 8.0))
    # a stacked (K, H, W) array is the same as a list
    assert M.segmentation_covering(S, np.stack(gts)) == pytest.approx(6.5 / 8)


def test_identical_partitions():
    rng = np.random.default_rng(3)
    seg = rng.integers(0, 6, (12, 9))
    renamed = (seg * 7 + 3) % 100  # a relabelling (injective on 0..5): same partition
    assert M.probabilistic_rand_index(seg, renamed) == pytest.approx(1.0)
    assert M.segmentation_covering(seg, renamed) == pytest.approx(1.0)
    assert M.variation_of_information(seg, renamed) == pytest.approx(0.0, abs=1e-12)


def test_label_zero_is_a_region_and_labels_are_ids():
    # MATLAB's match_segmentations.m drops label 0 of seg; here seg and seg + 1 score the same
    rng = np.random.default_rng(4)
    seg = rng.integers(0, 4, (10, 10))
    gts = [rng.integers(1, 5, (10, 10)) for _ in range(3)]
    for f in (M.segmentation_covering, M.probabilistic_rand_index, M.variation_of_information):
        assert f(seg, gts) == pytest.approx(f(seg + 1, gts))
        assert f(seg, gts) == pytest.approx(f(-5 * seg - 2, gts))  # any ids, negatives too
    # no connected-component relabelling: two separated pieces with one label are one region
    split = np.array([[1, 0, 1]])
    assert M.segmentation_covering(split, np.array([[1, 0, 2]])) == pytest.approx(
        (1 * 1 + 1 * 0.5 + 1 * 0.5) / 3
    )


def test_pri_brute_force_6x6():
    rng = np.random.default_rng(5)
    seg = rng.integers(0, 3, (6, 6))
    gts = [rng.integers(0, 4, (6, 6)) for _ in range(2)]

    def brute_ri(a, b):
        a, b = a.ravel(), b.ravel()
        agree = sum(
            (a[i] == a[j]) == (b[i] == b[j]) for i, j in itertools.combinations(range(a.size), 2)
        )
        return agree / (a.size * (a.size - 1) / 2)  # 630 pairs

    expected = np.mean([brute_ri(seg, g) for g in gts])
    assert M.probabilistic_rand_index(seg, gts) == pytest.approx(expected, abs=1e-12)
    assert 0 < expected < 1


def test_vi_matches_skimage():
    from skimage.metrics import variation_of_information as sk_vi

    rng = np.random.default_rng(6)
    for k_s, k_g in ((2, 3), (5, 7), (12, 4)):
        seg = rng.integers(0, k_s, (20, 30))
        gt = rng.integers(0, k_g, (20, 30))
        # skimage returns [H(gt|seg), H(seg|gt)] in bits (it uses log2); VI is their sum
        expected = sk_vi(gt, seg).sum()
        assert M.variation_of_information(seg, gt) == pytest.approx(expected, rel=1e-10)
        # entropies check: VI = H(S) + H(G) - 2 I, from the joint histogram by hand
        joint = np.histogram2d(seg.ravel(), gt.ravel(), bins=(k_s, k_g))[0] / seg.size
        ps, pg = joint.sum(1), joint.sum(0)
        nz = joint > 0
        mi = np.sum(joint[nz] * np.log2(joint[nz] / np.outer(ps, pg)[nz]))

        def h(p):
            return -np.sum(p[p > 0] * np.log2(p[p > 0]))

        assert M.variation_of_information(seg, gt) == pytest.approx(h(ps) + h(pg) - 2 * mi)


def test_dataset_aggregation_pools_covering():
    big_s = np.zeros((2, 4), int)
    big_g = np.zeros((2, 4), int)  # identical: covering 1 over 8 px
    res = M.bsds_region_scores([S, big_s], [[G], [big_g]])
    # covering pooled: (2.5 + 8) / (4 + 8) = 0.875  (the per-image mean would be 0.8125)
    assert res["covering"] == pytest.approx(10.5 / 12)
    assert res["PRI"] == pytest.approx((RI_SG + 1) / 2)
    assert res["VI"] == pytest.approx(VI_SG / 2)
    assert res["n_images"] == 2
    np.testing.assert_allclose(res["per_image"]["covering"], [0.625, 1.0])
    np.testing.assert_allclose(res["per_image"]["covering_den"], [4, 8])
    with pytest.raises(ValueError, match="same length"):
        M.bsds_region_scores([S], [[G], [G]])
    with pytest.raises(ValueError, match="image 1"):
        M.bsds_region_scores([S, S], [[G], [np.zeros((3, 3), int)]])


def test_torch_input():
    torch = pytest.importorskip("torch")
    r_np = M.region_scores(S, [G, S])
    r_t = M.region_scores(torch.from_numpy(S), [torch.from_numpy(G), torch.from_numpy(S)])
    assert r_np == pytest.approx(r_t)


def test_input_errors():
    with pytest.raises(ValueError, match=r"ground_truths\[1\] must have the shape"):
        M.segmentation_covering(S, [G, np.zeros((3, 3), int)])
    with pytest.raises(ValueError, match="seg contains NaN"):
        M.probabilistic_rand_index(np.full((2, 2), np.nan), G)
    with pytest.raises(ValueError, match="seg must hold integer labels"):
        M.variation_of_information(S + 0.5, G)
    with pytest.raises(ValueError, match="ground_truths is empty"):
        M.segmentation_covering(S, [])
    with pytest.raises(ValueError, match="ground_truths must be a label map"):
        M.segmentation_covering(S, np.zeros((2, 3), int))
    with pytest.raises(ValueError, match="seg is empty"):
        M.segmentation_covering(np.zeros((0, 2), int), np.zeros((0, 2), int))


@pytest.mark.skipif(not BSDS.exists(), reason="BSDS500 sample not available")
def test_real_bsds_human_vs_humans():
    from scipy.io import loadmat

    gt = loadmat(BSDS)["groundTruth"]
    humans = [gt[0, k]["Segmentation"][0, 0] for k in range(gt.shape[1])]
    assert len(humans) >= 2
    seg, others = humans[0], humans[1:]
    r = M.region_scores(seg, others)
    assert 0 < r["PRI"] < 1
    assert 0 < r["covering"] <= 1
    assert r["VI"] > 0
    assert r["covering_den"] == seg.size * len(others)
    # a human scored against itself is perfect
    assert M.region_scores(seg, [seg]) == pytest.approx(
        {
            "covering": 1.0,
            "PRI": 1.0,
            "VI": 0.0,
            "covering_num": seg.size,
            "covering_den": seg.size,
        },
        abs=1e-12,
    )

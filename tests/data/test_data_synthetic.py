"""SyntheticShapes / make_synthetic_image: determinism and label-intensity consistency."""

import numpy as np
import pytest
import torch

from varseg.data import SyntheticShapes, make_synthetic_image
from varseg.data.synthetic import class_levels


def test_deterministic_and_splits_differ():
    a = SyntheticShapes(5, image_size=32, seed=3)
    b = SyntheticShapes(5, image_size=32, seed=3)
    for i in range(5):
        assert torch.equal(a[i]["image"], b[i]["image"])
        assert torch.equal(a[i]["label"], b[i]["label"])
    assert not torch.equal(a[0]["label"], a[1]["label"])
    val = SyntheticShapes(5, image_size=32, seed=3, split="val")
    assert not torch.equal(a[0]["label"], val[0]["label"])
    other = SyntheticShapes(5, image_size=32, seed=4)
    assert not torch.equal(a[0]["label"], other[0]["label"])
    assert a[2]["name"] == "synthetic-train-00002" and a[2]["index"] == 2


def test_item_format_and_collate():
    ds = SyntheticShapes(6, image_size=(24, 40), n_classes=4, channels=2)
    assert ds.num_classes == 4 and ds.in_channels == 2 and len(ds) == 6
    item = ds[0]
    assert item["image"].shape == (2, 24, 40) and item["image"].dtype == torch.float32
    assert item["label"].shape == (24, 40) and item["label"].dtype == torch.int64
    assert bool(item["labeled"])
    batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=3)))
    assert batch["image"].shape == (3, 2, 24, 40)
    with pytest.raises(IndexError):
        ds[6]


@pytest.mark.parametrize("channels", [1, 3])
def test_noise_free_image_is_piecewise_constant(channels):
    levels = class_levels(4, channels)
    for seed in range(5):
        img, lab, bias = make_synthetic_image(
            seed, image_size=48, n_classes=4, noise=0.0, channels=channels
        )
        assert np.all(bias == 1)
        img = img if channels > 1 else img[None]
        assert img.dtype == np.float32 and lab.dtype == np.int64
        assert np.array_equal(img, levels[:, lab])
        assert set(np.unique(lab)) <= {0, 1, 2, 3} and 0 in lab
        assert len(np.unique(lab)) >= 3  # shapes cover classes 1..K-1
    # levels spread in [0, 1] and distinct in every channel
    assert np.allclose(levels[0], [0.125, 0.375, 0.625, 0.875])
    assert all(len(set(row.tolist())) == 4 for row in levels)


def test_noise_statistics_and_bias_field():
    img, lab, bias = make_synthetic_image(
        np.random.default_rng(0), image_size=96, n_classes=3, noise=0.05
    )
    levels = class_levels(3)[0]
    for k in range(3):
        region = img[lab == k]
        if region.size > 200:
            assert abs(region.mean() - levels[k]) < 0.01
            assert abs(region.std() - 0.05) < 0.01
    img_b, lab_b, bias_b = make_synthetic_image(1, image_size=64, noise=0.0, bias_field=0.3)
    assert bias_b.min() >= 0.7 - 1e-6 and bias_b.max() <= 1.3 + 1e-6
    assert bias_b.max() - bias_b.min() > 0.3  # non-trivial
    assert np.allclose(img_b, bias_b * class_levels(3)[0][lab_b], atol=1e-6)
    # smooth: small finite differences
    assert np.abs(np.diff(bias_b, axis=0)).max() < 0.05
    _, _, bias_r = make_synthetic_image(1, image_size=64, bias_field=0.2, bias_kind="random")
    assert bias_r.std() > 0.01
    with pytest.raises(ValueError):
        make_synthetic_image(0, bias_field=1.5)


def test_texture_changes_within_regions():
    clean, lab, _ = make_synthetic_image(2, image_size=64, noise=0.0)
    tex, lab_t, _ = make_synthetic_image(2, image_size=64, noise=0.0, texture=0.05)
    assert np.array_equal(lab, lab_t)
    assert 0 < np.abs(tex - clean).max() <= 0.05 + 1e-6


def test_dataset_bias_item():
    ds = SyntheticShapes(2, image_size=32, bias_field=0.2, noise=0.0)
    item = ds[0]
    assert item["bias"].shape == (32, 32)
    levels = torch.from_numpy(class_levels(3)[0])
    assert torch.allclose(item["image"][0], item["bias"] * levels[item["label"]], atol=1e-6)


def test_negative_index_like_python():
    ds = SyntheticShapes(6, image_size=8)
    for i in range(-6, 0):
        assert ds[i]["name"] == ds[i + 6]["name"]
        assert torch.equal(ds[i]["image"], ds[i + 6]["image"])
    with pytest.raises(IndexError, match="index -7 is out of range for 6 items"):
        ds[-7]


@pytest.mark.parametrize(
    "kw, name",
    [
        ({"image_size": 0}, "image_size"),
        ({"image_size": (8, -8)}, "image_size"),
        ({"n_images": -1}, "n_images"),
        ({"n_images": 2.0}, "n_images"),
    ],
)
def test_bad_arguments_name_the_argument(kw, name):
    with pytest.raises(ValueError, match=rf"^{name} must be"):
        SyntheticShapes(**kw)
    if name == "image_size":
        with pytest.raises(ValueError, match=rf"^{name} must be"):
            make_synthetic_image(0, **kw)

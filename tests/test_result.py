"""The shared result type: lossless .npz round trip."""
import numpy as np
import pytest

from varseg.result import Segmentation


def _result(**kw):
    rng = np.random.default_rng(0)
    y = rng.random((3, 5, 6)).astype(np.float32)
    y /= y.sum(0)
    base = dict(labels=y.argmax(0), memberships=y, means=np.array([[0.1, 0.2], [0.5, 0.5],
                                                                    [0.9, 1.0]]),
                energy=np.array([3.0, 2.5, 2.25]), n_iter=3, converged=True, elapsed=0.125,
                method="test", params={"lam": 0.125, "init": "disk", "sizes": [1, 2]})
    base.update(kw)
    return Segmentation(**base)


def test_round_trip_lossless(tmp_path):
    res = _result(bias=np.linspace(0.5, 1.5, 30).reshape(5, 6),
                  level_sets=np.random.default_rng(1).normal(size=(2, 5, 6)),
                  times=np.array([0.1, 0.2, 0.3]),
                  extras={"corrected": np.ones((5, 6)), "device": "cpu"})
    path = res.save(tmp_path / "r")
    assert path.suffix == ".npz"
    back = Segmentation.load(path)
    for name in ("labels", "memberships", "means", "energy", "bias", "level_sets", "times"):
        a, b = getattr(res, name), getattr(back, name)
        np.testing.assert_array_equal(a, b)
        assert a.dtype == b.dtype
    assert back.params == res.params and back.method == "test"
    assert back.n_iter == 3 and back.converged is True and back.elapsed == 0.125
    np.testing.assert_array_equal(back.extras["corrected"], np.ones((5, 6)))
    assert back.extras["device"] == "cpu"
    assert back.n_phases == 3 and back.final_energy == 2.25
    assert "test: K=3" in back.summary()


def test_optional_fields_stay_none(tmp_path):
    back = Segmentation.load(_result().save(tmp_path / "plain.npz"))
    assert back.bias is None and back.level_sets is None and back.times is None


def test_load_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no saved segmentation"):
        Segmentation.load(tmp_path / "missing.npz")
    np.savez(tmp_path / "other.npz", a=np.zeros(2))
    with pytest.raises(ValueError, match="not a varseg Segmentation"):
        Segmentation.load(tmp_path / "other.npz")

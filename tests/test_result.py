"""The shared result type: lossless .npz round trip."""

import numpy as np
import pytest

from varseg.result import Segmentation


def _result(**kw):
    rng = np.random.default_rng(0)
    y = rng.random((3, 5, 6)).astype(np.float32)
    y /= y.sum(0)
    base = dict(
        labels=y.argmax(0),
        memberships=y,
        means=np.array([[0.1, 0.2], [0.5, 0.5], [0.9, 1.0]]),
        energy=np.array([3.0, 2.5, 2.25]),
        n_iter=3,
        converged=True,
        elapsed=0.125,
        method="test",
        params={"lam": 0.125, "init": "disk", "sizes": [1, 2]},
    )
    base.update(kw)
    return Segmentation(**base)


def test_round_trip_lossless(tmp_path):
    res = _result(
        bias=np.linspace(0.5, 1.5, 30).reshape(5, 6),
        level_sets=np.random.default_rng(1).normal(size=(2, 5, 6)),
        times=np.array([0.1, 0.2, 0.3]),
        extras={"corrected": np.ones((5, 6)), "device": "cpu"},
    )
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


def test_saved_archive_deflates_label_maps_and_stores_floats(tmp_path):
    """Integer entries are deflated, float entries stored; numpy.load reads all back."""
    import zipfile

    labels = np.zeros((64, 64), dtype=np.int64)
    labels[16:48, 16:48] = 1
    res = _result(labels=labels, memberships=np.stack([labels == 0, labels == 1]).astype(float))
    path = res.save(tmp_path / "r.npz")
    with zipfile.ZipFile(path) as zf:
        kinds = {i.filename: i.compress_type for i in zf.infolist()}
        lab = zf.getinfo("labels.npy")
        assert lab.compress_size < lab.file_size / 20  # a two-region map packs tightly
    assert kinds["labels.npy"] == zipfile.ZIP_DEFLATED
    assert kinds["memberships.npy"] == kinds["energy.npy"] == zipfile.ZIP_STORED
    with np.load(path, allow_pickle=False) as z:
        np.testing.assert_array_equal(z["labels"], labels)
        np.testing.assert_array_equal(z["memberships"], res.memberships)
    np.testing.assert_array_equal(Segmentation.load(path).labels, labels)


def test_optional_fields_stay_none(tmp_path):
    back = Segmentation.load(_result().save(tmp_path / "plain.npz"))
    assert back.bias is None and back.level_sets is None and back.times is None


def test_load_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no saved segmentation"):
        Segmentation.load(tmp_path / "missing.npz")
    np.savez(tmp_path / "other.npz", a=np.zeros(2))
    with pytest.raises(ValueError, match="not a varseg Segmentation"):
        Segmentation.load(tmp_path / "other.npz")


def test_array_protocol_and_one_line_repr():
    res = _result(elapsed=0.123456789)
    lab = np.asarray(res)
    assert lab is res.labels or np.shares_memory(lab, res.labels)
    np.testing.assert_array_equal(np.array(res, dtype=np.uint8), res.labels.astype(np.uint8))
    assert np.array(res, dtype=np.uint8).dtype == np.uint8
    copied = np.array(res, copy=True)
    assert not np.shares_memory(copied, res.labels)
    with pytest.raises(ValueError, match="needs a copy"):
        np.asarray(res, dtype=np.float32, copy=False)
    assert int(np.sum(res)) == int(res.labels.sum())
    text = repr(res)
    assert "\n" not in text and len(text) < 120
    assert text == (
        "Segmentation(method='test', shape=(5, 6), K=3, n_iter=3, converged=True, elapsed=0.123s)"
    )


def test_numpy_scalar_and_nested_extras_round_trip(tmp_path):
    extras = {
        "scale": np.float32(0.5),
        "count": np.int64(7),
        "stop": "partition",
        "history": [1.0, 2.5, None],
        "nested": {"a": [1, 2], "b": "x"},
        "none": None,
    }
    back = Segmentation.load(_result(extras=extras).save(tmp_path / "s.npz"))
    assert back.extras["scale"] == np.float32(0.5)
    assert type(back.extras["scale"]) is np.float32 and type(back.extras["count"]) is np.int64
    for k in ("stop", "history", "nested", "none"):
        assert back.extras[k] == extras[k]


class _Thing:
    pass


@pytest.mark.parametrize(
    "key, value",
    [
        ("objs", np.array([{"a": 1}, None], dtype=object)),
        ("thing", _Thing()),
        ("pair", (1, 2)),  # would come back as a list
        ("deep", {"a": np.zeros(2)}),
    ],
)
def test_save_refuses_what_cannot_round_trip(tmp_path, key, value):
    path = tmp_path / "r.npz"
    with pytest.raises(TypeError, match=repr(key)) as exc:
        _result(extras={key: value}).save(path)
    assert "\n" not in str(exc.value)
    assert list(tmp_path.iterdir()) == []  # nothing written, no temp file left


def test_save_refuses_tensor(tmp_path):
    torch = pytest.importorskip("torch")
    with pytest.raises(TypeError, match="'t'.*torch.Tensor"):
        _result(extras={"t": torch.zeros(3)}).save(tmp_path / "r.npz")
    with pytest.raises(TypeError, match="'labels'"):
        _result(labels=np.array([[None]], dtype=object)).save(tmp_path / "r.npz")
    assert list(tmp_path.iterdir()) == []


def _corrupt_files(tmp_path):
    good = _result().save(tmp_path / "good.npz").read_bytes()
    files = {
        "empty.npz": b"",
        "random.npz": np.random.default_rng(0).bytes(4096),
        "truncated.npz": good[: len(good) // 2],
        "text.npz": b"labels,1,2\n",
    }
    flipped = bytearray(good)
    flipped[len(good) // 3] ^= 0xFF  # one bad byte in the compressed data: CRC fails
    files["flipped.npz"] = bytes(flipped)
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    return list(files)


def test_load_corrupt_files_one_line_error(tmp_path):
    for name in _corrupt_files(tmp_path):
        with pytest.raises(ValueError, match="could not load varseg Segmentation") as exc:
            Segmentation.load(tmp_path / name)
        assert name in str(exc.value) and "\n" not in str(exc.value), name


@pytest.mark.parametrize(
    "meta",
    [
        '"just a string"',
        '{"n_iter": 3}',
        '{"n_iter": "3", "converged": true, "elapsed": 0.1, '
        '"method": "m", "params": {}, "extras": {}}',
        "{not json",
    ],
)
def test_load_corrupt_meta(tmp_path, meta):
    arrays = {k: np.zeros(2) for k in ("labels", "memberships", "means", "energy")}
    np.savez(tmp_path / "m.npz", __meta__=np.array(meta), **arrays)
    with pytest.raises(ValueError, match="m.npz") as exc:
        Segmentation.load(tmp_path / "m.npz")
    assert "\n" not in str(exc.value)


_KILL_SCRIPT = r"""
import sys
import numpy as np
from varseg.result import Segmentation
rng = np.random.default_rng(0)
y = rng.random((4, 1200, 1200))
big = Segmentation(labels=y.argmax(0), memberships=y, means=np.zeros(4), energy=np.zeros(2),
                   n_iter=1, converged=False, elapsed=0.0, method="big")
print("ready", flush=True)
big.save(sys.argv[1])
print("saved", flush=True)
"""


def test_sigkill_during_save_keeps_previous_file(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    old = _result()
    path = old.save(tmp_path / "res.npz")
    root = Path(__file__).resolve().parents[1]
    env = dict(os.environ, PYTHONPATH=str(root) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.Popen(
        [sys.executable, "-c", _KILL_SCRIPT, str(path)], env=env, stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout.readline().strip() == "ready"
        deadline = time.monotonic() + 60
        tmp = []
        while time.monotonic() < deadline and proc.poll() is None:
            tmp = [p for p in tmp_path.glob(".res.npz.*.tmp") if p.stat().st_size > 0]
            if tmp:
                break
            time.sleep(0.005)
        assert tmp, "the save never started writing its temporary file"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    back = Segmentation.load(path)  # the previous, complete file
    assert back.method == "test"
    np.testing.assert_array_equal(back.memberships, old.memberships)

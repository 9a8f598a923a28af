"""The Numba fixed point of Eq. 15 lives in a torch-free module, re-exported where it was."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import varseg
from varseg import fixed_point
from varseg.methods import get_method, get_spec

ROOT = Path(__file__).resolve().parents[1]


def _square(n=24, seed=0):
    lab = np.zeros((n, n), dtype=np.int64)
    lab[6:18, 5:17] = 1
    return 0.2 + 0.6 * lab + np.random.default_rng(seed).normal(0, 0.05, lab.shape), lab


def test_one_function_under_every_name():
    import varseg.unrolled

    assert varseg.ms_fixed_point is fixed_point.ms_fixed_point
    assert varseg.unrolled.ms_fixed_point is fixed_point.ms_fixed_point
    assert get_method("fixed-point") is fixed_point.ms_fixed_point
    spec = get_spec("fixed-point")
    assert spec.needs_torch is False and spec.jit is True


def test_solver_never_imports_torch():
    """A fresh interpreter runs the solver (and its registry entry) with torch unimported."""
    code = (
        "import json, sys; import numpy as np; sys.path.insert(0, sys.argv[1]);"
        "from varseg.methods import get_method;"
        "img = np.zeros((16, 16)); img[4:12, 4:12] = 1;"
        "r = get_method('fixed-point')(img, 2, max_iter=30);"
        "print(json.dumps({'torch': 'torch' in sys.modules,"
        " 'inside': int(r.labels[4:12, 4:12].sum()), 'all': int(r.labels.sum())}))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(ROOT)], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["torch"] is False
    # the square is one phase and the background the other (either label)
    assert out["inside"] in (0, 64) and out["all"] in (64, 256 - 64)


def test_dtype_spellings_agree():
    """numpy types, their names and (when installed) torch dtypes select one precision."""
    img, _ = _square()
    ref = fixed_point.ms_fixed_point(img, 2, max_iter=15, tol=0.0, dtype=np.float64)
    assert ref.params["dtype"] == "float64"
    spellings = ["float64", np.dtype(np.float64)]
    torch = pytest.importorskip("torch")
    spellings.append(torch.float64)
    for dtype in spellings:
        res = fixed_point.ms_fixed_point(img, 2, max_iter=15, tol=0.0, dtype=dtype)
        assert res.params["dtype"] == "float64"
        np.testing.assert_array_equal(res.memberships, ref.memberships)
        np.testing.assert_array_equal(res.energy, ref.energy)
    f32 = fixed_point.ms_fixed_point(img, 2, max_iter=15, tol=0.0, dtype=torch.float32)
    assert f32.params["dtype"] == "float32"
    with pytest.raises(TypeError, match="dtype must be torch.float32 or torch.float64"):
        fixed_point.ms_fixed_point(img, dtype=torch.float16)
    with pytest.raises(TypeError, match="dtype must be"):
        fixed_point.ms_fixed_point(img, dtype="int32")


def test_recorded_energy_is_the_shared_energy_of_the_labels():
    """Each record is the energy of Eq. 1 of a hard partition; the last one of the result's
    labels (varseg.energy_from_labels, computed independently here)."""
    img, lab = _square()
    res = fixed_point.ms_fixed_point(img, 2, lam=0.125, max_iter=40)
    x = (img - img.min()) / (img.max() - img.min())
    e = varseg.energy_from_labels(x, res.labels, 0.125, n_phases=2).total
    assert res.energy[-1] == pytest.approx(e, rel=1e-12)
    assert len(res.energy) == res.n_iter + 1
    agree = (res.labels == lab).mean()
    assert max(agree, 1 - agree) == 1.0


@pytest.mark.parametrize("k", [2, 4])
def test_chunked_threads_give_the_same_numbers(k):
    """The Runner hands out chunks of row blocks on demand: any thread count gives the same
    memberships, labels and energies bit for bit, and the chunks tile the blocks."""
    from varseg import _fixed_point_kernels as fpk

    img, _ = _square(40, seed=k)
    x = ((img - img.min()) / (img.max() - img.min())).reshape(1, 1, 40, 40)
    z0 = np.random.default_rng(k).normal(size=(k, 1, 40, 40))
    out = []
    for threads in (1, 2, 3):
        run = fpk.Runner(fpk.n_blocks(40), threads)
        flat = [b for c in run.chunks for b in range(*c)]
        assert flat == list(range(fpk.n_blocks(40)))
        ws = fpk.Workspace(np.ascontiguousarray(x), k)
        z = z0.copy()
        n, _, energy, _ = fpk.iterate(ws, z, 0.125, 2.0, 0, 0.1, 1.0, 12, 0.0, 0.0, threads)
        assert n == 12
        out.append((ws.y.copy(), ws.lab.copy(), np.asarray(energy), z))
    for y, lab, energy, z in out[1:]:
        np.testing.assert_array_equal(y, out[0][0])
        np.testing.assert_array_equal(lab, out[0][1])
        np.testing.assert_array_equal(energy, out[0][2])
        np.testing.assert_array_equal(z, out[0][3])


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_quantile_start_in_the_working_type_is_the_numpy_start(channels, dtype):
    """The logits written straight in the working type equal NumPy's float64 expression
    rounded to it, bit for bit (gray: the luminance is the channel itself)."""
    from varseg.energy import normalise_image

    rng = np.random.default_rng(channels)
    x = normalise_image(rng.random((channels, 13, 17)))
    for k in (2, 3, 5):
        want = np.array(fixed_point._initial_logits(x, k, "quantiles", None), dtype=dtype)
        got = fixed_point._start_logits(x, k, "quantiles", None, dtype, (1,))
        assert got.dtype == dtype and got.shape == (k, 1, 13, 17)
        np.testing.assert_array_equal(got.reshape(want.shape), want)


def test_kept_work_buffers_change_no_result():
    """Workspace(keep=True) hands the previous solve's buffers out again: a solve after
    solves of other sizes and class counts, and after its kept memberships and labels were
    filled with NaN and -7 (they are not zeroed: every entry is written before it is read),
    gives the numbers of the first; the small buffers are zeroed."""
    from varseg._fixed_point_kernels import Workspace

    img = np.random.default_rng(3).random((24, 30))
    first = fixed_point.ms_fixed_point(img, 3, max_iter=15)
    fixed_point.ms_fixed_point(img, 4, max_iter=15)
    fixed_point.ms_fixed_point(img.T, 3, max_iter=15, init="random", seed=1)
    again = fixed_point.ms_fixed_point(img, 3, max_iter=15)
    np.testing.assert_array_equal(again.memberships, first.memberships)
    np.testing.assert_array_equal(again.labels, first.labels)
    np.testing.assert_array_equal(again.energy, first.energy)
    x = np.ones((1, 1, 24, 30), dtype=np.float32)  # the solve's own workspace shapes
    ws = Workspace(x, 3, keep=True)
    ws.ys[...] = np.nan
    ws.labs[...] = -7
    ws.pyrow[...] = 7.0
    ws2 = Workspace(x, 3, keep=True)
    assert ws2.ys is ws.ys and np.isnan(ws2.ys).all()  # the same buffer, as left
    assert ws2.pyrow is ws.pyrow and not ws2.pyrow.any()  # the same buffer, zeroed
    poisoned = fixed_point.ms_fixed_point(img, 3, max_iter=15)
    assert Workspace(x, 3, keep=True).ys is ws.ys  # the solve used the poisoned buffer
    np.testing.assert_array_equal(poisoned.memberships, first.memberships)
    np.testing.assert_array_equal(poisoned.labels, first.labels)
    np.testing.assert_array_equal(poisoned.energy, first.energy)
    assert Workspace(x, 3).ys is not ws.ys  # default: new arrays


@pytest.mark.parametrize(
    "shape, k, channel_axis", [((24, 30), 2, None), ((5, 12, 14), 3, None), ((16, 18, 3), 4, -1)]
)
def test_unzeroed_memberships_and_labels_are_written_before_read(shape, k, channel_axis):
    """The kept memberships and labels (not zeroed between solves) filled with NaN and -7
    before a solve give the numbers of a solve on zeroed ones (K = 2's paths, 3D, colour)."""
    from varseg._fixed_point_kernels import Workspace

    img = np.random.default_rng(k).random(shape)
    x, _ = fixed_point.as_channels_first(img, channel_axis)
    x4 = np.ones((x.shape[0],) + (1,) * (4 - x.ndim) + x.shape[1:], dtype=np.float32)
    runs = []
    for ys_value, lab_value in ((0.0, 0), (np.nan, -7)):
        ws = Workspace(x4, k, keep=True)  # the buffers the solve takes next
        ws.ys[...] = ys_value
        ws.labs[...] = lab_value
        runs.append(fixed_point.ms_fixed_point(img, k, max_iter=12, channel_axis=channel_axis))
        assert Workspace(x4, k, keep=True).ys is ws.ys  # ... and took
    zeroed, poisoned = runs
    np.testing.assert_array_equal(poisoned.memberships, zeroed.memberships)
    np.testing.assert_array_equal(poisoned.labels, zeroed.labels)
    np.testing.assert_array_equal(poisoned.energy, zeroed.energy)

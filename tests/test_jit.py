"""Tests of varseg._jit: kernel families from one source, compilation outside the timings."""

import logging
import math
import re
import time

import numpy as np
import pytest

from varseg import _jit


def _helper(a, b):
    return a / math.sqrt(b)


def _kernel(v):
    acc = 0.0
    for j in range(v.shape[0]):
        acc += _helper(v[j], 2.0)  # a plain Python function here: only a family can compile it
    return acc


def _source_pair():
    return {"_helper": _helper, "_kernel": _kernel}


def test_family_clones_are_distinct_and_rebind_callees():
    a = _jit.jit_family(_source_pair(), "a")
    b = _jit.jit_family(_source_pair(), "b", fastmath=True)
    v = np.arange(1.0, 5.0)
    assert a._kernel(v) == pytest.approx(v.sum() / math.sqrt(2.0), rel=1e-15)
    assert b._kernel(v) == pytest.approx(v.sum() / math.sqrt(2.0), rel=1e-6)
    assert a._kernel.py_func.__qualname__ == "_kernel__a"
    assert b._kernel.py_func.__qualname__ == "_kernel__b"
    assert a._kernel.py_func.__globals__["_helper"] is a._helper
    assert b._kernel.py_func.__globals__["_helper"] is b._helper
    assert globals()["_helper"] is _helper  # the source module is left alone
    assert a._kernel.py_func.__code__ is b._kernel.py_func.__code__ is _kernel.__code__
    assert b._kernel.targetoptions["fastmath"] and not a._kernel.targetoptions.get("fastmath")


def test_family_rejects_bad_input():
    with pytest.raises(ValueError, match="suffix"):
        _jit.jit_family(_source_pair(), "not an identifier")
    with pytest.raises(ValueError, match="plain Python function"):
        _jit.jit_family({"f": len}, "x")


_FLAGS = re.compile(
    r"\bf(?:add|sub|mul|div)\s+((?:fast|reassoc|nnan|ninf|nsz|arcp|contract|"
    r"afn)\s+)+(?:float|double|<)"
)


def _ir(dispatcher, sig):
    dispatcher.compile(sig)
    return "\n".join(dispatcher.inspect_llvm().values())


def test_fast_family_ir_has_fastmath_flags_and_ieee_not():
    """The update of the float32 (fast) family carries fast-math flags, the IEEE one none;
    both built by the same factory as the solver's families (cache off: IR inspectable)."""
    from numba import float32

    from varseg.levelset._cv_kernels import kernel_family

    sig = (float32,) * 13
    fast = _ir(kernel_family("ir_fast", True, cache=False)._upd2, sig)
    ieee = _ir(kernel_family("ir_ieee", False, cache=False)._upd2, sig)
    assert _FLAGS.search(fast), "no fast-math flag in the fast variant's IR"
    assert re.search(r"\b(afn|arcp|contract)\b", fast)
    assert not _FLAGS.search(ieee), "fast-math flag in the IEEE variant's IR"


def test_solver_families_have_own_cache_entries():
    from varseg import _energy_kernels as ek
    from varseg.levelset import _cv_kernels as kern

    for name in ("_step_range", "_update_row", "classify_blocks"):
        q_fast = getattr(kern.FAST, name).py_func.__qualname__
        q_ieee = getattr(kern.IEEE, name).py_func.__qualname__
        assert q_fast != q_ieee and q_fast.endswith("__fast") and q_ieee.endswith("__ieee")
    assert ek.hard_energy.targetoptions.get("parallel")
    assert not ek.hard_energy_serial.targetoptions.get("parallel")
    assert ek.hard_energy.py_func.__code__ is ek.hard_energy_serial.py_func.__code__


def test_parallel_and_serial_energy_agree():
    from varseg._energy_kernels import hard_energy, hard_energy_serial

    rng = np.random.default_rng(0)
    x = rng.random((2, 3, 5, 7))
    lab = rng.integers(0, 3, (3, 5, 7))
    a = hard_energy(x, lab, 3, True)
    b = hard_energy_serial(x, lab, 3, True)
    assert a[0] == pytest.approx(b[0], rel=1e-12)
    assert a[1] == pytest.approx(b[1], rel=1e-12)
    np.testing.assert_allclose(a[2], b[2], rtol=1e-12)


@pytest.mark.parametrize("isotropic", [True, False])
def test_parallel_energy_does_not_depend_on_threads(isotropic):
    """The parallel kernel's sums are the serial kernel's floats, bit for bit, at 1, 2 and 3
    threads (per-row terms summed in row order, not a prange reduction), and they are the
    row-by-row sums of energy_from_labels' definition to rounding."""
    import numba

    from varseg._energy_kernels import hard_energy, hard_energy_serial
    from varseg.energy import energy_from_labels

    rng = np.random.default_rng(3)
    x = rng.random((2, 1, 97, 61)) * 1e3  # large values: rounding shows in the last bits
    lab = rng.integers(0, 4, (1, 97, 61))
    ref = hard_energy_serial(x, lab, 4, isotropic)
    before = numba.get_num_threads()
    try:
        for t in range(1, min(3, numba.config.NUMBA_NUM_THREADS) + 1):
            numba.set_num_threads(t)
            got = hard_energy(x, lab, 4, isotropic)
            assert got[0] == ref[0] and got[1] == ref[1]
            np.testing.assert_array_equal(got[2], ref[2])
    finally:
        numba.set_num_threads(before)
    tv = "isotropic" if isotropic else "anisotropic"
    terms = energy_from_labels(x[:, 0], lab[0], 1.0, n_phases=4, tv=tv)
    assert terms.data == pytest.approx(ref[0], rel=1e-12)
    assert terms.length == pytest.approx(ref[1], rel=1e-12)


def test_ensure_compiled_runs_once_and_announces_real_compiles(caplog):
    from numba import njit

    calls = []
    fresh = njit(lambda v: v + 1)  # never compiled, not cached

    def compile_it():
        calls.append(1)
        fresh(1.5)
        fresh(2)  # a second compilation in the same run: still one line

    with caplog.at_level(logging.INFO, logger="varseg._jit"):
        spent = _jit.ensure_compiled(("test", "compile"), compile_it, estimate=7)
        again = _jit.ensure_compiled(("test", "compile"), lambda: calls.append(2))
        _jit.ensure_compiled(("test", "no compile"), lambda: (calls.append(3), fresh(3.5)))
    assert calls == [1, 3]
    assert spent > 0 and again == 0.0
    lines = [r.getMessage() for r in caplog.records]
    assert lines == ["compiling Numba kernels once, about 7 s (('test', 'compile'))"]
    assert ("test", "compile") in _jit.compiled_keys()


def test_chan_vese_elapsed_excludes_compilation(monkeypatch):
    """A (simulated) 1 s compilation before the first call is not in elapsed/times."""
    from varseg.levelset import _chan_vese as cv

    real = cv._run_tiny

    def slow(wdtype):
        time.sleep(1.0)
        real(wdtype)

    monkeypatch.setattr(cv, "_run_tiny", slow)
    monkeypatch.delitem(_jit._DONE, ("chan_vese", "float64"), raising=False)
    img = np.zeros((12, 12))
    img[3:9, 3:9] = 1
    t0 = time.perf_counter()
    seg = cv.chan_vese(img, max_iter=5, dtype=np.float64)
    wall = time.perf_counter() - t0
    assert wall >= 1.0
    assert seg.elapsed < wall - 0.9
    assert seg.times[-1] <= seg.elapsed
    assert _jit.compiled_keys()[("chan_vese", "float64")] >= 1.0


def test_warmup_command_is_registered():
    from varseg.cli import build_parser

    args = build_parser().parse_args(["warmup", "-q"])
    assert args.command == "warmup" and args.quiet


# --------------------------------------------------------------------------------------------
# a cold cache is compiled in a child process: the first run after an install runs the same
# code as every later one
# --------------------------------------------------------------------------------------------
_MINI = """
import sys, logging
import numpy as np
from varseg import _jit
from varseg.levelset import _cv_kernels as K


def run_rows(phi, out, f, n, mu, dt, eps, eta, sp):
    H = phi.shape[0]
    for _ in range(n):
        for i in range(H):
            ip = min(i + 1, H - 1)
            im = max(i - 1, 0)
            _update_row(phi[i], phi[ip], phi[im], phi[i], phi[i], np.bool_(False), f[i], out[i],
                        mu, dt, eps, eta, sp)
        for i in range(H):
            for j in range(phi.shape[1]):
                phi[i, j] = out[i, j]


# the fast-math update of the Chan-Vese kernels (its callees with their flags), one caller
FUNCS = {k: K._KERNELS[k] for k in ("_update_row", "_update_row_spaced", "_upd2", "_upd3",
                                     "_upd3s", "dirac_pi")}
FUNCS["_implicit"] = K._implicit_1div
FUNCS["run_rows"] = run_rows
FAM = _jit.jit_family(FUNCS, "mini", cache=True, error_model="numpy", nogil=True,
                      overrides={k: {"fastmath": K._FAST} for k in FUNCS if k != "run_rows"})


def compute(n=30):
    rng = np.random.default_rng(0)
    phi = rng.standard_normal((64, 67)).astype(np.float32)
    f = (0.1 * rng.standard_normal((64, 67))).astype(np.float32)
    c = np.float32
    FAM.run_rows(phi, np.empty_like(phi), f, n, c(0.25), c(0.5), c(1.0), c(1e-8),
                 np.empty(0, np.float32))
    return phi


def warm():
    compute(1)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="%(levelname)s %(message)s")
    _jit.ensure_compiled(("mini",), warm, estimate=3, child=("mini", "warm", ()))
    np.save(sys.argv[1], compute())
    print("loaded from the cache:", sum(FAM.run_rows.stats.cache_hits.values()))
"""


def _run_mini(tmp_path, cache, out, **env):
    import os
    import subprocess
    import sys

    e = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / cache), PYTHONPATH=str(tmp_path))
    e.pop("VARSEG_JIT_IN_PROCESS", None)
    e.update(env)
    proc = subprocess.run(
        [sys.executable, str(tmp_path / "mini.py"), str(tmp_path / out)],
        env=e,
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout, np.load(tmp_path / out)


def test_cold_cache_is_compiled_in_a_child_and_runs_the_cached_code(tmp_path):
    (tmp_path / "mini.py").write_text(_MINI)
    log_cold, cold = _run_mini(tmp_path, "cache", "cold.npy")
    log_warm, warm = _run_mini(tmp_path, "cache", "warm.npy")
    # the first run announced the compilation, which ran in the child; the second loaded
    assert "INFO compiling Numba kernels once, about 3 s (('mini',))" in log_cold
    assert "loaded from the cache: 1" in log_cold and "loaded from the cache: 1" in log_warm
    assert "compiling" not in log_warm and "WARNING" not in log_cold + log_warm
    np.testing.assert_array_equal(cold, warm)  # bit for bit
    # what the child avoids: compiled in the process that then runs it (a cold cache of its
    # own), the same source gives other float32 values (calls resolve to each callee's own
    # compiled copy rather than to the copies linked into the cached caller)
    log_here, here = _run_mini(tmp_path, "cache2", "here.npy", VARSEG_JIT_IN_PROCESS="1")
    assert "loaded from the cache: 0" in log_here
    assert not np.array_equal(here, warm), "the in-process compile now runs the cached code"


def test_a_failing_child_falls_back_to_compiling_here(tmp_path, monkeypatch, caplog):
    import importlib
    import sys

    (tmp_path / "cold_mod.py").write_text(
        "from numba import njit\n\n@njit(cache=True)\ndef add_one(v):\n    return v + 1\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delenv("VARSEG_JIT_IN_PROCESS", raising=False)
    mod = importlib.import_module("cold_mod")
    try:
        with caplog.at_level(logging.INFO, logger="varseg._jit"):
            spent = _jit.ensure_compiled(
                ("test", "child fails"),
                lambda: mod.add_one(1.5),
                estimate=1,
                child=("no_such_module_here", "warm", ()),
            )
    finally:
        sys.modules.pop("cold_mod", None)
    msgs = [(r.levelname, r.getMessage()) for r in caplog.records]
    assert msgs[0] == ("INFO", "compiling Numba kernels once, about 1 s (('test', 'child fails'))")
    assert msgs[1][0] == "WARNING" and "the child process failed (exit 1)" in msgs[1][1]
    assert "No module named 'no_such_module_here'" in msgs[1][1]
    assert len(msgs) == 2 and spent > 0
    # compiled here after all, not from the cache (misses: the stopped attempt, the one
    # after the lock between processes, the compilation)
    assert len(mod.add_one.signatures) == 1 and not mod.add_one.stats.cache_hits
    assert sum(mod.add_one.stats.cache_misses.values()) == 3
    assert mod.add_one(2.0) == 3.0


def test_the_child_imports_from_this_process_sys_path_not_its_working_directory(
    tmp_path, monkeypatch
):
    """``python -c`` would put the working directory first: a copy of the module there (here
    a decoy that fails) must not be the one the child compiles."""
    import sys

    real, decoy = tmp_path / "real", tmp_path / "decoy"
    real.mkdir()
    decoy.mkdir()
    (real / "shadow_mod.py").write_text("def warm():\n    print('real')\n")
    (decoy / "shadow_mod.py").write_text("raise SystemExit('the decoy was imported')\n")
    monkeypatch.syspath_prepend(str(real))
    monkeypatch.chdir(decoy)
    try:
        import shadow_mod  # noqa: F401  (this process's copy)

        assert _jit._compile_in_child(("shadow_mod", "warm", ())) == ""
        # and a child that imports another file than this process's is refused
        monkeypatch.setattr(sys.modules["shadow_mod"], "__file__", str(decoy / "shadow_mod.py"))
        why = _jit._compile_in_child(("shadow_mod", "warm", ()))
        assert why.startswith("the child process imported shadow_mod from ")
        assert str(real / "shadow_mod.py") in why
    finally:
        sys.modules.pop("shadow_mod", None)


def test_two_processes_on_a_cold_cache_compile_once(tmp_path):
    """Two processes that start on the same cold cache at once (pytest-xdist workers): one
    compiles (in its child) while the other waits for the lock, then loads; same numbers."""
    import os
    import subprocess
    import sys

    (tmp_path / "mini.py").write_text(_MINI)
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "cache"), PYTHONPATH=str(tmp_path))
    env.pop("VARSEG_JIT_IN_PROCESS", None)
    procs = [
        subprocess.Popen(
            [sys.executable, str(tmp_path / "mini.py"), str(tmp_path / f"{i}.npy")],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=tmp_path,
        )
        for i in range(2)
    ]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [err[-2000:] for _, err in outs]
    logs = [out for out, _ in outs]
    assert sum(log.count("compiling Numba kernels once") for log in logs) == 1, logs
    assert all("loaded from the cache: 1" in log and "WARNING" not in log for log in logs)
    np.testing.assert_array_equal(np.load(tmp_path / "0.npy"), np.load(tmp_path / "1.npy"))

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

    for name in ("_step_range", "_update_row", "classify"):
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

"""The small shared helpers: JSON coercion, thread limits, the environment record."""

import json
import os
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from varseg._environment import environment
from varseg._json import json_default, to_builtin
from varseg._threads import limit_threads


def test_to_builtin_and_json_default_round_trip():
    obj = {
        "a": np.int64(3),
        "b": (np.float32(0.5), np.bool_(True)),
        4: np.arange(3),
        "p": Path("x/y"),
        "f": Fraction(1, 8),
    }
    out = to_builtin(obj)
    assert out == {"a": 3, "b": [0.5, True], "4": [0, 1, 2], "p": "x/y", "f": "1/8"}
    assert type(out["a"]) is int and type(out["b"][1]) is bool
    assert json.loads(json.dumps(obj, default=json_default, sort_keys=False)) == {
        "a": 3,
        "b": [0.5, True],
        "4": [0, 1, 2],
        "p": "x/y",
        "f": "1/8",
    }
    with pytest.raises(TypeError, match="cannot store object as JSON"):
        json.dumps({"x": object()}, default=json_default)
    marker = object()
    assert to_builtin(marker) is marker  # left for json.dumps to refuse


def test_limit_threads_sets_env_and_numba(monkeypatch):
    import numba

    before = numba.get_num_threads()
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS"):
        monkeypatch.delenv(var, raising=False)
    try:
        assert limit_threads(1) == 1
        assert os.environ["OMP_NUM_THREADS"] == "1" and os.environ["MKL_NUM_THREADS"] == "1"
        # numba is imported: its variable stays as it was, its run-time count is set
        assert "NUMBA_NUM_THREADS" not in os.environ
        assert numba.get_num_threads() == 1
    finally:
        numba.set_num_threads(before)
    for bad in (0, -2, 1.5, True):
        with pytest.raises(ValueError, match="threads must be a positive integer"):
            limit_threads(bad)


def test_environment_names_versions_and_load():
    env = environment()
    assert env["versions"]["numpy"] == np.__version__
    assert env["cpu_count"] == os.cpu_count()
    assert env["load_average"] is None or len(env["load_average"]) == 3
    json.dumps(env)  # JSON-ready as it is


def test_limit_threads_before_numba_sets_its_variable():
    import subprocess
    import sys

    code = (
        "import os, sys; from varseg._threads import limit_threads; limit_threads(1); "
        "print('numba' in sys.modules, os.environ['NUMBA_NUM_THREADS'])"
    )
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_NUM_THREADS"}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    ).stdout.split()
    assert out == ["False", "1"]


def test_torch_threads_sets_and_restores_the_count_also_on_error():
    torch = pytest.importorskip("torch")
    from varseg._threads import torch_threads

    before = torch.get_num_threads()
    want = 1 if before != 1 else 2
    with torch_threads(want) as n:
        assert n == want and torch.get_num_threads() == want
    assert torch.get_num_threads() == before
    with pytest.raises(RuntimeError, match="boom"), torch_threads(want):
        raise RuntimeError("boom")
    assert torch.get_num_threads() == before
    with pytest.raises(ValueError, match="threads"), torch_threads(0):
        pass
    assert torch.get_num_threads() == before

"""The one-time warm-up of each Numba solver covers every kernel its timed part runs.

A fresh interpreter runs a solver once on a tiny image (its warm-up compiles or loads the
kernels), counts the compiled signatures of every Numba dispatcher, then solves an image
above the parallel-energy threshold (2^17 pixels): no dispatcher may gain a signature, i.e.
nothing is compiled or loaded from Numba's cache inside ``Segmentation.elapsed``.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

CODE = """
import gc, json, sys
sys.path.insert(0, sys.argv[1])
import numpy as np
from numba.core.registry import CPUDispatcher
import varseg

def signatures():
    return {f"{d.py_func.__module__}.{d.py_func.__qualname__}": len(d.signatures)
            for d in gc.get_objects() if isinstance(d, CPUDispatcher)}

solver = {"lic": varseg.bias_field_levelset, "chan-vese": varseg.chan_vese,
          "fixed-point": varseg.ms_fixed_point}[sys.argv[2]]
rng = np.random.default_rng(0)
solver(rng.random((24, 24)), 2, max_iter=2)
before = signatures()
big = rng.random((400, 400))
big[100:300, 120:280] += 1.0
seg = solver(big, 2, max_iter=3)
after = signatures()
print(json.dumps({"new": sorted(k for k, n in after.items() if n > before.get(k, 0)),
                  "loaded": sum(before.values()), "labels": np.unique(seg.labels).tolist()}))
"""


@pytest.mark.parametrize("method", ["lic", "chan-vese", "fixed-point"])
def test_no_kernel_is_loaded_inside_the_clock(method):
    proc = subprocess.run(
        [sys.executable, "-c", CODE, str(ROOT), method],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["loaded"] > 0  # the warm-up did load kernels
    assert out["new"] == []  # and the large solve needed no other
    assert out["labels"] == [0, 1]

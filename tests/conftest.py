"""Shared fixtures: the real data folder beside the project (``../shared/data``).

Under pytest-xdist (``-n auto`` in ``pyproject.toml``) each worker runs its solvers, torch
and BLAS on one thread: the workers already share the cores, and two threads per worker
only make them wait for each other. Tests of the threaded paths set their thread counts.
"""

import os
from pathlib import Path

import pytest

#: The most workers ``-n auto`` starts (each imports torch and Numba: a few hundred MB).
MAX_AUTO_WORKERS = 4


def pytest_xdist_auto_num_workers(config):
    """Workers for ``-n auto``: the CPUs this process may use, at most
    :data:`MAX_AUTO_WORKERS` (``PYTEST_XDIST_AUTO_NUM_WORKERS`` still decides when set)."""
    if os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS"):
        return int(os.environ["PYTEST_XDIST_AUTO_NUM_WORKERS"])
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, min(cpus or 1, MAX_AUTO_WORKERS))


if os.environ.get("PYTEST_XDIST_WORKER"):
    for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(_var, "1")
    import numba

    numba.set_num_threads(1)

#: ``../shared/data`` relative to the project root; tests that need it skip without it.
SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture
def shared_data():
    """Path of ``../shared/data`` (the test is skipped when the folder is absent)."""
    if not SHARED_DATA.is_dir():
        pytest.skip("no ../shared/data")
    return SHARED_DATA


@pytest.fixture
def camera_small():
    """scikit-image's camera at 64×64 as float in [0, 1]."""
    import numpy as np
    from skimage import data, transform

    return transform.resize(data.camera(), (64, 64), anti_aliasing=True).astype(np.float64)

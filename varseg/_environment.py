"""What a result was computed with: package versions, threads, load average."""

from __future__ import annotations

import os
import platform
from importlib import metadata

__all__ = ["environment"]

_PACKAGES = ("varseg", "numpy", "scipy", "numba", "scikit-image", "torch")


def _version(name):
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def environment():
    """A JSON-friendly description of this process's software and machine.

    Versions are read from the installed distributions' metadata (nothing is imported, so
    asking costs no torch import); ``threads`` is Numba's thread count when Numba is
    imported, else the CPU count; ``load_average`` the 1/5/15-minute load.
    """
    import sys

    threads = os.cpu_count()
    if "numba" in sys.modules:
        threads = sys.modules["numba"].get_num_threads()
    try:
        load = [round(v, 2) for v in os.getloadavg()]
    except OSError:  # pragma: no cover - not on every platform
        load = None
    return {
        "versions": {p: _version(p) for p in _PACKAGES},
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "threads": threads,
        "load_average": load,
    }

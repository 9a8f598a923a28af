"""The one JSON coercion of varseg: numpy scalars and arrays, paths and tuples to built-ins."""

from __future__ import annotations

import os

import numpy as np

__all__ = ["to_builtin"]


def to_builtin(obj):
    """``obj`` with numpy scalars/arrays, paths and tuples turned into JSON built-ins.

    Dicts and lists are converted recursively; anything else is returned unchanged (so that
    ``json.dumps`` raises for what cannot be written, rather than writing a string).
    """
    if isinstance(obj, dict):
        return {str(k): to_builtin(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_builtin(v) for v in obj]
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return to_builtin(obj.tolist())
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    return obj

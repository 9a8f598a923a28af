"""The one JSON coercion of varseg: numpy scalars and arrays, paths, fractions and tuples to
built-ins."""

from __future__ import annotations

import os
from fractions import Fraction

import numpy as np

__all__ = ["to_builtin", "json_default"]


def json_default(obj):
    """``default=`` hook for :func:`json.dumps`: numpy scalars → Python scalars, arrays →
    lists, paths and fractions → strings; anything else raises ``TypeError`` (so what cannot
    be written is refused, not written as its ``repr``)."""
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, (os.PathLike, Fraction)):
        return os.fspath(obj) if isinstance(obj, os.PathLike) else str(obj)
    raise TypeError(f"cannot store {type(obj).__name__} as JSON")


def to_builtin(obj):
    """``obj`` with numpy scalars/arrays, paths, fractions and tuples turned into JSON
    built-ins, recursively through dicts and lists; anything else is returned unchanged (so
    that :func:`json.dumps` raises for what cannot be written)."""
    if isinstance(obj, dict):
        return {str(k): to_builtin(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_builtin(v) for v in obj]
    if isinstance(obj, (bool, int, float, str, type(None))):
        return obj
    try:
        return to_builtin(json_default(obj))
    except TypeError:
        return obj

"""Registry of segmentation methods by name.

Shared by the command line and the comparison harness; every entry returns
:class:`varseg.Segmentation`.
"""
from __future__ import annotations

from varseg._optional import import_deep

__all__ = ["METHODS", "get_method", "method_names"]

#: method name -> "module:function"; each takes ``(image, n_phases, **params)`` and the
#: scikit-image keyword ``channel_axis``.
METHODS = {
    "chan-vese": "varseg.levelset.chan_vese:chan_vese",
    "lic": "varseg.levelset.lic:bias_field_levelset",
    "fixed-point": "varseg.unrolled:ms_fixed_point",
    "unrolled": "varseg.unrolled:unrolled_segment",
    "neural": "varseg.neural:neural_segment",
    "kmeans": "varseg.baselines:kmeans_segment",
    "otsu": "varseg.baselines:otsu_segment",
}


def method_names():
    """Names accepted by :func:`get_method`."""
    return sorted(METHODS)


def get_method(name):
    """Return the segmentation function registered under ``name``.

    Raises
    ------
    ValueError
        Unknown method name (the message lists the known ones).
    ImportError
        The method needs torch and torch is missing (one line: ``pip install 'varseg[deep]'``).
    """
    if callable(name):
        return name
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; expected one of {method_names()}")
    mod, fn = METHODS[name].split(":")
    return getattr(import_deep(mod, f"method {name!r}"), fn)

"""Classical variational and deep Mumford–Shah segmentation, measured with one ruler.

The public API is imported lazily so that ``import varseg`` stays cheap (torch is only
imported when a torch-based function is first used).

References
----------
.. [1] B. Kim and J. C. Ye, "Mumford–Shah Loss Functional for Image Segmentation with
       Deep Learning", IEEE Trans. Image Process. 29, 2019.
"""

import logging

from varseg._optional import import_deep

__version__ = "0.1.0"

# Library messages go through ``logging.getLogger(__name__)`` in each module; an application
# (or the ``varseg`` command line, see :mod:`varseg.cli`) decides where they go.
logging.getLogger(__name__).addHandler(logging.NullHandler())

_LAZY = {
    # energy (Eq. 1-6, 19-20)
    "mumford_shah_energy": "varseg.energy",
    "mumford_shah_terms": "varseg.energy",
    "data_term": "varseg.energy",
    "length_term": "varseg.energy",
    "region_means": "varseg.energy",
    "total_variation": "varseg.energy",
    "lic_energy": "varseg.energy",
    "energy_from_labels": "varseg.energy",
    "labels_to_memberships": "varseg.energy",
    # result type
    "Segmentation": "varseg.result",
    # solvers
    "chan_vese": "varseg.levelset",
    "bias_field_levelset": "varseg.levelset",
    "ms_fixed_point": "varseg.fixed_point",
    "UnrolledMumfordShah": "varseg.unrolled",
    "unrolled_segment": "varseg.unrolled",
    "neural_segment": "varseg.neural",
}

__all__ = sorted(_LAZY) + ["__version__"]


_SUBMODULES = {
    "losses",
    "models",
    "data",
    "metrics",
    "plot",
    "levelset",
    "train",
    "energy",
    "result",
    "unrolled",
    "fixed_point",
    "neural",
    "compare",
    "methods",
    "io",
}


def __getattr__(name):
    if name in _LAZY:
        return getattr(import_deep(_LAZY[name], f"varseg.{name}"), name)
    if name in _SUBMODULES:
        return import_deep(f"varseg.{name}", f"varseg.{name}")
    raise AttributeError(f"module 'varseg' has no attribute {name!r}")


def __dir__():
    return __all__

"""Level-set solvers: multiphase Chan–Vese (Vese & Chan 2002) and Li 2011's bias-field model.

Also their initialisations.

The public names live in private modules (``_chan_vese``, ``_bias_field``, ``_init``), as in
scikit-image's ``segmentation`` package, and are loaded on first use so that importing the
package costs nothing until a solver is needed.
"""

from importlib import import_module

_LAZY = {
    "chan_vese": "._chan_vese",
    "interface_edges": "._chan_vese",
    "STOP_RULES": "._chan_vese",
    "STOP_WINDOW": "._chan_vese",
    "bias_field_levelset": "._bias_field",
    "initial_level_sets": "._init",
    "kmeans_partition": "._init",
    "lloyd_partition": "._init",
    "INIT_NAMES": "._init",
}

__all__ = sorted(_LAZY)


def __getattr__(name):
    if name in _LAZY:
        return getattr(import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module 'varseg.levelset' has no attribute {name!r}")


def __dir__():
    return __all__

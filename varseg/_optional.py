"""Optional dependencies: one place that says what to install when one is missing.

torch is optional (``pip install "varseg[deep]"``): the classical solvers (the level sets and
the Numba fixed point of Eq. 15, :mod:`varseg.fixed_point`), the energy, the metrics,
``compare`` and the reports never import it; the losses, the networks, the unrolled network,
the neural solver, the data loaders and the training engine do.
"""

from __future__ import annotations

import importlib.util
from importlib import import_module

__all__ = ["DEEP_EXTRA_HINT", "has_torch", "is_missing_torch", "require_torch", "import_deep"]

#: the install line quoted by every "needs torch" message
DEEP_EXTRA_HINT = "pip install 'varseg[deep]'"


def has_torch() -> bool:
    """Whether torch can be imported (without importing it)."""
    try:
        return importlib.util.find_spec("torch") is not None
    except (ImportError, ValueError):
        return False


def is_missing_torch(err: BaseException) -> bool:
    """Whether ``err`` is the ImportError of a missing torch (or one of its submodules)."""
    name = getattr(err, "name", None) or ""
    return isinstance(err, ImportError) and (name == "torch" or name.startswith("torch."))


def require_torch(feature: str):
    """Return the torch module, or raise a one-line ImportError naming ``feature``.

    Parameters
    ----------
    feature : str
        What needs torch, as the user spelled it (e.g. ``"method 'neural'"``).

    Returns
    -------
    module
        The imported ``torch``.

    Raises
    ------
    ImportError
        ``"<feature> needs torch: pip install 'varseg[deep]'"`` when torch is missing.
    """
    try:
        return import_module("torch")
    except ImportError as err:
        raise ImportError(f"{feature} needs torch: {DEEP_EXTRA_HINT}", name="torch") from err


def import_deep(module: str, feature: str):
    """Import ``module``; a missing torch becomes :func:`require_torch`'s one-line error.

    Parameters
    ----------
    module : str
        Dotted module name (e.g. ``"varseg.losses"``).
    feature : str
        What the user asked for, quoted in the error message.

    Returns
    -------
    module
        The imported module.

    Raises
    ------
    ImportError
        ``"<feature> needs torch: pip install 'varseg[deep]'"`` when the import fails only
        because torch is missing; any other ImportError propagates unchanged.
    """
    try:
        return import_module(module)
    except ImportError as err:
        if is_missing_torch(err):
            raise ImportError(f"{feature} needs torch: {DEEP_EXTRA_HINT}", name="torch") from err
        raise

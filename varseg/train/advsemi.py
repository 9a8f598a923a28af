"""Deprecated location of the AdvSemi step: use :mod:`varseg.train.steps.advsemi` and
:func:`varseg.train.config.advsemi_settings`. Kept for one release."""

from __future__ import annotations

import warnings

from .config import ADVSEMI_DEFAULTS, advsemi_settings
from .steps.advsemi import AdvSemiStep

__all__ = ["ADVSEMI_DEFAULTS", "AdvSemiStep", "advsemi_settings"]

warnings.warn(
    "varseg.train.advsemi is deprecated; use varseg.train.steps.advsemi / varseg.train.config",
    DeprecationWarning,
    stacklevel=2,
)

"""Deprecated location of the AdvSemi step: use :mod:`varseg.train.steps.advsemi` and
:func:`varseg.train.config.advsemi_settings`. Kept for one release."""

from __future__ import annotations

from .config import ADVSEMI_DEFAULTS, advsemi_settings
from .steps.advsemi import AdvSemiStep

__all__ = ["ADVSEMI_DEFAULTS", "AdvSemiStep", "advsemi_settings"]

"""Deprecated name of :mod:`varseg.models.adversarial` (AdvSemi's losses); kept one release."""

from __future__ import annotations

import warnings

from .adversarial import (
    AdvSemiLossWeights,
    adversarial_loss,
    one_hot_label_map,
    semi_supervised_self_training_loss,
)

__all__ = [
    "AdvSemiLossWeights",
    "adversarial_loss",
    "one_hot_label_map",
    "semi_supervised_self_training_loss",
]

warnings.warn(
    "varseg.models.advsemi_losses is deprecated; use varseg.models.adversarial",
    DeprecationWarning,
    stacklevel=2,
)

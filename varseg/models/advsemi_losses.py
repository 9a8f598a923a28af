"""Deprecated name of :mod:`varseg.models.adversarial` (AdvSemi's losses); kept one release."""

from __future__ import annotations

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

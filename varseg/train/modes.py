"""Deprecated location of the training steps: use :mod:`varseg.train.steps`.

Kept for one release; every name re-exports its new home.
"""

from __future__ import annotations

import warnings

from varseg.losses import masked_cross_entropy

from .steps import Step as Mode
from .steps import StepState, SupervisedStep, UnsupervisedStep, kmeans_targets, unwrap
from .steps import make_step as make_mode

CrossEntropyMSStep = SupervisedStep

__all__ = [
    "CrossEntropyMSStep",
    "Mode",
    "StepState",
    "UnsupervisedStep",
    "kmeans_targets",
    "make_mode",
    "masked_cross_entropy",
    "unwrap",
]

warnings.warn(
    "varseg.train.modes is deprecated; use varseg.train.steps", DeprecationWarning, stacklevel=2
)

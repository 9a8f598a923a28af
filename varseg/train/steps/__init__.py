"""One optimisation step per training mode (Kim & Ye, IEEE TIP 2019, Sec. III-C).

* ``"supervised"`` -- :class:`SupervisedStep`: Eq. 16-18, ``L_CE + λ L_MS`` (the
  Mumford–Shah term is a regulariser when every sample is labelled).
* ``"semi"`` -- :class:`SemiSupervisedStep`: Eq. 16-17, α per sample; paired or mixed batches.
* ``"unsupervised"`` -- :class:`UnsupervisedStep`: ``L_MS`` alone (Eq. 12-13) or the
  bias-field loss (Eq. 19-20).
* ``"advsemi"`` -- :class:`AdvSemiStep`: AdvSemi (Hung et al., BMVC 2018) + ``λ L_MS``.

:func:`make_step` is the one registry (:data:`STEPS`).
"""

from __future__ import annotations

from .advsemi import AdvSemiStep
from .base import Step, StepState, unwrap
from .semi import SemiSupervisedStep
from .supervised import SupervisedStep
from .unsupervised import UnsupervisedStep, kmeans_targets

__all__ = [
    "STEPS",
    "AdvSemiStep",
    "SemiSupervisedStep",
    "Step",
    "StepState",
    "SupervisedStep",
    "UnsupervisedStep",
    "kmeans_targets",
    "make_step",
    "unwrap",
]

#: Step class of each training mode.
STEPS = {
    "supervised": SupervisedStep,
    "semi": SemiSupervisedStep,
    "unsupervised": UnsupervisedStep,
    "advsemi": AdvSemiStep,
}


def make_step(cfg, task) -> Step:
    """The step object of ``cfg.mode``.

    Parameters
    ----------
    cfg : varseg.train.config.TrainConfig
        The run's configuration (its ``mode`` picks the step).
    task : varseg.train.builders.TaskInfo
        Input channels, classes and ignore label of the training set.

    Returns
    -------
    Step

    Raises
    ------
    ValueError
        Unknown mode (the message lists :data:`STEPS`).
    """
    if cfg.mode not in STEPS:
        raise ValueError(f"unknown mode {cfg.mode!r}; choose one of {', '.join(STEPS)}")
    return STEPS[cfg.mode](cfg, task)

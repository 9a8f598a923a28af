"""Training and evaluation engine for the experiments of Kim & Ye (IEEE TIP 2019).

B. Kim and J. C. Ye, "Mumford–Shah Loss Functional for Image Segmentation with Deep
Learning", IEEE Trans. Image Process. 29, 2019: supervised training with the Mumford–Shah
loss as a regulariser, semi-supervised training (Eq. 16-18), unsupervised training with the
Mumford–Shah loss (Eq. 12-13) or its bias-field form (Eq. 19-20), and AdvSemi (Hung et al.,
BMVC 2018) + Mumford–Shah on PASCAL VOC.

* :mod:`~varseg.train.config` -- :class:`TrainConfig`, the shipped experiment configs
  (:func:`list_configs`, :func:`load_config`).
* :mod:`~varseg.train.engine` -- :class:`Trainer`: loop, exact resume, SIGINT at step
  boundaries, logging, mixed precision, DistributedDataParallel (``torchrun``).
* :mod:`~varseg.train.checkpoint` -- atomic checkpoints with a SHA-256, verified loading,
  :func:`~varseg.train.checkpoint.resolve_device`.
* :mod:`~varseg.train.steps` -- one optimisation step per mode behind
  :func:`~varseg.train.steps.make_step`.
* :mod:`~varseg.train.evaluate` -- :func:`evaluate_checkpoint` with the paper's metrics and
  the :class:`~varseg.train.evaluate.ValidationHandler` the trainer is given.
* :mod:`~varseg.train.run` -- :func:`train`: the engine with that validator.
* :mod:`~varseg.train.sweep` -- :func:`run_sweep`, the labelled-fraction sweep (CE vs.
  CE + λ·MS) on synthetic images.

Layers (imports point down only): ``config`` -> ``builders``, ``checkpoint``, ``sampling``
-> ``steps`` -> ``engine``, ``evaluate`` -> ``run`` -> ``sweep``.

Command line: ``varseg train`` and ``varseg evaluate``.
"""

from __future__ import annotations

from .config import MODES, TrainConfig, list_configs, load_config
from .engine import Trainer, TrainingInterrupted
from .evaluate import ValidationHandler, evaluate_checkpoint, evaluate_model, format_results
from .run import train
from .sweep import run_sweep

__all__ = [
    "MODES",
    "TrainConfig",
    "Trainer",
    "TrainingInterrupted",
    "ValidationHandler",
    "evaluate_checkpoint",
    "evaluate_model",
    "format_results",
    "list_configs",
    "load_config",
    "run_sweep",
    "train",
]

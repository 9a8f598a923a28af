"""The public :func:`train`: the engine with the evaluator injected as its validator.

:mod:`varseg.train.engine` never imports :mod:`varseg.train.evaluate`; this module sits
above both and wires them (MONAI's ``ValidationHandler`` pattern).
"""

from __future__ import annotations

from .config import TrainConfig
from .engine import train as train_with_validator
from .evaluate import ValidationHandler

__all__ = ["train"]


def train(
    config: TrainConfig,
    out_dir,
    *,
    resume: bool = False,
    progress: bool | None = None,
    callbacks=(),
    validator=None,
) -> dict:
    """Train ``config`` into ``out_dir`` (Kim & Ye, IEEE TIP 2019, Sec. III-C, Eq. 12-20).

    Parameters
    ----------
    config : TrainConfig
        The run's settings.
    out_dir : path
        Run folder (created).
    resume : bool
        Continue the run in ``out_dir`` from its ``last.pt`` (checksum verified; only
        :data:`~varseg.train.config.EXTENDABLE` keys may differ).
    progress : bool or None
        Tqdm progress bar (default: only on a terminal).
    callbacks : sequence of callables
        Called as ``callback(trainer)`` after each step.
    validator : callable or None
        ``validator(model, config, task, device) -> dict``; default
        :class:`~varseg.train.evaluate.ValidationHandler` (scores on ``config.val_split``).

    Returns
    -------
    dict
        ``out_dir``, ``checkpoint``, ``step``, ``epoch``, ``total_steps``, ``last_row``.

    Raises
    ------
    varseg.train.engine.TrainingInterrupted
        SIGINT: stopped at a step boundary with a consistent checkpoint.

    Examples
    --------
    >>> from varseg.train import TrainConfig, train
    >>> cfg = TrainConfig(dataset="synthetic", dataset_kw={"n_images": 8, "image_size": 32},
    ...                   model="unet", model_kw={"base_channels": 4, "depth": 2},
    ...                   max_steps=2, batch_size=2)
    >>> train(cfg, "run")["step"]          # doctest: +SKIP
    2
    """
    return train_with_validator(
        config,
        out_dir,
        resume=resume,
        progress=progress,
        callbacks=callbacks,
        validator=ValidationHandler() if validator is None else validator,
    )

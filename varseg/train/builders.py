"""Build what a :class:`~varseg.train.config.TrainConfig` describes.

Datasets, the labelled split, the network, the optimiser and the learning-rate schedule.

Small adapters over :mod:`varseg.data` and :mod:`varseg.models` live here so that the
engine (:mod:`varseg.train.engine`) only orchestrates.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from varseg.models import model_class, split_output

from .config import TrainConfig, check_kwargs, dataset_class

__all__ = [
    "TaskInfo",
    "TrainData",
    "dataset_kwargs",
    "build_train_data",
    "build_network",
    "model_class",
    "rebuild_model",
    "build_optimizer",
    "LRSchedule",
    "split_output",
]

SPLIT_FILE = "labeled_split.json"


@dataclass(frozen=True)
class TaskInfo:
    """What the network must produce: ``in_channels``, ``num_classes``, ``ignore_index``."""

    in_channels: int
    num_classes: int
    ignore_index: int


@dataclass
class TrainData:
    """The training set and its labelled/unlabelled item indices."""

    dataset: object
    task: TaskInfo
    labeled: np.ndarray
    unlabeled: np.ndarray


def dataset_kwargs(cfg: TrainConfig, *, evaluation: bool = False) -> dict:
    """Keyword arguments of the dataset class for training (or evaluation) under ``cfg``.

    ``crop_size`` / ``image_size`` are forwarded when set (a dataset that does not take one
    raises ``ValueError``); BSDS500 gets ``num_classes`` and, in ``"unsupervised"`` mode,
    ``labels=False`` (the paper trains it without any label).
    """
    kw = dict(cfg.dataset_kw)
    if evaluation:
        kw.update(cfg.eval_dataset_kw)
    cls = dataset_class(cfg.dataset)
    for name in ("crop_size", "image_size"):
        value = getattr(cfg, name)
        if value is None or (evaluation and name == "crop_size"):
            continue
        try:
            check_kwargs(cls, {name: value}, f"dataset {cfg.dataset!r}")
        except ValueError:
            other = "image_size" if name == "crop_size" else "crop_size"
            raise ValueError(f"dataset {cfg.dataset!r} does not take {name}; use {other}") from None
        kw[name] = value
    if cfg.dataset == "bsds500":
        if cfg.num_classes is not None:
            kw.setdefault("num_classes", cfg.num_classes)
        if cfg.mode == "unsupervised" and not evaluation:
            kw.setdefault("labels", False)
    return kw


def task_info(dataset, cfg: TrainConfig) -> TaskInfo:
    """Input channels, output classes and ignore label of ``dataset`` under ``cfg``."""
    ds_classes = getattr(dataset, "num_classes", None)
    k = cfg.num_classes if cfg.num_classes is not None else ds_classes
    if k is None:
        raise ValueError(
            f"dataset {cfg.dataset!r} has no fixed number of classes: set "
            "num_classes (--num-classes), the number of output segments"
        )
    if (
        cfg.mode != "unsupervised"
        and ds_classes is not None
        and cfg.num_classes is not None
        and int(cfg.num_classes) != int(ds_classes)
    ):
        raise ValueError(
            f"num_classes={cfg.num_classes} disagrees with dataset {cfg.dataset!r} "
            f"({ds_classes} classes) in {cfg.mode!r} mode"
        )
    return TaskInfo(int(dataset.in_channels), int(k), int(getattr(dataset, "ignore_index", -100)))


def _labeled_indices(dataset, cfg: TrainConfig, out_dir: Path | None, resume: bool):
    from varseg.data import labeled_subset, labeled_subset_by_case, load_split, save_split

    n = len(dataset)
    path = None if out_dir is None else Path(out_dir) / SPLIT_FILE
    if resume and path is not None and path.is_file():
        idx, meta = load_split(path)
        if int(meta.get("n_items", n)) != n:
            raise ValueError(
                f"{path} was made for {meta.get('n_items')} items; the training set now has {n}"
            )
        return idx
    cases = getattr(dataset, "item_cases", None)
    if cases is not None:
        idx = labeled_subset_by_case(cases, cfg.labeled_fraction, cfg.split_seed)
    else:
        idx = labeled_subset(n, cfg.labeled_fraction, cfg.split_seed)
    if path is not None:
        save_split(
            path,
            idx,
            meta={
                "dataset": cfg.dataset,
                "split": cfg.train_split,
                "fraction": cfg.labeled_fraction,
                "seed": cfg.split_seed,
                "n_items": n,
                "by_case": cases is not None,
            },
        )
    return idx


def build_train_data(
    cfg: TrainConfig, out_dir=None, *, resume: bool = False, write_split: bool = True
) -> TrainData:
    """Training dataset (wrapped for semi-supervised modes) and its labelled item indices.

    In ``"semi"`` and ``"advsemi"`` modes the labelled subset is drawn with
    :func:`varseg.data.labeled_subset` (by whole scans for LiTS / BraTS), saved as
    ``labeled_split.json`` in ``out_dir`` (:func:`varseg.data.save_split`) and read back on
    resume; the dataset is wrapped in :class:`varseg.data.SemiSupervisedDataset`.
    """
    from varseg.data import SemiSupervisedDataset, build_dataset

    ds = build_dataset(cfg.dataset, cfg.root, split=cfg.train_split, **dataset_kwargs(cfg))
    if len(ds) == 0:
        raise ValueError(f"dataset {cfg.dataset!r} split {cfg.train_split!r} is empty")
    if hasattr(ds, "set_epoch") and getattr(ds, "seed", 0) is None:
        ds.seed = int(cfg.seed)  # augmentation = f(seed, epoch, index): resumable
    task = task_info(ds, cfg)
    n = len(ds)
    if cfg.mode in ("semi", "advsemi"):
        idx = _labeled_indices(ds, cfg, out_dir if write_split else None, resume)
        ds = SemiSupervisedDataset(ds, idx, ignore_index=task.ignore_index)
        labeled = ds.labeled_indices
        unlabeled = ds.unlabeled_indices
    else:
        labeled = np.arange(n, dtype=np.int64)
        unlabeled = np.zeros(0, dtype=np.int64)
    return TrainData(ds, task, labeled, unlabeled)


# ---------------------------------------------------------------------------------- models
def build_network(cfg: TrainConfig, task: TaskInfo) -> nn.Module:
    """Build the segmentation network of ``cfg`` (with the bias-field output if requested)."""
    from varseg.models import build_model

    kw = dict(cfg.model_kw)
    if cfg.bias_field:
        kw["bias_field"] = True
    return build_model(cfg.model, task.in_channels, task.num_classes, **kw)


def model_constructor_config(model: nn.Module) -> dict:
    """Return the constructor keyword arguments of ``model`` (``model.config``), JSON-safe."""
    cfg = getattr(model, "config", None)
    if not isinstance(cfg, dict):
        raise ValueError(f"{type(model).__name__} has no `config` dict of constructor arguments")
    return dict(cfg)


def rebuild_model(model_name: str, model_config: dict) -> nn.Module:
    """Rebuild a network from the ``model_name`` / ``model_config`` of a checkpoint."""
    return model_class(model_name)(**model_config)


# ---------------------------------------------------------------------------------- optim
def build_optimizer(cfg: TrainConfig, model: nn.Module) -> torch.optim.Optimizer:
    """Optimiser of ``cfg`` for ``model``.

    A model with ``parameter_groups(lr)`` (DeepLab-v2) gets its groups, the head at
    ``head_lr_mult`` times the learning rate (AdvSemi: 10x). Every group records its
    ``initial_lr`` for :class:`LRSchedule`.
    """
    if hasattr(model, "parameter_groups"):
        groups = model.parameter_groups(cfg.lr)
        if len(groups) > 1:
            groups[1]["lr"] = cfg.lr * cfg.head_lr_mult
        groups = [g for g in groups if g["params"]]
    else:
        groups = [{"params": [p for p in model.parameters() if p.requires_grad], "lr": cfg.lr}]
    for g in groups:
        g["initial_lr"] = g["lr"]
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(
            groups, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay
        )
    cls = torch.optim.Adam if cfg.optimizer == "adam" else torch.optim.AdamW
    return cls(groups, lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay)


class LRSchedule:
    """Learning-rate factor as a pure function of the step (resume needs only the step).

    ``"constant"``: 1; ``"step"``: ``gamma ** floor(step / (step_epochs * steps_per_epoch))``
    (Kim & Ye 2019, Sec. IV-B2: "multiplied by 0.5 after every 20 epochs"); ``"poly"``:
    ``(1 - step / total_steps) ** power`` (AdvSemi / DeepLab).

    Parameters
    ----------
    kind : {"constant", "step", "poly"}
    total_steps : int
    steps_per_epoch : float
    step_epochs : int
    gamma, power : float
    """

    def __init__(
        self,
        kind: str,
        total_steps: int,
        steps_per_epoch: float,
        *,
        step_epochs: int = 20,
        gamma: float = 0.5,
        power: float = 0.9,
    ):
        self.kind = kind
        self.total_steps = int(total_steps)
        self.steps_per_epoch = float(steps_per_epoch)
        self.step_epochs = int(step_epochs)
        self.gamma = float(gamma)
        self.power = float(power)

    @classmethod
    def from_config(cls, cfg: TrainConfig, total_steps: int, steps_per_epoch: float):
        """Build the schedule of ``cfg`` (its schedule, step and power options)."""
        return cls(
            cfg.schedule,
            total_steps,
            steps_per_epoch,
            step_epochs=cfg.lr_step_epochs,
            gamma=cfg.lr_gamma,
            power=cfg.poly_power,
        )

    def factor(self, step: int) -> float:
        """Multiplier of the initial learning rates at ``step`` (0-based)."""
        if self.kind == "step":
            period = max(1.0, self.step_epochs * self.steps_per_epoch)
            return self.gamma ** math.floor(step / period)
        if self.kind == "poly":
            return max(0.0, 1.0 - step / max(1, self.total_steps)) ** self.power
        return 1.0

    def apply(self, optimizer: torch.optim.Optimizer, step: int) -> float:
        """Set every group's ``lr`` to ``initial_lr * factor(step)``; returns the factor."""
        f = self.factor(step)
        for g in optimizer.param_groups:
            g["lr"] = g.setdefault("initial_lr", g["lr"]) * f
        return f

    def state_dict(self) -> dict:
        """Return the schedule's attributes (for checkpoints)."""
        return dict(vars(self))

    def load_state_dict(self, state: dict) -> None:
        """Restore the attributes saved by :meth:`state_dict`."""
        for k, v in state.items():
            setattr(self, k, v)

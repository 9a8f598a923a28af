"""One optimisation step per training mode (Kim & Ye, IEEE TIP 2019, Sec. III-C).

* :class:`CrossEntropyMSStep` -- ``"supervised"`` and ``"semi"``: Eq. 16-18,
  ``L = α L_CE + λ L_MS`` with α per sample (Eq. 17); with every sample labelled the
  Mumford–Shah term is a regulariser.
* :class:`UnsupervisedStep` -- ``"unsupervised"``: ``L_MS`` alone (Eq. 12-13) or the
  bias-field loss (Eq. 19-20) of a network with a bias output (Fig. 2(b)).
* :class:`varseg.train.advsemi.AdvSemiStep` -- ``"advsemi"``: AdvSemi (Hung et al.,
  BMVC 2018) with its discriminator, plus λ L_MS.

A step object is called as ``step(state, batch, step_index)`` and returns a dict of detached
scalar tensors for the log. :class:`StepState` carries the network (possibly wrapped in
:class:`~torch.nn.parallel.DistributedDataParallel`), its optimiser and the mixed-precision
machinery (autocast + GradScaler on CUDA). Losses are always computed in float32, outside
autocast.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from varseg.losses import (
    bias_field_mumford_shah_loss,
    mumford_shah_loss,
    smooth_bias,
    unit_mean_bias,
)

from .builders import TaskInfo, split_output
from .config import TrainConfig

__all__ = [
    "StepState",
    "Mode",
    "CrossEntropyMSStep",
    "UnsupervisedStep",
    "masked_cross_entropy",
    "make_mode",
    "unwrap",
]


def unwrap(module: nn.Module) -> nn.Module:
    """The module inside a :class:`~torch.nn.parallel.DistributedDataParallel` wrapper."""
    return getattr(module, "module", module)


@dataclass
class StepState:
    """What a step needs besides the batch.

    Attributes
    ----------
    model : torch.nn.Module
        Segmentation network, possibly DDP-wrapped.
    optimizer : torch.optim.Optimizer
    device : torch.device
    amp : bool
        Run forward passes under :func:`torch.autocast` (float16) and scale losses with
        ``scaler``.
    scaler : torch.amp.GradScaler or None
    grad_clip : float or None
        Maximum gradient norm of the segmentation network.
    """

    model: nn.Module
    optimizer: torch.optim.Optimizer
    device: torch.device
    amp: bool = False
    scaler: object = None
    grad_clip: float | None = None

    def autocast(self):
        """Mixed-precision context for forward passes (a no-op without AMP)."""
        if not self.amp:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=torch.float16)

    def backward(self, loss: torch.Tensor) -> None:
        """Back-propagate ``loss`` (scaled with AMP)."""
        (self.scaler.scale(loss) if self.scaler is not None else loss).backward()

    def step(self, optimizer: torch.optim.Optimizer, clip_module: nn.Module | None = None):
        """Optimiser step (unscale and clip the gradient norm first when configured)."""
        if self.grad_clip and clip_module is not None:
            if self.scaler is not None:
                self.scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(clip_module.parameters(), self.grad_clip)
        if self.scaler is not None:
            self.scaler.step(optimizer)
        else:
            optimizer.step()

    def update(self) -> None:
        """End of step: update the loss scale (AMP only)."""
        if self.scaler is not None:
            self.scaler.update()

    def to_device(self, batch: dict):
        """``(image, label, labeled)`` of a batch on the device."""
        nb = self.device.type == "cuda"
        return (batch["image"].to(self.device, non_blocking=nb).float(),
                batch["label"].to(self.device, non_blocking=nb),
                batch["labeled"].to(self.device, non_blocking=nb))


def masked_cross_entropy(logits: torch.Tensor, target: torch.Tensor, labeled: torch.Tensor,
                         ignore_index: int) -> torch.Tensor:
    r"""Cross-entropy (Eq. 18) over the labelled pixels of the labelled samples (Eq. 17).

    .. math:: L_{CE} = -\frac{1}{P} \sum_{b: \alpha_b = 1} \sum_r \log y_{g(r)}(r)

    with P the number of labelled, non-ignored pixels. Identical to the CE term of
    :func:`varseg.losses.semi_supervised_loss` (``reduction="mean"``); 0 (still connected to
    the graph) when nothing is labelled.
    """
    valid = (target != ignore_index) & labeled.reshape((-1,) + (1,) * (target.ndim - 1))
    safe = torch.where(valid, target, torch.zeros_like(target))
    ce_map = F.cross_entropy(logits, safe, reduction="none") * valid
    return ce_map.sum() / valid.sum().clamp_min(1)


class Mode:
    """Base class of the per-mode steps.

    Subclasses implement :meth:`__call__`; modes with extra networks (AdvSemi's
    discriminator) also :meth:`setup`, :meth:`optimizers`, :meth:`state_dict` and
    :meth:`load_state_dict`.
    """

    name = "base"

    def __init__(self, cfg: TrainConfig, task: TaskInfo):
        self.cfg = cfg
        self.task = task

    def setup(self, device: torch.device, wrap) -> None:
        """Move extra networks to ``device``; ``wrap`` adds DDP in a distributed run."""

    def optimizers(self) -> list:
        """Extra optimisers (their learning rates follow the same schedule)."""
        return []

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass

    def ms_loss(self, logits: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        """Mumford–Shah loss of Eq. 12-13 with the configured length weight."""
        c = self.cfg
        return mumford_shah_loss(logits, image, c.length_weight, tv=c.tv,
                                 reduction=c.ms_reduction)

    def __call__(self, state: StepState, batch: dict, step: int) -> dict:
        raise NotImplementedError


class CrossEntropyMSStep(Mode):
    """Eq. 16: ``α L_CE + λ L_MS`` (``"supervised"`` and ``"semi"`` modes).

    The cross-entropy covers the labelled pixels of the labelled samples (α of Eq. 17 is the
    batch's ``labeled`` flag); the Mumford–Shah loss of Eq. 12, weighted by
    ``cfg.lambda_ms``, covers every sample. With ``lambda_ms == 0`` it is plain
    cross-entropy training.

    With ``semi_sampling="paired"`` the labelled and the unlabelled images of a batch go
    through the network in two separate passes (as AdvSemi does), each followed by its
    backward pass: batch-norm statistics of the labelled images then never depend on the
    unlabelled ones (a shared pass lets the network lower the labelled loss through the batch
    statistics, which does not carry over to evaluation). The summed gradient is that of
    Eq. 16 over the whole batch (the ``"mean"`` MS term of each pass is weighted by its share
    of the images). ``"mixed"`` batches (and supervised ones) take one pass, like the official
    implementation.
    """

    name = "cross-entropy + Mumford-Shah"

    def _groups(self, labeled: torch.Tensor) -> list:
        if self.cfg.mode == "semi" and self.cfg.semi_sampling == "paired":
            groups = [~labeled, labeled]
            return [g for g in groups if bool(g.any())]
        return [None]

    def __call__(self, state: StepState, batch: dict, step: int) -> dict:
        x, y, labeled = state.to_device(batch)
        state.optimizer.zero_grad(set_to_none=True)
        n = x.shape[0]
        total = {"ce": 0.0, "ms": 0.0, "loss": 0.0}
        for sel in self._groups(labeled):
            xs, ys, ls = (x, y, labeled) if sel is None else (x[sel], y[sel], labeled[sel])
            with state.autocast():
                out = state.model(xs)
            logits = split_output(out)[0].float()
            loss = ce = masked_cross_entropy(logits, ys, ls, self.task.ignore_index)
            if self.cfg.lambda_ms > 0:
                share = xs.shape[0] / n if self.cfg.ms_reduction == "mean" else 1.0
                ms = self.ms_loss(logits, xs) * share
                loss = ce + self.cfg.lambda_ms * ms
                total["ms"] = total["ms"] + ms.detach()
            if bool(ls.any()):
                total["ce"] = ce.detach()
            state.backward(loss)
            total["loss"] = total["loss"] + loss.detach()
        state.step(state.optimizer, unwrap(state.model))
        state.update()
        if self.cfg.lambda_ms <= 0:
            del total["ms"]
        return total


class UnsupervisedStep(Mode):
    """Unsupervised Mumford–Shah training: Eq. 12 or, with a bias output, Eq. 19-20.

    No label is used. With ``cfg.bias_field`` the network returns ``(logits, bias)`` and the
    loss is :func:`varseg.losses.bias_field_mumford_shah_loss` with length weight
    ``cfg.length_weight`` and bias weight ``cfg.beta``.

    With ``cfg.kmeans_warm_steps > 0`` the first steps instead fit the network by
    cross-entropy to each image's own k-means partition into K clusters
    (:func:`kmeans_targets`): the data-set form of :func:`varseg.neural_segment`'s k-means
    start, which keeps the Mumford–Shah loss out of its merged-region minima (from random
    weights the CPU-scale BSDS500 U-Net ended using 2 of its 4 classes). Still no label.
    """

    name = "unsupervised Mumford-Shah"

    def __call__(self, state: StepState, batch: dict, step: int) -> dict:
        x = batch["image"].to(state.device, non_blocking=state.device.type == "cuda").float()
        state.optimizer.zero_grad(set_to_none=True)
        with state.autocast():
            out = state.model(x)
        logits, bias = split_output(out)
        logits = logits.float()
        c = self.cfg
        if step < c.kmeans_warm_steps:
            loss = F.cross_entropy(logits, kmeans_targets(x, logits.shape[1]))
            state.backward(loss)
            state.step(state.optimizer, unwrap(state.model))
            state.update()
            return {"loss": loss.detach(), "ce": loss.detach()}
        if c.bias_field:
            if bias is None:
                raise ValueError(f"model {c.model!r} returned no bias field; it must be built "
                                 "with bias_field=True")
            bias = bias.float()
            if c.bias_sigma > 0:  # smooth by construction: cannot absorb region boundaries
                bias = smooth_bias(bias, c.bias_sigma)
            # unit-mean bias: Eq. 19's beta TV(b) would otherwise shrink b towards 0
            loss = bias_field_mumford_shah_loss(logits, unit_mean_bias(bias), x,
                                                c.length_weight, c.beta, tv=c.tv,
                                                reduction=c.ms_reduction)
        else:
            loss = self.ms_loss(logits, x)
        state.backward(loss)
        state.step(state.optimizer, unwrap(state.model))
        state.update()
        return {"loss": loss.detach(), "ms": loss.detach()}


def kmeans_targets(x: torch.Tensor, k: int) -> torch.Tensor:
    """Per-image k-means partitions ``(B, *S)`` of a batch ``(B, C, *S)``: Lloyd's k-means of
    the colours (:func:`varseg.levelset.init.lloyd_partition`, seed 0) for C > 1, the optimal
    1D clustering (:func:`~varseg.levelset.init.kmeans_partition`) for gray images."""
    import numpy as np

    from varseg.levelset.init import kmeans_partition, lloyd_partition

    arr = x.detach().cpu().double().numpy()
    out = [lloyd_partition(a, k, np.random.default_rng(0)) if a.shape[0] > 1
           else kmeans_partition(a, k) for a in arr]
    return torch.as_tensor(np.stack(out), device=x.device)


def make_mode(cfg: TrainConfig, task: TaskInfo) -> Mode:
    """The step object of ``cfg.mode``."""
    if cfg.mode in ("supervised", "semi"):
        return CrossEntropyMSStep(cfg, task)
    if cfg.mode == "unsupervised":
        return UnsupervisedStep(cfg, task)
    if cfg.mode == "advsemi":
        from .advsemi import AdvSemiStep

        return AdvSemiStep(cfg, task)
    raise ValueError(f"unknown mode {cfg.mode!r}")  # pragma: no cover - validated in config

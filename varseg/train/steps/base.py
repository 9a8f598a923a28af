"""What every training step shares: :class:`StepState` and the :class:`Step` base class.

A step object is called as ``step(state, batch, step_index)`` and returns a dict of detached
scalar tensors for the log. :class:`StepState` carries the network (possibly wrapped in
:class:`~torch.nn.parallel.DistributedDataParallel`), its optimiser and the mixed-precision
machinery (autocast + GradScaler on CUDA). Losses are always computed in float32, outside
autocast (Kim & Ye, IEEE TIP 2019, Sec. III-C: Eq. 12-20).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch
from torch import nn

from varseg.losses import mumford_shah_loss

__all__ = ["Step", "StepState", "unwrap"]


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
        return (
            batch["image"].to(self.device, non_blocking=nb).float(),
            batch["label"].to(self.device, non_blocking=nb),
            batch["labeled"].to(self.device, non_blocking=nb),
        )


class Step:
    """Base class of the per-mode steps.

    Subclasses implement :meth:`__call__`; modes with extra networks (AdvSemi's
    discriminator) also :meth:`setup`, :meth:`optimizers`, :meth:`state_dict` and
    :meth:`load_state_dict`.

    Parameters
    ----------
    cfg : varseg.train.config.TrainConfig
    task : varseg.train.builders.TaskInfo
    """

    name = "base"

    def __init__(self, cfg, task):
        self.cfg = cfg
        self.task = task

    def setup(self, device: torch.device, wrap) -> None:
        """Move extra networks to ``device``; ``wrap`` adds DDP in a distributed run."""

    def optimizers(self) -> list:
        """Extra optimisers (their learning rates follow the same schedule)."""
        return []

    def state_dict(self) -> dict:
        """State of the extra networks and optimisers (empty by default)."""
        return {}

    def load_state_dict(self, state: dict) -> None:
        """Inverse of :meth:`state_dict`."""

    def ms_loss(self, logits: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        """Mumford–Shah loss of Eq. 12-13 with the configured length weight."""
        c = self.cfg
        return mumford_shah_loss(logits, image, c.length_weight, tv=c.tv, reduction=c.ms_reduction)

    def __call__(self, state: StepState, batch: dict, step: int) -> dict:
        raise NotImplementedError

"""Supervised step: Eq. 16 with every sample labelled, ``L_CE + λ L_MS`` (Kim & Ye 2019)."""

from __future__ import annotations

from varseg.losses import masked_cross_entropy
from varseg.models import split_output

from .base import Step, StepState, unwrap

__all__ = ["SupervisedStep"]


class SupervisedStep(Step):
    """Eq. 16: ``α L_CE + λ L_MS`` in one forward pass per batch.

    The cross-entropy (Eq. 18, :func:`varseg.losses.masked_cross_entropy`) covers the
    labelled pixels of the labelled samples (α of Eq. 17 is the batch's ``labeled`` flag);
    the Mumford–Shah loss of Eq. 12, weighted by ``cfg.ms_weight``, covers every sample.
    With ``ms_weight == 0`` it is plain cross-entropy training. Subclasses may split a batch
    into groups that go through the network in separate passes (:meth:`groups`).
    """

    name = "cross-entropy + Mumford-Shah"

    def groups(self, labeled):
        """Boolean sample selections, one forward/backward pass each (``[None]``: one)."""
        return [None]

    def __call__(self, state: StepState, batch: dict, step: int) -> dict:
        x, y, labeled = state.to_device(batch)
        state.optimizer.zero_grad(set_to_none=True)
        n = x.shape[0]
        w = self.cfg.ms_weight
        total = {"ce": 0.0, "ms": 0.0, "loss": 0.0}
        for sel in self.groups(labeled):
            xs, ys, ls = (x, y, labeled) if sel is None else (x[sel], y[sel], labeled[sel])
            with state.autocast():
                out = state.model(xs)
            logits = split_output(out)[0].float()
            loss = ce = masked_cross_entropy(logits, ys, ls, self.task.ignore_index)
            if w > 0:
                share = xs.shape[0] / n if self.cfg.ms_reduction == "mean" else 1.0
                ms = self.ms_loss(logits, xs) * share
                loss = ce + w * ms
                total["ms"] = total["ms"] + ms.detach()
            if bool(ls.any()):
                total["ce"] = ce.detach()
            state.backward(loss)
            total["loss"] = total["loss"] + loss.detach()
        state.step(state.optimizer, unwrap(state.model))
        state.update()
        if w <= 0:
            del total["ms"]
        return total

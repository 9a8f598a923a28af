"""Unsupervised step.

The Mumford–Shah loss alone (Kim & Ye, IEEE TIP 2019, Eq. 12-13) or its bias-field form
(Eq. 19-20).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from varseg.losses import bias_field_mumford_shah_loss, smooth_bias, unit_mean_bias
from varseg.models import split_output

from .base import Step, StepState, unwrap

__all__ = ["UnsupervisedStep", "kmeans_targets"]


class UnsupervisedStep(Step):
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
        """Run one training step; returns the logged losses."""
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
                raise ValueError(
                    f"model {c.model!r} returned no bias field; it must be built "
                    "with bias_field=True"
                )
            bias = bias.float()
            if c.bias_sigma > 0:  # smooth by construction: cannot absorb region boundaries
                bias = smooth_bias(bias, c.bias_sigma)
            # unit-mean bias: Eq. 19's beta TV(b) would otherwise shrink b towards 0
            loss = bias_field_mumford_shah_loss(
                logits,
                unit_mean_bias(bias),
                x,
                c.length_weight,
                c.beta,
                tv=c.tv,
                reduction=c.ms_reduction,
            )
        else:
            loss = self.ms_loss(logits, x)
        state.backward(loss)
        state.step(state.optimizer, unwrap(state.model))
        state.update()
        return {"loss": loss.detach(), "ms": loss.detach()}


def kmeans_targets(x: torch.Tensor, k: int) -> torch.Tensor:
    """Compute per-image k-means partitions ``(B, *S)`` of a batch ``(B, C, *S)``.

    Lloyd's k-means of the colours (:func:`varseg.levelset.lloyd_partition`, seed 0) for
    C > 1, the optimal 1D clustering (:func:`~varseg.levelset.kmeans_partition`) for gray
    images.
    """
    import numpy as np

    from varseg.levelset import kmeans_partition, lloyd_partition

    arr = x.detach().cpu().double().numpy()
    out = [
        lloyd_partition(a, k, np.random.default_rng(0))
        if a.shape[0] > 1
        else kmeans_partition(a, k)
        for a in arr
    ]
    return torch.as_tensor(np.stack(out), device=x.device)

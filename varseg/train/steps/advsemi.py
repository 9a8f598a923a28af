"""AdvSemi training step (Hung et al., BMVC 2018), optionally with the Mumford–Shah loss.

Kim & Ye (IEEE TIP 2019, Sec. IV-B1, Tables I-III) add λ L_MS (Eq. 12) to AdvSemi's
segmentation loss on PASCAL VOC. One step, on ``batch_size`` labelled images ``x_l`` and
``batch_size`` unlabelled images ``x_u`` (AdvSemi's two data iterators; see
:class:`varseg.train.sampling.StepBatchSampler`):

segmentation network S (discriminator D frozen)::

    L_S = CE(S(x_l), y_l) + λ_adv BCE(D(σ(S(x_l))), 1)
        + λ_semi_adv BCE(D(σ(S(x_u))), 1)                 (from step semi_start_adv)
        + λ_semi CE(S(x_u), argmax S(x_u) | σ(D) ≥ mask_T) (from step semi_start)
        + λ_MS L_MS(S(x), x) over all images              (Kim & Ye, Eq. 16)

discriminator D::

    L_D = ½ BCE(D(σ(S(x)).detach()), 0) + ½ BCE(D(onehot(y_l)), 1)   (void pixels ignored)

with σ the softmax. As in AdvSemi, S runs on the unlabelled and on the labelled images in
two passes, each followed by its backward pass (batch-norm statistics never mix the two
groups); D sees the detached predictions of both and the one-hot labels in one forward pass
(it has no batch norm). Both networks take a step at the end; their learning rates follow the
same (poly) schedule, as in AdvSemi. Under DDP, D is called unwrapped while S is trained (it
is frozen then) and wrapped for its own update.

References
----------
.. [1] W.-C. Hung, Y.-H. Tsai, Y.-T. Liou, Y.-Y. Lin and M.-H. Yang, "Adversarial Learning
       for Semi-Supervised Semantic Segmentation", BMVC 2018.
.. [2] B. Kim and J. C. Ye, "Mumford-Shah Loss Functional for Image Segmentation with Deep
       Learning", IEEE Trans. Image Process. 29, 2019, Sec. IV-B1.
"""

from __future__ import annotations

import torch

from varseg.losses import masked_cross_entropy
from varseg.models import (
    AdvSemiLossWeights,
    Discriminator,
    adversarial_loss,
    one_hot_label_map,
    semi_supervised_self_training_loss,
    split_output,
)

from ..config import advsemi_settings
from .base import Step, StepState, unwrap

__all__ = ["AdvSemiStep"]


def _requires_grad(module, flag: bool) -> None:
    for p in module.parameters():
        p.requires_grad_(flag)


class AdvSemiStep(Step):
    """One AdvSemi (+ Mumford–Shah) step; owns the discriminator and its optimiser.

    The batch holds labelled and unlabelled images (its ``labeled`` flags tell them apart).
    Logged values: ``ce``, ``adv``, ``semi_adv``, ``semi``, ``ms`` (when λ_MS > 0),
    ``loss`` (total of the segmentation network) and ``d_loss``.
    """

    name = "AdvSemi"

    def __init__(self, cfg, task):
        super().__init__(cfg, task)
        s = advsemi_settings(cfg.advsemi)
        self.settings = s
        self.weights = AdvSemiLossWeights(
            lambda_adv=float(s["lambda_adv"]),
            lambda_semi=float(s["lambda_semi"]),
            lambda_semi_adv=float(s["lambda_semi_adv"]),
            mask_T=float(s["mask_T"]),
            semi_start=int(s["semi_start"]),
            semi_start_adv=int(s["semi_start_adv"]),
        )
        self.discriminator = Discriminator(task.num_classes, ndf=int(s["ndf"]))
        self.d_model = self.discriminator
        self.d_optimizer = None
        # pseudo-label "ignore" value of the self-training loss: any non-class integer
        self._pseudo_ignore = max(255, task.num_classes)

    def setup(self, device, wrap) -> None:
        self.discriminator.to(device)
        self.d_model = wrap(self.discriminator)
        self.d_optimizer = torch.optim.Adam(
            self.discriminator.parameters(),
            lr=float(self.settings["d_lr"]),
            betas=tuple(float(b) for b in self.settings["d_betas"]),
        )
        for g in self.d_optimizer.param_groups:
            g["initial_lr"] = g["lr"]

    def optimizers(self) -> list:
        return [self.d_optimizer]

    def state_dict(self) -> dict:
        return {
            "discriminator": self.discriminator.state_dict(),
            "d_optimizer": self.d_optimizer.state_dict(),
        }

    def load_state_dict(self, state: dict) -> None:
        self.discriminator.load_state_dict(state["discriminator"])
        self.d_optimizer.load_state_dict(state["d_optimizer"])

    def _unlabeled_loss(self, logits, d_pred, step: int, logs: dict):
        """AdvSemi's losses of the unlabelled images (active after their start steps)."""
        w = self.weights
        loss = logits.sum() * 0.0
        if w.semi_adv_active(step):
            semi_adv = adversarial_loss(d_pred, True)
            loss = loss + w.lambda_semi_adv * semi_adv
            logs["semi_adv"] = semi_adv.detach()
        if w.semi_active(step):
            semi = semi_supervised_self_training_loss(
                logits, d_pred, w.mask_T, ignore_index=self._pseudo_ignore
            )
            loss = loss + w.lambda_semi * semi
            logs["semi"] = semi.detach()
        return loss

    def _segmentation_passes(self, state, x, y, labeled, step: int, logs: dict) -> list:
        """S on the unlabelled, then the labelled images, D frozen; returns the softmaxes."""
        n = x.shape[0]
        d_plain = unwrap(self.d_model)  # a plain module while frozen: no DDP hooks
        probs = []
        _requires_grad(d_plain, False)
        for is_labeled in (False, True):
            sel = labeled if is_labeled else ~labeled
            if not bool(sel.any()):
                continue
            xs = x[sel]
            with state.autocast():
                out = state.model(xs)
            logits = split_output(out)[0].float()
            prob = torch.softmax(logits, dim=1)
            with state.autocast():
                d_pred = d_plain(prob).float()
            if is_labeled:
                ce = masked_cross_entropy(logits, y[sel], labeled[sel], self.task.ignore_index)
                adv = adversarial_loss(d_pred, True)
                loss = ce + self.weights.lambda_adv * adv
                logs["ce"], logs["adv"] = ce.detach(), adv.detach()
            else:
                loss = self._unlabeled_loss(logits, d_pred, step, logs)
            if self.cfg.ms_weight > 0:
                share = xs.shape[0] / n if self.cfg.ms_reduction == "mean" else 1.0
                ms = self.ms_loss(logits, xs) * share
                loss = loss + self.cfg.ms_weight * ms
                logs["ms"] = logs["ms"] + ms.detach()
            state.backward(loss)
            logs["loss"] = logs["loss"] + loss.detach()
            probs.append(prob.detach())
        _requires_grad(d_plain, True)
        return probs

    def _discriminator_loss(self, state, probs, y, labeled):
        """D's loss: predictions are fake, one-hot ground truth is real (void ignored)."""
        ignore = self.task.ignore_index
        d_in = torch.cat(probs, dim=0)
        n_fake = d_in.shape[0]
        has_l = bool(labeled.any())
        if has_l:
            gt = one_hot_label_map(
                y[labeled], self.task.num_classes, ignore_index=ignore, dtype=d_in.dtype
            )
            d_in = torch.cat([d_in, gt], dim=0)
        with state.autocast():
            d_all = self.d_model(d_in).float()
        d_loss = 0.5 * adversarial_loss(d_all[:n_fake], False)
        if has_l:
            d_loss = d_loss + 0.5 * adversarial_loss(
                d_all[n_fake:], True, ignore_mask=(y[labeled] == ignore)
            )
        return d_loss

    def __call__(self, state: StepState, batch: dict, step: int) -> dict:
        x, y, labeled = state.to_device(batch)
        state.optimizer.zero_grad(set_to_none=True)
        self.d_optimizer.zero_grad(set_to_none=True)
        logs = {k: 0.0 for k in ("ce", "adv", "semi_adv", "semi", "loss")}
        if self.cfg.ms_weight > 0:
            logs["ms"] = 0.0
        probs = self._segmentation_passes(state, x, y, labeled, step, logs)
        d_loss = self._discriminator_loss(state, probs, y, labeled)
        state.backward(d_loss)
        state.step(state.optimizer, unwrap(state.model))
        state.step(self.d_optimizer, None)
        state.update()
        logs["d_loss"] = d_loss.detach()
        return logs

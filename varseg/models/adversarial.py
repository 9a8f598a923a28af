"""Training losses of AdvSemi (Hung et al., BMVC 2018), the semi-supervised VOC baseline.

With segmentation network ``S``, discriminator ``D`` (:class:`~varseg.models.Discriminator`)
and the weights of :class:`AdvSemiLossWeights`, one AdvSemi step minimises, for ``S``:

* labelled images: ``CE(S(x), y) + lambda_adv * adversarial_loss(D(softmax(S(x))), True)``;
* unlabelled images: ``lambda_semi_adv * adversarial_loss(D(softmax(S(x))), True)`` and, from
  step ``semi_start`` on, ``lambda_semi * semi_supervised_self_training_loss(S(x),
  D(softmax(S(x))), mask_T)``;

and for ``D``: ``adversarial_loss(D(softmax(S(x)).detach()), False)`` plus
``adversarial_loss(D(one_hot_label_map(y)), True, ignore_mask=(y == 255))``.  Kim & Ye
(TIP 2019, Table I-III) add their Mumford-Shah loss to this recipe.

References
----------
.. [1] W.-C. Hung, Y.-H. Tsai, Y.-T. Liou, Y.-Y. Lin and M.-H. Yang, "Adversarial Learning
       for Semi-Supervised Semantic Segmentation", BMVC 2018.
.. [2] B. Kim and J. C. Ye, "Mumford-Shah Loss Functional for Image Segmentation with Deep
       Learning", IEEE Trans. Image Process. 29, 2019, Sec. IV-B1.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

__all__ = [
    "AdvSemiLossWeights",
    "adversarial_loss",
    "one_hot_label_map",
    "semi_supervised_self_training_loss",
]


@dataclass(frozen=True)
class AdvSemiLossWeights:
    """Loss weights and schedule of AdvSemi (Hung et al., BMVC 2018) for PASCAL VOC.

    Attributes
    ----------
    lambda_adv : float
        Adversarial loss weight on labelled images (``lambda_adv_pred``), 0.01.
    lambda_semi : float
        Weight of the confidence-masked self-training loss, 0.1.
    lambda_semi_adv : float
        Adversarial loss weight on unlabelled images, 0.001.
    mask_T : float
        Confidence threshold on ``sigmoid(D(.))`` for the self-training loss, 0.2.
    semi_start : int
        Training step from which the self-training loss is used, 5000.
    semi_start_adv : int
        Training step from which the unlabelled adversarial loss is used, 0.

    References
    ----------
    .. [1] W.-C. Hung, Y.-H. Tsai, Y.-T. Liou, Y.-Y. Lin and M.-H. Yang, "Adversarial
           Learning for Semi-Supervised Semantic Segmentation", BMVC 2018.
    """

    lambda_adv: float = 0.01
    lambda_semi: float = 0.1
    lambda_semi_adv: float = 0.001
    mask_T: float = 0.2
    semi_start: int = 5000
    semi_start_adv: int = 0

    def semi_active(self, step: int) -> bool:
        """Whether the self-training loss is on at training step ``step`` (0-based)."""
        return self.lambda_semi > 0 and step >= self.semi_start

    def semi_adv_active(self, step: int) -> bool:
        """Whether the unlabelled adversarial loss is on at training step ``step``."""
        return self.lambda_semi_adv > 0 and step >= self.semi_start_adv


def _check_map(t: torch.Tensor, name: str, channels: int | None) -> None:
    expected = f"(B, {channels if channels is not None else 'C'}, H, W)"
    if t.ndim != 4 or (channels is not None and t.shape[1] != channels):
        raise ValueError(f"{name} must have shape {expected}, got {tuple(t.shape)}")


def adversarial_loss(
    d_out: torch.Tensor, target_is_real: bool, ignore_mask: torch.Tensor | None = None
) -> torch.Tensor:
    """Binary cross-entropy of discriminator logits against "real" or "fake" (AdvSemi).

    ``mean over kept pixels of BCEWithLogits(d_out, 1 if target_is_real else 0)``, the
    ``BCEWithLogitsLoss2d`` of Hung et al. (BMVC 2018).  The discriminator is trained with
    ground truth as real and predictions as fake; the segmentation network with its
    predictions as real.

    Parameters
    ----------
    d_out : torch.Tensor
        Discriminator logits ``(B, 1, H, W)``.
    target_is_real : bool
        Target label 1 (real, ground truth) or 0 (fake, prediction).
    ignore_mask : torch.Tensor, optional
        Boolean ``(B, H, W)`` or ``(B, 1, H, W)``; ``True`` pixels are left out (AdvSemi ignores
        the void label 255 when ``D`` sees one-hot ground truth).

    Returns
    -------
    torch.Tensor
        Scalar loss; 0 (connected to ``d_out``'s graph) if every pixel is ignored.

    References
    ----------
    .. [1] W.-C. Hung, Y.-H. Tsai, Y.-T. Liou, Y.-Y. Lin and M.-H. Yang, "Adversarial
           Learning for Semi-Supervised Semantic Segmentation", BMVC 2018, Eq. 2-3.
    """
    _check_map(d_out, "d_out", 1)
    target = torch.full_like(d_out, 1.0 if target_is_real else 0.0)
    if ignore_mask is None:
        return F.binary_cross_entropy_with_logits(d_out, target)
    keep = ~ignore_mask.to(torch.bool).reshape(d_out.shape[0], 1, *d_out.shape[-2:])
    if not bool(keep.any()):
        return d_out.sum() * 0.0
    return F.binary_cross_entropy_with_logits(d_out[keep], target[keep])


def one_hot_label_map(
    labels: torch.Tensor,
    num_classes: int,
    ignore_index: int = 255,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """One-hot encode a label map to feed ground truth to the AdvSemi discriminator.

    Parameters
    ----------
    labels : torch.Tensor
        Integer labels ``(B, H, W)`` or ``(B, 1, H, W)`` in ``[0, num_classes)`` or equal to
        ``ignore_index``.
    num_classes : int
        Classes ``C``.
    ignore_index : int, optional
        Void label; its pixels get an all-zero vector (as in AdvSemi).
    dtype : torch.dtype, optional
        Output dtype.

    Returns
    -------
    torch.Tensor
        ``(B, C, H, W)`` with ``out[b, c, i, j] = (labels[b, i, j] == c)``.

    References
    ----------
    .. [1] W.-C. Hung, Y.-H. Tsai, Y.-T. Liou, Y.-Y. Lin and M.-H. Yang, "Adversarial
           Learning for Semi-Supervised Semantic Segmentation", BMVC 2018.
    """
    if labels.ndim == 4 and labels.shape[1] == 1:
        labels = labels[:, 0]
    if labels.ndim != 3:
        raise ValueError(
            f"labels must have shape (B, H, W) or (B, 1, H, W), got {tuple(labels.shape)}"
        )
    if labels.is_floating_point() or labels.is_complex():
        raise ValueError(f"labels must be an integer tensor, got {labels.dtype}")
    labels = labels.long()
    valid = labels != ignore_index
    bad = valid & ((labels < 0) | (labels >= num_classes))
    if bool(bad.any()):
        raise ValueError(
            f"labels must lie in [0, {num_classes}) or equal ignore_index="
            f"{ignore_index}; found {labels[bad].unique()[:10].tolist()}"
        )
    out = F.one_hot(labels.where(valid, 0), num_classes).permute(0, 3, 1, 2)
    return (out * valid.unsqueeze(1)).to(dtype)


def semi_supervised_self_training_loss(
    pred_logits: torch.Tensor, d_out: torch.Tensor, mask_T: float = 0.2, ignore_index: int = 255
) -> torch.Tensor:
    """Confidence-masked self-training loss of AdvSemi (Hung et al., BMVC 2018, Eq. 5).

    Pixels the discriminator finds trustworthy, ``sigmoid(d_out) >= mask_T``, get the
    pseudo-label ``argmax_c pred_logits``; the others are ignored.  The loss is the
    cross-entropy of ``pred_logits`` against these pseudo-labels, averaged over the kept
    pixels.  Pseudo-labels and mask are computed without gradient (``d_out`` receives none).
    The threshold test follows the reference code (pixels are dropped where
    ``sigmoid(d_out) < mask_T``); it differs from a strict ``>`` only on exact ties.

    Parameters
    ----------
    pred_logits : torch.Tensor
        Segmentation logits ``(B, K, H, W)``.
    d_out : torch.Tensor
        Discriminator logits ``(B, 1, H, W)`` for ``softmax(pred_logits)``.
    mask_T : float, optional
        Confidence threshold (AdvSemi: 0.2).
    ignore_index : int, optional
        Label used internally to mark dropped pixels; must not be a class index.

    Returns
    -------
    torch.Tensor
        Scalar loss.  When no pixel passes the threshold the value is exactly ``0.0``,
        returned as ``pred_logits.sum() * 0`` so that it can be added and back-propagated
        (giving zero gradients) like the non-empty case; AdvSemi skips the term then.

    References
    ----------
    .. [1] W.-C. Hung, Y.-H. Tsai, Y.-T. Liou, Y.-Y. Lin and M.-H. Yang, "Adversarial
           Learning for Semi-Supervised Semantic Segmentation", BMVC 2018, Eq. 5.
    """
    _check_map(pred_logits, "pred_logits", None)
    _check_map(d_out, "d_out", 1)
    if d_out.shape[0] != pred_logits.shape[0] or d_out.shape[-2:] != pred_logits.shape[-2:]:
        raise ValueError(
            f"d_out {tuple(d_out.shape)} must be (B, 1, H, W) for pred_logits "
            f"{tuple(pred_logits.shape)}"
        )
    if 0 <= ignore_index < pred_logits.shape[1]:
        raise ValueError(f"ignore_index={ignore_index} is a class index (K={pred_logits.shape[1]})")
    with torch.no_grad():
        keep = torch.sigmoid(d_out[:, 0]) >= mask_T
        pseudo = pred_logits.argmax(dim=1).masked_fill(~keep, ignore_index)
    if not bool(keep.any()):
        return pred_logits.sum() * 0.0
    return F.cross_entropy(pred_logits, pseudo, ignore_index=ignore_index)

"""Neural networks for segmentation with the Mumford-Shah loss (Kim & Ye, TIP 2019).

Segmentation networks (logits ``(B, K, H, W)``; with ``bias_field=True`` also the strictly
positive bias field ``(B, 1, H, W)`` of Fig. 2(b), used by the loss of Eq. 19-20):

* :class:`UNet` -- Ronneberger et al., MICCAI 2015 (BSDS500 / VOC unsupervised experiments).
* :class:`PolyphaseUNet` -- the paper's modified U-Net with lossless polyphase pooling
  (LiTS / BraTS experiments).
* :class:`DeepLabV2` -- Chen et al., TPAMI 2018, as configured by AdvSemi (VOC experiments).
* :class:`KanezakiNet` -- Kanezaki, ICASSP 2018 ("Backprop" baseline).

Adversarial semi-supervised training (AdvSemi, Hung et al., BMVC 2018): :class:`Discriminator`,
:func:`adversarial_loss`, :func:`one_hot_label_map`, :func:`semi_supervised_self_training_loss`
and :class:`AdvSemiLossWeights`.

Every model has ``model.config`` (constructor keyword arguments),
``Model.from_checkpoint(path, map_location="cpu", **kw)`` and ``model.save_checkpoint(path)``.
"""
from __future__ import annotations

from torch import nn

from ._common import BIAS_EPS, BiasFieldHead, load_checkpoint
from .advsemi_losses import (
    AdvSemiLossWeights,
    adversarial_loss,
    one_hot_label_map,
    semi_supervised_self_training_loss,
)
from .deeplab import DeepLabV2
from .discriminator import Discriminator
from .kanezaki import KanezakiNet
from .polyphase_unet import PolyphaseUNet, polyphase_merge, polyphase_permutation, polyphase_split
from .unet import UNet

__all__ = [
    "BIAS_EPS",
    "MODEL_NAMES",
    "AdvSemiLossWeights",
    "BiasFieldHead",
    "DeepLabV2",
    "Discriminator",
    "KanezakiNet",
    "PolyphaseUNet",
    "UNet",
    "adversarial_loss",
    "build_model",
    "load_checkpoint",
    "one_hot_label_map",
    "polyphase_merge",
    "polyphase_permutation",
    "polyphase_split",
    "semi_supervised_self_training_loss",
]

_REGISTRY: dict[str, type[nn.Module]] = {
    "unet": UNet,
    "polyphase-unet": PolyphaseUNet,
    "deeplabv2": DeepLabV2,
    "kanezaki": KanezakiNet,
}

#: Names accepted by :func:`build_model`.
MODEL_NAMES: tuple[str, ...] = tuple(_REGISTRY)


def build_model(name: str, in_channels: int, num_classes: int, **kw) -> nn.Module:
    """Build a segmentation network by name.

    Parameters
    ----------
    name : {"unet", "polyphase-unet", "deeplabv2", "kanezaki"}
        Model name (case-insensitive; ``_`` is read as ``-``).
    in_channels : int
        Image channels ``C`` of the input ``(B, C, H, W)``.
    num_classes : int
        Output classes ``K`` of the logits ``(B, K, H, W)`` (for ``"kanezaki"`` the response
        channels).
    **kw
        Further constructor keyword arguments (``bias_field``, ``base_channels``, ``depth``,
        ...).

    Returns
    -------
    torch.nn.Module
        :class:`UNet`, :class:`PolyphaseUNet` (Kim & Ye, TIP 2019, Sec. IV-B2),
        :class:`DeepLabV2` or :class:`KanezakiNet`.

    Examples
    --------
    >>> net = build_model("polyphase-unet", 12, 2, base_channels=8, depth=2)
    >>> type(net).__name__
    'PolyphaseUNet'
    """
    key = str(name).strip().lower().replace("_", "-")
    if key not in _REGISTRY:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(MODEL_NAMES)}")
    return _REGISTRY[key](in_channels, num_classes=num_classes, **kw)

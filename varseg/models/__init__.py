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

import inspect

from torch import nn

from ._common import BIAS_EPS, BiasFieldHead, load_checkpoint
from .adversarial import (
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
    "check_model_kwargs",
    "load_checkpoint",
    "model_class",
    "model_kwargs",
    "one_hot_label_map",
    "polyphase_merge",
    "polyphase_permutation",
    "polyphase_split",
    "semi_supervised_self_training_loss",
    "split_output",
]

_REGISTRY: dict[str, type[nn.Module]] = {
    "unet": UNet,
    "polyphase-unet": PolyphaseUNet,
    "deeplabv2": DeepLabV2,
    "kanezaki": KanezakiNet,
}

#: Names accepted by :func:`build_model`.
MODEL_NAMES: tuple[str, ...] = tuple(_REGISTRY)


def model_class(name: str) -> type[nn.Module]:
    """Return the model class registered under ``name``.

    Parameters
    ----------
    name : str
        One of :data:`MODEL_NAMES` (case-insensitive; ``_`` is read as ``-``).

    Returns
    -------
    type
        :class:`UNet`, :class:`PolyphaseUNet`, :class:`DeepLabV2` or :class:`KanezakiNet`.

    Raises
    ------
    ValueError
        Unknown name (the message lists :data:`MODEL_NAMES`).
    """
    key = str(name).strip().lower().replace("_", "-")
    if key not in _REGISTRY:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(MODEL_NAMES)}")
    return _REGISTRY[key]


def model_kwargs(name: str) -> tuple[str, ...]:
    """Keyword arguments accepted by the constructor of model ``name``.

    The constructor signature is the declaration (``in_channels`` and ``num_classes`` are
    given by the training set and are not listed).

    Parameters
    ----------
    name : str
        One of :data:`MODEL_NAMES`.

    Returns
    -------
    tuple of str
    """
    params = inspect.signature(model_class(name).__init__).parameters
    return tuple(
        p
        for p in params
        if p not in ("self", "in_channels", "num_classes")
        and params[p].kind not in (params[p].VAR_POSITIONAL, params[p].VAR_KEYWORD)
    )


def check_model_kwargs(name: str, kw: dict) -> None:
    """Raise ``ValueError`` naming the keys of ``kw`` that model ``name`` does not take.

    Parameters
    ----------
    name : str
        One of :data:`MODEL_NAMES`.
    kw : dict
        Constructor keyword arguments.
    """
    accepted = model_kwargs(name)
    unknown = sorted(set(kw) - set(accepted))
    if unknown:
        raise ValueError(
            f"unknown keyword argument(s) {unknown} for model {name!r}; "
            f"accepted: {', '.join(accepted)}"
        )


def split_output(out):
    """``(logits, bias)`` of a network output (the model-output protocol).

    Every segmentation network returns logits ``(B, K, H, W)``, or ``(logits, bias)`` when
    built with ``bias_field=True`` (Kim & Ye, TIP 2019, Fig. 2(b)).

    Parameters
    ----------
    out : torch.Tensor or tuple
        A network output.

    Returns
    -------
    logits : torch.Tensor
    bias : torch.Tensor or None
        ``None`` without a bias-field output.
    """
    if isinstance(out, (tuple, list)):
        return out[0], (out[1] if len(out) > 1 else None)
    return out, None


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
    cls = model_class(name)
    check_model_kwargs(name, kw)
    return cls(in_channels, num_classes=num_classes, **kw)

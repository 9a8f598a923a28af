"""Helpers shared by the segmentation networks.

* :class:`BiasFieldHead` -- the extra, strictly positive output channel of Fig. 2(b) in
  Kim & Ye (TIP 2019) used by the bias-field Mumford-Shah loss (Eq. 19-20).
* :func:`check_image_batch` -- input validation with a message naming the expected shape.
* :func:`load_checkpoint` and :class:`CheckpointMixin` -- reading local checkpoints and
  rebuilding a model from its stored constructor arguments.

References
----------
.. [1] B. Kim and J. C. Ye, "Mumford-Shah Loss Functional for Image Segmentation with Deep
       Learning", IEEE Trans. Image Process. 29, 2019, Fig. 2 and Eq. 19-20.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from varseg.losses import BIAS_EPS, positive_bias

__all__ = [
    "BIAS_EPS",
    "BiasFieldHead",
    "CheckpointMixin",
    "check_image_batch",
    "load_checkpoint",
    "pad_to_multiple",
    "strip_prefix",
]


class BiasFieldHead(nn.Module):
    """Strictly positive bias-field output channel (Kim & Ye, TIP 2019, Fig. 2(b)).

    A 1x1 convolution maps the last feature map to one channel ``z`` and the bias field is
    ``b = softplus(z) + eps``, so ``b > eps > 0`` everywhere and Eq. 20's centroid
    ``c_n = sum(b x y_n) / sum(b**2 y_n)`` is always defined.  The convolution weight starts at
    zero and its bias at ``softplus^{-1}(1 - eps)``, so an untrained head outputs ``b == 1``:
    training starts from "no inhomogeneity", where Eq. 19 reduces to the plain Mumford-Shah
    loss of Eq. 12.

    Parameters
    ----------
    in_channels : int
        Channels ``C`` of the feature map the head reads.
    eps : float, optional
        Strictly positive lower bound of the output (default :data:`BIAS_EPS`).

    Notes
    -----
    Input ``(B, C, h, w)``; output ``(B, 1, h, w)``.  Networks whose features are coarser than
    the image (DeepLab-v2) upsample the *pre-activation* with :meth:`activate` applied after
    the interpolation; :meth:`forward` does both steps when ``size`` is given.

    References
    ----------
    .. [1] B. Kim and J. C. Ye, "Mumford-Shah Loss Functional for Image Segmentation with Deep
           Learning", IEEE Trans. Image Process. 29, 2019, Fig. 2(b), Eq. 19-20.
    """

    def __init__(self, in_channels: int, eps: float = BIAS_EPS):
        super().__init__()
        if eps <= 0:
            raise ValueError(f"eps must be > 0 for a strictly positive bias, got {eps}")
        self.eps = float(eps)
        self.conv = nn.Conv2d(in_channels, 1, kernel_size=1)
        nn.init.zeros_(self.conv.weight)
        # softplus(t) = 1 - eps  <=>  t = log(expm1(1 - eps))
        nn.init.constant_(self.conv.bias, math.log(math.expm1(1.0 - self.eps)))

    def activate(self, z: torch.Tensor) -> torch.Tensor:
        """Map a pre-activation ``(B, 1, H, W)`` to the bias field ``softplus(z) + eps``
        (:func:`varseg.losses.positive_bias`)."""
        return positive_bias(z, self.eps)

    def forward(self, features: torch.Tensor, size: tuple[int, int] | None = None) -> torch.Tensor:
        """Bias field ``(B, 1, H, W)`` from features ``(B, C, h, w)``.

        If ``size=(H, W)`` is given the pre-activation is bilinearly resized to it first.
        """
        z = self.conv(features)
        if size is not None and tuple(z.shape[-2:]) != tuple(size):
            z = F.interpolate(z, size=size, mode="bilinear", align_corners=True)
        return self.activate(z)


def check_image_batch(x: torch.Tensor, channels: int | None, owner: str) -> None:
    """Raise ``ValueError`` unless ``x`` is a ``(B, channels, H, W)`` tensor.

    Parameters
    ----------
    x : torch.Tensor
        The tensor to validate.
    channels : int or None
        Expected number of channels ``C``; ``None`` accepts any.
    owner : str
        Name used in the error message (the model class).
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{owner} expects a torch.Tensor, got {type(x).__name__}")
    expected = f"(B, {channels if channels is not None else 'C'}, H, W)"
    if x.ndim != 4:
        raise ValueError(
            f"{owner} expects a 4-D input of shape {expected}, got {x.ndim}-D shape "
            f"{tuple(x.shape)}"
        )
    if channels is not None and x.shape[1] != channels:
        raise ValueError(
            f"{owner} expects input of shape {expected}, got {tuple(x.shape)} "
            f"({x.shape[1]} channels instead of {channels})"
        )


def pad_to_multiple(
    x: torch.Tensor, multiple: int, mode: str = "replicate"
) -> tuple[torch.Tensor, tuple[int, int, int, int]]:
    """Pad ``(B, C, H, W)`` so that ``H`` and ``W`` are multiples of ``multiple``.

    The padding is split as evenly as possible between both sides (the extra pixel goes to
    the bottom/right).  ``"replicate"`` is the default because, unlike ``"reflect"``, it works
    for any image size and does not invent edges at the border.

    Returns
    -------
    padded : torch.Tensor
        ``(B, C, H', W')`` with ``H' % multiple == W' % multiple == 0``.
    box : tuple of int
        ``(top, left, H, W)``: ``padded[..., top:top + H, left:left + W]`` is ``x``.
    """
    h, w = x.shape[-2:]
    ph = (-h) % multiple
    pw = (-w) % multiple
    top, left = ph // 2, pw // 2
    if ph or pw:
        x = F.pad(x, (left, pw - left, top, ph - top), mode=mode)
    return x, (top, left, h, w)


def strip_prefix(state: Mapping[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """``state`` without ``prefix`` when every key has it (``"module."`` of DataParallel)."""
    if state and all(k.startswith(prefix) for k in state):
        return {k[len(prefix) :]: v for k, v in state.items()}
    return dict(state)


def load_checkpoint(path, map_location="cpu") -> tuple[dict[str, torch.Tensor], dict]:
    """Read a local checkpoint file.

    Two layouts are accepted: a plain ``state_dict`` (``torch.save(model.state_dict())``) or a
    dict with key ``"model"`` holding the state dict and, optionally, ``"model_config"``
    holding the constructor keyword arguments (as written by
    :meth:`CheckpointMixin.save_checkpoint`).  A ``"module."`` prefix common to all keys
    (``nn.DataParallel``) is stripped.  The file is read with ``weights_only=True``.

    Parameters
    ----------
    path : str or os.PathLike
        Local file.
    map_location : str or torch.device, optional
        Passed to :func:`torch.load`.

    Returns
    -------
    state : dict
        Parameter and buffer tensors.
    config : dict
        Constructor keyword arguments (empty if the file has none).

    Raises
    ------
    FileNotFoundError
        If ``path`` is not an existing file.
    TypeError
        If the file holds neither layout.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint file not found: {path}")
    obj = torch.load(path, map_location=map_location, weights_only=True)
    config: dict = {}
    if isinstance(obj, Mapping) and "model" in obj and isinstance(obj["model"], Mapping):
        state = obj["model"]
        config = dict(obj.get("model_config") or {})
    elif isinstance(obj, Mapping) and all(isinstance(v, torch.Tensor) for v in obj.values()):
        state = obj
    else:
        raise TypeError(
            f"{path}: expected a state dict or a dict with key 'model', got "
            f"{type(obj).__name__} with keys {list(obj)[:5] if isinstance(obj, Mapping) else '-'}"
        )
    return strip_prefix(state, "module."), config


class CheckpointMixin:
    """``from_checkpoint`` / ``save_checkpoint`` / ``config`` for :class:`torch.nn.Module` s.

    Subclasses store their constructor keyword arguments in ``self._config`` (plain Python
    values only, so that checkpoints load with ``weights_only=True``).
    """

    _config: dict

    @property
    def config(self) -> dict:
        """Constructor keyword arguments; ``type(model)(**model.config)`` rebuilds the model."""
        return dict(self._config)

    def save_checkpoint(self, path, **extra) -> None:
        """Save ``{"model": state_dict, "model_config": config, **extra}`` to ``path``."""
        torch.save({"model": self.state_dict(), "model_config": self.config, **extra}, path)

    @classmethod
    def from_checkpoint(cls, path, map_location="cpu", **kw):
        """Build a model from a local checkpoint.

        Parameters
        ----------
        path : str or os.PathLike
            A plain state dict, or a dict with ``"model"`` (and optionally ``"model_config"``);
            see :func:`load_checkpoint`.
        map_location : str or torch.device, optional
            Passed to :func:`torch.load`.
        **kw
            Constructor keyword arguments; they override the stored ``"model_config"`` and are
            required (e.g. ``in_channels``, ``num_classes``) for a plain state dict.

        Returns
        -------
        model : torch.nn.Module
            The model with the checkpoint's weights loaded strictly, in training mode.

        Raises
        ------
        FileNotFoundError
            If ``path`` does not exist.
        RuntimeError
            If the keys or shapes do not match the model (the message names ``path``).
        """
        state, config = load_checkpoint(path, map_location)
        try:
            model = cls(**{**config, **kw})
        except TypeError as err:
            raise TypeError(
                f"cannot build {cls.__name__} from {path}: {err}; a checkpoint without "
                "'model_config' needs the constructor arguments as keywords"
            ) from err
        try:
            model.load_state_dict(state, strict=True)
        except RuntimeError as err:
            raise RuntimeError(f"cannot load checkpoint {path} into {cls.__name__}: {err}") from err
        return model

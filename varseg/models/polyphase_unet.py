"""Polyphase U-Net: the "modified U-Net" of Kim & Ye (TIP 2019, LiTS / BraTS experiments).

Pooling is the lossless polyphase decomposition: every 2x2 neighbourhood of a ``C``-channel
map becomes 4 channels of a half-size map, ``(B, C, H, W) -> (B, 4C, H/2, W/2)``; unpooling
is its inverse.  With the phases named by the parity of (row, column),

* ``ee = x[..., 0::2, 0::2]``, ``eo = x[..., 0::2, 1::2]``,
* ``oe = x[..., 1::2, 0::2]``, ``oo = x[..., 1::2, 1::2]``,

:class:`torch.nn.PixelUnshuffle` ``(2)`` stores channel ``c``'s phases at output channels
``4c + (0, 1, 2, 3) = (ee, eo, oe, oo)`` (channel-major), whereas the split as usually written,
``concat([ee, eo, oe, oo], dim=1)`` (:func:`polyphase_split`), is phase-major: channel
``kC + c``.  The two differ only by the fixed permutation :func:`polyphase_permutation`, which
the first convolution after pooling absorbs, so the network uses the (faster) pixel
(un)shuffle operators directly.

References
----------
.. [1] B. Kim and J. C. Ye, "Mumford-Shah Loss Functional for Image Segmentation with Deep
       Learning", IEEE Trans. Image Process. 29, 2019, Sec. IV-B2.
.. [2] B. Kim and J. C. Ye, "Cycle-consistent adversarial network with polyphase U-Nets for
       liver lesion segmentation", MIDL 2018.
.. [3] O. Ronneberger, P. Fischer and T. Brox, "U-Net: Convolutional Networks for Biomedical
       Image Segmentation", MICCAI 2015.
"""

from __future__ import annotations

import torch
from torch import nn

from ._common import check_image_batch
from .unet import UNetBase

__all__ = ["PolyphaseUNet", "polyphase_split", "polyphase_merge", "polyphase_permutation"]


def polyphase_split(x: torch.Tensor) -> torch.Tensor:
    """Polyphase decomposition ``(B, C, H, W) -> (B, 4C, H/2, W/2)``, phase-major.

    Returns ``concat([ee, eo, oe, oo], dim=1)`` with ``ee = x[..., 0::2, 0::2]``,
    ``eo = x[..., 0::2, 1::2]``, ``oe = x[..., 1::2, 0::2]``, ``oo = x[..., 1::2, 1::2]``
    (Kim & Ye, TIP 2019, Sec. IV-B2).  Equal to
    ``pixel_unshuffle(x, 2)[:, polyphase_permutation(C)]``.

    Parameters
    ----------
    x : torch.Tensor
        ``(B, C, H, W)`` with even ``H`` and ``W``.
    """
    check_image_batch(x, None, "polyphase_split")
    if x.shape[-2] % 2 or x.shape[-1] % 2:
        raise ValueError(f"polyphase_split needs even H and W, got shape {tuple(x.shape)}")
    return torch.cat(
        [x[..., 0::2, 0::2], x[..., 0::2, 1::2], x[..., 1::2, 0::2], x[..., 1::2, 1::2]], dim=1
    )


def polyphase_merge(y: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`polyphase_split`, ``(B, 4C, h, w) -> (B, C, 2h, 2w)``."""
    check_image_batch(y, None, "polyphase_merge")
    if y.shape[1] % 4:
        raise ValueError(f"polyphase_merge needs 4C channels, got shape {tuple(y.shape)}")
    b, c4, h, w = y.shape
    x = y.new_empty(b, c4 // 4, 2 * h, 2 * w)
    ee, eo, oe, oo = y.chunk(4, dim=1)
    x[..., 0::2, 0::2], x[..., 0::2, 1::2] = ee, eo
    x[..., 1::2, 0::2], x[..., 1::2, 1::2] = oe, oo
    return x


def polyphase_permutation(channels: int) -> torch.Tensor:
    """Index ``p`` with ``polyphase_split(x) == pixel_unshuffle(x, 2)[:, p]``.

    ``p[k * C + c] = 4 * c + k`` for phase ``k`` in ``(ee, eo, oe, oo)`` and channel ``c``.

    Parameters
    ----------
    channels : int
        ``C``, the channels before the split.

    Returns
    -------
    torch.Tensor
        ``(4C,)`` int64 permutation.
    """
    k, c = torch.meshgrid(torch.arange(4), torch.arange(channels), indexing="ij")
    return (4 * c + k).reshape(-1)


class PolyphaseUNet(UNetBase):
    """Modified U-Net with lossless polyphase pooling (Kim & Ye, TIP 2019, Sec. IV-B2).

    The U-Net of Ronneberger et al. (2015) whose ``2x2`` max pooling is replaced by the
    polyphase split :class:`torch.nn.PixelUnshuffle` ``(2)`` (``C -> 4C`` channels, no
    information lost) and whose upsampling is the inverse recombination
    :class:`torch.nn.PixelShuffle` ``(2)`` (``C -> C/4`` channels).  This is the network used for
    the LiTS and BraTS experiments of the paper (three adjacent slices per sequence as input
    channels).  See the module docstring for the channel order of the split.

    Parameters
    ----------
    in_channels : int
        Image channels ``C`` (3 for LiTS, 12 for BraTS: 4 sequences x 3 slices).
    num_classes : int
        Output classes ``K``.
    base_channels : int, optional
        Channels of the first level; must be even so that every decoder input
        ``base_channels * 2**(i+1)`` is divisible by 4.
    depth : int, optional
        Number of pooling steps.
    bias_field : bool, optional
        Also output the strictly positive bias field of Kim & Ye, Fig. 2(b) / Eq. 19-20.
    batch_norm : bool, optional
        Batch normalisation after each convolution.

    Notes
    -----
    Level ``i`` has ``C_i = base_channels * 2**i`` channels.  Pooling feeds ``4 C_i`` channels
    to level ``i + 1``; in the decoder, unpooling turns ``C_{i+1}`` channels into
    ``C_{i+1} / 4 = C_i / 2``, which are concatenated with the ``C_i``-channel skip and reduced
    to ``C_i`` by two ``3x3`` convolutions.  Input ``(B, C, H, W)`` with any ``H, W`` (padded
    to multiples of ``2**depth``, cropped back); logits ``(B, K, H, W)``, plus the bias
    ``(B, 1, H, W)`` when ``bias_field=True``.

    References
    ----------
    .. [1] B. Kim and J. C. Ye, "Mumford-Shah Loss Functional for Image Segmentation with Deep
           Learning", IEEE Trans. Image Process. 29, 2019, Sec. IV-B2.
    .. [2] B. Kim and J. C. Ye, "Cycle-consistent adversarial network with polyphase U-Nets for
           liver lesion segmentation", MIDL 2018.
    .. [3] O. Ronneberger, P. Fischer and T. Brox, "U-Net: Convolutional Networks for
           Biomedical Image Segmentation", MICCAI 2015.

    Examples
    --------
    >>> import torch
    >>> net = PolyphaseUNet(12, 2, base_channels=8, depth=2)
    >>> net(torch.rand(1, 12, 30, 30)).shape
    torch.Size([1, 2, 30, 30])
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        *,
        base_channels: int = 64,
        depth: int = 4,
        bias_field: bool = False,
        batch_norm: bool = True,
    ):
        if base_channels % 2:
            raise ValueError(
                f"PolyphaseUNet needs an even base_channels (PixelShuffle divides the "
                f"channels by 4), got {base_channels}"
            )
        super().__init__(
            in_channels,
            num_classes,
            base_channels=base_channels,
            depth=depth,
            bias_field=bias_field,
            batch_norm=batch_norm,
        )

    def _make_pool(self) -> nn.Module:
        return nn.PixelUnshuffle(2)

    def _pooled_channels(self, channels: int) -> int:
        return 4 * channels

    def _make_up(self, in_channels: int, skip_channels: int) -> tuple[nn.Module, int]:
        if "unpool" not in self._modules:
            self.unpool = nn.PixelShuffle(2)
        return self.unpool, in_channels // 4

"""U-Net (Ronneberger et al., MICCAI 2015) with an optional bias-field output.

The encoder/decoder skeleton is shared with :class:`~varseg.models.PolyphaseUNet`, which only
swaps the pooling and unpooling operators.

References
----------
.. [1] O. Ronneberger, P. Fischer and T. Brox, "U-Net: Convolutional Networks for Biomedical
       Image Segmentation", MICCAI 2015, pp. 234-241.
.. [2] B. Kim and J. C. Ye, "Mumford-Shah Loss Functional for Image Segmentation with Deep
       Learning", IEEE Trans. Image Process. 29, 2019, Fig. 2.
"""

from __future__ import annotations

import torch
from torch import nn

from ._common import BiasFieldHead, CheckpointMixin, check_image_batch, pad_to_multiple

__all__ = ["UNet", "UNetBase", "DoubleConv"]


class DoubleConv(nn.Sequential):
    """Two ``3x3 conv -> BN -> ReLU`` layers, one U-Net level (Ronneberger et al., 2015).

    Convolutions are zero-padded ("same"), unlike the valid convolutions of the original
    paper, so the skip connections need no cropping.  Input ``(B, C_in, H, W)``, output
    ``(B, C_out, H, W)``.

    Parameters
    ----------
    in_channels, out_channels : int
        ``C_in`` and ``C_out``.
    batch_norm : bool, optional
        Insert :class:`torch.nn.BatchNorm2d` after each convolution (then the convolutions have
        no bias).
    """

    def __init__(self, in_channels: int, out_channels: int, batch_norm: bool = True):
        layers: list[nn.Module] = []
        for c_in in (in_channels, out_channels):
            layers.append(nn.Conv2d(c_in, out_channels, 3, padding=1, bias=not batch_norm))
            if batch_norm:
                layers.append(nn.BatchNorm2d(out_channels))
            layers.append(nn.ReLU(inplace=True))
        super().__init__(*layers)


class UNetBase(CheckpointMixin, nn.Module):
    """Encoder-decoder skeleton; subclasses choose pooling and unpooling.

    Level ``i`` (``0 <= i <= depth``) has ``C_i = base_channels * 2**i`` channels.  Subclasses
    implement :meth:`_make_pool` (the parameter-free ``self.pool`` module),
    :meth:`_pooled_channels` (channels after pooling a ``C``-channel map) and :meth:`_make_up`
    (the upsampling module of one decoder level and its output channels).
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
        super().__init__()
        for name, value in (
            ("in_channels", in_channels),
            ("num_classes", num_classes),
            ("base_channels", base_channels),
            ("depth", depth),
        ):
            if int(value) != value or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        self.in_channels = int(in_channels)
        self.num_classes = int(num_classes)
        self.depth = int(depth)
        self.bias_field = bool(bias_field)
        self._config = dict(
            in_channels=self.in_channels,
            num_classes=self.num_classes,
            base_channels=int(base_channels),
            depth=self.depth,
            bias_field=self.bias_field,
            batch_norm=bool(batch_norm),
        )

        widths = [base_channels * 2**i for i in range(depth + 1)]
        self.encoders = nn.ModuleList([DoubleConv(in_channels, widths[0], batch_norm)])
        for i in range(1, depth + 1):
            self.encoders.append(
                DoubleConv(self._pooled_channels(widths[i - 1]), widths[i], batch_norm)
            )
        self.ups = nn.ModuleList()
        self.decoders = nn.ModuleList()
        for i in reversed(range(depth)):
            up, up_channels = self._make_up(widths[i + 1], widths[i])
            self.ups.append(up)
            self.decoders.append(DoubleConv(up_channels + widths[i], widths[i], batch_norm))
        self.pool = self._make_pool()
        self.classifier = nn.Conv2d(widths[0], num_classes, kernel_size=1)
        self.bias_head = BiasFieldHead(widths[0]) if bias_field else None

    # -- subclass hooks -------------------------------------------------------------------
    def _pooled_channels(self, channels: int) -> int:
        raise NotImplementedError

    def _make_up(self, in_channels: int, skip_channels: int) -> tuple[nn.Module, int]:
        raise NotImplementedError

    def _make_pool(self) -> nn.Module:
        raise NotImplementedError

    # -- forward --------------------------------------------------------------------------
    def forward(self, x: torch.Tensor):
        """Segment a batch.

        Parameters
        ----------
        x : torch.Tensor
            Images ``(B, in_channels, H, W)``; any ``H, W`` (padded internally by replication
            to multiples of ``2**depth`` and cropped back).

        Returns
        -------
        logits : torch.Tensor
            ``(B, num_classes, H, W)`` pre-softmax scores, if ``bias_field=False``.
        (logits, bias) : tuple of torch.Tensor
            If ``bias_field=True``: the logits and the bias field ``(B, 1, H, W)``,
            strictly positive (``softplus + eps``, see :class:`~varseg.models.BiasFieldHead`).
        """
        check_image_batch(x, self.in_channels, type(self).__name__)
        x, (top, left, h, w) = pad_to_multiple(x, 2**self.depth)
        skips = []
        for i, encoder in enumerate(self.encoders):
            x = encoder(x)
            if i < self.depth:
                skips.append(x)
                x = self.pool(x)
        for up, decoder, skip in zip(self.ups, self.decoders, reversed(skips), strict=True):
            x = decoder(torch.cat([up(x), skip], dim=1))
        logits = self.classifier(x)[..., top : top + h, left : left + w]
        if self.bias_head is None:
            return logits
        return logits, self.bias_head(x)[..., top : top + h, left : left + w]


class UNet(UNetBase):
    """U-Net of Ronneberger et al. (MICCAI 2015) for ``(B, C, H, W)`` images.

    ``depth`` max-pooling levels of two ``3x3 conv-BN-ReLU`` layers; the decoder upsamples
    (transposed 2x2 convolution, or bilinear + 1x1 convolution), concatenates the encoder
    skip connection and applies two more conv layers; a 1x1 convolution gives the class
    logits.  This is the network Kim & Ye (TIP 2019) train with the Mumford-Shah loss on
    BSDS500 and PASCAL VOC (unsupervised, Fig. 2(b) with ``bias_field=True``).

    Parameters
    ----------
    in_channels : int
        Image channels ``C``.
    num_classes : int
        Output classes ``K`` (softmax channels of Eq. 10).
    base_channels : int, optional
        Channels of the first level (64 in the paper); level ``i`` has
        ``base_channels * 2**i``.
    depth : int, optional
        Number of pooling steps (4 in the paper).
    bias_field : bool, optional
        Also output the strictly positive bias field of Kim & Ye, Fig. 2(b) / Eq. 19-20.
    batch_norm : bool, optional
        Batch normalisation after each convolution.
    upsampling : {"transpose", "bilinear"}, optional
        Decoder upsampling: a learned ``2x2`` stride-2 transposed convolution (original U-Net)
        or bilinear interpolation followed by a ``1x1`` convolution.

    Notes
    -----
    Input ``(B, C, H, W)`` with any ``H, W``: the image is padded (replicate) to multiples of
    ``2**depth`` and the outputs are cropped back, so the logits are ``(B, K, H, W)``.  With
    ``bias_field=True`` :meth:`forward` returns ``(logits, bias)``, ``bias`` of shape
    ``(B, 1, H, W)``.

    References
    ----------
    .. [1] O. Ronneberger, P. Fischer and T. Brox, "U-Net: Convolutional Networks for
           Biomedical Image Segmentation", MICCAI 2015, pp. 234-241.
    .. [2] B. Kim and J. C. Ye, "Mumford-Shah Loss Functional for Image Segmentation with Deep
           Learning", IEEE Trans. Image Process. 29, 2019, Fig. 2.

    Examples
    --------
    >>> import torch
    >>> net = UNet(3, 4, base_channels=8, depth=2)
    >>> net(torch.rand(1, 3, 37, 50)).shape
    torch.Size([1, 4, 37, 50])
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
        upsampling: str = "transpose",
    ):
        if upsampling not in ("transpose", "bilinear"):
            raise ValueError(f"upsampling must be 'transpose' or 'bilinear', got {upsampling!r}")
        self._upsampling = upsampling
        super().__init__(
            in_channels,
            num_classes,
            base_channels=base_channels,
            depth=depth,
            bias_field=bias_field,
            batch_norm=batch_norm,
        )
        self._config["upsampling"] = upsampling

    def _pooled_channels(self, channels: int) -> int:
        return channels

    def _make_up(self, in_channels: int, skip_channels: int) -> tuple[nn.Module, int]:
        if self._upsampling == "transpose":
            return nn.ConvTranspose2d(in_channels, skip_channels, 2, stride=2), skip_channels
        up = nn.Sequential(
            nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
            nn.Conv2d(in_channels, skip_channels, kernel_size=1),
        )
        return up, skip_channels

    def _make_pool(self) -> nn.Module:
        return nn.MaxPool2d(2)

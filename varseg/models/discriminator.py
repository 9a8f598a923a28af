"""Fully convolutional discriminator of AdvSemi (Hung et al., BMVC 2018).

References
----------
.. [1] W.-C. Hung, Y.-H. Tsai, Y.-T. Liou, Y.-Y. Lin and M.-H. Yang, "Adversarial Learning
       for Semi-Supervised Semantic Segmentation", BMVC 2018.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ._common import CheckpointMixin, check_image_batch

__all__ = ["Discriminator"]


class Discriminator(CheckpointMixin, nn.Module):
    """AdvSemi fully convolutional discriminator (Hung et al., BMVC 2018).

    Five ``4x4`` stride-2 convolutions with padding 1, ``C -> ndf -> 2 ndf -> 4 ndf -> 8 ndf
    -> 1`` (``C -> 64 -> 128 -> 256 -> 512 -> 1`` by default), LeakyReLU(0.2) between them;
    the ``1``-channel map at 1/32 resolution is bilinearly upsampled to the input size.  It
    sees either the segmentation network's softmax probabilities or a one-hot ground truth
    (:func:`~varseg.models.one_hot_label_map`) and outputs, per pixel, the *logit* of
    "this comes from the ground truth" (use :func:`~varseg.models.adversarial_loss`, a BCE
    with logits; its sigmoid is the confidence map of the self-training loss).

    Parameters
    ----------
    num_classes : int
        Input channels ``C`` (the segmentation classes).
    ndf : int, optional
        Channels of the first convolution.

    Notes
    -----
    Input ``(B, C, H, W)`` with ``H, W >= 32`` (five halvings); output ``(B, 1, H, W)``.

    References
    ----------
    .. [1] W.-C. Hung, Y.-H. Tsai, Y.-T. Liou, Y.-Y. Lin and M.-H. Yang, "Adversarial
           Learning for Semi-Supervised Semantic Segmentation", BMVC 2018.

    Examples
    --------
    >>> import torch
    >>> d = Discriminator(21, ndf=8)
    >>> d(torch.rand(2, 21, 40, 33)).shape
    torch.Size([2, 1, 40, 33])
    """

    min_size = 32

    def __init__(self, num_classes: int, ndf: int = 64):
        super().__init__()
        for name, value in (("num_classes", num_classes), ("ndf", ndf)):
            if int(value) != value or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        self.num_classes = int(num_classes)
        self._config = dict(num_classes=self.num_classes, ndf=int(ndf))
        widths = [self.num_classes, ndf, ndf * 2, ndf * 4, ndf * 8]
        self.convs = nn.ModuleList(
            nn.Conv2d(c_in, c_out, 4, stride=2, padding=1)
            for c_in, c_out in zip(widths[:-1], widths[1:], strict=True)
        )
        self.classifier = nn.Conv2d(widths[-1], 1, 4, stride=2, padding=1)
        self.leaky_relu = nn.LeakyReLU(0.2, inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Per-pixel real/fake logits.

        Parameters
        ----------
        x : torch.Tensor
            Class probabilities or one-hot labels ``(B, num_classes, H, W)``, ``H, W >= 32``.

        Returns
        -------
        torch.Tensor
            Logits ``(B, 1, H, W)`` (bilinear upsampling, ``align_corners=True``).
        """
        check_image_batch(x, self.num_classes, type(self).__name__)
        size = tuple(x.shape[-2:])
        if min(size) < self.min_size:
            raise ValueError(
                f"Discriminator needs H, W >= {self.min_size} (five stride-2 "
                f"convolutions), got input shape {tuple(x.shape)}"
            )
        for conv in self.convs:
            x = self.leaky_relu(conv(x))
        x = self.classifier(x)
        return F.interpolate(x, size=size, mode="bilinear", align_corners=True)

"""Kanezaki's unsupervised segmentation network (ICASSP 2018), the "Backprop" baseline.

References
----------
.. [1] A. Kanezaki, "Unsupervised Image Segmentation by Backpropagation", IEEE ICASSP 2018,
       pp. 1543-1547.
.. [2] B. Kim and J. C. Ye, "Mumford-Shah Loss Functional for Image Segmentation with Deep
       Learning", IEEE Trans. Image Process. 29, 2019, Sec. IV-B3 (Backprop + MS loss).
"""

from __future__ import annotations

import torch
from torch import nn

from ._common import BiasFieldHead, CheckpointMixin, check_image_batch

__all__ = ["KanezakiNet"]

_DEFAULT_CHANNELS = 100


class KanezakiNet(CheckpointMixin, nn.Module):
    """Fully convolutional feature network of Kanezaki (ICASSP 2018).

    ``conv3x3 -> ReLU -> BN``, then ``(n_conv - 1)`` times ``conv3x3 -> ReLU -> BN``, then
    ``conv1x1 -> BN`` to ``n_channels`` response channels (layer order as in the reference
    implementation: ReLU *before* batch norm).  The argmax over the response channels is the
    cluster label; in "Backprop" it is trained against its own argmax refined by superpixels,
    and Kim & Ye (TIP 2019) add the Mumford-Shah loss on the softmax of the response.

    Parameters
    ----------
    in_channels : int
        Image channels ``C``.
    n_channels : int, optional
        Hidden and response channels (``nChannel``, default 100).  They act as the (maximum
        number of) classes.
    n_conv : int, optional
        Number of ``3x3`` convolution layers (``nConv``, default 2).
    hidden_channels : int, optional
        Width of the ``3x3`` layers; default ``n_channels`` (Kanezaki's network, where the
        hidden and response widths are equal). :func:`varseg.neural_segment` uses K response
        channels on a wider hidden layer.
    num_classes : int, optional
        Alias of ``n_channels`` for :func:`~varseg.models.build_model`; giving both with
        different values is an error.
    bias_field : bool, optional
        Also output the strictly positive bias field of Kim & Ye, Fig. 2(b) / Eq. 19-20
        (``1x1`` convolution on the last hidden features, ``softplus + eps``).

    Notes
    -----
    Input ``(B, C, H, W)``; response ``(B, n_channels, H, W)``; with ``bias_field=True``
    :meth:`forward` returns ``(response, bias)``, ``bias`` of shape ``(B, 1, H, W)``.

    References
    ----------
    .. [1] A. Kanezaki, "Unsupervised Image Segmentation by Backpropagation", IEEE ICASSP 2018.
    .. [2] B. Kim and J. C. Ye, "Mumford-Shah Loss Functional for Image Segmentation with Deep
           Learning", IEEE Trans. Image Process. 29, 2019, Sec. IV-B3 and Fig. 2.

    Examples
    --------
    >>> import torch
    >>> net = KanezakiNet(3, n_channels=16)
    >>> net(torch.rand(1, 3, 21, 32)).shape
    torch.Size([1, 16, 21, 32])
    """

    def __init__(
        self,
        in_channels: int,
        n_channels: int | None = None,
        n_conv: int = 2,
        *,
        num_classes: int | None = None,
        hidden_channels: int | None = None,
        bias_field: bool = False,
    ):
        super().__init__()
        if n_channels is not None and num_classes is not None and n_channels != num_classes:
            raise ValueError(
                f"n_channels={n_channels} and its alias num_classes={num_classes} "
                "disagree; give one of them"
            )
        if n_channels is None:
            n_channels = _DEFAULT_CHANNELS if num_classes is None else num_classes
        if hidden_channels is None:
            hidden_channels = n_channels
        for name, value in (
            ("in_channels", in_channels),
            ("n_channels", n_channels),
            ("n_conv", n_conv),
            ("hidden_channels", hidden_channels),
        ):
            if int(value) != value or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        self.in_channels = int(in_channels)
        self.n_channels = int(n_channels)
        self.bias_field = bool(bias_field)
        self.hidden_channels = int(hidden_channels)
        self._config = dict(
            in_channels=self.in_channels,
            n_channels=self.n_channels,
            n_conv=int(n_conv),
            hidden_channels=self.hidden_channels,
            bias_field=self.bias_field,
        )
        layers: list[nn.Module] = []
        c_in = self.in_channels
        for _ in range(int(n_conv)):
            layers += [
                nn.Conv2d(c_in, self.hidden_channels, 3, padding=1),
                nn.ReLU(inplace=True),
                nn.BatchNorm2d(self.hidden_channels),
            ]
            c_in = self.hidden_channels
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(
            nn.Conv2d(self.hidden_channels, self.n_channels, 1), nn.BatchNorm2d(self.n_channels)
        )
        self.bias_head = BiasFieldHead(self.hidden_channels) if self.bias_field else None

    @property
    def num_classes(self) -> int:
        """Number of response channels (alias of ``n_channels``)."""
        return self.n_channels

    def forward(self, x: torch.Tensor):
        """Response map of a batch.

        Parameters
        ----------
        x : torch.Tensor
            Images ``(B, in_channels, H, W)``.

        Returns
        -------
        response : torch.Tensor
            ``(B, n_channels, H, W)`` if ``bias_field=False``.
        (response, bias) : tuple of torch.Tensor
            With ``bias_field=True``; ``bias`` is ``(B, 1, H, W)`` and strictly positive.
        """
        check_image_batch(x, self.in_channels, type(self).__name__)
        h = self.features(x)
        response = self.head(h)
        if self.bias_head is None:
            return response
        return response, self.bias_head(h)

"""DeepLab-v2 (ResNet + ASPP, output stride 8) as used by AdvSemi and Kim & Ye (TIP 2019).

The backbone's parameter names are exactly torchvision's ``resnet{50,101,152}`` state-dict
keys (``conv1``, ``bn1``, ``layer1.0.conv1``, ..., ``layer1.0.downsample.0``), so an ImageNet
checkpoint written by ``torch.save(torchvision.models.resnet101(...).state_dict())`` loads
with :meth:`DeepLabV2.load_backbone` without torchvision installed.

References
----------
.. [1] L.-C. Chen, G. Papandreou, I. Kokkinos, K. Murphy and A. L. Yuille, "DeepLab: Semantic
       Image Segmentation with Deep Convolutional Nets, Atrous Convolution, and Fully
       Connected CRFs", IEEE TPAMI 40(4), 2018.
.. [2] W.-C. Hung, Y.-H. Tsai, Y.-T. Liou, Y.-Y. Lin and M.-H. Yang, "Adversarial Learning
       for Semi-Supervised Semantic Segmentation", BMVC 2018.
.. [3] K. He, X. Zhang, S. Ren and J. Sun, "Deep Residual Learning for Image Recognition",
       CVPR 2016.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ._common import (
    BiasFieldHead,
    CheckpointMixin,
    check_image_batch,
    load_checkpoint,
    strip_prefix,
)

__all__ = ["DeepLabV2", "ResNetBackbone", "ASPP", "Bottleneck", "RESNET_LAYERS"]

#: Bottleneck blocks per stage for the supported ResNet depths.
RESNET_LAYERS = {50: (3, 4, 6, 3), 101: (3, 4, 23, 3), 152: (3, 8, 36, 3)}


class Bottleneck(nn.Module):
    """ResNet bottleneck block ``1x1 -> 3x3 (stride, dilation) -> 1x1`` (He et al., 2016).

    Same layout and parameter names as torchvision's ``Bottleneck`` (stride on the 3x3
    convolution, "ResNet v1.5").  Input ``(B, inplanes, H, W)``, output
    ``(B, 4 * planes, H / stride, W / stride)``.
    """

    expansion = 4

    def __init__(
        self,
        inplanes: int,
        planes: int,
        stride: int = 1,
        dilation: int = 1,
        downsample: nn.Module | None = None,
    ):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(
            planes, planes, 3, stride=stride, padding=dilation, dilation=dilation, bias=False
        )
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * self.expansion, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the bottleneck block with its residual connection."""
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


class ResNetBackbone(nn.Module):
    """Dilated ResNet feature extractor of DeepLab-v2 (Chen et al., TPAMI 2018), stride 8.

    ``conv1`` (7x7, stride 2) -> ``maxpool`` (stride 2) -> ``layer1`` -> ``layer2`` (stride 2)
    -> ``layer3`` (stride 1, dilation 2) -> ``layer4`` (stride 1, dilation 4).  Every block
    of ``layer3`` / ``layer4`` uses the dilation (as in DeepLab-v2 and AdvSemi; torchvision's
    ``replace_stride_with_dilation`` keeps the previous dilation in each stage's first block).
    No ``fc`` layer.  Input ``(B, C, H, W)``, output ``(B, 2048, ceil(H/8), ceil(W/8))``
    (exactly ``(H - 1)/8 + 1`` for DeepLab's ``8k + 1`` crop sizes such as 321).

    Parameters
    ----------
    in_channels : int
        Image channels ``C``.
    depth : {50, 101, 152}
        ResNet depth; blocks per stage from :data:`RESNET_LAYERS`.
    """

    def __init__(self, in_channels: int = 3, depth: int = 101):
        super().__init__()
        if depth not in RESNET_LAYERS:
            raise ValueError(f"depth must be one of {sorted(RESNET_LAYERS)}, got {depth!r}")
        self.inplanes = 64
        self.conv1 = nn.Conv2d(in_channels, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        blocks = RESNET_LAYERS[depth]
        self.layer1 = self._make_layer(64, blocks[0])
        self.layer2 = self._make_layer(128, blocks[1], stride=2)
        self.layer3 = self._make_layer(256, blocks[2], dilation=2)
        self.layer4 = self._make_layer(512, blocks[3], dilation=4)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def _make_layer(
        self, planes: int, blocks: int, stride: int = 1, dilation: int = 1
    ) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes * Bottleneck.expansion:
            downsample = nn.Sequential(
                nn.Conv2d(
                    self.inplanes, planes * Bottleneck.expansion, 1, stride=stride, bias=False
                ),
                nn.BatchNorm2d(planes * Bottleneck.expansion),
            )
        layers = [Bottleneck(self.inplanes, planes, stride, dilation, downsample)]
        self.inplanes = planes * Bottleneck.expansion
        layers += [Bottleneck(self.inplanes, planes, 1, dilation) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return the feature map of ``x`` (stem and four residual stages)."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))


class ASPP(nn.Module):
    """DeepLab-v2 Atrous Spatial Pyramid Pooling head (Chen et al., TPAMI 2018).

    Four parallel ``3x3`` convolutions with dilation 6, 12, 18, 24 from the backbone features
    straight to the class scores; their outputs are **summed** (no batch norm, no 1x1 fusion
    convolution: the DeepLab-v2 "ASPP-L" head used by AdvSemi).  Weights are initialised
    ``N(0, 0.01)``, biases 0, as in AdvSemi.  Input ``(B, C_in, h, w)``, output
    ``(B, num_classes, h, w)``.

    Parameters
    ----------
    in_channels : int
        Feature channels (2048 for a ResNet-50/101 backbone).
    num_classes : int
        Output channels.
    dilations : sequence of int, optional
        One branch per dilation.
    """

    def __init__(
        self, in_channels: int, num_classes: int, dilations: tuple[int, ...] = (6, 12, 18, 24)
    ):
        super().__init__()
        self.convs = nn.ModuleList(
            nn.Conv2d(in_channels, num_classes, 3, padding=d, dilation=d, bias=True)
            for d in dilations
        )
        for conv in self.convs:
            nn.init.normal_(conv.weight, 0.0, 0.01)
            nn.init.zeros_(conv.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Sum the dilated-convolution branches applied to ``x``."""
        out = self.convs[0](x)
        for conv in self.convs[1:]:
            out = out + conv(x)
        return out


class DeepLabV2(CheckpointMixin, nn.Module):
    """DeepLab-v2: dilated ResNet + ASPP, output stride 8 (Chen et al., TPAMI 2018).

    The segmentation network of AdvSemi (Hung et al., BMVC 2018) and of the PASCAL VOC
    experiments of Kim & Ye (TIP 2019): ResNet-101 ``[3, 4, 23, 3]`` (or ResNet-50
    ``[3, 4, 6, 3]``) with ``layer3`` / ``layer4`` dilated by 2 / 4, the summed 4-branch
    :class:`ASPP` (dilation 6/12/18/24), and the logits bilinearly upsampled to the input size
    (``align_corners=True``, exact for DeepLab's ``8k + 1`` crops such as 321); no multi-scale
    fusion, no CRF.

    Parameters
    ----------
    in_channels : int
        Image channels ``C``.
    num_classes : int
        Output classes ``K`` (21 for PASCAL VOC).
    depth : {101, 50, 152}, optional
        ResNet depth.
    bias_field : bool, optional
        Also output the bias field of Kim & Ye, Fig. 2(b) / Eq. 19-20: a ``1x1`` convolution
        on the stride-8 features, upsampled bilinearly, ``softplus + eps`` (strictly
        positive, smooth by construction).
    pretrained_backbone : str or os.PathLike or None, optional
        Local torchvision ResNet state dict to load with :meth:`load_backbone`.  Not stored in
        :attr:`config` (a checkpoint of this model already holds the weights).
    freeze_bn : bool, optional
        Keep every backbone batch-norm layer in eval mode (running statistics frozen) and its
        affine parameters fixed (``requires_grad=False``), as AdvSemi does.

    Notes
    -----
    Input ``(B, C, H, W)``; logits ``(B, K, H, W)``; with ``bias_field=True`` :meth:`forward`
    returns ``(logits, bias)``, ``bias`` of shape ``(B, 1, H, W)``.  :meth:`features` gives the
    backbone map ``(B, 2048, ceil(H/8), ceil(W/8))``.  :meth:`parameter_groups` gives the
    AdvSemi optimiser groups (head at 10x the backbone learning rate).

    References
    ----------
    .. [1] L.-C. Chen, G. Papandreou, I. Kokkinos, K. Murphy and A. L. Yuille, "DeepLab:
           Semantic Image Segmentation with Deep Convolutional Nets, Atrous Convolution, and
           Fully Connected CRFs", IEEE TPAMI 40(4), 2018.
    .. [2] W.-C. Hung, Y.-H. Tsai, Y.-T. Liou, Y.-Y. Lin and M.-H. Yang, "Adversarial Learning
           for Semi-Supervised Semantic Segmentation", BMVC 2018.
    .. [3] B. Kim and J. C. Ye, "Mumford-Shah Loss Functional for Image Segmentation with Deep
           Learning", IEEE Trans. Image Process. 29, 2019, Sec. IV-B1 and Fig. 2.

    Examples
    --------
    >>> import torch
    >>> net = DeepLabV2(3, 21, depth=50).eval()
    >>> net(torch.rand(1, 3, 33, 33)).shape
    torch.Size([1, 21, 33, 33])
    """

    output_stride = 8

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        *,
        depth: int = 101,
        bias_field: bool = False,
        pretrained_backbone=None,
        freeze_bn: bool = False,
    ):
        super().__init__()
        if int(in_channels) != in_channels or in_channels < 1:
            raise ValueError(f"in_channels must be a positive integer, got {in_channels!r}")
        if int(num_classes) != num_classes or num_classes < 1:
            raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}")
        self.in_channels = int(in_channels)
        self.num_classes = int(num_classes)
        self.bias_field = bool(bias_field)
        self.freeze_bn = bool(freeze_bn)
        self._config = dict(
            in_channels=self.in_channels,
            num_classes=self.num_classes,
            depth=int(depth),
            bias_field=self.bias_field,
            freeze_bn=self.freeze_bn,
        )
        self.backbone = ResNetBackbone(self.in_channels, depth)
        self.aspp = ASPP(2048, self.num_classes)
        self.bias_head = BiasFieldHead(2048) if self.bias_field else None
        if pretrained_backbone is not None:
            self.load_backbone(pretrained_backbone)
        if self.freeze_bn:
            for m in self._backbone_norms():
                for p in m.parameters():
                    p.requires_grad_(False)
            self.train(self.training)

    # -- batch norm -------------------------------------------------------------------------
    def _backbone_norms(self):
        return (m for m in self.backbone.modules() if isinstance(m, nn.BatchNorm2d))

    def train(self, mode: bool = True):
        """Set training mode; with ``freeze_bn=True`` the backbone BN layers stay in eval mode."""
        super().train(mode)
        if self.freeze_bn:
            for m in self._backbone_norms():
                m.eval()
        return self

    # -- forward ----------------------------------------------------------------------------
    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Backbone features ``(B, 2048, ceil(H/8), ceil(W/8))`` of images ``(B, C, H, W)``."""
        check_image_batch(x, self.in_channels, type(self).__name__)
        return self.backbone(x)

    def forward(self, x: torch.Tensor):
        """Segment a batch.

        Parameters
        ----------
        x : torch.Tensor
            Images ``(B, in_channels, H, W)``.

        Returns
        -------
        logits : torch.Tensor
            ``(B, num_classes, H, W)`` if ``bias_field=False``.
        (logits, bias) : tuple of torch.Tensor
            With ``bias_field=True``; ``bias`` is ``(B, 1, H, W)`` and strictly positive.
        """
        size = tuple(x.shape[-2:])
        feats = self.features(x)
        logits = F.interpolate(self.aspp(feats), size=size, mode="bilinear", align_corners=True)
        if self.bias_head is None:
            return logits
        return logits, self.bias_head(feats, size=size)

    # -- optimiser --------------------------------------------------------------------------
    def parameter_groups(self, lr: float) -> list[dict]:
        """Optimiser parameter groups of AdvSemi: backbone at ``lr``, head at ``10 * lr``.

        The head is the ASPP (and the bias-field head, if any).  Parameters with
        ``requires_grad=False`` (frozen batch norm) are left out.

        Parameters
        ----------
        lr : float
            Backbone learning rate (AdvSemi: 2.5e-4).

        Returns
        -------
        list of dict
            ``[{"params": [...], "lr": lr}, {"params": [...], "lr": 10 * lr}]`` for
            :class:`torch.optim.SGD`.  Each group also carries ``"initial_lr"`` for a poly
            schedule that rescales it.
        """
        head = list(self.aspp.parameters())
        if self.bias_head is not None:
            head += list(self.bias_head.parameters())
        backbone = [p for p in self.backbone.parameters() if p.requires_grad]
        return [
            {"params": backbone, "lr": lr, "initial_lr": lr},
            {"params": [p for p in head if p.requires_grad], "lr": 10 * lr, "initial_lr": 10 * lr},
        ]

    # -- checkpoints ------------------------------------------------------------------------
    def load_backbone(self, source) -> None:
        """Load an ImageNet ResNet state dict in torchvision's format into the backbone.

        Loading is strict on the backbone keys; ``fc.*`` keys are ignored, as is a missing
        ``*.num_batches_tracked`` (absent from older torchvision files), and a ``"module."``
        prefix or a ``{"model": state_dict}`` wrapper is accepted.  If the checkpoint's
        ``conv1.weight`` has 3 input channels and this model has ``C != 3``, the filters are
        averaged over the input channels and repeated ``C`` times (``w.mean(1, keepdim=True)
        .repeat(1, C, 1, 1)``): a ``C``-channel image whose channels are all equal to a grey
        image then gives ``C/3`` times the response of the 3-channel network on that grey
        image in RGB; the following batch norm absorbs the scale after fine-tuning.

        Parameters
        ----------
        source : str, os.PathLike or Mapping
            Path of a file written by ``torch.save(resnet.state_dict())``, or the state dict.

        Raises
        ------
        FileNotFoundError
            If the file does not exist.
        ValueError
            If backbone keys are missing or unexpected, or a shape does not match; the message
            names the keys and the file.
        """
        if isinstance(source, Mapping):
            state = dict(source)
            if "model" in state and isinstance(state["model"], Mapping):
                state = dict(state["model"])
            self._load_backbone_state(state, "<state dict>")
        else:
            state, _ = load_checkpoint(source)
            self._load_backbone_state(state, str(Path(source)))

    def _load_backbone_state(self, state: Mapping[str, torch.Tensor], where: str) -> None:
        state = {k: v for k, v in strip_prefix(state, "module.").items() if not k.startswith("fc.")}
        own = self.backbone.state_dict()
        missing = sorted(k for k in own if k not in state and not k.endswith("num_batches_tracked"))
        unexpected = sorted(k for k in state if k not in own)
        if missing or unexpected:
            raise ValueError(
                f"{where} is not a torchvision ResNet-{self._config['depth']} state dict: "
                f"missing keys {_short(missing)}, unexpected keys {_short(unexpected)}"
            )
        w = state.get("conv1.weight")
        if w is not None and w.shape[1] != self.in_channels:
            if w.shape[1] != 3 and w.shape[1] != 1:
                raise ValueError(
                    f"{where}: conv1.weight has {w.shape[1]} input channels; "
                    f"only 1 or 3 can be adapted to {self.in_channels}"
                )
            state["conv1.weight"] = w.mean(dim=1, keepdim=True).repeat(1, self.in_channels, 1, 1)
        bad = [
            f"{k}: {tuple(v.shape)} vs {tuple(own[k].shape)}"
            for k, v in state.items()
            if v.shape != own[k].shape
        ]
        if bad:
            raise ValueError(f"{where}: shape mismatch for {_short(bad)}")
        self.backbone.load_state_dict(state, strict=False)

    @classmethod
    def from_checkpoint(cls, path, map_location="cpu", **kw):
        """Build a model from a local checkpoint.

        Accepts a checkpoint of this model (plain state dict or ``{"model", "model_config"}``,
        see :meth:`CheckpointMixin.from_checkpoint`) or a bare torchvision ResNet state dict
        (keys ``conv1.weight``, ``layer1.0.conv1.weight``, ...), which is loaded with
        :meth:`load_backbone` into a freshly initialised model; then ``in_channels`` and
        ``num_classes`` must be given as keywords.

        Parameters
        ----------
        path : str or os.PathLike
            Local file.
        map_location : str or torch.device, optional
            Passed to :func:`torch.load`.
        **kw
            Constructor keyword arguments (override the stored configuration).
        """
        state, config = load_checkpoint(path, map_location)
        if "conv1.weight" in state and not any(k.startswith("backbone.") for k in state):
            model = cls(**{**config, **kw})
            model._load_backbone_state(state, str(path))
            return model
        return super().from_checkpoint(path, map_location=map_location, **kw)


def _short(keys: list[str], limit: int = 8) -> str:
    if not keys:
        return "[]"
    more = f" ... (+{len(keys) - limit} more)" if len(keys) > limit else ""
    return "[" + ", ".join(keys[:limit]) + more + "]"

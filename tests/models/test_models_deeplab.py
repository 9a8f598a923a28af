"""DeepLabV2: output stride, ASPP sum, torchvision-format backbone loading, frozen BN."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from varseg.models import DeepLabV2

# torchvision resnet50 / resnet101 parameter counts without the 1000-class fc layer
RESNET50_BACKBONE_PARAMS = 25_557_032 - 2_049_000
RESNET101_BACKBONE_PARAMS = 44_549_160 - 2_049_000


@pytest.fixture(scope="module")
def net():
    torch.manual_seed(0)
    return DeepLabV2(3, 5, depth=50)


@pytest.fixture(scope="module")
def net101():
    torch.manual_seed(0)
    return DeepLabV2(3, 2)


@pytest.fixture(scope="module")
def torchvision_file(tmp_path_factory):
    """A fake ImageNet ResNet-50 checkpoint in torchvision's format (with fc.*)."""
    torch.manual_seed(1)
    ref = DeepLabV2(3, 5, depth=50).backbone.state_dict()
    state = {k: v.clone() for k, v in ref.items()}
    for k, v in state.items():
        if v.is_floating_point() and ".conv" not in f".{k}" and "downsample.0" not in k:
            v.uniform_(0.5, 1.5)  # batch norm: differ from a fresh model's ones / zeros
    state["fc.weight"] = torch.randn(1000, 2048)
    state["fc.bias"] = torch.randn(1000)
    path = tmp_path_factory.mktemp("resnet") / "resnet50.pth"
    torch.save(state, path)
    return path, state


def test_output_shape_and_output_stride(net):
    x = torch.rand(2, 3, 33, 33)
    seen = {}
    hook = net.backbone.layer4.register_forward_hook(lambda m, i, o: seen.setdefault("f", o))
    try:
        out = net(x)
    finally:
        hook.remove()
    assert out.shape == (2, 5, 33, 33)
    assert seen["f"].shape == (2, 2048, 5, 5)  # (33 - 1) / 8 + 1
    assert net.features(torch.rand(1, 3, 32, 48)).shape == (1, 2048, 4, 6)  # H/8, W/8


def test_backbone_matches_torchvision_resnet(net, net101):
    assert sum(p.numel() for p in net.backbone.parameters()) == RESNET50_BACKBONE_PARAMS
    assert [len(getattr(net101.backbone, f"layer{i}")) for i in range(1, 5)] == [3, 4, 23, 3]
    assert sum(p.numel() for p in net101.backbone.parameters()) == RESNET101_BACKBONE_PARAMS
    keys = net101.backbone.state_dict().keys()
    for key in (
        "conv1.weight",
        "bn1.running_var",
        "layer1.0.conv1.weight",
        "layer1.0.downsample.0.weight",
        "layer1.0.downsample.1.bias",
        "layer4.2.bn3.weight",
    ):
        assert key in keys


def test_dilations(net):
    for name, dilation in (("layer3", 2), ("layer4", 4)):
        for block in getattr(net.backbone, name):
            assert block.conv2.dilation == (dilation, dilation)
            assert block.conv2.stride == (1, 1)
    assert [c.dilation for c in net.aspp.convs] == [(6, 6), (12, 12), (18, 18), (24, 24)]
    assert all(c.in_channels == 2048 and c.kernel_size == (3, 3) for c in net.aspp.convs)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in net.aspp.modules())


def test_aspp_is_the_sum_of_four_branches(net):
    net.eval()
    x = torch.rand(1, 3, 41, 41)
    with torch.no_grad():
        feats = net.features(x)
        manual = sum(conv(feats) for conv in net.aspp.convs)
        torch.testing.assert_close(net.aspp(feats), manual)
        expected = F.interpolate(manual, size=(41, 41), mode="bilinear", align_corners=True)
        torch.testing.assert_close(net(x), expected)
    net.train()


def test_gradients_reach_every_parameter():
    torch.manual_seed(0)
    net = DeepLabV2(3, 4, depth=50, bias_field=True)
    logits, bias = net(torch.rand(1, 3, 33, 33))
    assert bias.shape == (1, 1, 33, 33)
    torch.testing.assert_close(bias, torch.ones_like(bias))  # untrained head: b == 1
    ((logits * torch.randn_like(logits)).sum() + (bias * torch.randn_like(bias)).sum()).backward()
    for name, p in net.named_parameters():
        assert p.grad is not None, name


def test_load_torchvision_backbone(torchvision_file):
    path, state = torchvision_file
    net = DeepLabV2(3, 5, depth=50, pretrained_backbone=path)
    own = net.backbone.state_dict()
    for k, v in own.items():
        assert torch.equal(v, state[k]), k
    assert "pretrained_backbone" not in net.config
    # same through from_checkpoint, which recognises a bare torchvision state dict
    net2 = DeepLabV2.from_checkpoint(path, in_channels=3, num_classes=5, depth=50)
    assert torch.equal(net2.backbone.layer4[2].conv3.weight, state["layer4.2.conv3.weight"])


def test_load_backbone_adapts_conv1_to_four_channels(torchvision_file):
    path, state = torchvision_file
    net = DeepLabV2(4, 5, depth=50)
    net.load_backbone(path)
    w3 = state["conv1.weight"]
    expected = w3.mean(dim=1, keepdim=True).repeat(1, 4, 1, 1)
    assert net.backbone.conv1.weight.shape == (64, 4, 7, 7)
    torch.testing.assert_close(net.backbone.conv1.weight.detach(), expected)
    assert torch.equal(
        net.backbone.layer2[0].downsample[0].weight, state["layer2.0.downsample.0.weight"]
    )
    assert net(torch.rand(1, 4, 33, 33)).shape == (1, 5, 33, 33)


def test_load_backbone_errors_name_keys_and_path(net, net101, torchvision_file, tmp_path):
    # every check runs before anything is copied: the shared fixtures stay untouched
    path, state = torchvision_file
    # keys are checked before shapes, so placeholder tensors keep the file tiny
    broken = {k: torch.zeros(1) for k in state if k != "layer3.1.conv2.weight"}
    broken["layer5.0.conv1.weight"] = torch.zeros(1)
    bad_path = tmp_path / "broken.pth"
    torch.save(broken, bad_path)
    with pytest.raises(ValueError) as info:
        net.load_backbone(bad_path)
    msg = str(info.value)
    assert "layer3.1.conv2.weight" in msg and "layer5.0.conv1.weight" in msg
    assert str(bad_path) in msg
    # a ResNet-50 file does not fit a ResNet-101 model
    with pytest.raises(ValueError, match="missing keys"):
        net101.load_backbone(state)
    with pytest.raises(FileNotFoundError, match="nope.pth"):
        net.load_backbone(tmp_path / "nope.pth")


def test_old_torchvision_file_without_num_batches_tracked(torchvision_file):
    _, state = torchvision_file
    old = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    net = DeepLabV2(3, 2, depth=50)
    net.load_backbone(old)
    assert torch.equal(net.backbone.conv1.weight, state["conv1.weight"])
    assert torch.equal(net.backbone.bn1.running_var, state["bn1.running_var"])


def test_freeze_bn_and_parameter_groups():
    torch.manual_seed(0)
    net = DeepLabV2(3, 3, depth=50, freeze_bn=True).train()
    bns = [m for m in net.backbone.modules() if isinstance(m, nn.BatchNorm2d)]
    assert net.training and not any(m.training for m in bns)
    assert not any(p.requires_grad for m in bns for p in m.parameters())
    before = bns[0].running_mean.clone()
    net(torch.rand(1, 3, 33, 33)).sum().backward()
    assert torch.equal(bns[0].running_mean, before)
    assert all(p.grad is None for m in bns for p in m.parameters())

    backbone, head = net.parameter_groups(2.5e-4)
    assert backbone["lr"] == pytest.approx(2.5e-4) and head["lr"] == pytest.approx(2.5e-3)
    assert {id(p) for p in head["params"]} == {id(p) for p in net.aspp.parameters()}
    grouped = [id(p) for g in (backbone, head) for p in g["params"]]
    trainable = [id(p) for p in net.parameters() if p.requires_grad]
    assert sorted(grouped) == sorted(trainable)
    torch.optim.SGD([backbone, head], lr=2.5e-4, momentum=0.9)


def test_wrong_input_shape_raises(net):
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        net(torch.rand(3, 33, 33))
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        net(torch.rand(1, 1, 33, 33))
    with pytest.raises(ValueError, match="depth"):
        DeepLabV2(3, 2, depth=34)

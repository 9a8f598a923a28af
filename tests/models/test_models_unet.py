"""UNet and PolyphaseUNet: shapes, bias field, gradients, input validation."""

import pytest
import torch

from varseg.models import BIAS_EPS, PolyphaseUNet, UNet

SMALL = dict(base_channels=8, depth=3)


@pytest.mark.parametrize("cls", [UNet, PolyphaseUNet])
@pytest.mark.parametrize("size", [(37, 50), (16, 16), (5, 9), (1, 1)])
def test_output_shape_any_size(cls, size):
    torch.manual_seed(0)
    net = cls(3, 4, **SMALL)
    out = net(torch.rand(2, 3, *size))
    assert out.shape == (2, 4, *size)


def test_unet_bilinear_upsampling_shape():
    net = UNet(2, 3, base_channels=8, depth=2, upsampling="bilinear")
    assert net(torch.rand(1, 2, 13, 22)).shape == (1, 3, 13, 22)
    assert net.config["upsampling"] == "bilinear"


@pytest.mark.parametrize("cls", [UNet, PolyphaseUNet])
def test_bias_field_output_shape_and_positive(cls):
    torch.manual_seed(0)
    net = cls(3, 2, bias_field=True, **SMALL)
    logits, bias = net(torch.rand(2, 3, 21, 30))
    assert logits.shape == (2, 2, 21, 30)
    assert bias.shape == (2, 1, 21, 30)
    # the untrained head is the identity bias field b == 1
    torch.testing.assert_close(bias, torch.ones_like(bias))
    # strictly positive even when the pre-activation saturates
    with torch.no_grad():
        net.bias_head.conv.bias.fill_(-200.0)
        net.bias_head.conv.weight.normal_()
    _, bias = net(torch.rand(2, 3, 21, 30))
    assert bias.min() >= BIAS_EPS and bias.min() < 2 * BIAS_EPS  # at the floor, not below


@pytest.mark.parametrize("cls", [UNet, PolyphaseUNet])
@pytest.mark.parametrize("bias_field", [False, True])
def test_gradients_reach_every_parameter(cls, bias_field):
    torch.manual_seed(0)
    net = cls(3, 3, bias_field=bias_field, **SMALL)
    out = net(torch.rand(2, 3, 19, 24))
    outs = out if bias_field else (out,)
    sum((o * torch.randn_like(o)).sum() for o in outs).backward()
    for name, p in net.named_parameters():
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all(), name


def test_unet_widths_follow_ronneberger():
    net = UNet(1, 2)
    convs = [m for m in net.encoders.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs[::2]] == [64, 128, 256, 512, 1024]
    assert all(c.kernel_size == (3, 3) for c in convs)
    assert isinstance(net.pool, torch.nn.MaxPool2d)


def test_no_batch_norm_option():
    net = UNet(1, 2, batch_norm=False, **SMALL)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in net.modules())
    assert net(torch.rand(1, 1, 8, 8)).shape == (1, 2, 8, 8)


@pytest.mark.parametrize("cls", [UNet, PolyphaseUNet])
def test_wrong_input_shape_raises(cls):
    net = cls(3, 2, **SMALL)
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        net(torch.rand(3, 16, 16))
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        net(torch.rand(1, 4, 16, 16))


def test_invalid_constructor_arguments():
    with pytest.raises(ValueError, match="upsampling"):
        UNet(3, 2, upsampling="nearest")
    with pytest.raises(ValueError, match="even base_channels"):
        PolyphaseUNet(3, 2, base_channels=7)
    with pytest.raises(ValueError, match="depth"):
        UNet(3, 2, depth=0)

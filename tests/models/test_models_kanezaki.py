"""KanezakiNet (ICASSP 2018)."""

import pytest
import torch
from torch import nn

from varseg.models import KanezakiNet


def test_default_architecture():
    net = KanezakiNet(3)
    kinds = [type(m) for m in net.features] + [type(m) for m in net.head]
    assert kinds == [nn.Conv2d, nn.ReLU, nn.BatchNorm2d] * 2 + [nn.Conv2d, nn.BatchNorm2d]
    assert net.head[0].kernel_size == (1, 1)
    assert net.features[0].kernel_size == (3, 3)
    assert net.n_channels == net.num_classes == 100


@pytest.mark.parametrize("n_conv", [1, 3])
def test_response_shape(n_conv):
    net = KanezakiNet(3, n_channels=12, n_conv=n_conv)
    convs = [m for m in net.features if isinstance(m, nn.Conv2d)]
    assert len(convs) == n_conv
    assert net(torch.rand(2, 3, 17, 23)).shape == (2, 12, 17, 23)


def test_num_classes_alias():
    assert KanezakiNet(3, num_classes=7).n_channels == 7
    assert KanezakiNet(3, 7, num_classes=7).config["n_channels"] == 7
    with pytest.raises(ValueError, match="disagree"):
        KanezakiNet(3, 8, num_classes=7)


def test_bias_field_and_gradients():
    torch.manual_seed(0)
    net = KanezakiNet(4, n_channels=6, bias_field=True)
    resp, bias = net(torch.rand(2, 4, 9, 11))
    assert resp.shape == (2, 6, 9, 11)
    assert bias.shape == (2, 1, 9, 11)
    # the untrained head is the identity bias field b == 1
    torch.testing.assert_close(bias, torch.ones_like(bias))
    ((resp * torch.randn_like(resp)).sum() + (bias * torch.randn_like(bias)).sum()).backward()
    for name, p in net.named_parameters():
        assert p.grad is not None, name


def test_wrong_input_shape_raises():
    net = KanezakiNet(3, n_channels=4)
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        net(torch.rand(1, 1, 3, 8, 8))
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        net(torch.rand(1, 1, 8, 8))

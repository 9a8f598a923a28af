"""AdvSemi discriminator and losses (Hung et al., BMVC 2018)."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from varseg.models import (
    AdvSemiLossWeights,
    Discriminator,
    adversarial_loss,
    one_hot_label_map,
    semi_supervised_self_training_loss,
)


def test_discriminator_architecture_and_shape():
    d = Discriminator(21)
    convs = [m for m in d.modules() if isinstance(m, nn.Conv2d)]
    assert [(c.in_channels, c.out_channels) for c in convs] == [
        (21, 64),
        (64, 128),
        (128, 256),
        (256, 512),
        (512, 1),
    ]
    assert all(
        c.kernel_size == (4, 4) and c.stride == (2, 2) and c.padding == (1, 1) for c in convs
    )
    assert d.leaky_relu.negative_slope == pytest.approx(0.2)
    small = Discriminator(3, ndf=4)
    assert small(torch.rand(2, 3, 33, 45)).shape == (2, 1, 33, 45)


def test_discriminator_input_errors():
    d = Discriminator(3, ndf=4)
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        d(torch.rand(2, 4, 40, 40))
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        d(torch.rand(3, 40, 40))
    with pytest.raises(ValueError, match=">= 32"):
        d(torch.rand(1, 3, 31, 64))


def test_adversarial_loss_matches_bce():
    d_out = torch.tensor([[[[0.5, -1.0], [2.0, 0.0]]]])
    p = torch.sigmoid(d_out)
    torch.testing.assert_close(adversarial_loss(d_out, True), -torch.log(p).mean())
    torch.testing.assert_close(adversarial_loss(d_out, False), -torch.log1p(-p).mean())
    ignore = torch.tensor([[[True, False], [False, True]]])
    expected = -(torch.log(p[0, 0, 0, 1]) + torch.log(p[0, 0, 1, 0])) / 2
    torch.testing.assert_close(adversarial_loss(d_out, True, ignore_mask=ignore), expected)
    d_out.requires_grad_(True)
    zero = adversarial_loss(d_out, True, ignore_mask=torch.ones(1, 2, 2, dtype=torch.bool))
    assert zero.item() == 0.0
    zero.backward()


def test_one_hot_label_map():
    labels = torch.tensor([[[0, 2], [255, 1]]])
    out = one_hot_label_map(labels, 3)
    assert out.shape == (1, 3, 2, 2) and out.dtype == torch.float32
    expected = torch.tensor([[[1, 0], [0, 0]], [[0, 0], [0, 1]], [[0, 1], [0, 0]]]).float()
    torch.testing.assert_close(out[0], expected)
    torch.testing.assert_close(one_hot_label_map(labels[:, None], 3), out)
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        one_hot_label_map(torch.tensor([[[0, 3]]]), 3)
    with pytest.raises(ValueError, match="shape"):
        one_hot_label_map(torch.zeros(2, 2, dtype=torch.long), 3)


def _logit(p):
    return math.log(p / (1 - p))


def test_self_training_loss_hand_built_case():
    # 1 image, 3 classes, 2x2 pixels
    z = torch.tensor(
        [[[[2.0, 0.0], [0.1, -1.0]], [[1.0, 3.0], [0.2, 0.0]], [[0.0, 1.0], [0.3, 2.0]]]],
        requires_grad=True,
    )
    # confidence sigmoid(d): 0.9 kept, 0.1 dropped, 0.5 kept, 0.19 dropped (mask_T = 0.2)
    d = torch.tensor(
        [[[[_logit(0.9), _logit(0.1)], [_logit(0.5), _logit(0.19)]]]], requires_grad=True
    )
    loss = semi_supervised_self_training_loss(z, d, mask_T=0.2)

    def ce(scores):  # CE against the argmax of the same scores
        return -(max(scores) - math.log(sum(math.exp(s) for s in scores)))

    expected = (ce([2.0, 1.0, 0.0]) + ce([0.1, 0.2, 0.3])) / 2
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    loss.backward()
    assert d.grad is None  # the mask carries no gradient to the discriminator
    assert z.grad[0, :, 0, 1].abs().sum() == 0 and z.grad[0, :, 1, 1].abs().sum() == 0
    assert z.grad[0, :, 0, 0].abs().sum() > 0


def test_self_training_loss_is_zero_when_no_pixel_passes():
    z = torch.randn(2, 4, 3, 3, requires_grad=True)
    d = torch.full((2, 1, 3, 3), -10.0)
    loss = semi_supervised_self_training_loss(z, d, mask_T=0.2)
    assert loss.item() == 0.0
    loss.backward()
    assert torch.equal(z.grad, torch.zeros_like(z))


def test_self_training_loss_errors():
    z = torch.randn(1, 3, 4, 4)
    with pytest.raises(ValueError, match=r"\(B, 1, H, W\)"):
        semi_supervised_self_training_loss(z, torch.zeros(1, 2, 4, 4))
    with pytest.raises(ValueError, match=r"\(B, 1, H, W\)"):
        semi_supervised_self_training_loss(z, torch.zeros(1, 1, 5, 4))
    with pytest.raises(ValueError, match="class index"):
        semi_supervised_self_training_loss(z, torch.zeros(1, 1, 4, 4), ignore_index=1)


def test_loss_weights_defaults():
    w = AdvSemiLossWeights()
    assert (w.lambda_adv, w.lambda_semi, w.lambda_semi_adv, w.mask_T, w.semi_start) == (
        0.01,
        0.1,
        0.001,
        0.2,
        5000,
    )
    assert not w.semi_active(4999) and w.semi_active(5000)
    assert w.semi_adv_active(0)


def test_discriminator_gradients_and_training_step():
    torch.manual_seed(0)
    d = Discriminator(3, ndf=4)
    probs = F.softmax(torch.randn(2, 3, 32, 32), dim=1)
    gt = one_hot_label_map(torch.randint(0, 3, (2, 32, 32)), 3)
    loss = adversarial_loss(d(probs), False) + adversarial_loss(d(gt), True)
    loss.backward()
    for name, p in d.named_parameters():
        assert p.grad is not None, name

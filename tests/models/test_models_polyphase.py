"""Polyphase pooling is lossless and equals PixelUnshuffle up to a channel permutation."""

import torch
import torch.nn.functional as F

from varseg.models import PolyphaseUNet, polyphase_merge, polyphase_permutation, polyphase_split


def test_polyphase_split_components():
    x = torch.arange(2 * 4 * 6, dtype=torch.float32).reshape(1, 2, 4, 6)
    y = polyphase_split(x)
    assert y.shape == (1, 8, 2, 3)
    ee, eo, oe, oo = y.chunk(4, dim=1)
    torch.testing.assert_close(ee, x[..., 0::2, 0::2])
    torch.testing.assert_close(eo, x[..., 0::2, 1::2])
    torch.testing.assert_close(oe, x[..., 1::2, 0::2])
    torch.testing.assert_close(oo, x[..., 1::2, 1::2])


def test_polyphase_split_is_pixel_unshuffle_up_to_permutation():
    x = torch.randn(2, 5, 8, 10)
    perm = polyphase_permutation(5)
    assert sorted(perm.tolist()) == list(range(20))
    assert torch.equal(polyphase_split(x), F.pixel_unshuffle(x, 2)[:, perm])
    assert torch.equal(polyphase_merge(polyphase_split(x)), x)


def test_model_pooling_is_lossless():
    net = PolyphaseUNet(3, 2, base_channels=8, depth=2)
    assert isinstance(net.pool, torch.nn.PixelUnshuffle)
    assert isinstance(net.unpool, torch.nn.PixelShuffle)
    assert all(up is net.unpool for up in net.ups)
    x = torch.randn(2, 8, 12, 14)
    pooled = net.pool(x)
    assert pooled.shape == (2, 32, 6, 7)
    assert pooled.numel() == x.numel()
    # same multiset of values: nothing is discarded (unlike max pooling)
    assert torch.equal(pooled.flatten().sort().values, x.flatten().sort().values)
    assert torch.equal(net.unpool(pooled), x)


def test_unshuffle_then_shuffle_is_identity_inside_forward():
    torch.manual_seed(0)
    net = PolyphaseUNet(3, 2, base_channels=8, depth=3)
    seen = []
    hook = net.pool.register_forward_hook(lambda m, inp, out: seen.append((inp[0], out)))
    try:
        net(torch.rand(1, 3, 20, 28))
    finally:
        hook.remove()
    assert len(seen) == 3  # one pooling per level
    for inp, out in seen:
        assert out.shape[1] == 4 * inp.shape[1]
        assert torch.equal(net.unpool(out), inp)

"""Per-mode steps: Eq. 16 gradients, separate labelled / unlabelled passes, AdvSemi."""

import copy

import pytest
import torch

from varseg.losses import semi_supervised_loss
from varseg.models import UNet
from varseg.train import TrainConfig
from varseg.train.builders import TaskInfo
from varseg.train.steps import StepState, make_step

TASK = TaskInfo(in_channels=1, num_classes=3, ignore_index=-100)


def _batch(n_lab=2, n_unl=2, size=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    n = n_lab + n_unl
    label = torch.randint(0, 3, (n, size, size), generator=g)
    label[n_lab:] = -100
    return {
        "image": torch.rand(n, 1, size, size, generator=g),
        "label": label,
        "labeled": torch.tensor([True] * n_lab + [False] * n_unl),
    }


def _grads(model, cfg, batch):
    model = copy.deepcopy(model)
    opt = torch.optim.SGD(model.parameters(), lr=0.0)  # lr 0: keep the weights, read grads
    make_step(cfg, TASK)(StepState(model, opt, torch.device("cpu")), batch, 0)
    return {k: p.grad.clone() for k, p in model.named_parameters() if p.grad is not None}


def _cfg(**kw):
    return TrainConfig(
        max_steps=1, mode="semi", semi_sampling="paired", ms_weight=0.7, length_weight=0.01, **kw
    ).validate()


def test_paired_passes_give_the_gradient_of_eq16():
    torch.manual_seed(0)
    net = UNet(1, 3, base_channels=4, depth=2, batch_norm=False)
    batch = _batch()
    ours = _grads(net, _cfg(), batch)
    ref_net = copy.deepcopy(net)
    loss = semi_supervised_loss(
        ref_net(batch["image"]),
        batch["label"],
        batch["image"],
        batch["labeled"],
        0.7,
        length_weight=0.01,
        ignore_index=-100,
    )
    loss.backward()
    for k, p in ref_net.named_parameters():
        assert torch.allclose(ours[k], p.grad, rtol=1e-4, atol=1e-6), k


def test_labelled_pass_does_not_see_the_unlabelled_images_through_batch_norm():
    torch.manual_seed(0)
    net = UNet(1, 3, base_channels=4, depth=2)  # with batch norm
    cfg = _cfg().replace(ms_weight=0.0)
    a, b = _batch(seed=1), _batch(seed=1)
    b["image"][2:] = torch.rand(2, 1, 16, 16) * 5  # different unlabelled images
    ga, gb = _grads(net, cfg, a), _grads(net, cfg, b)
    assert all(torch.equal(ga[k], gb[k]) for k in ga)
    only_labelled = {k: v[:2] for k, v in a.items()}
    gl = _grads(net, cfg, only_labelled)
    assert all(torch.equal(ga[k], gl[k]) for k in ga)


def test_unsupervised_mode_ignores_labels():
    torch.manual_seed(0)
    net = UNet(1, 3, base_channels=4, depth=2)
    cfg = TrainConfig(max_steps=1, mode="unsupervised").validate()
    a, b = _batch(seed=2), _batch(seed=2)
    b["label"] = torch.zeros_like(b["label"])
    ga, gb = _grads(net, cfg, a), _grads(net, cfg, b)
    assert all(torch.equal(ga[k], gb[k]) for k in ga)


def test_advsemi_step_updates_both_networks():
    torch.manual_seed(0)
    cfg = TrainConfig(
        max_steps=1,
        mode="advsemi",
        ms_weight=0.1,
        advsemi={"ndf": 4, "semi_start": 0, "mask_T": 0.0},
    ).validate()
    mode = make_step(cfg, TASK)
    mode.setup(torch.device("cpu"), lambda m: m)
    net = UNet(1, 3, base_channels=4, depth=2)
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    d0 = copy.deepcopy(mode.discriminator.state_dict())
    s0 = copy.deepcopy(net.state_dict())
    logs = mode(StepState(net, opt, torch.device("cpu")), _batch(size=32), 0)
    assert {"ce", "adv", "semi_adv", "semi", "ms", "loss", "d_loss"} <= set(logs)
    assert float(logs["semi"]) > 0 and float(logs["d_loss"]) == pytest.approx(0.693, abs=0.05)
    assert any(not torch.equal(d0[k], v) for k, v in mode.discriminator.state_dict().items())
    assert any(not torch.equal(s0[k], v) for k, v in net.state_dict().items())
    assert all(p.requires_grad for p in mode.discriminator.parameters())


def test_unsupervised_bias_step_smooths_and_normalises_the_bias():
    from varseg.losses import bias_field_mumford_shah_loss, smooth_bias, unit_mean_bias
    from varseg.models import split_output

    torch.manual_seed(0)
    net = UNet(1, 3, base_channels=4, depth=2, batch_norm=False, bias_field=True)
    batch = _batch(0, 2)
    cfg = TrainConfig(
        max_steps=1,
        mode="unsupervised",
        bias_field=True,
        length_weight=0.05,
        beta=0.01,
        bias_sigma=3.0,
    ).validate()
    opt = torch.optim.SGD(net.parameters(), lr=0.0)
    logs = make_step(cfg, TASK)(StepState(net, opt, torch.device("cpu")), batch, 0)
    logits, bias = split_output(net(batch["image"]))
    want = bias_field_mumford_shah_loss(
        logits, unit_mean_bias(smooth_bias(bias, 3.0)), batch["image"], 0.05, 0.01
    )
    assert float(logs["loss"]) == pytest.approx(float(want), rel=1e-5)
    with pytest.raises(ValueError, match="bias_sigma"):
        TrainConfig(bias_sigma=-1.0).validate()


def test_unsupervised_kmeans_warm_start_fits_each_images_clusters():
    from varseg.train.steps import kmeans_targets

    x = torch.zeros(2, 3, 8, 8)
    x[0, :, :, 4:] = 1.0  # image 0: two colours, left / right
    x[1, 0, :4] = 1.0  # image 1: red top, black bottom
    t = kmeans_targets(x, 2)
    assert t.shape == (2, 8, 8)
    assert (t[0, :, :4] != t[0, :, 4:]).all() and (t[1, :4] != t[1, 4:]).all()
    torch.manual_seed(0)
    net = UNet(3, 2, base_channels=4, depth=2, batch_norm=False)
    cfg = TrainConfig(max_steps=1, mode="unsupervised", kmeans_warm_steps=1).validate()
    opt = torch.optim.SGD(net.parameters(), lr=0.0)
    logs = make_step(cfg, TaskInfo(3, 2, -100))(
        StepState(net, opt, torch.device("cpu")), {"image": x}, 0
    )
    want = torch.nn.functional.cross_entropy(net(x), t)
    assert "ce" in logs and float(logs["loss"]) == pytest.approx(float(want), rel=1e-5)

"""The plain-torch Adam / SGD of the per-image minimiser against ``torch.optim``."""

import subprocess
import sys

import pytest

torch = pytest.importorskip("torch")

from varseg._optim import SGD, Adam  # noqa: E402


def _model(seed):
    torch.manual_seed(seed)
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(4, 2, 1)
    ).double()


def _run(make_opt, seed, steps):
    model = _model(seed)
    groups = [
        {"params": list(model[0].parameters())},
        {"params": list(model[2].parameters()), "lr": 0.05},
    ]
    opt = make_opt(groups)
    g = torch.Generator().manual_seed(seed + 1)
    x = torch.randn(2, 3, 8, 8, generator=g, dtype=torch.float64)
    for i in range(steps):
        opt.zero_grad()
        loss = (model(x) ** 2).mean() + (model(x)[:, 0] * x[:, 0]).sum() * 0.01 * i
        loss.backward()
        if i == 2:  # a parameter without a gradient is skipped, as torch.optim does
            model[2].bias.grad = None
        opt.step()
    return [p.detach().clone() for p in model.parameters()]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_adam_equals_torch_adam_bit_for_bit(seed):
    ours = _run(lambda g: Adam(g, lr=0.01), seed, 12)
    ref = _run(lambda g: torch.optim.Adam(g, lr=0.01, foreach=False), seed, 12)
    start = [p.detach() for p in _model(seed).parameters()]
    for a, b, s in zip(ours, ref, start, strict=True):
        assert not torch.equal(a, s)  # the parameters moved
        assert torch.equal(a, b)


@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_sgd_equals_torch_sgd_bit_for_bit(momentum):
    ours = _run(lambda g: SGD(g, lr=0.01, momentum=momentum), 3, 10)
    ref = _run(lambda g: torch.optim.SGD(g, lr=0.01, momentum=momentum, foreach=False), 3, 10)
    for a, b in zip(ours, ref, strict=True):
        assert torch.equal(a, b)


def test_adam_first_step_by_hand():
    # one step: m = (1-b1) g, v = (1-b2) g^2, so the step is lr * g / (|g| + eps*sqrt(1-b2))
    # -> -lr * sign(g) up to eps
    p = torch.nn.Parameter(torch.tensor([1.0, -2.0, 3.0], dtype=torch.float64))
    opt = Adam([p], lr=0.1)
    p.grad = torch.tensor([0.5, -4.0, 0.0], dtype=torch.float64)
    opt.step()
    torch.testing.assert_close(p.detach(), torch.tensor([0.9, -1.9, 3.0], dtype=torch.float64))


def test_bad_lr_is_refused():
    p = torch.nn.Parameter(torch.zeros(2))
    with pytest.raises(ValueError, match="lr must be positive; got 0"):
        Adam([p], lr=0)


def test_neural_segment_does_not_import_dynamo():
    code = (
        "import sys, numpy as np; from varseg.neural import neural_segment; "
        "x = np.zeros((12, 12)); x[:, 6:] = 1; "
        "r = neural_segment(x, 2, max_iter=3, warm_steps=2, hidden_channels=4, seed=0); "
        "print(sorted(set(r.labels.ravel().tolist())), 'torch._dynamo' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=300
    ).stdout.split()
    assert out[-1] == "False"

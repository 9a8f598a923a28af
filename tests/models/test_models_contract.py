"""One contract for every registered model (segmentation_models_pytorch style), tiny widths.

Forward at two input sizes (one odd), backward to every trainable parameter, the bias-field
output, a wrong input shape raising one line, and a checkpoint round trip through
:func:`varseg.models.model_class`.
"""

import pytest
import torch

from varseg.models import MODEL_NAMES, build_model, model_class, model_kwargs, split_output

TINY = {
    "unet": {"base_channels": 4, "depth": 2},
    "polyphase-unet": {"base_channels": 4, "depth": 1},
    "deeplabv2": {"depth": 50},
    "kanezaki": {"n_conv": 1, "hidden_channels": 4},
}
SIZES = {"deeplabv2": [(17, 17)]}  # a ResNet-50: one size keeps the test fast


def test_every_registered_model_is_covered():
    assert set(TINY) == set(MODEL_NAMES)


def _build(name, bias_field=False, in_channels=2, k=3):
    torch.manual_seed(0)
    return build_model(name, in_channels, k, bias_field=bias_field, **TINY[name])


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_forward_backward_and_bias_field(name):
    model = _build(name, bias_field=True).train()
    for h, w in SIZES.get(name, [(16, 16), (13, 19)]):
        x = torch.rand(2, 2, h, w)
        logits, bias = split_output(model(x))
        assert logits.shape == (2, 3, h, w) and bias.shape == (2, 1, h, w)
        assert torch.isfinite(logits).all()
        torch.testing.assert_close(bias, torch.ones_like(bias))  # untrained head: b == 1
    model.zero_grad()
    (logits.square().mean() + bias.mean()).backward()
    params = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    missing = [n for n, p in params if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing
    assert sum(float(p.grad.abs().sum()) > 0 for _, p in params) >= 0.9 * len(params)
    plain = _build(name)
    assert torch.is_tensor(plain.eval()(torch.rand(1, 2, 16, 16)))  # no bias: a tensor


@pytest.mark.parametrize("name", MODEL_NAMES)
@pytest.mark.parametrize("shape,match", [((2, 16, 16), "4-D"), ((1, 5, 16, 16), "channels")])
def test_wrong_input_shape_raises_one_line(name, shape, match):
    model = _build(name).eval()
    with pytest.raises(ValueError, match=match) as err:
        model(torch.rand(*shape))
    assert "\n" not in str(err.value) and type(model).__name__ in str(err.value)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_checkpoint_round_trip(tmp_path, name):
    model = _build(name)
    model.train()(torch.rand(2, 2, 17, 17))  # batch-norm statistics are state too
    path = tmp_path / "m.pt"
    model.save_checkpoint(path)
    again = model_class(name).from_checkpoint(path)
    assert again.config == model.config
    rebuilt = model_class(name)(**model.config)
    rebuilt.load_state_dict(model.state_dict())
    x = torch.rand(1, 2, 17, 17)
    with torch.no_grad():
        ref = model.eval()(x)
        assert torch.equal(ref, again.eval()(x)) and torch.equal(ref, rebuilt.eval()(x))


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_unknown_constructor_keyword_names_the_accepted_ones(name):
    with pytest.raises(ValueError, match=r"\['foo'\].*accepted: ") as err:
        build_model(name, 2, 3, foo=1)
    assert all(k in str(err.value) for k in model_kwargs(name))
    with pytest.raises(ValueError, match="unknown model"):
        model_class("nope")

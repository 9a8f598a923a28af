"""from_checkpoint / save_checkpoint / config and build_model for every model."""

import pytest
import torch

from varseg.bench.models import BENCH_MODELS
from varseg.models import (
    MODEL_NAMES,
    DeepLabV2,
    Discriminator,
    KanezakiNet,
    PolyphaseUNet,
    UNet,
    build_model,
)

CASES = [
    (UNet, dict(in_channels=3, num_classes=4, base_channels=8, depth=2, bias_field=True), 3, 20),
    (PolyphaseUNet, dict(in_channels=2, num_classes=3, base_channels=8, depth=2), 2, 20),
    # DeepLabV2's round trip: tests/models/test_models_contract.py (one 100 MB file is enough)
    (KanezakiNet, dict(in_channels=3, n_channels=5, bias_field=True), 3, 12),
    (Discriminator, dict(num_classes=3, ndf=4), 3, 32),
]


def _outputs(model, x):
    with torch.no_grad():
        out = model.eval()(x)
    return out if isinstance(out, tuple) else (out,)


@pytest.mark.parametrize("cls,kwargs,channels,size", CASES, ids=[c[0].__name__ for c in CASES])
def test_round_trip_gives_identical_outputs(tmp_path, cls, kwargs, channels, size):
    torch.manual_seed(0)
    model = cls(**kwargs)
    assert model.config == {**model.config, **kwargs}
    # a few training steps' worth of BN statistics, so buffers matter too
    model.train()(torch.rand(1, channels, size, size))
    x = torch.rand(1, channels, size, size)
    path = tmp_path / "ckpt.pt"
    model.save_checkpoint(path, step=7)
    loaded = cls.from_checkpoint(path)
    assert loaded.config == model.config
    for a, b in zip(_outputs(model, x), _outputs(loaded, x), strict=True):
        assert torch.equal(a, b)
    # plain state dict + constructor keywords
    torch.save(model.state_dict(), tmp_path / "plain.pt")
    plain = cls.from_checkpoint(tmp_path / "plain.pt", **kwargs)
    for a, b in zip(_outputs(model, x), _outputs(plain, x), strict=True):
        assert torch.equal(a, b)


def test_checkpoint_errors(tmp_path):
    missing = tmp_path / "does_not_exist.pt"
    with pytest.raises(FileNotFoundError, match="does_not_exist.pt"):
        UNet.from_checkpoint(missing)
    model = KanezakiNet(3, n_channels=4)
    torch.save(model.state_dict(), tmp_path / "plain.pt")
    with pytest.raises(TypeError, match="plain.pt"):
        KanezakiNet.from_checkpoint(tmp_path / "plain.pt")
    with pytest.raises(RuntimeError, match="plain.pt"):
        KanezakiNet.from_checkpoint(tmp_path / "plain.pt", in_channels=3, n_channels=5)


def test_dataparallel_prefix_is_stripped(tmp_path):
    model = KanezakiNet(3, n_channels=4)
    torch.save(
        {
            "model": {f"module.{k}": v for k, v in model.state_dict().items()},
            "model_config": model.config,
        },
        tmp_path / "dp.pt",
    )
    loaded = KanezakiNet.from_checkpoint(tmp_path / "dp.pt")
    assert torch.equal(loaded.head[0].weight, model.head[0].weight)


def test_build_model():
    assert MODEL_NAMES == BENCH_MODELS == ("unet", "polyphase-unet", "deeplabv2", "kanezaki")
    assert isinstance(build_model("unet", 3, 2, base_channels=8, depth=2), UNet)
    assert isinstance(build_model("Polyphase_UNet", 3, 2, base_channels=8, depth=2), PolyphaseUNet)
    assert isinstance(build_model("deeplabv2", 3, 2, depth=50), DeepLabV2)
    net = build_model("kanezaki", 3, 7, bias_field=True)
    assert isinstance(net, KanezakiNet) and net.n_channels == 7
    with pytest.raises(ValueError, match="polyphase-unet"):
        build_model("segnet", 3, 2)

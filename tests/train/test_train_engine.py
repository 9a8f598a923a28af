"""Training engine on synthetic data: learning, exact resume, logs, data order, errors."""

import json

import numpy as np
import pytest
import torch
from train_fixtures import run_cli

from varseg.losses import masked_cross_entropy, semi_supervised_loss
from varseg.train import TrainConfig, train
from varseg.train.builders import LRSchedule
from varseg.train.sampling import IndexStream, StepBatchSampler

TINY_UNET = {"base_channels": 4, "depth": 2}


def tiny(**kw):
    base = dict(
        dataset="synthetic",
        dataset_kw={"n_images": 8, "image_size": 32},
        model="unet",
        model_kw=TINY_UNET,
        batch_size=4,
        max_steps=4,
        device="cpu",
        log_every=1,
        checkpoint_every=0,
        seed=0,
    )
    base.update(kw)
    return TrainConfig(**base).validate()


def _rows(run, kind="step"):
    return [r for r in json.loads((run / "metrics.json").read_text()) if r["kind"] == kind]


def test_loss_decreases_on_synthetic_data(tmp_path):
    cfg = tiny(
        max_steps=16,
        lr=1e-2,
        ms_weight=0.5,
        dataset_kw={"n_images": 8, "image_size": 32, "noise": 0.05},
    )
    summary = train(cfg, tmp_path / "run")
    assert summary["step"] == 16
    losses = [r["loss"] for r in _rows(tmp_path / "run")]
    assert len(losses) == 16 and all(np.isfinite(losses))
    assert np.mean(losses[-4:]) < 0.7 * np.mean(losses[:4])
    # CE and MS are both logged and the total is CE + λ MS
    r = _rows(tmp_path / "run")[-1]
    assert r["loss"] == pytest.approx(r["ce"] + 0.5 * r["ms"], rel=1e-5)


def _cli_args(out, steps, *extra):
    return [
        "--dataset",
        "synthetic",
        "--dataset-kw",
        '{"n_images": 6, "image_size": 32}',
        "--model",
        "unet",
        "--model-kw",
        json.dumps(TINY_UNET),
        "--mode",
        "semi",
        "--labeled-fraction",
        "1/2",
        "--ms-weight",
        "0.5",
        "--max-steps",
        str(steps),
        "--batch-size",
        "2",
        "--seed",
        "3",
        "--device",
        "cpu",
        "--lr",
        "0.01",
        "--log-every",
        "1",
        "--no-progress",
        "--out",
        str(out),
        *extra,
    ]


def test_resume_equals_straight_run_cli(tmp_path):
    """4 steps straight through == 2 steps, then ``--resume`` to 4 (CPU, fixed seed)."""
    a, b = tmp_path / "straight", tmp_path / "resumed"
    assert run_cli("train", _cli_args(a, 4)) == 0
    assert run_cli("train", _cli_args(b, 2)) == 0
    mid = torch.load(b / "last.pt", weights_only=True)
    assert mid["step"] == 2
    assert run_cli("train", ["--out", b, "--resume", "--max-steps", "4", "--no-progress"]) == 0
    ca = torch.load(a / "last.pt", weights_only=True)
    cb = torch.load(b / "last.pt", weights_only=True)
    assert ca["step"] == cb["step"] == 4
    assert ca["model"].keys() == cb["model"].keys()
    for k in ca["model"]:
        assert torch.equal(ca["model"][k], cb["model"][k]), k
    for sa, sb in zip(
        ca["optimizer"]["state"].values(), cb["optimizer"]["state"].values(), strict=True
    ):
        assert torch.equal(sa["exp_avg"], sb["exp_avg"])
    assert [r["loss"] for r in _rows(a)] == [r["loss"] for r in _rows(b)]
    # the checkpoint holds what evaluate needs to rebuild the model
    assert ca["model_name"] == "unet" and ca["model_config"]["base_channels"] == 4
    assert (a / "labeled_split.json").is_file() and (a / "config.json").is_file()
    assert (a / "metrics.csv").read_text().splitlines()[0].startswith("kind,step,epoch,lr")


class _KillAt:
    def __init__(self, step, exc):
        self.step, self.exc = step, exc

    def __call__(self, trainer):
        if trainer.step == self.step:
            raise self.exc


@pytest.mark.parametrize(
    "exc,resumed_from",
    [
        (KeyboardInterrupt, 3),  # Ctrl-C: the engine saves the step it reached
        (SystemExit, 2),  # hard kill: only the periodic checkpoint (every 2 steps) exists
    ],
)
def test_interrupted_run_resumes_to_identical_weights(tmp_path, exc, resumed_from):
    cfg = tiny(
        max_steps=5,
        ms_weight=0.3,
        checkpoint_every=2,
        num_workers=1,
        batch_size=2,
        dataset_kw={"n_images": 5, "image_size": 32},
    )
    train(cfg, tmp_path / "a")
    with pytest.raises(exc):
        train(cfg, tmp_path / "b", callbacks=[_KillAt(3, exc)])
    assert torch.load(tmp_path / "b" / "last.pt", weights_only=True)["step"] == resumed_from
    train(cfg, tmp_path / "b", resume=True)
    wa = torch.load(tmp_path / "a" / "last.pt", weights_only=True)["model"]
    wb = torch.load(tmp_path / "b" / "last.pt", weights_only=True)["model"]
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert [r["step"] for r in _rows(tmp_path / "b")] == [1, 2, 3, 4, 5]
    assert [r["loss"] for r in _rows(tmp_path / "b")] == [r["loss"] for r in _rows(tmp_path / "a")]


def test_errors(tmp_path, capsys):
    with pytest.raises(FileNotFoundError, match="cannot resume"):
        train(tiny(), tmp_path / "empty", resume=True)
    train(tiny(max_steps=1), tmp_path / "done")
    with pytest.raises(ValueError, match="--resume"):
        train(tiny(max_steps=1), tmp_path / "done")
    with pytest.raises(FileNotFoundError):
        train(tiny(dataset="lits", root=str(tmp_path / "missing"), dataset_kw={}), tmp_path / "x")
    assert (
        run_cli(
            "train",
            [
                "--dataset",
                "brats",
                "--root",
                tmp_path / "nowhere",
                "--max-steps",
                "1",
                "--out",
                tmp_path / "y",
            ],
        )
        == 2
    )
    assert "BraTS root" in capsys.readouterr().err
    assert run_cli("train", ["--out", tmp_path / "none", "--resume"]) == 2
    assert "cannot resume" in capsys.readouterr().err


def test_global_batch_must_divide_among_processes(tmp_path, monkeypatch):
    from varseg.train import engine

    monkeypatch.setattr(
        engine, "init_distributed", lambda spec: engine.DistContext(rank=0, world_size=2)
    )
    with pytest.raises(ValueError, match="divisible"):
        engine.Trainer(tiny(batch_size=3), tmp_path / "z")


def test_eq16_loss_matches_semi_supervised_loss():
    torch.manual_seed(0)
    logits = torch.randn(4, 3, 16, 16)
    target = torch.randint(0, 3, (4, 16, 16))
    target[0, :2] = 255
    image = torch.rand(4, 1, 16, 16)
    labeled = torch.tensor([True, False, True, False])
    from varseg.losses import mumford_shah_loss

    ours = masked_cross_entropy(logits, target, labeled, 255) + 0.7 * mumford_shah_loss(
        logits, image, 1e-2
    )
    ref = semi_supervised_loss(
        logits, target, image, labeled, 0.7, length_weight=1e-2, ignore_index=255
    )
    assert torch.allclose(ours, ref, atol=1e-6)


def test_data_order_resumable_and_split_across_ranks():
    idx = np.arange(20)
    single = StepBatchSampler(IndexStream(idx, seed=5), 4, 0, 12)
    batches = [sorted(i for i, _ in b) for b in single]
    assert len(batches) == 12
    # epochs are permutations of the whole set, reshuffled every epoch
    assert sorted(sum(batches[:5], [])) == list(range(20))
    assert batches[:5] != batches[5:10]
    # resuming at step 7 gives the same batches
    again = [sorted(i for i, _ in b) for b in StepBatchSampler(IndexStream(idx, seed=5), 4, 7, 12)]
    assert again == batches[7:]
    # two ranks with half batches see exactly the global batch of one process
    ranks = [
        StepBatchSampler(IndexStream(idx, seed=5, rank=r, world_size=2), 2, 0, 12) for r in (0, 1)
    ]
    for s, (b0, b1) in enumerate(zip(*ranks, strict=True)):
        assert sorted(i for i, _ in b0 + b1) == batches[s]
        assert not set(i for i, _ in b0) & set(i for i, _ in b1)


def test_volume_items_are_read_case_by_case():
    cases = np.repeat(np.arange(4), 5)  # 4 scans of 5 slices
    s = StepBatchSampler(IndexStream(np.arange(20), seed=1, groups=cases), 5, 0, 8)
    batches = [[i for i, _ in b] for b in s]
    assert all(len(set(cases[b])) == 1 for b in batches)  # one scan per batch here
    assert sorted(sum(batches[:4], [])) == list(range(20))
    assert batches[:4] != batches[4:8]
    ranks = [
        [
            i
            for b in StepBatchSampler(
                IndexStream(np.arange(20), seed=1, groups=cases, rank=r, world_size=2), 2, 0, 5
            )
            for i, _ in b
        ]
        for r in (0, 1)
    ]
    assert sorted(ranks[0] + ranks[1]) == list(range(20))


def test_paired_batches_take_labelled_and_unlabelled_items():
    lab, unl = np.array([1, 5, 9]), np.array([0, 2, 3, 4, 6, 7, 8])
    s = StepBatchSampler(
        IndexStream(lab, seed=0),
        2,
        0,
        6,
        aligned=False,
        extra=IndexStream(unl, seed=1),
        extra_batch=2,
    )
    for batch in s:
        ids = [i for i, _ in batch]
        assert set(ids[:2]) <= set(lab) and set(ids[2:]) <= set(unl)
    first = [
        i for b in StepBatchSampler(IndexStream(lab, seed=0), 2, 0, 3, aligned=False) for i, _ in b
    ]
    assert sorted(first[:3]) == [1, 5, 9] and len(first) == 6  # cycles over epochs


def test_lr_schedules():
    step = LRSchedule("step", 1000, steps_per_epoch=3, step_epochs=2, gamma=0.5)
    assert [step.factor(s) for s in (0, 5, 6, 11, 12)] == [1, 1, 0.5, 0.5, 0.25]
    poly = LRSchedule("poly", 100, steps_per_epoch=10, power=0.9)
    assert poly.factor(0) == 1 and poly.factor(100) == 0
    assert poly.factor(50) == pytest.approx(0.5**0.9)
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.2)
    poly.apply(opt, 50)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.2 * 0.5**0.9)


def test_step_schedule_halves_the_logged_lr(tmp_path):
    cfg = tiny(
        max_steps=6,
        schedule="step",
        lr_step_epochs=1,
        lr_gamma=0.5,
        lr=1e-3,
        batch_size=4,
        dataset_kw={"n_images": 8, "image_size": 16},
    )
    train(cfg, tmp_path / "run")
    lrs = [r["lr"] for r in _rows(tmp_path / "run")]
    assert lrs == pytest.approx([1e-3, 1e-3, 5e-4, 5e-4, 2.5e-4, 2.5e-4])
    epochs = _rows(tmp_path / "run", "epoch")
    assert [r["epoch"] for r in epochs] == [0, 1, 2] and all(r["epoch_complete"] for r in epochs)


def test_unsupervised_bias_field_and_semi_split(tmp_path):
    cfg = tiny(
        mode="unsupervised",
        bias_field=True,
        max_steps=2,
        num_classes=3,
        beta=1e-2,
        dataset_kw={"n_images": 4, "image_size": 16, "bias_field": 0.3},
    )
    train(cfg, tmp_path / "u")
    ck = torch.load(tmp_path / "u" / "last.pt", weights_only=True)
    assert ck["model_config"]["bias_field"] is True
    assert any("bias_head" in k for k in ck["model"])
    semi = tiny(mode="semi", labeled_fraction="1/4", max_steps=1, ms_weight=0.1)
    train(semi, tmp_path / "s")
    split = json.loads((tmp_path / "s" / "labeled_split.json").read_text())
    assert split["n_labeled"] == 2 and split["meta"]["n_items"] == 8


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_mixed_precision_on_cuda(tmp_path):  # pragma: no cover - needs a GPU
    train(tiny(device="auto", max_steps=2, ms_weight=0.5), tmp_path / "run")
    ck = torch.load(tmp_path / "run" / "last.pt", weights_only=True)
    assert ck["scaler"] is not None

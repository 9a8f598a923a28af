"""Safe resume (issue 11): refused run changes, checksummed checkpoints, SIGINT and SIGKILL."""

import json
import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from train_fixtures import run_cli

from varseg.train.checkpoint import checksum_path, load_checkpoint, save_checkpoint
from varseg.train.config import resume_changes

ROOT = Path(__file__).resolve().parents[2]
TINY = '{"base_channels": 4, "depth": 1}'


def _args(out, steps=4, *extra):
    return [
        "--dataset",
        "synthetic",
        "--dataset-kw",
        '{"n_images": 6, "image_size": 16}',
        "--model",
        "unet",
        "--model-kw",
        TINY,
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
        "--checkpoint-every",
        "1",
        "--no-progress",
        "--out",
        str(out),
        *extra,
    ]


def _one_error_line(capsys):
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    return err


@pytest.fixture(scope="module")
def run2(tmp_path_factory):
    """A 2-step run to resume (shared: each test copies it)."""
    out = tmp_path_factory.mktemp("base") / "run"
    assert run_cli("train", _args(out, 2)) == 0
    return out


def _copy(run, dest):
    import shutil

    shutil.copytree(run, dest)
    return dest


@pytest.mark.parametrize(
    "flags,keys",
    [
        (["--lr", "0.02"], "lr"),
        (["--labeled-fraction", "1/3"], "labeled_fraction"),
        (["--batch-size", "3"], "batch_size"),
        (["--seed", "4"], "seed"),
        (["--max-steps", "1"], "max_steps"),
        (["--model-kw", '{"depth": 2}'], "model_kw"),
        (["--model", "kanezaki", "--set", "model_kw={}"], "model"),
        (["--config", "synthetic-sweep"], "batch_size"),
    ],
)
def test_resume_refuses_a_changed_run_definition(run2, tmp_path, capsys, flags, keys):
    run = _copy(run2, tmp_path / "run")
    before = (run / "config.json").read_text(), (run / "last.pt").read_bytes()
    assert run_cli("train", ["--out", run, "--resume", "--no-progress", *flags]) == 2
    err = _one_error_line(capsys)
    assert "cannot resume" in err and keys in err and "eval_every" in err
    assert ((run / "config.json").read_text(), (run / "last.pt").read_bytes()) == before


def test_resume_accepts_the_extendable_keys(run2, tmp_path):
    run = _copy(run2, tmp_path / "run")
    assert (
        run_cli(
            "train",
            [
                "--out",
                run,
                "--resume",
                "--no-progress",
                "--max-steps",
                "3",
                "--eval-every",
                "0",
                "--num-workers",
                "0",
            ],
        )
        == 0
    )
    assert load_checkpoint(run / "last.pt")["step"] == 3
    assert json.loads((run / "config.json").read_text())["max_steps"] == 3


def test_resume_changes_rules():
    base = {"lr": 0.1, "max_steps": 10, "epochs": None, "eval_every": 0, "num_workers": 0}
    assert resume_changes(base, {**base, "max_steps": 20, "eval_every": 2, "num_workers": 3}) == []
    assert resume_changes(base, {**base, "max_steps": 5}) == ["max_steps"]
    assert resume_changes(base, {**base, "epochs": 3, "lr": 0.2}) == ["epochs", "lr"]
    assert resume_changes(base, {**base, "max_steps": 20}, step=30) == ["max_steps"]
    with pytest.warns(DeprecationWarning):  # the old key name is the same key
        assert resume_changes({**base, "lambda_ms": 1.0}, {**base, "ms_weight": 1.0}) == []


def test_resume_of_a_single_run_from_the_sweep_config_resumes_that_run(tmp_path):
    out = tmp_path / "single"
    common = [
        "--dataset-kw",
        '{"n_images": 6, "image_size": 16}',
        "--model-kw",
        TINY,
        "--no-progress",
        "--out",
        out,
    ]
    assert (
        run_cli("train", ["--config", "synthetic-sweep", "--no-sweep", "--max-steps", "1", *common])
        == 0
    )
    assert run_cli("train", ["--out", out, "--resume", "--max-steps", "2", "--no-progress"]) == 0
    assert load_checkpoint(out / "last.pt")["step"] == 2
    assert not (out / "runs").exists() and not (out / "sweep.md").exists()


@pytest.mark.parametrize("damage", ["zeros", "truncated", "empty", "random"])
def test_damaged_checkpoint_is_refused_in_one_line(run2, tmp_path, capsys, damage):
    run = _copy(run2, tmp_path / "run")
    ck = run / "last.pt"
    data = bytearray(ck.read_bytes())
    if damage == "zeros":  # the audit's 4000 zeroed bytes (resumed silently before)
        data[1000:5000] = bytes(4000)
    elif damage == "truncated":
        data = data[: len(data) // 2]
    elif damage == "empty":
        data = b""
    else:  # seeded: the same bytes on every run
        data = np.random.default_rng(0).bytes(len(data))
    ck.write_bytes(bytes(data))
    assert run_cli("train", ["--out", run, "--resume", "--max-steps", "3", "--no-progress"]) == 2
    assert "checkpoint" in _one_error_line(capsys)
    assert run_cli("evaluate", ["--checkpoint", ck, "--no-progress"]) == 2
    assert str(ck) in _one_error_line(capsys)
    # without the checksum a damaged file is still one line, not a traceback
    checksum_path(ck).unlink()
    with pytest.raises(ValueError, match="cannot be read|lacks|checksum"):
        load_checkpoint(ck, verify=damage == "zeros")


def test_random_bytes_are_refused_in_one_line(tmp_path):
    """Garbage breaks torch's unpickler in many ways (UnpicklingError, IndexError, KeyError,
    UnicodeDecodeError, ...): each is the one ValueError of an unreadable checkpoint, with
    no warning (a random protocol byte made torch warn)."""
    ck = tmp_path / "last.pt"
    raw = set()
    for seed in range(600):
        rng = np.random.default_rng(seed)
        ck.write_bytes(rng.bytes(int(rng.integers(1, 4000))))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                torch.load(ck, weights_only=True)
            except Exception as err:  # noqa: BLE001 - recording what torch raises
                raw.add(type(err).__name__)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            with pytest.raises(ValueError, match="cannot be read|lacks"):
                load_checkpoint(ck, verify=False)
    assert {"UnpicklingError", "IndexError", "KeyError"} <= raw


def test_checkpoint_survives_a_kill_between_checksum_and_file(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    required = {"model": {}, "model_name": "unet", "model_config": {}}
    save_checkpoint({**required, "step": 1}, path)
    save_checkpoint({**required, "step": 2}, path)
    assert load_checkpoint(path)["step"] == 2
    # kill after the checksum file was replaced, before the checkpoint was
    import varseg.train.checkpoint as ckmod

    def killed(p, data):
        raise SystemExit("killed")

    monkeypatch.setattr(ckmod, "atomic_write_bytes", killed)
    with pytest.raises(SystemExit):
        save_checkpoint({**required, "step": 3}, path)
    assert load_checkpoint(path)["step"] == 2  # the old file matches the second digest
    assert len(checksum_path(path).read_text().splitlines()) == 2


def test_keyboard_interrupt_mid_step_keeps_the_last_consistent_checkpoint(tmp_path, monkeypatch):
    """Ctrl-C inside a step (batch-norm statistics already updated) must not be saved."""
    from varseg.train.steps import StepState

    out = tmp_path / "run"
    assert run_cli("train", _args(out, 4, "--checkpoint-every", "2")) == 0
    ref = load_checkpoint(out / "last.pt")
    out2 = tmp_path / "run2"
    calls = {"n": 0}
    original = StepState.step

    def interrupt_third(self, optimizer, clip_module=None):
        calls["n"] += 1
        if calls["n"] == 3:  # forward and backward of step 3 done, no optimiser step
            raise KeyboardInterrupt
        return original(self, optimizer, clip_module)

    monkeypatch.setattr(StepState, "step", interrupt_third)
    assert run_cli("train", _args(out2, 4, "--checkpoint-every", "2")) == 130
    monkeypatch.setattr(StepState, "step", original)
    mid = load_checkpoint(out2 / "last.pt")
    assert mid["step"] == 2
    tracked = [v for k, v in mid["model"].items() if k.endswith("num_batches_tracked")]
    assert tracked and all(int(v) == 2 for v in tracked)  # 2 steps, one pass each (mixed)
    assert run_cli("train", ["--out", out2, "--resume", "--no-progress"]) == 0
    got = load_checkpoint(out2 / "last.pt")["model"]
    assert all(torch.equal(ref["model"][k], got[k]) for k in ref["model"])


_SLOW_CHILD = """
import sys, time, torch
torch.set_num_threads(1)
from varseg.train.steps import StepState
original = StepState.step
def slow(self, optimizer, clip_module=None):
    time.sleep(0.05)  # between backward and the optimiser step: signals land mid-step
    return original(self, optimizer, clip_module)
StepState.step = slow
from varseg.cli import run_command
sys.exit(run_command("train", sys.argv[1:]))
"""


def _wait_for_step(out: Path, step: int, proc, timeout=120.0):
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        try:
            rows = json.loads((out / "metrics.json").read_text())
            if sum(r["kind"] == "step" for r in rows) >= step and (out / "last.pt").is_file():
                return
        except (FileNotFoundError, json.JSONDecodeError):
            pass
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.02)
    raise AssertionError("training did not reach the step in time")


@pytest.fixture
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL])
def test_killed_training_resumes_to_the_uninterrupted_weights(tmp_path, one_thread, sig):
    steps = 12
    ref, out = tmp_path / "ref", tmp_path / "killed"
    assert run_cli("train", _args(ref, steps, "--checkpoint-every", "3")) == 0
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-c", _SLOW_CHILD, *_args(out, steps, "--checkpoint-every", "3")],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    _wait_for_step(out, 4, proc)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    stopped = load_checkpoint(out / "last.pt")["step"]
    if sig == signal.SIGINT:
        assert proc.returncode == 130
        assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
        assert "interrupted at step" in err
        assert 4 <= stopped < steps  # the step the signal arrived in, completed
    else:
        assert proc.returncode == -signal.SIGKILL
        assert stopped % 3 == 0  # the last periodic checkpoint, intact
    assert run_cli("train", ["--out", out, "--resume", "--no-progress"]) == 0
    a, b = load_checkpoint(ref / "last.pt"), load_checkpoint(out / "last.pt")
    assert a["step"] == b["step"] == steps
    assert a["model"].keys() == b["model"].keys()
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    rows = [json.loads((d / "metrics.json").read_text()) for d in (ref, out)]
    losses = [[r["loss"] for r in rs if r["kind"] == "step"] for rs in rows]
    assert losses[0] == losses[1] and len(losses[0]) == steps

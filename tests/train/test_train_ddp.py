"""DistributedDataParallel on CPU: ``torchrun --nproc_per_node 2`` with the Gloo backend.

One SGD step with learning rate 1 moves the weights by exactly minus the gradient, so equal
weights after the step mean the two-process (all-reduced) gradients equal the single-process
gradients on the same global batch. The single-process reference runs in the test's own
process (one thread, as ``OMP_NUM_THREADS=1`` gives the workers): a third interpreter would
only add its start-up (importing torch) to the test's time.
"""

import json
import os
import socket
import subprocess
import sys

import pytest
import torch
from train_fixtures import run_cli

ARGS = [
    "--dataset",
    "synthetic",
    "--dataset-kw",
    '{"n_images": 8, "image_size": 24}',
    "--model",
    "unet",
    "--model-kw",
    '{"base_channels": 4, "depth": 2, "batch_norm": false}',
    "--mode",
    "supervised",
    "--ms-weight",
    "0.5",
    "--optimizer",
    "sgd",
    "--lr",
    "1.0",
    "--set",
    "momentum=0.0",
    "--batch-size",
    "4",
    "--max-steps",
    "1",
    "--seed",
    "0",
    "--device",
    "cpu",
    "--log-every",
    "1",
    "--no-progress",
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env():
    env = dict(os.environ, OMP_NUM_THREADS="1", MASTER_ADDR="127.0.0.1")
    env.pop("WORLD_SIZE", None)
    return env


@pytest.fixture
def one_thread(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.mark.slow
def test_ddp_gradients_equal_single_process(tmp_path, one_thread):
    single, ddp = tmp_path / "single", tmp_path / "ddp"
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--nnodes",
        "1",
        "--master_addr",
        "127.0.0.1",
        "--master_port",
        str(_free_port()),
        "-m",
        "varseg.commands.train",
        *ARGS,
        "--out",
        str(ddp),
    ]
    proc = subprocess.Popen(
        cmd, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:  # the reference while the workers start
        assert run_cli("train", [*ARGS, "--out", single]) == 0
        out, err = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, out + err
    a = torch.load(single / "last.pt", weights_only=True)
    b = torch.load(ddp / "last.pt", weights_only=True)
    assert b["world_size"] == 2 and a["world_size"] == 1
    assert len(b["rng"]) == 2  # one RNG state per process
    for k in a["model"]:
        assert torch.allclose(a["model"][k], b["model"][k], rtol=1e-5, atol=1e-6), k
    # rank 0 logs the loss averaged over the processes == the single-process batch loss
    la = json.loads((single / "metrics.json").read_text())[0]
    lb = json.loads((ddp / "metrics.json").read_text())[0]
    assert lb["loss"] == pytest.approx(la["loss"], rel=1e-5)
    assert lb["ms"] == pytest.approx(la["ms"], rel=1e-5)
    # only rank 0 wrote files
    assert sorted(p.name for p in ddp.iterdir()) == sorted(p.name for p in single.iterdir())

"""``varseg bench all``: the table's rows and columns, ratios, argument errors."""

import json

import pytest

from varseg.bench.all import COLUMNS
from varseg.cli import main

SOLVERS = [
    "chan-vese 2 phases",
    "chan-vese 2 phases",
    "chan-vese 4 phases",
    "chan-vese 8 phases",
    "fixed point 2 phases",
    "fixed point 4 phases",
    "fixed point 8 phases",
    "LIC 2 phases (outer it)",
    "LIC 4 phases (outer it)",
    "neural backprop-ms 21x32",  # the preset's work size capped at --size 32
    "unrolled inference",
    "MS loss fwd+bwd",
]
PEERS = {
    0: "skimage chan_vese",
    1: "skimage morph. chan_vese",
    4: "torch fixed_point_step",
    11: "official formula (torch)",
}


def _parse(line):
    """Split a table line at the fixed column widths of COLUMNS."""
    cells, pos = [], 0
    for _, _, width, _ in COLUMNS:
        cells.append(line[pos : pos + width].strip())
        pos += width + 1
    return cells


def test_bench_all_table_and_json(tmp_path, capsys):
    out = tmp_path / "bench.json"
    rc = main(
        [
            "bench",
            "all",
            "--size",
            "32",
            "--iters",
            "2",
            "--repeats",
            "1",
            "--no-converge",
            "--threads",
            "1",
            "--json",
            str(out),
        ]
    )
    assert rc == 0
    lines = capsys.readouterr().out.splitlines()
    assert "threads: numba 1, torch 1" in lines[1] and "load average" in lines[1]
    assert _parse(lines[3]) == [name for _, name, _, _ in COLUMNS]
    rows = [_parse(line) for line in lines[4:]]
    assert [r[0] for r in rows] == SOLVERS
    result = json.loads(out.read_text())
    assert result["header"]["iters"] == 2 and result["header"]["numba_threads"] == 1
    assert len(result["rows"]) == len(SOLVERS)
    for i, (printed, row) in enumerate(zip(rows, result["rows"], strict=True)):
        assert row["varseg_ms"] > 0 and float(printed[1]) == pytest.approx(
            row["varseg_ms"], abs=6e-4
        )
        if i in PEERS:
            assert printed[2] == row["peer"] == PEERS[i]
            assert row["ratio"] == pytest.approx(row["peer_ms"] / row["varseg_ms"], rel=1e-12)
            # the printed ratio is the ratio of the printed times, up to their rounding
            # (3 decimals: relative 5e-4 / time each) and its own (2 decimals: 0.005)
            ours, theirs, ratio = float(printed[1]), float(printed[3]), float(printed[4])
            want = theirs / ours
            assert abs(ratio - want) <= want * (2e-3 / min(ours, theirs) + 1e-2) + 0.005
        else:
            assert printed[2:5] == ["-", "-", "-"] and row["ratio"] is None
        assert printed[5:] == ["-", "-", "-"]  # --no-converge


@pytest.mark.parametrize(
    "argv, what",
    [
        (["--iters", "0"], "--iters"),
        (["--repeats", "0"], "--repeats"),
        (["--size", "-3"], "--size"),
        (["--device", "tpu"], "--device"),
    ],
)
def test_bench_all_bad_arguments(argv, what, capsys, tmp_path):
    out = tmp_path / "b.json"
    assert main(["bench", "all", *argv, "--json", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and what in err[0] and "Traceback" not in err[0]
    assert not out.exists()


def test_bench_all_cuda_without_cuda(capsys):
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("needs a machine without CUDA")
    assert main(["bench", "all", "--device", "cuda"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "CUDA is not available" in err[0]

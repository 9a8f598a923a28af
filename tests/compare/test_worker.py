"""The torch methods in a worker process: the serial table, failures as serial, no stray process."""

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from varseg.compare import TorchWorker, compare
from varseg.methods import MethodSpec

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
NEURAL = {"max_iter": 5, "warm_steps": 5, "hidden_channels": 4, "lr": 0.03}


@pytest.fixture(autouse=True)
def _helpers_importable(monkeypatch):
    monkeypatch.syspath_prepend(str(HERE))  # worker_methods, here and in the worker


def _image():
    rng = np.random.default_rng(0)
    gt = np.zeros((24, 28), int)
    gt[5:19, 6:20] = 1
    return 0.2 + 0.6 * gt + 0.05 * rng.standard_normal(gt.shape), gt


def _spec(name, func):
    return MethodSpec(
        name, f"worker_methods:{func}", needs_torch=True, length_param=None, takes_seed=False
    )


def _without_time(rows):
    """The rows but their times, as JSON (NaN scores compare equal)."""
    return json.dumps([{k: v for k, v in r.items() if k != "time"} for r in rows])


def test_worker_gives_the_serial_table_and_segmentations():
    pytest.importorskip("torch")
    img, gt = _image()
    methods = ["kmeans", "neural", "otsu"]
    kw = {"method_params": {"neural": NEURAL}, "errors": "raise"}
    serial = compare(img, methods, gt, torch_worker=False, **kw)
    worker = compare(img, methods, gt, torch_worker=True, **kw)
    assert [r["method"] for r in worker.rows] == methods  # the table's order
    assert _without_time(worker.rows) == _without_time(serial.rows)
    assert list(worker.results) == methods
    for name in methods:
        a, b = serial.results[name], worker.results[name]
        np.testing.assert_array_equal(a.labels, b.labels)
        np.testing.assert_array_equal(a.memberships, b.memberships)
        np.testing.assert_array_equal(a.energy, b.energy)
        assert (a.n_iter, a.converged, a.params) == (b.n_iter, b.converged, b.params)
    assert worker.row("neural")["n_iter"] == 5 and worker.row("neural")["energy"] > 0


def test_worker_runs_the_torch_methods_elsewhere_and_the_others_here():
    import os

    img, _ = _image()
    here = MethodSpec("here", "worker_methods:pid", length_param=None, takes_seed=False)
    table = compare(img, [here, _spec("there", "pid")], torch_worker=True, errors="ignore")
    pids = {r["method"]: int(r["error"].rsplit(" ", 1)[1]) for r in table.rows}
    assert pids["here"] == os.getpid() and pids["there"] != os.getpid()
    serial = compare(img, [here, _spec("there", "pid")], errors="ignore")
    assert {r["method"]: r["error"] for r in serial.rows} == {
        "here": f"RuntimeError: pid {os.getpid()}",
        "there": f"RuntimeError: pid {os.getpid()}",
    }


@pytest.mark.parametrize("func", ["fail", "fail_unpicklable"])
def test_worker_failures_are_tabled_as_in_the_serial_run(func):
    img, _ = _image()
    methods = ["otsu", _spec("broken", func)]
    rows = {}
    for mode in (False, True):
        with pytest.warns(RuntimeWarning) as caught:
            table = compare(img, methods, torch_worker=mode, errors="warn")
        rows[mode] = _without_time(table.rows)
        messages = [str(w.message) for w in caught if "compare: method" in str(w.message)]
        assert len(messages) == 1 and "'broken' failed" in messages[0]
    assert rows[True] == rows[False]
    expected = {
        "fail": "ValueError: cannot split into 2 phases",
        "fail_unpicklable": "Unpicklable: no pickle for a (24, 28) image",
    }[func]
    assert json.loads(rows[True])[1]["error"] == expected
    assert not json.loads(rows[True])[0].get("error")


def test_worker_failure_is_raised_with_errors_raise():
    img, _ = _image()
    with pytest.raises(ValueError, match="cannot split into 2 phases"):
        compare(img, ["otsu", _spec("broken", "fail")], torch_worker=True, errors="raise")


def test_a_dead_worker_fails_its_methods_and_the_others_stand():
    img, _ = _image()
    table = compare(
        img, ["otsu", _spec("dies", "die"), "kmeans"], torch_worker=True, errors="ignore"
    )
    assert [r["method"] for r in table.rows] == ["otsu", "dies", "kmeans"]
    assert table.row("dies")["error"] == (
        "RuntimeError: the compare worker process died (exit code 3)"
    )
    assert set(table.results) == {"otsu", "kmeans"}


def _raise_interrupt(image, n_phases, **kw):
    raise KeyboardInterrupt


@pytest.mark.parametrize("interrupt", [KeyboardInterrupt, None])
def test_an_interrupt_or_a_raised_failure_here_stops_the_worker(interrupt):
    img, _ = _image()
    local = (
        ("stop", _raise_interrupt)
        if interrupt
        else MethodSpec("bad", "worker_methods:fail", length_param=None, takes_seed=False)
    )
    worker = TorchWorker()
    with pytest.raises(KeyboardInterrupt if interrupt else ValueError):
        compare(img, [_spec("slow", "sleep"), local], torch_worker=worker, errors="raise")
    assert worker._proc.poll() is not None  # terminated, not left sleeping for a minute
    worker.close()  # idempotent


def test_a_worker_closed_unused_exits():
    worker = TorchWorker()
    worker.close()
    assert worker._proc.poll() is not None


def test_a_spec_that_does_not_pickle_runs_here():
    img, _ = _image()
    spec = MethodSpec(
        "local-lambda",
        lambda image, n, **kw: (_ for _ in ()).throw(ValueError("ran here")),
        needs_torch=True,
        length_param=None,
        takes_seed=False,
    )
    table = compare(img, ["otsu", spec], torch_worker=True, errors="ignore")
    assert table.row("local-lambda")["error"] == "ValueError: ran here"


def test_auto_needs_a_spare_cpu_and_torch_and_both_kinds(monkeypatch):
    from varseg.compare import run

    pairs = [("otsu", MethodSpec("otsu", "x:y")), ("t", _spec("t", "pid"))]
    monkeypatch.setattr(run, "has_spare_cpu", lambda: True)
    assert [n for n, _ in run._remote_pairs(pairs, "auto")] == ["t"]
    assert run._remote_pairs(pairs, False) == []
    assert run._remote_pairs(pairs[1:], True) == []  # only torch methods: nothing to overlap
    monkeypatch.setattr(run, "has_spare_cpu", lambda: False)
    assert run._remote_pairs(pairs, "auto") == []
    assert [n for n, _ in run._remote_pairs(pairs, True)] == ["t"]
    with pytest.raises(ValueError, match="torch_worker"):
        run._remote_pairs(pairs, "yes")


def test_has_spare_cpu_reads_the_load(monkeypatch):
    import os

    from varseg.compare import run

    monkeypatch.setattr(run, "available_cpus", lambda: 2)
    monkeypatch.setattr(os, "getloadavg", lambda: (0.3, 0.3, 0.3))
    assert run.has_spare_cpu()
    monkeypatch.setattr(os, "getloadavg", lambda: (3.5, 2.0, 1.0))
    assert not run.has_spare_cpu()
    monkeypatch.setattr(run, "available_cpus", lambda: 1)
    monkeypatch.setattr(os, "getloadavg", lambda: (0.0, 0.0, 0.0))
    assert not run.has_spare_cpu()


def test_serial_switch_of_the_command(monkeypatch):
    import varseg.compare as vc
    from varseg.commands import compare as cmd

    started = []

    class Fake:
        def __init__(self):
            started.append(self)
            self.while_waiting = None

    monkeypatch.setattr(vc, "TorchWorker", Fake)
    monkeypatch.setattr(vc, "has_spare_cpu", lambda: True)
    args = argparse.Namespace(
        methods=["kmeans", "neural"], serial=True, parallel=False, no_figures=True
    )
    assert not isinstance(cmd._early_worker(args), Fake)
    assert started == []
    args.serial = False
    if __import__("varseg._optional", fromlist=["has_torch"]).has_torch():
        assert isinstance(cmd._early_worker(args), Fake) and len(started) == 1
    args.methods = ["kmeans", "otsu"]  # no torch method: no worker
    assert not isinstance(cmd._early_worker(args), Fake)
    monkeypatch.setattr(vc, "has_spare_cpu", lambda: False)  # a busy machine: serial
    args.methods = ["kmeans", "neural"]
    assert not isinstance(cmd._early_worker(args), Fake)
    args.parallel = True  # unless asked
    if __import__("varseg._optional", fromlist=["has_torch"]).has_torch():
        assert isinstance(cmd._early_worker(args), Fake) and len(started) == 2


def test_serial_and_parallel_exclude_each_other():
    from varseg.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["compare", "sample:camera", "--serial", "--parallel"])
    assert exc.value.code == 2


def test_this_process_never_imports_torch_with_the_worker(tmp_path):
    pytest.importorskip("torch")
    code = (
        "import json, sys; sys.path.insert(0, sys.argv[1]); import numpy as np;"
        "from varseg.compare import compare;"
        "img = np.zeros((20, 20)); img[5:15, 5:15] = 1;"
        "img += np.random.default_rng(0).normal(0, 0.05, img.shape);"
        f"t = compare(img, ['otsu', 'neural'], method_params={{'neural': {NEURAL!r}}},"
        " torch_worker=True, errors='raise');"
        "print(json.dumps({'torch': 'torch' in sys.modules, 'rows': len(t.rows),"
        " 'neural': t.row('neural')['n_iter']}))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(ROOT)], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out == {"torch": False, "rows": 2, "neural": 5}

"""torch is optional: the classical path runs with torch blocked, the deep path says what to
install in one line (``pip install 'varseg[deep]'``).

Each test runs a fresh interpreter whose import system refuses ``torch`` (a meta-path finder
raising ``ModuleNotFoundError``), which is what a plain ``pip install varseg`` looks like.
"""

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]

BLOCK_TORCH = textwrap.dedent(
    """
    import sys
    from importlib.abc import MetaPathFinder

    class _NoTorch(MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name == "torch" or name.startswith("torch."):
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
            return None

    sys.meta_path.insert(0, _NoTorch())
    sys.path.insert(0, sys.argv[1])
    """
)


def _run_without_torch(body, *args):
    code = BLOCK_TORCH + textwrap.dedent(body)
    proc = subprocess.run(
        [sys.executable, "-c", code, str(ROOT), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    return proc


def test_classical_path_runs_and_never_imports_torch(tmp_path):
    lab = np.zeros((24, 24), dtype=np.uint8)
    lab[6:18, 5:17] = 1
    image = 0.2 + 0.6 * lab + np.random.default_rng(0).normal(0, 0.05, lab.shape)
    np.save(tmp_path / "img.npy", image)
    proc = _run_without_torch(
        """
        import json
        from pathlib import Path

        import numpy as np
        import varseg
        from varseg.cli import main
        from varseg.commands.compare import default_methods

        image = np.load(sys.argv[2])
        seg = varseg.chan_vese(image, n_phases=2, max_iter=50)
        fp = varseg.ms_fixed_point(image, 2, max_iter=50)
        status = main(["-q", "compare", sys.argv[2], "--methods", "chan-vese", "lic",
                       "kmeans", "otsu", "fixed-point", "--max-iter", "20", "--no-figures",
                       "-q", "-o", sys.argv[3]])
        rows = (Path(sys.argv[3]) / "results.csv").read_text().splitlines()
        print(json.dumps({"status": status, "labels": np.unique(seg.labels).tolist(),
                          "inside": float((seg.labels[6:18, 5:17] == seg.labels[12, 11]).mean()),
                          "fp_inside": float((fp.labels[6:18, 5:17] == fp.labels[12, 11]).mean()),
                          "fp_outside": float((fp.labels[:4] != fp.labels[12, 11]).mean()),
                          "methods": [r.split(",")[0] for r in rows[1:]],
                          "defaults": default_methods(2),
                          "torch": [m for m in sys.modules if m.split(".")[0] == "torch"]}))
        """,
        tmp_path / "img.npy",
        tmp_path / "out",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["status"] == 0, proc.stderr[-3000:]
    assert out["torch"] == []
    assert out["labels"] == [0, 1]
    assert out["inside"] == 1.0  # the square is one phase
    # the Numba fixed point of Eq. 15 runs without torch (varseg.ms_fixed_point and compare)
    assert out["fp_inside"] == 1.0 and out["fp_outside"] == 1.0
    assert out["methods"] == ["chan-vese", "lic", "kmeans", "otsu", "fixed-point"]
    assert out["defaults"] == ["chan-vese", "lic", "fixed-point", "kmeans", "otsu"]
    assert any((tmp_path / "out").iterdir())


def test_deep_path_says_install_the_deep_extra(tmp_path):
    np.save(tmp_path / "img.npy", np.random.default_rng(0).random((8, 8)))
    proc = _run_without_torch(
        """
        import varseg
        from varseg.cli import main
        from varseg.methods import get_method

        for name in ("losses", "models", "train", "neural_segment", "UnrolledMumfordShah"):
            try:
                getattr(varseg, name)
            except ImportError as err:
                print(f"{name}: {err}")
        try:
            get_method("neural")
        except ImportError as err:
            print(f"get_method: {err}")
        status = main(["segment", sys.argv[2], "--method", "unrolled", "-o", sys.argv[3]])
        print(f"status: {status}")
        """,
        tmp_path / "img.npy",
        tmp_path / "out",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    hint = "needs torch: pip install 'varseg[deep]'"
    lines = proc.stdout.strip().splitlines()
    assert lines == [
        f"losses: varseg.losses {hint}",
        f"models: varseg.models {hint}",
        f"train: varseg.train {hint}",
        f"neural_segment: varseg.neural_segment {hint}",
        f"UnrolledMumfordShah: varseg.UnrolledMumfordShah {hint}",
        f"get_method: method 'neural' {hint}",
        "status: 2",
    ]
    assert proc.stderr.strip().splitlines() == [f"varseg segment: error: method 'unrolled' {hint}"]
    assert not (tmp_path / "out").exists()

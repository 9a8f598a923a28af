"""The documentation builds without a warning (``sphinx-build -W``), running every tutorial.

This is the CI check behind ``make -C docs html``; it builds a copy of ``docs/`` and
``examples/`` in a temporary folder so the source tree stays clean.
"""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytest.importorskip("sphinx_gallery", reason="install the [test] or [docs] extra")


@pytest.mark.slow
def test_docs_build_without_warnings(tmp_path):
    ignore = shutil.ignore_patterns("_build", "auto_examples", "gen_modules", "generated",
                                    "sg_execution_times.rst")
    shutil.copytree(ROOT / "docs", tmp_path / "docs", ignore=ignore)
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    env = dict(os.environ, MPLBACKEND="Agg", PYTHONPATH=str(ROOT))
    proc = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html",
         str(tmp_path / "docs"), str(tmp_path / "html")],
        capture_output=True, text=True, env=env, timeout=900)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    pages = sorted((tmp_path / "html" / "auto_examples").glob("plot_*.html"))
    assert len(pages) >= 8, pages
    assert (tmp_path / "html" / "api.html").exists()

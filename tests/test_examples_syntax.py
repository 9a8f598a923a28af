"""The gallery tutorials compile and follow the sphinx-gallery conventions (without running
them: the docs build does that)."""

import ast
import re
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
SCRIPTS = sorted(EXAMPLES.glob("plot_*.py"))
_UNDERLINE = re.compile(r"^([=\-~^\"'`#*+])\1+$")


def test_gallery_folder():
    readme = EXAMPLES / "README.txt"
    assert readme.is_file(), "examples/README.txt is required by sphinx-gallery"
    lines = [ln for ln in readme.read_text(encoding="utf-8").splitlines()]
    assert lines[0].strip() and _UNDERLINE.match(lines[1].strip())
    assert len(lines[1].strip()) >= len(lines[0].strip())
    assert len(SCRIPTS) >= 8
    numbers = [int(re.match(r"plot_(\d+)_", p.name).group(1)) for p in SCRIPTS]
    assert numbers == sorted(set(numbers)), "tutorials are numbered for reading order"


@pytest.mark.parametrize("path", SCRIPTS, ids=lambda p: p.name)
def test_tutorial_compiles_and_starts_with_rest_title(path):
    source = path.read_text(encoding="utf-8")
    compile(source, str(path), "exec")
    tree = ast.parse(source)
    first = tree.body[0]
    assert (
        isinstance(first, ast.Expr)
        and isinstance(first.value, ast.Constant)
        and isinstance(first.value.value, str)
    ), f"{path.name} must start with a docstring"
    doc = ast.get_docstring(tree, clean=True).splitlines()
    title, underline = doc[0].strip(), doc[1].strip()
    assert title, f"{path.name}: the docstring's first line is the title"
    assert _UNDERLINE.match(underline) and len(underline) >= len(title), (
        f"{path.name}: the title must be underlined (reST) at least as long as the title"
    )
    assert "# %%" in source, f"{path.name}: prose blocks start with '# %%'"

"""Sphinx configuration of the varseg documentation.

Build (from the repository root, in the venv of the README)::

    .venv/bin/python -m sphinx -W --keep-going -b html docs docs/_build/html

or ``make -C docs html`` (the Makefile calls ``$(PYTHON) -m sphinx``, ``PYTHON`` defaulting
to the repository's ``.venv/bin/python``). Warnings are errors. The tutorials in
``../examples`` are run by sphinx-gallery at build time (each well under a minute on a CPU).
The pages need no network: MathJax is the copy in ``_static/mathjax`` (MathJax 3.2.2,
``es5/tex-svg.js``, self-contained, Apache-2.0, ``npm pack mathjax@3``).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

# The tutorials work on small images (≤ 128²), where one thread is as fast as several and
# immune to oversubscription on a busy machine; set before NumPy/torch/Numba are imported.
# (Export the variables before building to override.)
for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import matplotlib  # noqa: E402

matplotlib.use("Agg")

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(DOCS))  # for _gallery_style (sphinx-gallery's reset hook)
os.environ.setdefault("TQDM_DISABLE", "1")  # no progress bars in the rendered tutorials

import varseg  # noqa: E402

# -- project ----------------------------------------------------------------------------
project = "varseg"
author = "The varseg developers"
copyright = "2024, The varseg developers"
release = varseg.__version__
version = ".".join(release.split(".")[:2])

# -- general ----------------------------------------------------------------------------
extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.extlinks",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
]
templates_path = ["_templates"]
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store"]
nitpicky = False
default_role = "py:obj"  # `name` in docstrings links to the object when it exists

# -- autodoc / autosummary / numpydoc ----------------------------------------------------
autosummary_generate = True
autosummary_imported_members = False
autosummary_ignore_module_all = False  # document what each module's __all__ exports
autodoc_default_options = {"members": True, "show-inheritance": True}
autodoc_member_order = "bysource"
autodoc_typehints = "none"  # numpydoc's Parameters/Returns sections carry the types
autodoc_mock_imports = []
numpydoc_show_class_members = False  # the class template lists members (autodoc)
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False
numpydoc_validation_checks = set()  # ruff's D rules (numpy convention) check the docstrings

# -- math: offline MathJax ----------------------------------------------------------------
# A relative mathjax_path is taken from the built _static folder: no CDN, math renders
# without a network. The menu is off, so no accessibility extension is fetched lazily.
mathjax_path = "mathjax/tex-svg.js"
mathjax3_config = {
    "options": {"enableMenu": False},
    "svg": {"fontCache": "global"},
}

extlinks = {
    "doi": ("https://doi.org/%s", "doi:%s"),
    "arxiv": ("https://arxiv.org/abs/%s", "arXiv:%s"),
}

# -- sphinx-gallery ----------------------------------------------------------------------
sphinx_gallery_conf = {
    "examples_dirs": "../examples",
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"/plot_",
    "doc_module": ("varseg",),
    "backreferences_dir": "gen_modules/backreferences",
    "within_subsection_order": "FileNameSortKey",  # plot_01, plot_02, … = reading order
    "download_all_examples": False,
    "remove_config_comments": True,
    "matplotlib_animations": False,
    "min_reported_time": 1,
    "show_memory": False,
    # the computation-times pages load jQuery/DataTables from CDNs: not built (offline docs)
    "write_computation_times": False,
    "abort_on_example_error": False,  # every failing tutorial is reported, then -W fails
    # figures at 150 dpi, titles at 12 pt (reset before every tutorial)
    "reset_modules": ("matplotlib", "_gallery_style.reset_matplotlib"),
    # a cell ending in a matplotlib call shows its figure, not "Text(...)" or "<Figure ...>"
    "ignore_repr_types": r"matplotlib[\.\w]*|list|tuple|NoneType",
}

# -- HTML -------------------------------------------------------------------------------
html_theme = "alabaster"
html_static_path = ["_static"]
html_title = f"varseg {release}"
html_theme_options = {
    "description": "One Mumford–Shah ruler for classical and deep segmentation",
    "fixed_sidebar": True,
    "page_width": "1100px",  # room for 88-character code lines
    "body_max_width": "none",
}


# -- docstring headings numpydoc does not know ------------------------------------------
# numpydoc drops a section it does not know ("Shape", "Pooling", "The shared ruler", ...)
# with a warning. Until those docstrings use ``.. rubric::`` (or Notes), such a section is
# taken out before numpydoc parses the docstring (priority 400 < numpydoc's 500) and put
# back, as a rubric and its text, at the end of numpydoc's output (priority 550).
_UNKNOWN_SECTIONS = {}


def _is_header(lines, i):
    title = lines[i].strip()
    under = lines[i + 1].strip() if i + 1 < len(lines) else ""
    return bool(title) and len(under) >= max(3, len(title)) and set(under) == {"-"}


def _take_unknown_sections(app, what, name, obj, options, lines):
    from numpydoc.docscrape import NumpyDocString

    known = set(NumpyDocString.sections)
    kept, taken, i = [], [], 0
    while i < len(lines):
        if _is_header(lines, i) and lines[i].strip() not in known:
            block = [f".. rubric:: {lines[i].strip()}", ""]
            i += 2
            while i < len(lines) and not _is_header(lines, i):
                block.append(lines[i])
                i += 1
            taken.append(block)
            continue
        kept.append(lines[i])
        i += 1
    if taken:
        lines[:] = kept
        _UNKNOWN_SECTIONS[(what, name)] = taken


def _citation_labels(lines):
    """Map "1" -> "R1a2b3c-1" for the references numpydoc renamed (``.. [R1a2b3c-1]``)."""
    labels = {}
    for line in lines:
        text = line.strip()
        if text.startswith(".. [") and "]" in text:
            label = text[4 : text.index("]")]
            if "-" in label:
                labels[label.rsplit("-", 1)[1]] = label
    return labels


def _restore_unknown_sections(app, what, name, obj, options, lines):
    labels = _citation_labels(lines)
    for block in _UNKNOWN_SECTIONS.pop((what, name), []):
        for num, label in labels.items():  # cite as numpydoc renamed: [1]_ -> [R...-1]_
            block = [ln.replace(f"[{num}]_", f"[{label}]_") for ln in block]
        lines.extend(["", *block])


# -- shapes written ``(B, K, *S)`` ----------------------------------------------------------
# A bare ``*S`` starts reST emphasis (a docutils warning, an error with -W). Until those
# docstrings write the shape as a literal (``(B, K, *S)``), escape a ``*`` that follows
# "(" or ", " and precedes a name, outside literals, roles and math.
def _escape_shape_star(text):
    out, i, n = [], 0, len(text)
    while i < n:
        ch = text[i]
        if ch == "`":  # copy a literal, role target or interpreted text unchanged
            ticks = 2 if text.startswith("``", i) else 1
            end = text.find("`" * ticks, i + ticks)
            end = n if end < 0 else end + ticks
            out.append(text[i:end])
            i = end
            continue
        after_open = (
            i > 0 and text[i - 1] in "( " and (text[i - 1] == "(" or text[i - 2 : i] == ", ")
        )
        if ch == "*" and after_open and i + 1 < n and (text[i + 1].isalpha() or text[i + 1] == "_"):
            out.append("\\*")
        else:
            out.append(ch)
        i += 1
    return "".join(out)


def _escape_shape_stars(app, what, name, obj, options, lines):
    math_indent = None  # indentation of the enclosing ``.. math::`` directive, if any
    for i, line in enumerate(lines):
        indent = len(line) - len(line.lstrip())
        if math_indent is not None and line.strip() and indent <= math_indent:
            math_indent = None
        if line.lstrip().startswith(".. math::"):
            math_indent = indent
            continue
        if "*" in line and math_indent is None:
            lines[i] = _escape_shape_star(line)


# numpydoc turns a References section into citations; a reference list that the text does
# not cite ([1] Kim & Ye, ...) is normal in a numpydoc docstring, not a mistake.
suppress_warnings = ["ref.citation"]


def setup(app):
    app.connect("autodoc-process-docstring", _take_unknown_sections, priority=400)
    app.connect("autodoc-process-docstring", _restore_unknown_sections, priority=550)
    app.connect("autodoc-process-docstring", _escape_shape_stars, priority=600)

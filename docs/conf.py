"""Sphinx configuration of the varseg documentation.

Build with ``make -C docs html`` (``sphinx-build -W --keep-going -b html . _build/html``):
warnings are errors. The tutorials in ``../examples`` are run by sphinx-gallery at build time
(each well under a minute on a CPU).
"""
from __future__ import annotations

import os
import re
import sys
from pathlib import Path

# The tutorials work on small images (≤ 128²), where one thread is as fast as several and
# immune to oversubscription on a busy machine; set before NumPy/torch/Numba are imported.
# (Export the variables before `make html` to override.)
for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
             "NUMBA_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import matplotlib  # noqa: E402

matplotlib.use("Agg")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TQDM_DISABLE", "1")  # no progress bars in the rendered tutorials

import varseg  # noqa: E402


# -- project ----------------------------------------------------------------------------
project = "varseg"
author = "the varseg developers"
copyright = "2024, the varseg developers"
release = varseg.__version__
version = ".".join(release.split(".")[:2])

# -- general ----------------------------------------------------------------------------
extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.extlinks",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "sphinx_gallery.gen_gallery",
]
templates_path = ["_templates"]
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store"]
nitpicky = False
default_role = "py:obj"  # `name` in docstrings links to the object when it exists

# -- autodoc / autosummary / napoleon (numpydoc-style docstrings) ------------------------
autosummary_generate = True
autosummary_imported_members = False
autosummary_ignore_module_all = False  # document what each module's __all__ exports
autodoc_default_options = {"members": True, "show-inheritance": True}
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_mock_imports = []
napoleon_google_docstring = False
napoleon_numpy_docstring = True
napoleon_use_rtype = False
napoleon_use_ivar = True
napoleon_custom_sections = [("Shape", "params_style"), ("Algorithm", "notes_style"),
                            ("Item format", "notes_style")]

extlinks = {"doi": ("https://doi.org/%s", "doi:%s"),
            "arxiv": ("https://arxiv.org/abs/%s", "arXiv:%s")}

# -- sphinx-gallery (conf facts from DATASETS_AND_BASELINES.md) --------------------------
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
    "abort_on_example_error": False,  # every failing tutorial is reported, then -W fails
}

# -- HTML -------------------------------------------------------------------------------
html_theme = "alabaster"
html_static_path = ["_static"]
html_title = f"varseg {release}"
html_theme_options = {"description": "One Mumford–Shah ruler for classical and deep "
                                     "segmentation", "fixed_sidebar": True}

# -- docstring fix-ups (autodoc-process-docstring, after napoleon) -----------------------
# 1. A reST section title inside a docstring is not allowed by docutils there; napoleon only
#    converts the numpydoc section names it knows. Remaining underlined headings → rubrics.
# 2. numpydoc "References" use numbered footnotes ``.. [1]``, which docutils reports when
#    they are not cited in the text and which clash when several docstrings share a page
#    (numpydoc's own extension renames them; napoleon does not). Cited ones get a label
#    unique to the object (``[#<id>-1]``, numbered automatically); uncited ones become
#    plain lines "[1] …" of a line block.
# 3. A shape written ``(B, K, *S)`` starts reST emphasis; escape that ``*``.
_UNDERLINE = re.compile(r"^\s*([=\-~^\"'`#*+])\1{2,}\s*$")
_FOOTNOTE = re.compile(r"^(\s*)\.\. \[(\d+)\](\s+|$)(.*)$")
_CITE = re.compile(r"\[(\d+)\]_")
_STAR = re.compile(r"(?<=[(, ])\*(?=[A-Za-z_]\w*\s*[),])")
_PROTECTED = re.compile(r"``.*?``|:[\w:]+:`[^`]*`|`[^`]*`")


def _escape_stars(line):
    out, pos = [], 0
    for m in _PROTECTED.finditer(line):
        out.append(_STAR.sub(r"\\*", line[pos:m.start()]))
        out.append(m.group(0))
        pos = m.end()
    out.append(_STAR.sub(r"\\*", line[pos:]))
    return "".join(out)


def _headings_to_rubrics(lines):
    i = 0
    while i < len(lines) - 1:
        title, under = lines[i], lines[i + 1]
        if (title.strip() and _UNDERLINE.match(under)
                and len(under.strip()) >= len(title.strip())
                and not title.lstrip().startswith((".. ", ":"))
                and (i == 0 or not lines[i - 1].strip())):
            indent = title[: len(title) - len(title.lstrip())]
            lines[i:i + 2] = [f"{indent}.. rubric:: {title.strip()}", ""]
        i += 1


def _fix_footnotes(name, lines):
    import hashlib

    defined = {m.group(2) for ln in lines if (m := _FOOTNOTE.match(ln))}
    if not defined:
        return
    text = "\n".join(ln for ln in lines if not _FOOTNOTE.match(ln))
    cited = {n for n in _CITE.findall(text) if n in defined}
    uid = "r" + hashlib.md5(name.encode()).hexdigest()[:8]
    out = []
    for ln in lines:
        m = _FOOTNOTE.match(ln)
        if m:
            indent, num, _, rest = m.groups()
            if out and out[-1].strip():
                out.append("")  # every entry is its own block (footnote or line block)
            out.append(f"{indent}.. [#{uid}-{num}] {rest}" if num in cited
                       else f"{indent}| [{num}] {rest}")
            continue
        if out and out[-1].lstrip().startswith("| [") and ln.strip() and (
                len(ln) - len(ln.lstrip()) <= len(out[-1]) - len(out[-1].lstrip())):
            out.append("")  # a line block ends before the next paragraph
        if cited:
            ln = _CITE.sub(lambda c: f"[#{uid}-{c.group(1)}]_" if c.group(1) in cited
                           else c.group(0), ln)
        out.append(ln)
    lines[:] = out


def _process_docstring(app, what, name, obj, options, lines):
    _headings_to_rubrics(lines)
    _fix_footnotes(name, lines)
    for i, ln in enumerate(lines):
        if "*" in ln and not ln.lstrip().startswith(".. math::"):
            lines[i] = _escape_stars(ln)


def setup(app):
    app.connect("autodoc-process-docstring", _process_docstring)

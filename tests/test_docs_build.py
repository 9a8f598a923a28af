"""The built documentation works offline (run by ``.ci/run docs`` after the Sphinx build).

The build itself is not part of pytest: ``.ci/run``'s docs step runs
``python -m sphinx -W --keep-going -b html docs docs/_build/html`` and then this file with
``VARSEG_DOCS_HTML=docs/_build/html``. Without that variable every test here is skipped.
"""

import os
import re
from pathlib import Path

import pytest

HTML = os.environ.get("VARSEG_DOCS_HTML")
pytestmark = pytest.mark.skipif(
    not HTML, reason="set VARSEG_DOCS_HTML to a built HTML tree (.ci/run docs)"
)

_SCRIPT_SRC = re.compile(r"<script[^>]*\bsrc=[\"']([^\"']+)[\"']", re.IGNORECASE)
_LINK_HREF = re.compile(r"<link[^>]*\bhref=[\"']([^\"']+)[\"']", re.IGNORECASE)


def _pages():
    root = Path(HTML)
    pages = sorted(root.rglob("*.html"))
    assert pages, f"no HTML pages under {root}"
    return root, pages


def _remote(url):
    return url.startswith(("http://", "https://", "//"))


def test_every_page_loads_scripts_and_styles_from_the_build():
    root, pages = _pages()
    remote = {}
    for page in pages:
        text = page.read_text(encoding="utf-8", errors="replace")
        urls = _SCRIPT_SRC.findall(text) + _LINK_HREF.findall(text)
        # <link href> to another site is only allowed for plain hyperlinks (rel=canonical…)
        bad = [u for u in urls if _remote(u)]
        if bad:
            remote[str(page.relative_to(root))] = bad
    assert remote == {}


def test_math_pages_use_the_bundled_mathjax():
    root, pages = _pages()
    bundled = root / "_static" / "mathjax" / "tex-svg.js"
    assert bundled.is_file() and bundled.stat().st_size > 1_000_000
    with_math = [p for p in pages if "mathjax" in p.read_text(encoding="utf-8").lower()]
    assert with_math, "no page loads MathJax: the equations would not render"
    for page in with_math:
        srcs = [
            s
            for s in _SCRIPT_SRC.findall(page.read_text(encoding="utf-8"))
            if "mathjax" in s.lower()
        ]
        assert srcs and all(s.split("?")[0].endswith("_static/mathjax/tex-svg.js") for s in srcs), (
            page,
            srcs,
        )


def test_gallery_and_api_pages_exist_without_stray_reprs():
    root, _ = _pages()
    tutorials = sorted((root / "auto_examples").glob("plot_*.html"))
    assert len(tutorials) >= 8, tutorials
    assert (root / "api.html").is_file()
    stray = re.compile(r"(?:&lt;|<)Figure size \d|Text\(\d|&lt;matplotlib\.")
    leaks = {p.name: stray.findall(p.read_text(encoding="utf-8")) for p in tutorials}
    assert {k: v for k, v in leaks.items() if v} == {}

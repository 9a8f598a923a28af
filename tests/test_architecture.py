"""The shape of the house, read from the source with ``ast``: imports go one way (no
cycles, no layer importing a higher one), no private name crosses a module boundary, and no
function is longer than 80 lines of code."""

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "varseg"

#: Layers, lowest first: a module may import its own layer and the layers below.
LAYERS = [
    {
        "_validation",
        "_atomic",
        "_json",
        "_threads",
        "_scratch",
        "_environment",
        "_jit",
        "_optional",
        "_optim",
    },
    {"energy", "_energy_kernels", "result", "metrics"},
    {
        "levelset",
        "unrolled",
        "fixed_point",
        "neural",
        "losses",
        "baselines",
        "models",
        "data",
        "io",
        "_fixed_point_kernels",
    },
    {"methods", "train"},
    {"compare"},
    {"plot"},
    {"report"},
    {"reproduce", "bench"},
    {"commands", "cli", "__main__"},
]
MAX_LINES = 80


def _module_name(path):
    rel = path.relative_to(PKG.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _modules():
    return {_module_name(p): p for p in sorted(PKG.rglob("*.py"))}


def _resolve(module, is_pkg, node):
    """Absolute module named by an ImportFrom node's ``from`` part."""
    if node.level == 0:
        return node.module
    base = module.split(".")
    base = base if is_pkg else base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _imports(modules):
    """module -> set of varseg modules it imports (at any depth of the code)."""
    graph = {}
    for mod, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        deps = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                deps |= {a.name for a in node.names if a.name.startswith("varseg")}
            elif isinstance(node, ast.ImportFrom):
                src = _resolve(mod, path.name == "__init__.py", node)
                if not src or not src.startswith("varseg"):
                    continue
                for a in node.names:
                    sub = f"{src}.{a.name}"
                    deps.add(sub if sub in modules else src)
        graph[mod] = {d for d in deps if d in modules and d != mod}
    return graph


def _top(mod):
    parts = mod.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _layer(mod):
    top = _top(mod)
    for i, layer in enumerate(LAYERS):
        if top in layer:
            return i
    return None


def _cycles(graph):
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in graph:
        if v not in index:
            visit(v)
    return out


def test_no_import_cycles():
    """Counting every import, in-function ones included, and the package ``__init__`` edges
    (a submodule importing its own package's ``__init__`` closes a cycle too)."""
    assert _cycles(_imports(_modules())) == []


def test_cycle_detector_sees_a_two_module_cycle():
    assert _cycles({"a": {"b"}, "b": {"a"}, "c": {"a"}}) == [["a", "b"]]


def test_every_module_has_a_layer_and_imports_go_down():
    graph = _imports(_modules())
    unknown = sorted({_top(m) for m in graph if _layer(m) is None and m != "varseg"})
    assert unknown == [], f"add these top-level modules to LAYERS: {unknown}"
    upward = sorted(
        f"{a} -> {b}"
        for a, bs in graph.items()
        for b in bs
        if a != "varseg"
        and _layer(a) is not None
        and _layer(b) is not None
        and _layer(b) > _layer(a)
    )
    assert upward == []


def _private_imports(modules):
    found = []
    for mod, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                src = _resolve(mod, path.name == "__init__.py", node) or ""
                if not src.startswith("varseg"):
                    continue
                found += [
                    f"{mod}: from {src} import {a.name}"
                    for a in node.names
                    if a.name.startswith("_")
                    and not a.name.startswith("__")
                    and f"{src}.{a.name}" not in modules
                ]
    return found


def test_no_private_name_crosses_a_module_boundary():
    assert _private_imports(_modules()) == []


def _body_lines(fn, src):
    """Lines of code of a function's body: after its signature and docstring, without blank
    and comment-only lines (a formatter's one-argument-per-line signature does not count)."""
    body = fn.body
    if (
        len(body) > 1
        and isinstance(body[0], ast.Expr)
        and isinstance(body[0].value, ast.Constant)
        and isinstance(body[0].value.value, str)
    ):
        body = body[1:]
    start = body[0].lineno
    return sum(
        1
        for i in range(start, fn.end_lineno + 1)
        if src[i - 1].strip() and not src[i - 1].strip().startswith("#")
    )


def _long_functions(modules):
    long = []
    for mod, path in modules.items():
        src = path.read_text(encoding="utf-8").splitlines()
        for node in ast.walk(ast.parse("\n".join(src))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = _body_lines(node, src)
                if n > MAX_LINES:
                    long.append(f"{mod}.{node.name}: {n}")
    return long


def test_no_function_over_80_lines_of_code():
    assert _long_functions(_modules()) == []


@pytest.mark.parametrize(
    "probe, expected",
    [
        ("from ._x import _private", 1),
        ("from ._x import public", 0),
        ("from varseg.energy import _Ops", 1),
        ("from __future__ import annotations", 0),
    ],
)
def test_private_import_detector(tmp_path, probe, expected):
    (tmp_path / "varseg").mkdir()
    p = tmp_path / "varseg" / "m.py"
    p.write_text(probe + "\n")
    assert len(_private_imports({"varseg.m": p})) == expected


def test_long_function_detector_counts_the_body(tmp_path):
    (tmp_path / "varseg").mkdir()
    p = tmp_path / "varseg" / "m.py"
    body = "".join(f"    x{i} = {i}\n" for i in range(81))
    p.write_text(
        'def f(\n    a,\n    b,\n):\n    """Doc."""\n' + body + "\n\ndef g():\n    return 1\n"
    )
    assert _long_functions({"varseg.m": p}) == ["varseg.m.f: 81"]

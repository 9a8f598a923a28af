"""The training package's own directions (issue 13), read from the source with :mod:`ast`.

The generic rules (no import cycles, layers, no private names across modules, no function
over 80 lines) are checked for the whole package by ``tests/test_architecture.py``; this file
keeps what is particular to training: the trainer never imports the evaluator (validation is
injected), the config imports nothing of the package, and no private attribute is read
across modules."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("varseg/train", "varseg/models")
COMMANDS = ("varseg/commands/train.py", "varseg/commands/evaluate.py")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _files():
    out = [p for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py"))]
    return out + [ROOT / c for c in COMMANDS]


def _imports(path: Path):
    """``(module, names)`` of every import of ``path``, in-function ones included."""
    mod = _module_name(path)
    package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            for a in node.names:
                yield a.name, []
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join(anchor + ([node.module] if node.module else []))
            yield base, [a.name for a in node.names]


def _graph():
    nodes = {_module_name(p): p for p in _files()}
    graph = {}
    for name, path in nodes.items():
        deps = set()
        for base, names in _imports(path):
            for target in [base] + [f"{base}.{n}" for n in names]:
                if target in nodes and target != name:
                    deps.add(target)
        graph[name] = deps
    return graph


def test_train_directions():
    graph = _graph()
    assert "varseg.train.evaluate" not in graph["varseg.train.engine"]  # validator injected
    assert not any(d.startswith("varseg.train") for d in graph["varseg.train.config"])
    assert "varseg.train.config" in graph["varseg.train.steps.advsemi"]  # advsemi_settings


def test_no_private_attribute_reads_across_modules():
    reads = set()
    for path in _files():
        rel = str(path.relative_to(ROOT))
        tree = ast.parse(path.read_text())
        local = {
            n.name
            for n in ast.walk(tree)
            if isinstance(n, (ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef))
        }
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and node.attr.startswith("_")
                and not node.attr.startswith("__")
                and isinstance(node.value, ast.Name)
                and node.value.id not in ("self", "cls")
                and node.attr not in local
            ):
                reads.add((rel, node.attr))
            if (
                isinstance(node, ast.Call)
                and getattr(node.func, "id", None) == "getattr"
                and len(node.args) > 1
                and isinstance(node.args[1], ast.Constant)
                and str(node.args[1].value).startswith("_")
            ):
                reads.add((rel, node.args[1].value))
    assert reads == set()

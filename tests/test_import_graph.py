"""The package's layers point one way: no import circles between modules or between sub-packages,
and the report stage reads result files without torch, training, models or losses.

The graph is built from the source with ``ast``: every ``import`` statement counts, also one inside
a function (a lazy import is still a dependency).
"""

from __future__ import annotations

import ast
from pathlib import Path

from conftest import REPO

SRC = REPO / "src"
HEAVY = ("torch", "torchvision", "kornia")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {_module_name(p): p for p in sorted((SRC / "clbench").rglob("*.py"))}


def _resolve(name: str) -> str | None:
    """The clbench module that ``import name`` loads last (the longest existing prefix), or None."""
    parts = name.split(".")
    while parts:
        candidate = ".".join(parts)
        if candidate in MODULES:
            return candidate
        parts.pop()
    return None


def _runs_later(node: ast.AST) -> bool:
    """A function body, or an ``if TYPE_CHECKING:`` block: not run when the module is imported."""
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
        return True
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def _nodes(tree: ast.AST, lazy: bool):
    """Every node of ``tree``; without ``lazy``, only those run when the module is imported."""
    if lazy:
        yield from ast.walk(tree)
        return
    stack = [tree]
    while stack:
        node = stack.pop()
        yield node
        stack.extend(c for c in ast.iter_child_nodes(node) if not _runs_later(c))


def _imports(module: str, lazy: bool = True) -> tuple[set[str], set[str]]:
    """(clbench modules, top-level third-party names) imported in ``module``: anywhere, or without
    ``lazy`` only when the module is imported."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    internal, external = set(), set()
    for node in _nodes(ast.parse(path.read_text(), str(path)), lazy):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            # `from pkg import sub` imports the module pkg.sub when there is one
            names = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names]
        else:
            continue
        for name in names:
            if name == "clbench" or name.startswith("clbench."):
                target = _resolve(name)
                if target is not None and target != module:
                    internal.add(target)
            else:
                external.add(name.split(".")[0])
    return internal, external


GRAPH = {m: _imports(m)[0] for m in MODULES}


def _subpackage(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as a list of nodes (first == last), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        state[node] = 2
        path.pop()
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_the_graph_sees_lazy_and_relative_imports(tmp_path):
    # the known edges of the tree: a lazy import inside a function, and a package-level import
    assert "clbench.evaluate.knn" in GRAPH["clbench.train.loop"]  # inside knn_accuracy()
    assert "clbench.models.checkpoint" in GRAPH["clbench.evaluate.runner"]
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_circle_between_modules():
    cycle = _cycle(GRAPH)
    assert cycle is None, "modules import each other in a circle: " + " -> ".join(cycle)


def test_no_import_circle_between_subpackages():
    packages: dict[str, set[str]] = {}
    for module, targets in GRAPH.items():
        src = _subpackage(module)
        packages.setdefault(src, set()).update(_subpackage(t) for t in targets if _subpackage(t) != src)
    cycle = _cycle(packages)
    assert cycle is None, "sub-packages import each other in a circle: " + " -> ".join(cycle)


def test_evaluation_never_imports_training():
    for module, targets in GRAPH.items():
        if _subpackage(module) == "evaluate":
            assert not {t for t in targets if _subpackage(t) == "train"}, module


def test_losses_are_pure_tensor_functions():
    for module, targets in GRAPH.items():
        if _subpackage(module) == "losses":
            assert {_subpackage(t) for t in targets} <= {"losses"}, module


def test_report_imports_no_torch_training_models_or_losses():
    report = [m for m in MODULES if _subpackage(m) == "report"]
    for module in report:
        heavy = _imports(module)[1] & set(HEAVY)
        assert not heavy, f"{module} imports {sorted(heavy)}"
    reached, stack = set(), list(report)
    while stack:  # everything the report stage can import, lazily or not
        module = stack.pop()
        if module not in reached:
            reached.add(module)
            stack.extend(GRAPH[module])
    layers = {m for m in reached if _subpackage(m) in ("train", "models", "losses")}
    assert not layers, f"the report stage reaches {sorted(layers)}"
    for module in reached:  # nothing it imports pulls torch in at import time
        heavy = _imports(module, lazy=False)[1] & set(HEAVY)
        assert not heavy, f"{module}, imported by the report stage, imports {sorted(heavy)}"


def test_registries_import_no_torch():
    # imported when the workflow is planned
    for module in ("clbench.objectives", "clbench.errors", "clbench.evaluate.registry", "clbench.evaluate.suite"):
        reached, stack = set(), [module]
        while stack:
            m = stack.pop()
            if m not in reached:
                reached.add(m)
                stack.extend(_imports(m, lazy=False)[0])
        for m in reached:
            heavy = _imports(m, lazy=False)[1] & set(HEAVY)
            assert not heavy, f"{m} (imported by {module}) imports {sorted(heavy)}"

"""The hash of the package code a job runs: a rule's ``params`` carry it, so editing a module re-runs the
jobs that execute it (the profiles' ``rerun-triggers`` include ``params``) and nothing else.

A job's code is the ``clbench`` command's handler in :mod:`clbench.cli` (its source and the helpers it
calls) and every ``clbench`` module it imports, read statically with ``ast`` (also an import inside a
function). Registries make that closure too coarse: ``clbench.losses`` imports every loss and
``clbench.papers`` every paper. So those two packages are *aggregators*: the closure does not follow
their imports (a name imported from one resolves to the module defining it), and each job adds the
registered entries it actually uses: a training job its objective's loss module and its domain's
trainer, an evaluation its domain's evaluator, a dataset build its generator, a figure or analysis the
module that defines it (and its paper), a table or the report every paper. Docstrings and comments are
not part of the hash: editing them re-runs nothing.

The rules' functions (one per kind of job, from the config and the job's wildcards) are in
:mod:`clbench.ops.rule_code`; a trainer records its own hash in ``run.json``
(:func:`clbench.train.trainers.training_code`). Snakemake evaluates these when it plans the workflow:
nothing here imports torch, and each module is parsed once per process.
"""

from __future__ import annotations

import ast
import functools
import hashlib
from collections.abc import Iterable, Mapping
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent
ROOT = "clbench"
CLI = "clbench.cli"
# packages whose __init__ imports every registered entry (all losses, all papers)
AGGREGATORS = ("clbench.losses", "clbench.papers")


def use_sources(package: str | Path) -> None:
    """Hash the sources under ``package`` from now on (e.g. a copy being edited), forgetting what was read."""
    global PACKAGE
    PACKAGE = Path(package).resolve()
    for cached in (modules, _tree, module_fingerprint, _exports, _edges, command_code, _job_hash):
        cached.cache_clear()


@functools.lru_cache(maxsize=1)
def modules() -> dict[str, Path]:
    """Every module of the package: dotted name -> file."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = [ROOT, *path.relative_to(PACKAGE).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


@functools.lru_cache(maxsize=None)
def _tree(module: str) -> ast.Module:
    path = modules()[module]
    return ast.parse(path.read_text(), str(path))


_DEFS = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)
_BLOCKS = ("body", "orelse", "finalbody", "handlers")


def _without_docstrings(node: ast.AST) -> None:
    """Drop the docstrings of ``node`` and of the definitions in it (statements only: no expression walk)."""
    body = getattr(node, "body", None)
    if (isinstance(node, _DEFS) and body and isinstance(body[0], ast.Expr)
            and isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str)):
        node.body = body[1:] or [ast.Pass()]
    for block in _BLOCKS:
        for child in getattr(node, block, None) or ():
            if isinstance(child, ast.stmt | ast.excepthandler):
                _without_docstrings(child)


def _fingerprint(node: ast.AST) -> str:
    """The code of ``node`` without docstrings, comments or layout (docstrings are removed in place)."""
    _without_docstrings(node)
    return hashlib.sha256(ast.dump(node).encode()).hexdigest()


@functools.lru_cache(maxsize=None)
def module_fingerprint(module: str) -> str:
    return _fingerprint(_tree(module))


def _resolve(name: str) -> str | None:
    """The clbench module ``import name`` loads last (its longest existing prefix), or None."""
    parts = name.split(".")
    while parts:
        if ".".join(parts) in modules():
            return ".".join(parts)
        parts.pop()
    return None


def _package_of(module: str) -> str:
    return module if modules()[module].name == "__init__.py" else module.rpartition(".")[0]


@functools.lru_cache(maxsize=None)
def _exports(aggregator: str) -> dict[str, str]:
    """name -> the module that defines it, for the names an aggregator imports from its submodules."""
    names = {}
    for node in ast.walk(_tree(aggregator)):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith(aggregator + "."):
            for alias in node.names:
                names[alias.asname or alias.name] = _resolve(node.module)
    return names


def _targets(node: ast.ImportFrom | ast.Import, package: str) -> Iterable[tuple[str, str | None, str]]:
    """(module, name imported from it or None, the local name bound) for each name an import binds."""
    if isinstance(node, ast.Import):
        for alias in node.names:
            yield alias.name, None, alias.asname or alias.name
        return
    base = node.module or ""
    if node.level:
        parts = package.split(".")
        base = ".".join(parts[: len(parts) - (node.level - 1)] + ([base] if base else []))
    for alias in node.names:
        yield base, alias.name, alias.asname or alias.name


def imports_of(node: ast.AST, package: str) -> set[str]:
    """The clbench modules the code under ``node`` imports (aggregators' names resolved to their modules)."""
    found: set[str] = set()
    aliases: dict[str, str] = {}  # a local name bound to an aggregator (import clbench.losses as L): L.x looked up
    for n in ast.walk(node):
        if not isinstance(n, (ast.Import, ast.ImportFrom)):
            continue
        for base, name, bound in _targets(n, package):
            if not (base == ROOT or base.startswith(ROOT + ".")):
                continue
            if name is not None and f"{base}.{name}" in modules():  # from package import submodule
                found.add(f"{base}.{name}")
                continue
            target = _resolve(base)
            if target is None:
                continue
            if target in AGGREGATORS and name is not None:  # from aggregator import a name it re-exports
                found.add(_exports(target).get(name, target))
                continue
            found.add(target)
            if target in AGGREGATORS:
                aliases[bound] = target
    for n in ast.walk(node):
        if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name) and n.value.id in aliases:
            found.add(_exports(aliases[n.value.id]).get(n.attr, aliases[n.value.id]))
    return found


def _parents(module: str) -> list[str]:
    parts = module.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts)) if ".".join(parts[:i]) in modules()]


@functools.lru_cache(maxsize=None)
def _edges(module: str) -> frozenset[str]:
    """What importing ``module`` brings in: its imports (none followed out of an aggregator) and its
    parent packages (run first by Python)."""
    out = set(_parents(module))
    if module not in AGGREGATORS:
        out |= imports_of(_tree(module), _package_of(module))
    out.discard(module)
    return frozenset(out)


def closure(roots: Iterable[str]) -> set[str]:
    """Every clbench module ``roots`` import, directly or not (``roots`` included)."""
    seen: set[str] = set()
    stack = [r for r in roots if r in modules()]
    while stack:
        module = stack.pop()
        if module not in seen:
            seen.add(module)
            stack.extend(_edges(module))
    return seen


def _handler(command: str) -> str:
    return "cmd_" + command.replace(" ", "_").replace("-", "_")


@functools.lru_cache(maxsize=None)
def command_code(command: str) -> tuple[str, frozenset[str]]:
    """(fingerprint of the command's handler and the cli helpers it uses, the modules they import)."""
    tree = _tree(CLI)
    top = {n.name: n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}
    name = _handler(command)
    if name not in top:
        raise KeyError(f"clbench has no command {command!r} (no {name} in {CLI})")
    used, stack = set(), [name]
    while stack:  # the handler, its decorators and the module-level helpers they call
        fn = stack.pop()
        if fn in used:
            continue
        used.add(fn)
        stack.extend(n.id for n in ast.walk(top[fn]) if isinstance(n, ast.Name) and n.id in top)
    digest = hashlib.sha256("".join(_fingerprint(top[f]) for f in sorted(used)).encode()).hexdigest()
    imported = set().union(*(imports_of(top[f], ROOT) for f in used))
    return digest, frozenset(imported)


def job_hash(command: str, leaves: Iterable[str | None] = ()) -> str:
    """The code hash of a job running ``clbench <command>`` that also uses the registered ``leaves``."""
    return _job_hash(command, tuple(sorted({m for m in leaves if m})))


@functools.lru_cache(maxsize=None)
def _job_hash(command: str, leaves: tuple[str, ...]) -> str:
    digest, imported = command_code(command)
    code = sorted(closure([*imported, *leaves]))
    blob = "\n".join([f"command {command} {digest}", *(f"{m} {module_fingerprint(m)}" for m in code)])
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def module_of(ref: str | None) -> str | None:
    """The clbench module of a ``"module:attribute"`` reference (None outside the package)."""
    if not ref:
        return None
    module = ref.partition(":")[0]
    return _resolve(module) if module.startswith(ROOT + ".") else None


def aggregated(aggregator: str) -> list[str]:
    """Every module of an aggregator's package (e.g. all papers)."""
    return [m for m in modules() if m.startswith(aggregator + ".")]

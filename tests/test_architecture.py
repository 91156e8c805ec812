"""The shape of py_core, kept by tests (README « Layout »): the pure parts import nothing that
does I/O or reads a clock; functions stay short; no inner function changes its enclosing state."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "py_core"

# Pure: GraphQL answers and the document's state in, rows, plans and messages out.
PURE = ["py_core/plan", "py_core/grist/values.py", "py_core/grist/meta.py", "py_core/ds/models.py",
        "py_core/ds/dates.py", "py_core/errors.py", "py_core/jobs/checkpoint.py", "py_core/jobs/copy_kind.py",
        "py_core/jobs/copy_result.py", "py_core/jobs/history.py"]
IMPURE_IMPORTS = {"asyncio", "time", "py_core.clock", "py_core.grist.sink", "py_core.ds.transport", "py_core.ds.client",
                  "py_core.jobs.lease", "urllib.request", "socket", "js", "pyodide"}
MAX_LINES = 60
MUTATORS = {"append", "extend", "update", "add", "discard", "remove", "pop", "clear", "insert", "setdefault", "difference_update"}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> set[str]:
    """The modules `path` imports (relative imports resolved)."""
    package = module_name(path).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join([*base, *(node.module.split(".") if node.module else [])])
            found.add(module)
            found |= {f"{module}.{a.name}" for a in node.names}
    return found


def closure(name: str, seen: set[str] | None = None) -> set[str]:
    """Every module `name` imports, transitively within py_core."""
    seen = set() if seen is None else seen
    path = PACKAGE.parent / (name.replace(".", "/") + ".py")
    if not path.exists():
        path = PACKAGE.parent / name.replace(".", "/") / "__init__.py"
    if not path.exists() or name in seen:
        return seen
    seen.add(name)
    for module in imports(path):
        if module.startswith("py_core"):
            closure(module, seen)
        else:
            seen.add(module)
    return seen


def pure_modules() -> list[Path]:
    out = []
    for entry in PURE:
        path = ROOT / entry
        out += sorted(path.rglob("*.py")) if path.is_dir() else [path]
    return out


def py_core_files() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", pure_modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_a_pure_module_imports_no_io_and_no_clock(path):
    reached = closure(module_name(path))
    bad = sorted(m for m in reached if m.split(".")[0] in {"asyncio", "time", "socket", "js", "pyodide"} or m in IMPURE_IMPORTS)
    assert not bad, f"{path.name} reaches {bad}"


def functions(path: Path):
    tree = ast.parse(path.read_text())
    return [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]


def test_no_function_is_longer_than_60_lines():
    long = [f"{p.relative_to(ROOT)}:{f.lineno} {f.name} ({f.end_lineno - f.lineno + 1} lines)"
            for p in py_core_files() for f in functions(p) if f.end_lineno - f.lineno + 1 > MAX_LINES]
    assert not long, long


def mutating_closures(source: str) -> list[str]:
    """Inner functions (and lambdas) that change their enclosing state: `nonlocal`, or a
    mutating method called on a name they do not bind themselves."""
    found = []
    tree = ast.parse(source)
    for outer in [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]:
        for inner in ast.walk(outer):
            if inner is outer or not isinstance(inner, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                continue
            local = {a.arg for a in inner.args.args + inner.args.kwonlyargs}
            for node in ast.walk(inner):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, (ast.For, ast.comprehension)) else []
                local |= {t.id for target in targets for t in ast.walk(target) if isinstance(t, ast.Name)}
            for node in ast.walk(inner):
                if isinstance(node, ast.Nonlocal):
                    found.append(f"{inner.lineno} nonlocal")
                if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in MUTATORS
                        and isinstance(node.func.value, ast.Name) and node.func.value.id not in local):
                    found.append(f"{node.lineno} {node.func.value.id}.{node.func.attr}")
    return found


def test_no_inner_function_changes_its_enclosing_state():
    found = [f"{p.relative_to(ROOT)}:{where}" for p in py_core_files() for where in mutating_closures(p.read_text())]
    assert not found, found


def test_the_rules_can_fail():
    assert mutating_closures("def outer():\n    out = []\n    def visit(x):\n        out.append(x)\n    return out\n")
    assert not mutating_closures("def outer():\n    def visit(x):\n        out = []\n        out.append(x)\n        return out\n")
    assert "asyncio" in closure("py_core.jobs.copy"), "the copy does I/O: the import walk sees it"

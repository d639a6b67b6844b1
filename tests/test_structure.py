"""The import rules of the three packages, read from their source (ast), so that they stay true.

- No import circle: following imports from any module never leads back to it. Every import counts, at the top of a
  module or inside a function (a late import hides a circle from the interpreter, not from a reader), except those
  under ``if TYPE_CHECKING:``. The implicit import of a module's parent package is not followed: a package's
  ``__init__`` re-exporting its own modules is not a circle.
- No upward import: a module imports only from its own floor or below. The floors are docs/architecture.md's:
  bladefl_platform < bladefl_theory < bladefl_validate, and inside the validator chain, learning, partition (with
  the run's config, data and worker plugin) < simulation, tasks, optimum < studies < cli; in each package its
  ``cli`` is the top floor.
- No function (or method) longer than :data:`MAX_FUNCTION_LINES` lines, its signature and docstring included.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("bladefl_platform", "bladefl_theory", "bladefl_validate")
#: The validator's floors below its command line, by the first name under ``bladefl_validate``.
VALIDATOR_FLOORS = {
    **dict.fromkeys(("chain", "learning", "partition", "config", "data", "workers", "plugins"), 0),
    **dict.fromkeys(("simulation", "tasks", "optimum"), 1),
    "studies": 2,
}
TOP = 3
#: The longest a function of the packages may be, in lines.
MAX_FUNCTION_LINES = 60


def module_files(root: Path, packages: tuple[str, ...] = PACKAGES) -> dict[str, tuple[Path, bool]]:
    """Each module's dotted name: its file and whether it is a package's ``__init__``."""
    found = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            is_package = parts[-1] == "__init__"
            found[".".join(parts[:-1] if is_package else parts)] = (path, is_package)
    return found


def _type_checking_only(tree: ast.AST) -> set[int]:
    """ids of the nodes under ``if TYPE_CHECKING:`` (imports for annotations, never executed)."""
    return {id(inner) for node in ast.walk(tree)
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
            for inner in ast.walk(node)}


def _targets(name: str, is_package: bool, node: ast.Import | ast.ImportFrom, known: dict) -> list[str]:
    """The modules of ours an import statement names (``from pkg import module`` names the module)."""
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    else:
        base = name.split(".") if is_package else name.split(".")[:-1]
        if node.level:
            base = base[: len(base) - node.level + 1]
            prefix = ".".join(base + ([node.module] if node.module else []))
        else:
            prefix = node.module or ""
        names = [f"{prefix}.{alias.name}" if f"{prefix}.{alias.name}" in known else prefix for alias in node.names]
    targets = []
    for target in names:
        while target not in known and "." in target:
            target = target.rsplit(".", 1)[0]
        if target in known and target != name:
            targets.append(target)
    return targets


def import_graph(root: Path, packages: tuple[str, ...] = PACKAGES) -> dict[str, set[str]]:
    """Each module's imports of modules of ``packages``."""
    known = module_files(root, packages)
    graph: dict[str, set[str]] = {}
    for name, (path, is_package) in known.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        skip = _type_checking_only(tree)
        graph[name] = {target for node in ast.walk(tree)
                       if isinstance(node, (ast.Import, ast.ImportFrom)) and id(node) not in skip
                       for target in _targets(name, is_package, node, known)}
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The import circles: each set of modules that import one another in a ring (strongly connected, 2 or more)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            ring = stack[stack.index(v):]
            del stack[stack.index(v):]
            if len(ring) > 1:
                found.append(sorted(ring))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def floor(name: str) -> tuple[int, int]:
    """A module's floor: its package's rank, then its floor inside the package."""
    parts = name.split(".")
    rank = PACKAGES.index(parts[0])
    if len(parts) == 1 or parts[1] == "cli":
        return rank, TOP
    if parts[0] == "bladefl_validate":
        return rank, VALIDATOR_FLOORS[parts[1]]
    return rank, 0


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    """Each import of a module from a floor above the importer's, as ``importer -> imported``."""
    return [f"{a} -> {b}" for a in sorted(graph) for b in sorted(graph[a]) if floor(b) > floor(a)]


def test_no_import_circle():
    assert circles(import_graph(ROOT)) == []


def test_no_module_imports_from_a_floor_above_it():
    assert upward_imports(import_graph(ROOT)) == []


def long_functions(root: Path, packages: tuple[str, ...] = PACKAGES) -> dict[str, int]:
    """Each function longer than :data:`MAX_FUNCTION_LINES`, as ``path:name``, and its length in lines."""
    found = {}
    for path, _ in module_files(root, packages).values():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = (node.end_lineno or node.lineno) - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    found[f"{path.relative_to(root).as_posix()}:{node.name}"] = lines
    return found


def test_no_function_is_longer_than_60_lines():
    assert long_functions(ROOT) == {}


def test_every_validator_module_has_a_floor():
    tops = {name.split(".")[1] for name in module_files(ROOT, ("bladefl_validate",)) if "." in name} - {"cli"}
    assert sorted(tops - set(VALIDATOR_FLOORS)) == []


def _write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)


def test_the_checker_finds_a_late_import_circle_and_an_upward_import(tmp_path):
    _write(tmp_path, {
        "bladefl_validate/__init__.py": "",
        "bladefl_validate/tasks.py": "def f():\n    from .simulation import run\n",
        "bladefl_validate/simulation.py": "from .tasks import VERSION\nfrom .studies.base import X\n",
        "bladefl_validate/studies/__init__.py": "",
        "bladefl_validate/studies/base.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                                            "    from ..cli import main\n",
        "bladefl_validate/cli.py": "from .studies import base\n",
    })
    graph = import_graph(tmp_path, ("bladefl_validate",))
    assert circles(graph) == [["bladefl_validate.simulation", "bladefl_validate.tasks"]]
    assert upward_imports(graph) == ["bladefl_validate.simulation -> bladefl_validate.studies.base"]
    assert graph["bladefl_validate.cli"] == {"bladefl_validate.studies.base"}
    assert graph["bladefl_validate.studies.base"] == set()  # under TYPE_CHECKING


def test_the_checker_measures_a_function_from_def_to_its_last_line(tmp_path):
    body = "".join(f"    x{i} = {i}\n" for i in range(MAX_FUNCTION_LINES - 1))
    _write(tmp_path, {"bladefl_theory/__init__.py": "", "bladefl_theory/a.py": f"def fits():\n{body}\n\n"
                      f"def too_long():\n{body}    return x0\n"})
    assert long_functions(tmp_path, ("bladefl_theory",)) == {"bladefl_theory/a.py:too_long": MAX_FUNCTION_LINES + 1}


@pytest.mark.parametrize("importer, imported", [("bladefl_platform.study", "bladefl_theory.params"),
                                                ("bladefl_theory.params", "bladefl_validate.config"),
                                                ("bladefl_validate.partition", "bladefl_validate.simulation"),
                                                ("bladefl_validate.studies.gap", "bladefl_validate.cli")])
def test_the_floors_forbid(importer, imported):
    assert upward_imports({importer: {imported}}) == [f"{importer} -> {imported}"]

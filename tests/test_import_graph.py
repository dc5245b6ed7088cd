"""The package graph is one-way (docs/architecture.md, "Package graph").

    config/paths  <-  doubles  <-  bot  <-  monitoring  <-  ops  <-  stack  <-  cli

A package imports only from packages to its left (and itself): ``hux.config``,
``hux.paths``, ``hux.units`` and ``hux`` itself are the base; ``hux.doubles`` is a leaf that
imports only the base (demo mode runs it); ``hux.cli`` wires the areas
together. Every ``import`` under src/hux is checked, at module level and inside
functions alike: a lazy import still makes a dependency.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"

#: each package's place in the graph: it may import packages of a lower or equal rank
RANKS = {"base": 0, "doubles": 1, "bot": 2, "monitoring": 3, "ops": 4, "stack": 5, "cli": 6}
BASE_MODULES = {"hux", "hux.config", "hux.paths", "hux.units"}
TOP_MODULES = {"hux.cli", "hux.__main__"}


def package_of(module: str) -> str:
    """The graph node of a module of ours: base, a sub-package's name, or cli."""
    parts = module.split(".")
    head = ".".join(parts[:2])
    if module in BASE_MODULES or head in BASE_MODULES - {"hux"}:
        return "base"
    if head in TOP_MODULES:
        return "cli"
    return parts[1]


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _submodule(root: Path, prefix: str, name: str) -> str:
    """``from prefix import name``: prefix.name when that is a module, else prefix (a name defined in it)."""
    where = root.joinpath(*prefix.split("."), name)
    return f"{prefix}.{name}" if where.is_dir() or where.with_suffix(".py").is_file() else prefix


def imports(path: Path, root: Path) -> list[tuple[int, str, bool]]:
    """(line, imported module, inside a function) of every import of ours in a file."""
    module = module_name(path, root)
    is_package = path.name == "__init__.py"
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    in_function: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            in_function.update(id(child) for child in ast.walk(node) if child is not node)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".") if is_package else module.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                prefix = ".".join(base + ([node.module] if node.module else []))
            else:
                prefix = node.module or ""
            # `from hux import paths` imports hux.paths: name the sub-module when the name is one
            targets = [_submodule(root, prefix, alias.name) for alias in node.names]
        elif _is_import_module(node):
            targets = [_import_module_target(node, module)]
        elif module in TOP_MODULES and isinstance(node, (ast.Assign, ast.AnnAssign)) and _assigns(node, DISPATCH_TABLE):
            # hux.cli's dispatch table: every module it names is imported when its command runs
            assert isinstance(node.value, ast.Dict)
            targets = [v.value for v in node.value.values if isinstance(v, ast.Constant) and isinstance(v.value, str)]
        else:
            continue
        found += [(node.lineno, t, id(node) in in_function) for t in targets
                  if t == "hux" or t.startswith("hux.") or t == DYNAMIC]
    return found


#: the table of hux.cli that names the module of each command (imported by name when the command runs)
DISPATCH_TABLE = "COMMANDS"
#: an ``importlib.import_module`` whose module is computed: allowed only in hux.cli (the dispatch table)
DYNAMIC = "<computed>"


def _assigns(node: ast.Assign | ast.AnnAssign, name: str) -> bool:
    targets = node.targets if isinstance(node, ast.Assign) else [node.target]
    return any(isinstance(t, ast.Name) and t.id == name for t in targets)


def _is_import_module(node: ast.AST) -> bool:
    """``importlib.import_module(...)`` or ``import_module(...)``."""
    if not isinstance(node, ast.Call):
        return False
    func = node.func
    return (isinstance(func, ast.Attribute) and func.attr == "import_module") or (
        isinstance(func, ast.Name) and func.id == "import_module")


def _import_module_target(node: ast.Call, module: str) -> str:
    """The module an import_module call names: a literal, or an f-string's literal prefix (the package it
    picks from, e.g. ``f"hux.monitoring.dashboards.{name}"``); DYNAMIC when nothing of it is literal."""
    arg = node.args[0] if node.args else None
    if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
        return arg.value
    if isinstance(arg, ast.JoinedStr) and arg.values and isinstance(arg.values[0], ast.Constant):
        prefix = str(arg.values[0].value).rstrip(".")
        if prefix:
            return prefix
    return DYNAMIC


def violations(root: Path) -> list[str]:
    problems = []
    for path in sorted((root / "hux").rglob("*.py")):
        source = module_name(path, root)
        source_pkg = package_of(source)
        if source_pkg not in RANKS:
            problems.append(f"{path.relative_to(root)}: package {source_pkg!r} has no place in the graph "
                            f"(add it to RANKS and docs/architecture.md)")
            continue
        for line, target, lazy in imports(path, root):
            if target == DYNAMIC:
                if source not in TOP_MODULES:
                    problems.append(f"{path.relative_to(root)}:{line} imports a module whose name is computed: only "
                                    f"hux.cli's {DISPATCH_TABLE} table imports by name (name the module, or add a "
                                    f"command to the table)")
                continue
            target_pkg = package_of(target)
            if target_pkg not in RANKS:
                problems.append(f"{path.relative_to(root)}:{line} imports {target}, a package with no place in the graph")
            elif RANKS[target_pkg] > RANKS[source_pkg]:
                where = "inside a function" if lazy else "at module level"
                problems.append(f"{path.relative_to(root)}:{line} imports {target} {where}: "
                                f"{source_pkg} may not depend on {target_pkg} (graph: "
                                f"{' <- '.join(sorted(RANKS, key=RANKS.get))})")
    return problems


def test_every_import_follows_the_package_graph() -> None:
    problems = violations(SRC)
    assert not problems, "imports against the package graph:\n" + "\n".join(problems)


@pytest.mark.parametrize("source, package, line, expected", [
    ("ops/cli.py", "hux.ops", "def f():\n    from hux.stack.native import NativeStack\n",
     "hux/ops/cli.py:2 imports hux.stack.native inside a function: ops may not depend on stack"),
    ("monitoring/x.py", "hux.monitoring", "from hux.ops import archive\n",
     "hux/monitoring/x.py:1 imports hux.ops at module level: monitoring may not depend on ops"),
    ("doubles/x.py", "hux.doubles", "from ..bot import metrics\n",
     "hux/doubles/x.py:1 imports hux.bot at module level: doubles may not depend on bot"),
    ("paths.py", "hux", "import hux.cli\n",
     "hux/paths.py:1 imports hux.cli at module level: base may not depend on cli"),
    ("monitoring/y.py", "hux.monitoring", "import importlib\ndef f():\n    importlib.import_module('hux.ops.cli')\n",
     "hux/monitoring/y.py:3 imports hux.ops.cli inside a function: monitoring may not depend on ops"),
    ("bot/z.py", "hux.bot", "import importlib\ndef f(n):\n    return importlib.import_module(f'hux.stack.{n}')\n",
     "hux/bot/z.py:3 imports hux.stack inside a function: bot may not depend on stack"),
    ("ops/w.py", "hux.ops", "from importlib import import_module\ndef f(n):\n    return import_module(n)\n",
     "hux/ops/w.py:3 imports a module whose name is computed: only hux.cli's COMMANDS table imports by name"),
])
def test_a_backward_import_is_named(tmp_path: Path, source: str, package: str, line: str, expected: str) -> None:
    target = tmp_path / "hux" / source
    target.parent.mkdir(parents=True, exist_ok=True)
    (target.parent / "__init__.py").write_text("")
    (tmp_path / "hux" / "__init__.py").write_text("")
    target.write_text(line)
    problems = violations(tmp_path)
    assert len(problems) == 1 and problems[0].startswith(expected), problems


def test_graph_nodes_of_modules() -> None:
    assert package_of("hux.paths") == "base" and package_of("hux.cli") == "cli" and package_of("hux.stack.health.run") == "stack"


def test_an_unplaced_package_fails(tmp_path: Path) -> None:
    (tmp_path / "hux" / "extra").mkdir(parents=True)
    (tmp_path / "hux" / "__init__.py").write_text("")
    (tmp_path / "hux" / "extra" / "__init__.py").write_text("from hux import paths\n")
    problems = violations(tmp_path)
    assert problems and "no place in the graph" in problems[0], problems


def test_the_dispatch_table_is_read_like_imports() -> None:
    """hux.cli's COMMANDS names modules it imports by name: the graph sees each one, and each exists."""
    seen = {target for _, target, _ in imports(SRC / "hux" / "cli.py", SRC)}
    from hux.cli import COMMANDS, WIRING

    assert set(COMMANDS.values()) <= seen
    for name in {*COMMANDS.values(), *WIRING}:
        where = SRC.joinpath(*name.split("."))
        assert where.with_suffix(".py").is_file() or (where / "__init__.py").is_file(), f"{name}: no such module"


def test_a_dispatch_table_entry_against_the_graph_is_named(tmp_path: Path) -> None:
    (tmp_path / "hux" / "stack").mkdir(parents=True)
    for init in ("hux/__init__.py", "hux/stack/__init__.py"):
        (tmp_path / init).write_text("")
    (tmp_path / "hux" / "stack" / "cli.py").write_text('COMMANDS = {"x": "hux.stack.cli"}\n')
    (tmp_path / "hux" / "paths.py").write_text('COMMANDS: dict[str, str] = {"up": "hux.stack.cli"}\n')
    assert violations(tmp_path) == [], "only hux.cli's table counts as imports"
    (tmp_path / "hux" / "cli.py").write_text('COMMANDS: dict[str, str] = {"up": "hux.stack.cli", "y": "hux.nowhere"}\n')
    problems = violations(tmp_path)
    assert len(problems) == 1 and "imports hux.nowhere, a package with no place in the graph" in problems[0], problems

"""The package graph is one-way (docs/architecture.md, "Package graph").

    config/paths  <-  doubles  <-  bot  <-  monitoring  <-  ops  <-  stack  <-  cli

A package imports only from packages to its left (and itself): ``hux.config``,
``hux.paths`` and ``hux`` itself are the base; ``hux.doubles`` is a leaf that
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
BASE_MODULES = {"hux", "hux.config", "hux.paths"}
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
        else:
            continue
        found += [(node.lineno, t, id(node) in in_function) for t in targets if t == "hux" or t.startswith("hux.")]
    return found


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

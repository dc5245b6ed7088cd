"""The lint and type gate of ``scripts/run_tests.py`` (docs/development.md, "Lint and types").

With no pytest arguments (what .ci/run runs) the script runs ``ruff check`` and
``mypy`` with the configuration in pyproject.toml, and a finding stops the run
before pytest starts. ``--lint-only`` runs the gate alone.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
GATE_TIMEOUT = 240  # mypy over src/ from a cold cache on a loaded 2-core machine takes ~60 s


def _run_script(tree: Path, argv: list[str]) -> subprocess.CompletedProcess[str]:
    """Run ``tree/scripts/run_tests.py`` inside this virtualenv, as if ``tree`` were the repository."""
    driver = textwrap.dedent(
        f"""
        import sys
        from pathlib import Path
        sys.path.insert(0, {str(tree / "scripts")!r})
        import run_tests
        run_tests.boot.VENV = Path(sys.prefix)  # this virtualenv is the project's: no install, no re-exec
        sys.exit(run_tests.main({argv!r}))
        """
    )
    return subprocess.run(
        [sys.executable, "-c", driver], capture_output=True, text=True, timeout=GATE_TIMEOUT, cwd=tree
    )


def _gate(tree: Path, argv: list[str]) -> tuple[int, str]:
    """(exit code, stdout and stderr) of the script run in ``tree``."""
    result = _run_script(tree, argv)
    return result.returncode, result.stdout + result.stderr


def _tree_with(tmp_path: Path, module_text: str, where: str = "sample.py") -> Path:
    """A copy of the repository's scripts and lint configuration around one module of ours (``hux/<where>``)."""
    tree = tmp_path / "repo"
    shutil.copytree(ROOT / "scripts", tree / "scripts", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tree / "pyproject.toml")
    package = tree / "src" / "hux"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / where).parent.mkdir(parents=True, exist_ok=True)
    for parent in (package / where).relative_to(package).parents:
        (package / parent / "__init__.py").touch()
    (package / where).write_text(module_text)
    (tree / "tests").mkdir()
    (tree / "tests" / "test_never.py").write_text("def test_never_runs() -> None:\n    raise AssertionError\n")
    return tree


def test_a_finding_fails_the_full_run_before_pytest_starts(tmp_path: Path) -> None:
    tree = _tree_with(
        tmp_path,
        "import os\n\n\ndef half(n: int) -> int:\n    return n / 2\n",
    )
    code, out = _gate(tree, [])
    assert code == 1, out
    assert "F401" in out and "src/hux/sample.py" in out  # ruff: the unused import, with its file
    assert "Incompatible return value type" in out  # mypy: float returned as int
    assert "ruff check --fix" in out and ".venv/bin/mypy" in out  # how to reproduce and fix locally
    assert "tests not run" in out
    assert "test_never" not in out and "1 failed" not in out  # pytest never started


def test_a_blanket_noqa_fails_the_gate(tmp_path: Path) -> None:
    tree = _tree_with(tmp_path, "import os  # noqa\n")  # hides the unused import and names no code
    code, out = _gate(tree, ["--lint-only"])
    assert code == 1, out
    assert "PGH004" in out and "src/hux/sample.py" in out


def test_the_gate_lints_the_bench_scripts_too(tmp_path: Path) -> None:
    tree = _tree_with(tmp_path, "def half(n: int) -> float:\n    return n / 2\n")
    (tree / "bench").mkdir()
    (tree / "bench" / "slow.py").write_text("import os\n")
    code, out = _gate(tree, ["--lint-only"])
    assert code == 1, out
    assert "bench/slow.py" in out and "F401" in out


def test_lint_only_runs_just_the_gate(tmp_path: Path) -> None:
    tree = _tree_with(tmp_path, "def half(n: int) -> float:\n    return n / 2\n")
    code, out = _gate(tree, ["--lint-only"])
    assert code == 0, out
    assert "ruff and mypy clean" in out
    assert "test_never_runs" not in out


@pytest.mark.parametrize("where", ["ops/sample.py", "stack/health/sample.py"])
def test_every_package_is_type_checked_strictly(tmp_path: Path, where: str) -> None:
    # an untyped function and a bare generic: the default checks let both through, strict mode does not
    tree = _tree_with(tmp_path, "def half(n):\n    return n / 2\n\n\ndef names() -> dict:\n    return {}\n", where)
    code, out = _gate(tree, ["--lint-only"])
    assert code == 1, out
    assert f"src/hux/{where}:1: error: Function is missing a type annotation" in out
    assert f"src/hux/{where}:5: error: Missing type parameters for generic type" in out


def test_the_gate_is_clean_on_the_repository() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "run_tests.py"), "--lint-only"],
        capture_output=True, text=True, timeout=GATE_TIMEOUT, cwd=ROOT,
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]

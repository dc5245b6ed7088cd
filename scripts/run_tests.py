#!/usr/bin/env python3
"""Run the whole test suite: README command two, and what .ci/run calls.

Installs what the tests need on a fresh Debian machine (the Prometheus stack
packages, PostgreSQL, docker-compose for validating the compose file), starts
the PostgreSQL clusters the tests use, then runs pytest in the project's
virtualenv. Extra arguments go to pytest (e.g. ``-k rules`` or ``-x``).

With no arguments (the full suite, what .ci/run runs) the lint and type gate
runs first: ``ruff check`` and ``mypy`` (configured in pyproject.toml); if
either finds something, pytest does not start. ``--lint-only`` runs just the
gate; a targeted run (any pytest argument) skips it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _bootstrap as boot

PG_VERSION = "15"
PG_CLUSTERS = {"main": 5432, "huxfault": 5433}  # huxfault: tests stop and start it under the bot
PG_SOCKET = "/var/run/postgresql"

LINT_ONLY = "--lint-only"
RUFF_PATHS = ["src", "scripts", "bench"]  # what `ruff check` covers in the gate (mypy: `files` in pyproject.toml)


def _pg(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), capture_output=True, text=True, check=check)


def _as_postgres(sql: str, port: int, db: str = "postgres") -> str:
    cmd = ["psql", "-qtAX", "-p", str(port), "-d", db, "-c", sql]
    if os.geteuid() == 0:
        cmd = ["runuser", "-u", "postgres", "--", *cmd]
    out: str = _pg(*cmd).stdout
    return out.strip()


def ensure_postgres() -> None:
    """Start (creating if needed) the test clusters; give root a superuser role over the socket."""
    if os.geteuid() != 0:
        boot.say("not root: using PostgreSQL as already running (set HUX_TEST_PG_URL to point elsewhere)")
        return
    listing = _pg("pg_lsclusters", "--no-header").stdout
    existing = {line.split()[1]: line.split() for line in listing.splitlines() if line.strip()}
    for name, port in PG_CLUSTERS.items():
        if name not in existing:
            boot.say(f"creating PostgreSQL cluster {PG_VERSION}/{name} on port {port}")
            _pg("pg_createcluster", PG_VERSION, name, "-p", str(port), "--", "--auth-local=peer", "--auth-host=scram-sha-256")
        if name not in existing or existing[name][3] != "online":
            boot.say(f"starting PostgreSQL cluster {PG_VERSION}/{name}")
            _pg("pg_ctlcluster", PG_VERSION, name, "start")
        if not _as_postgres("SELECT 1 FROM pg_roles WHERE rolname = 'root'", port):
            _as_postgres("CREATE ROLE root SUPERUSER LOGIN", port)
        if not _as_postgres("SELECT 1 FROM pg_database WHERE datname = 'hux_test'", port):
            _as_postgres("CREATE DATABASE hux_test OWNER root", port)
    os.environ.setdefault("HUX_TEST_PG_URL", f"postgresql+psycopg://root@/hux_test?host={PG_SOCKET}&port={PG_CLUSTERS['main']}")
    os.environ.setdefault(
        "HUX_TEST_PG_FAULT_URL", f"postgresql+psycopg://root@/hux_test?host={PG_SOCKET}&port={PG_CLUSTERS['huxfault']}"
    )
    os.environ.setdefault("HUX_TEST_PG_FAULT_CLUSTER", f"{PG_VERSION} huxfault")


def lint_gate() -> int:
    """Run ruff and mypy from the virtualenv; 0 only when both are clean."""
    bin_dir = Path(sys.executable).parent
    ruff_paths = [p for p in RUFF_PATHS if (boot.ROOT / p).exists()]
    gates = [
        ("ruff", [str(bin_dir / "ruff"), "check", "--output-format", "concise", *ruff_paths],
         f"reproduce: .venv/bin/ruff check {' '.join(ruff_paths)}; most import-order and unused-import findings "
         f"fix themselves with .venv/bin/ruff check --fix <file>; rules: [tool.ruff] in pyproject.toml"),
        ("mypy", [str(bin_dir / "mypy")],
         "reproduce: .venv/bin/mypy (files and strictness: [tool.mypy] in pyproject.toml); "
         "annotate the function or narrow the type, a `# type: ignore[code]` needs a reason beside it"),
    ]
    failed = []
    for name, cmd, hint in gates:
        boot.say(f"lint gate: {name}")
        if subprocess.run(cmd, cwd=boot.ROOT).returncode != 0:
            failed.append(name)
            boot.say(f"lint gate: {name} FAILED; {hint}")
    if failed:
        boot.say(f"lint gate failed ({', '.join(failed)}): tests not run")
        return 1
    boot.say("lint gate: ruff and mypy clean")
    return 0


def main(argv: list[str]) -> int:
    lint_only = LINT_ONLY in argv
    if Path(sys.prefix).resolve() != boot.VENV.resolve():
        if not lint_only:
            boot.ensure_packages(boot.TEST_PACKAGES)
        python = boot.ensure_venv("test")
        if not lint_only:
            ensure_postgres()
        boot.reexec_in_venv(python, __file__, argv)
    os.chdir(boot.ROOT)
    if lint_only or not argv:
        status = lint_gate()
        if lint_only or status != 0:
            return status
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-rfE", *argv])
    return result.returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

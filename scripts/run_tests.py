#!/usr/bin/env python3
"""Run the whole test suite: README command two, and what .ci/run calls.

Installs what the tests need on a fresh Debian machine (the Prometheus stack
packages, PostgreSQL, docker-compose for validating the compose file), starts
the PostgreSQL clusters the tests use, then runs pytest in the project's
virtualenv. Extra arguments go to pytest (e.g. ``-k rules`` or ``-x``).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _bootstrap as boot  # noqa: E402

PG_VERSION = "15"
PG_CLUSTERS = {"main": 5432, "huxfault": 5433}  # huxfault: tests stop and start it under the bot
PG_SOCKET = "/var/run/postgresql"


def _pg(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(list(args), capture_output=True, text=True, check=check)


def _as_postgres(sql: str, port: int, db: str = "postgres") -> str:
    cmd = ["psql", "-qtAX", "-p", str(port), "-d", db, "-c", sql]
    if os.geteuid() == 0:
        cmd = ["runuser", "-u", "postgres", "--", *cmd]
    return _pg(*cmd).stdout.strip()


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


def main(argv: list[str]) -> int:
    if Path(sys.prefix).resolve() != boot.VENV.resolve():
        boot.ensure_packages(boot.TEST_PACKAGES)
        python = boot.ensure_venv("test")
        ensure_postgres()
        boot.reexec_in_venv(python, __file__, argv)
    os.chdir(boot.ROOT)
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-rfE", *argv])
    return result.returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

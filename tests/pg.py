"""The PostgreSQL fault cluster: stop/start it, and a scratch database on it (bot, e2e and bench).

``scripts/run_tests.py`` creates and starts the cluster and exports
``HUX_TEST_PG_FAULT_URL`` / ``HUX_TEST_PG_FAULT_CLUSTER``; the bot outage test, the e2e database
scenario and ``bench/e2e_alert_latency.py`` stop it under a running bot.
"""

from __future__ import annotations

import subprocess
import uuid
from contextlib import contextmanager
from typing import Iterator


def pg_ctl(cluster: list[str], action: str) -> None:
    done = subprocess.run(["pg_ctlcluster", *cluster, action], capture_output=True, text=True, timeout=60)
    said = (done.stdout + done.stderr).strip()
    if done.returncode != 0 and not (action == "start" and "already running" in said):
        raise AssertionError(f"pg_ctlcluster {' '.join(cluster)} {action} failed: {said}")


@contextmanager
def scratch_database(base_url: str, cluster: list[str], prefix: str) -> Iterator[str]:
    """A fresh database on the fault cluster (its URL); dropped afterwards, with the cluster running again.

    A database of its own per run, so keys from earlier runs cannot make a lost message look present.
    """
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url
    from sqlalchemy.pool import NullPool

    pg_ctl(cluster, "start")
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    # NullPool: the cluster is stopped in between, so never reuse a connection.
    admin = create_engine(make_url(base_url), isolation_level="AUTOCOMMIT", poolclass=NullPool)
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(base_url).set(database=name).render_as_string(hide_password=False)
    finally:
        pg_ctl(cluster, "start")
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

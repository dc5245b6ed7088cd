"""Fixtures for the bot-core tests: fresh PostgreSQL databases, in-process bots, feeds, metric reading."""

from __future__ import annotations

import asyncio
import json
import os
import time
import uuid
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Iterable

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from hux.bot.app import BotApp
from hux.bot.config import BotConfig
from hux.bot.metrics import BotMetrics
from hux.bot.profile import resolve_profile


def pg_url(env: str) -> str:
    url = os.environ.get(env)
    if not url:
        pytest.fail(f"{env} is not set: run the suite with `python3 scripts/run_tests.py`, which starts PostgreSQL", pytrace=False)
    return url


class PgDatabases:
    """Creates throw-away databases on a cluster (root is superuser there) and drops them afterwards."""

    def __init__(self, base_url: str) -> None:
        self.base = make_url(base_url)
        self.created: list[str] = []

    def _admin(self):
        return create_engine(self.base.set(database="postgres"), isolation_level="AUTOCOMMIT")

    def create(self) -> str:
        name = f"hux_bot_{uuid.uuid4().hex[:12]}"
        engine = self._admin()
        with engine.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        engine.dispose()
        self.created.append(name)
        return self.base.set(database=name).render_as_string(hide_password=False)

    def drop_all(self) -> None:
        engine = self._admin()
        try:
            with engine.connect() as conn:
                for name in self.created:
                    conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        except Exception:  # noqa: BLE001 - the fault cluster may be down if a test failed mid-outage
            pass
        engine.dispose()


@pytest.fixture
def pg_database():
    dbs = PgDatabases(pg_url("HUX_TEST_PG_URL"))
    yield dbs.create
    dbs.drop_all()


def bot_config(**overrides: Any) -> BotConfig:
    """A config for in-process bots: ephemeral ports, quick probes, no waiting on shutdown."""
    base: dict[str, Any] = {
        "port": 0,
        "db_probe_interval_seconds": 0.5,
        "db_retry_max_seconds": 1.0,
        "shutdown_grace_seconds": 5.0,
        "demo": {"doubles_port": 0},
    }
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            base[key] = {**base[key], **value}
        else:
            base[key] = value
    return BotConfig.model_validate(base)


@asynccontextmanager
async def running_bot(config: BotConfig, *, token: str | None = None, demo: bool = True):
    """A BotApp started in this event loop (doubles in-process in demo mode: ``app.profile.doubles``),
    always stopped afterwards."""
    profile = await resolve_profile(config, token, demo=demo)
    app = BotApp(config, profile, metrics=BotMetrics(group_label_limit=config.group_label_limit, mode=profile.mode))
    try:
        await app.start()
        yield app
    finally:
        await app.stop()


async def wait_until(predicate, timeout: float = 20.0, interval: float = 0.05) -> bool:
    """Poll ``predicate`` (sync or async) until true or ``timeout``; returns its last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value or time.monotonic() >= deadline:
            return bool(value)
        await asyncio.sleep(interval)


def write_feed(path: Path, records: Iterable[dict | bytes | str]) -> Path:
    with open(path, "wb") as fh:
        for record in records:
            if isinstance(record, bytes):
                fh.write(record.rstrip(b"\n") + b"\n")
            elif isinstance(record, str):
                fh.write(record.encode("utf-8") + b"\n")
            else:
                fh.write(json.dumps(record).encode("utf-8") + b"\n")
    return path


def samples(body: str) -> dict[str, list[tuple[dict, float]]]:
    """Parsed exposition: sample name -> [(labels, value)]."""
    out: dict[str, list[tuple[dict, float]]] = {}
    for family in text_string_to_metric_families(body):
        for s in family.samples:
            out.setdefault(s.name, []).append((s.labels, s.value))
    return out


def total(parsed: dict[str, list[tuple[dict, float]]], name: str, **labels: str) -> float:
    return sum(v for lbl, v in parsed.get(name, []) if all(lbl.get(k) == val for k, val in labels.items()))


def metric_value(registry, name: str, **labels: str) -> float:
    value = registry.get_sample_value(name, labels or None)
    return 0.0 if value is None else value

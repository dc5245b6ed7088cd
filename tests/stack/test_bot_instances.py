"""`hux up` with ``bot.instances = 3`` on PostgreSQL: three supervised bots on consecutive ports, all scraped, one leader."""

from __future__ import annotations

import socket
from contextlib import ExitStack
from pathlib import Path

import httpx

from tests.bot.conftest import pg_database, samples, total  # noqa: F401 - pg_database is a fixture used below
from tests.stack.conftest import start_stack, stop_stack, wait_for


def consecutive_free_ports(count: int, attempts: int = 50) -> int:
    """The first of ``count`` consecutive free loopback ports."""
    for _ in range(attempts):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            base = probe.getsockname()[1]
        if base + count > 65535:
            continue
        with ExitStack() as held:
            try:
                for port in range(base, base + count):
                    sock = held.enter_context(socket.socket())
                    sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        return base
    raise AssertionError(f"no {count} consecutive free ports found")


def test_hux_up_runs_three_bot_instances_scraped_with_one_leader(tmp_path: Path, pg_database) -> None:  # noqa: F811
    url = pg_database()
    base = consecutive_free_ports(3)
    stack = start_stack(tmp_path / "stack", ports={"bot": base},
                        config_extra=f'\n[bot]\ninstances = 3\ndatabase_url = "{url}"\n')
    try:
        assert all(f"{name} " in stack.up_output for name in ("bot_2", "bot_3")), stack.up_output
        status = stack.status()
        names = {row["name"]: row for row in status["components"]}
        assert {"bot", "bot_2", "bot_3"} <= set(names), status
        assert all(names[n]["ready"] for n in ("bot", "bot_2", "bot_3")), status

        def scraped() -> list[str]:
            r = httpx.get(stack.url("prometheus") + "/api/v1/targets", auth=stack.credentials, timeout=5)
            return sorted(t["labels"]["instance"] for t in r.json()["data"]["activeTargets"]
                          if t["labels"].get("job") == "bot" and t["health"] == "up")

        assert wait_for(lambda: scraped() if len(scraped()) == 3 else [], 30, "three bot targets up") == \
            [f"127.0.0.1:{base + i}" for i in range(3)]

        def leaders() -> float:
            found = 0.0
            for i in range(3):
                parsed = samples(httpx.get(f"http://127.0.0.1:{base + i}/metrics", timeout=5).text)
                assert total(parsed, "hux_bot_instances_configured") == 3
                found += total(parsed, "hux_bot_leader")
            return found

        assert wait_for(lambda: leaders() == 1, 30, "exactly one leader")
    finally:
        stop_stack(stack)

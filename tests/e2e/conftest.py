"""Fixtures of the end-to-end suite: the three receivers, one stack per module, one scenario per test."""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

from tests.conftest import require_binary
from tests.e2e.latency import LatencyLog, output_path
from tests.e2e.receivers import Receivers
from tests.e2e.scenario import Scenario
from tests.e2e.stack import E2EStack

_LOG = LatencyLog()


def _known_alertnames() -> tuple[str, ...]:
    from hux.monitoring.rules import ALERTS
    from hux.ops.notify import TEST_ALERTNAME

    return (*ALERTS, f"{TEST_ALERTNAME}Critical", f"{TEST_ALERTNAME}Warning")


@pytest.fixture(scope="session")
def receivers() -> Iterator[Receivers]:
    recv = Receivers(_known_alertnames()).start()
    try:
        yield recv
    finally:
        recv.stop()


@pytest.fixture(scope="session")
def latency_log() -> Iterator[LatencyLog]:
    yield _LOG
    path = output_path()
    if path is not None and _LOG.records:
        _LOG.write(path)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _LOG.records:
        terminalreporter.section("alert detection latency (fault in -> notification out)")
        terminalreporter.write_line(_LOG.table())


@contextlib.contextmanager
def running_stack(tmp_path_factory: pytest.TempPathFactory, receivers: Receivers, **options: Any
                  ) -> Iterator[E2EStack]:
    """Render and start a stack; stop every process it started, whatever happens."""
    for binary in ("prometheus", "promtool", "amtool", "prometheus-alertmanager", "prometheus-node-exporter"):
        require_binary(binary)
    home: Path = tmp_path_factory.mktemp("e2e-stack")
    stack = E2EStack(home, receivers, **options)
    try:
        stack.start()
        yield stack
    finally:
        stack.stop()


def reset_stack(stack: E2EStack, receivers: Receivers, quiet_timeout: float = 90.0) -> None:
    """Back to a healthy, quiet stack: bots up without faults, host healthy, no silences, no alerts."""
    for silence in stack.am.silences():
        if silence["status"]["state"] in ("active", "pending"):
            stack.am.expire_silence(silence["id"])
    receivers.reset()
    stack.host.healthy()
    for bot in stack.bots.values():
        if bot.child is None or not bot.child.alive():
            stack.start_bot(bot)
        bot.clear_faults()
    stack.wait_targets_up(timeout=30)
    started = time.monotonic()
    leftovers = sorted({(a["labels"]["alertname"], a["state"]) for a in stack.active_alerts()})
    stack.wait_quiet(timeout=quiet_timeout)
    if leftovers:
        print(f"reset waited {time.monotonic() - started:.1f}s for {leftovers}")


@pytest.fixture
def scenario(request: pytest.FixtureRequest, receivers: Receivers, latency_log: LatencyLog) -> Iterator[Scenario]:
    """A fresh scenario on the module's ``stack`` fixture (reset before and after)."""
    stack: E2EStack = request.getfixturevalue("stack")
    reset_stack(stack, receivers)
    receivers.reset()  # anything that trickled in while settling belongs to no scenario
    name = request.node.name.removeprefix("test_")
    yield Scenario(name, stack, receivers, latency_log)
    for bot in stack.bots.values():
        if bot.child is not None and bot.child.alive():
            bot.clear_faults()
    stack.host.healthy()

"""`hux restore prometheus` on a running native stack stops and starts Prometheus alone.

The restore asks the stack's supervisor to stop Prometheus, swaps the data in,
asks it to start Prometheus again and compares the verification queries. The
bot, Alertmanager, node_exporter and the supervisor keep their processes (the
restore once ran `hux down` and `hux up`, restarting everything).
"""

from __future__ import annotations

import pytest

from tests.stack.conftest import StackUnderTest, wait_for

pytestmark = pytest.mark.integration

OTHERS = ("supervisor", "alertmanager", "node_exporter", "inbox", "bot")


def test_a_native_restore_restarts_prometheus_alone(stack: StackUnderTest) -> None:
    wait_for(lambda: stack.component("prometheus").get("state") == "running"
             and all(n in stack.identities() for n in OTHERS), 60, "the stack to run")
    backup = stack.hux("backup", "prometheus", "--no-prune", "-q")
    assert backup.returncode in (0, 3), backup.stdout + backup.stderr
    archives = sorted((stack.home / "data" / "backups").glob("hux-prometheus-*.tar.gz"))
    assert len(archives) == 1, backup.stdout
    before = stack.identities()

    result = stack.hux("restore", "prometheus", str(archives[0]), "-q", timeout=300)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    after = stack.identities()
    for name in OTHERS:
        assert after.get(name) == before[name], f"{name} was restarted by the restore:\n{output}"
    assert "prometheus alone" in output, output          # the stop/start steps name who did them
    assert "native stack renders its configs" in output  # configs come from the settings, not the archive
    assert after["prometheus"] != before["prometheus"]
    assert stack.component("prometheus")["state"] == "running"
    assert stack.component("prometheus")["restarts"] == 0   # a requested stop is not a crash

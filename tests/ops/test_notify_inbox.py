"""`hux notify-test` with the default routing (the local inbox only) fails: the inbox is reached, but no person is.

A real Alertmanager with the rendered configuration and the real inbox process; then the same with an e-mail
receiver (an in-process SMTP server), which passes and names it.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

import pytest
from aiosmtpd.controller import Controller

from hux.monitoring.render import render_native
from hux.monitoring.settings import load_settings
from hux.ops.notify import notify_test
from tests.conftest import free_port
from tests.monitoring.test_inbox_alertmanager import inbox_process
from tests.ops.conftest import AmProcess
from tests.stack.conftest import stack_env

pytestmark = pytest.mark.integration

NOBODY = ("No one is paged: alerts go only to the local inbox (hux alerts). To page a person, enable "
          "receivers.email or receivers.slack in hux.toml (README: Configuration).")


def _config(home: Path, inbox_port: int, extra: str = "") -> Path:
    path = home / "hux.toml"
    path.write_text(f'[stack.ports]\ninbox = {inbox_port}\n[alertmanager]\ngroup_wait = "1s"\n'
                    f'critical_group_wait = "1s"\ngroup_interval = "1s"\n{extra}')
    return path


@pytest.fixture
def alertmanager(am_factory: Callable[..., AmProcess]) -> Callable[[Path, Path], AmProcess]:
    """A real Alertmanager on the rendered run directory (its templates beside its config)."""
    def start(home: Path, config: Path) -> AmProcess:
        settings = load_settings(config, environ={})
        rendered = render_native(settings, home / "run", data_dir=home / "data", grafana_enabled=False, environ={})
        return am_factory(config=rendered.alertmanager_config)

    return start


def _notify_cli(home: Path, config: Path, am_url: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "hux.cli", "--config", str(config), "notify-test",
                           "--alertmanager-url", am_url, "--timeout", "30"], env=stack_env(home), cwd=home,
                          capture_output=True, text=True, timeout=120)


def test_only_the_inbox_reached_is_a_failure_with_the_sentence(alertmanager: Callable[[Path, Path], AmProcess],
                                                               tmp_path: Path) -> None:
    inbox_port = free_port()
    config = _config(tmp_path, inbox_port)
    am = alertmanager(tmp_path, config)
    with inbox_process(tmp_path, inbox_port):
        result = notify_test(am.url, timeout=30)
        assert {r for names in result.routes.values() for r in names} == {"inbox", "blackhole"}
        [webhook] = result.integrations
        assert webhook.receivers == ["inbox"] and webhook.status == "delivered"   # the inbox counts as reached
        assert result.paging.nobody and not result.ok
        cli = _notify_cli(tmp_path, config, am.url)
    assert cli.returncode == 1, cli.stdout + cli.stderr
    assert NOBODY in cli.stdout


class _Sink:
    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # aiosmtpd's hook
        return "250 OK"


def test_an_email_receiver_reaches_a_person_and_passes(alertmanager: Callable[[Path, Path], AmProcess],
                                                       tmp_path: Path) -> None:
    smtp = Controller(_Sink(), hostname="127.0.0.1", port=free_port())
    smtp.start()
    try:
        inbox_port = free_port()
        config = _config(tmp_path, inbox_port, f'[receivers.email]\nenabled = true\n'
                                               f'smtp_smarthost = "127.0.0.1:{smtp.port}"\nrequire_tls = false\n'
                                               '[alerts]\nrunbook_base_url = "https://runbooks.example.org/runbooks.md"\n')
        am = alertmanager(tmp_path, config)
        with inbox_process(tmp_path, inbox_port):
            cli = _notify_cli(tmp_path, config, am.url)
    finally:
        smtp.stop()
    assert cli.returncode == 0, cli.stdout + cli.stderr
    assert "Critical alerts page email; warnings go to email (and to the local inbox: hux alerts)." in cli.stdout

"""The bot's Telegram ``/status`` lists the native stack's firing alerts from its Alertmanager behind basic auth.

A real Alertmanager runs with the command line and web config the native plan gives it; the bot runs with the
settings the plan's bot spec hands it (its environment: the Alertmanager's URL, the user and the password
file's path) and the Telegram double as its Bot API. A wrong password and a stopped Alertmanager each give one
clear line in the reply; the password is never in a reply, a log line or a command line.
"""

from __future__ import annotations

import logging
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from hux.bot.config import load_bot_config
from hux.config import ConfigError
from hux.doubles.market import RunningDoubles, start_doubles
from hux.monitoring import auth
from hux.monitoring.render import render_native
from hux.monitoring.settings import load_settings
from hux.stack.components import STATUS_ENV, build_plan, decide_grafana
from hux.stack.plan import StackPaths
from tests.bot.conftest import running_bot, wait_until
from tests.conftest import free_port, require_binary
from tests.ops.conftest import _stop
from tests.stack.conftest import BINARIES, PORT_NAMES, base_config, stack_env, wait_for

TOKEN = "1000000001:demo-token-for-the-local-double"
ALERT_CHAT = -1001234567890
ADMIN = 111


def _bot_toml(doubles: RunningDoubles, home: Path) -> str:
    return f"""
[bot]
port = 0
database_url = "sqlite:///{home / 'status.db'}"
db_probe_interval_seconds = 0.5
shutdown_grace_seconds = 5.0

[bot.demo]
doubles_port = 0

[bot.telegram]
api_base = "{doubles.url('telegram')}"
alert_chat_id = "{ALERT_CHAT}"
poll_timeout_seconds = 1
admin_user_ids = [{ADMIN}]
admin_commands_per_minute = 60.0

[bot.dexscreener]
base_url = "{doubles.url('dexscreener')}"

[bot.rugcheck]
base_url = "{doubles.url('rugcheck')}"
"""


def test_the_bot_spec_names_the_password_file_only_for_the_stack_alertmanager(tmp_path: Path) -> None:
    for binary in BINARIES:
        require_binary(binary)
    ports = {name: free_port() for name in PORT_NAMES}
    settings, plan = _plan(tmp_path, ports)
    bot = plan.component("bot")
    password_file = auth.auth_files(tmp_path / "data").password_file
    assert bot.env[STATUS_ENV + "URL"] == settings.url("alertmanager")
    assert bot.env[STATUS_ENV + "USER"] == auth.USER
    assert bot.env[STATUS_ENV + "PASSWORD_FILE"] == str(password_file.resolve())
    password = password_file.read_text().strip()
    assert not any(password in arg for arg in bot.argv) and password not in repr(bot.env)

    # an operator's own Alertmanager elsewhere: asked as configured, and never sent the stack's password
    _, plan = _plan(tmp_path, ports, '[bot.telegram]\nstatus_alertmanager_url = "http://alerts.example.org:9093"\n')
    env = plan.component("bot").env
    assert not any(key.startswith(STATUS_ENV) for key in env), env


def _plan(home: Path, ports: dict[str, int], extra: str = "") -> tuple[Any, Any]:
    (home / "hux.toml").write_text(base_config(ports, extra))
    settings = load_settings(home / "hux.toml", environ=stack_env(home))
    paths = StackPaths(home)
    rendered = render_native(settings, paths.run_dir, data_dir=paths.data, grafana_enabled=False)
    return settings, build_plan(settings, paths, rendered, config_path=str(home / "hux.toml"),
                                grafana=decide_grafana(settings))


def _alertmanager(home: Path, argv: tuple[str, ...]) -> subprocess.Popen[bytes]:
    (home / "logs").mkdir(parents=True, exist_ok=True)
    with open(home / "logs" / "alertmanager.log", "wb") as log:
        return subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, cwd=home)


async def test_status_lists_the_firing_alerts_of_an_alertmanager_behind_basic_auth(
        hux_home: Path, caplog: pytest.LogCaptureFixture) -> None:
    for binary in BINARIES:
        require_binary(binary)
    caplog.set_level(logging.DEBUG)
    settings, plan = _plan(hux_home, {name: free_port() for name in PORT_NAMES})
    url = settings.url("alertmanager")
    password_file = auth.auth_files(hux_home / "data").password_file
    password = password_file.read_text().strip()
    login = (auth.USER, password)
    alertmanager = _alertmanager(hux_home, plan.component("alertmanager").argv)
    doubles = await start_doubles()
    try:
        wait_for(lambda: _answers(url + "/-/ready", login), 30, "Alertmanager behind basic auth")
        assert httpx.get(url + "/api/v2/alerts", timeout=2).status_code == 401   # really behind auth
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        posted = httpx.post(url + "/api/v2/alerts", auth=login, timeout=5, json=[
            {"labels": {"alertname": name, "severity": "warning"}, "startsAt": now} for name in
            ("BackupTooOld", "Watchdog")])
        assert posted.status_code == 200, posted.text

        (hux_home / "bot.toml").write_text(_bot_toml(doubles, hux_home))
        # the bot's settings as the supervisor starts it: its spec's environment over the settings file
        config = load_bot_config(hux_home / "bot.toml", environ=stack_env(hux_home, plan.component("bot").env))
        assert config.telegram.status_alertmanager_url == url
        async with running_bot(config, token=TOKEN, demo=False):
            replies = 0

            async def status() -> str:
                nonlocal replies
                doubles.telegram.inject_message("/status", chat_id=ALERT_CHAT, chat_title="Hux alerts",
                                                user_id=ADMIN)
                replies += 1
                assert await wait_until(lambda: len(_sent(doubles)) >= replies, timeout=15), _sent(doubles)
                return str(_sent(doubles)[replies - 1]["text"])

            assert "Stack alerts firing: BackupTooOld" in await status()   # Watchdog is not news

            # the password rotated without the web config re-rendered: refused, and the reply says what to check
            password_file.write_text("not-the-password\n")
            refused = await status()
            assert "Stack alerts: Alertmanager refused the credentials (HTTP 401); check " in refused
            assert "status_alertmanager_password_file" in refused
            password_file.write_text(password + "\n")
            assert "Stack alerts firing: BackupTooOld" in await status()   # read again at each /status

            password_file.unlink()
            missing = await status()
            assert "Stack alerts: not asked (cannot read secret file" in missing and str(password_file) in missing
            password_file.write_text(password + "\n")

            _stop(alertmanager)
            down = await status()
            assert f"Stack alerts: Alertmanager not reachable at {url} (ConnectError); check" in down
        texts = [m["text"] for m in _sent(doubles)]
        assert all(t.count("Stack alerts") == 1 for t in texts), texts   # one line each
        assert not any(password in t for t in texts)
        assert not any(password in r.getMessage() for r in caplog.records)
    finally:
        _stop(alertmanager)
        await doubles.stop()


def _answers(url: str, login: tuple[str, str]) -> bool:
    try:
        return httpx.get(url, auth=login, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _sent(doubles: RunningDoubles) -> list[dict[str, Any]]:
    return [m for m in doubles.telegram.sent if str(m["chat_id"]) == str(ALERT_CHAT)]


def test_a_user_without_a_password_file_is_refused_with_the_fix(tmp_path: Path) -> None:
    (tmp_path / "hux.toml").write_text('[bot.telegram]\nstatus_alertmanager_user = "hux"\n')
    with pytest.raises(ConfigError, match="status_alertmanager_user and status_alertmanager_password_file go "
                                          "together: set both"):
        load_bot_config(tmp_path / "hux.toml", environ=stack_env(tmp_path))

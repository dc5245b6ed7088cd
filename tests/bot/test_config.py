"""Bot settings: defaults, overrides, and clear errors naming the key before anything starts."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from hux.bot.config import BotConfig, load_bot_config
from hux.config import ConfigError

HUX = [sys.executable, "-m", "hux.cli"]


def test_defaults_are_the_documented_ones(hux_home: Path) -> None:
    cfg = load_bot_config(environ={})
    assert (cfg.host, cfg.port, cfg.queue_capacity, cfg.workers) == ("127.0.0.1", 8000, 1000, 4)
    assert (cfg.alert_threshold, cfg.cooldown_seconds, cfg.group_label_limit) == (70.0, 900.0, 50)
    assert cfg.telegram.token_env == "HUX_TELEGRAM_TOKEN" and cfg.telegram.api_base == "https://api.telegram.org"
    assert cfg.dexscreener.rate_limit_per_minute == 300
    assert cfg.demo.enabled == "auto" and cfg.demo.doubles_port == 8010
    assert cfg.resolved_database_url() == f"sqlite:///{hux_home / 'data' / 'bot' / 'hux.db'}"
    assert cfg.resolved_log_file() == hux_home / "logs" / "mr_hux_alpha_bot.log"


def test_environment_overrides(hux_home: Path) -> None:
    cfg = load_bot_config(environ={"HUX__BOT__PORT": "8001", "HUX__BOT__TELEGRAM__ALERT_CHAT_ID": "-1001234",
                                   "HUX__BOT__DEMO__ENABLED": "false"})
    assert cfg.port == 8001 and cfg.telegram.alert_chat_id == "-1001234" and cfg.demo.enabled is False


def test_demo_resolution() -> None:
    assert BotConfig().demo_active(None) and not BotConfig().demo_active("123:abc")
    assert BotConfig.model_validate({"demo": {"enabled": True}}).demo_active("123:abc")
    assert not BotConfig.model_validate({"demo": {"enabled": False}}).demo_active(None)


@pytest.mark.parametrize(
    ("toml", "key"),
    [
        ('[bot]\nport = "eighty"\n', "bot.port"),
        ("[bot]\nworkers = 2.5\n", "bot.workers"),
        ('[bot.dexscreener]\nrate_limit_per_minute = "fast"\n', "bot.dexscreener.rate_limit_per_minute"),
        ("[bot.replay]\nloop = 1\n", "bot.replay.loop"),
        ("[bot]\nalert_threshold = 150\n", "bot.alert_threshold"),
        ("[bot]\nprot = 8000\n", "bot.prot"),
    ],
)
def test_wrong_type_names_the_key(hux_home: Path, toml: str, key: str) -> None:
    path = hux_home / "hux.toml"
    path.write_text(toml)
    with pytest.raises(ConfigError) as err:
        load_bot_config(path, environ={})
    assert f"'{key}'" in str(err.value)


def test_bot_run_with_a_wrong_type_exits_2_before_starting(hux_home: Path) -> None:
    path = hux_home / "hux.toml"
    path.write_text('[bot]\nqueue_capacity = "lots"\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUX")} | {"HUX_HOME": str(hux_home)}
    proc = subprocess.run([*HUX, "--config", str(path), "bot", "run"], capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 2
    assert "config key 'bot.queue_capacity' must be a whole number" in proc.stderr
    # nothing started: no database, no log file
    assert not (hux_home / "data").exists() and not (hux_home / "logs").exists()


def test_check_config_reports_mode_without_secrets(hux_home: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUX")} | {
        "HUX_HOME": str(hux_home), "HUX_TELEGRAM_TOKEN": "123456789:check-config-secret-token-value"}
    proc = subprocess.run([*HUX, "bot", "check-config", "--json"], capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert '"mode": "live"' in proc.stdout and '"telegram_token": "set"' in proc.stdout
    assert "check-config-secret" not in proc.stdout + proc.stderr

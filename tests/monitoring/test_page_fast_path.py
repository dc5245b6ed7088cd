"""The paging fast path: the bot scraped and its down/database alerts evaluated more often than the rest.

A bot that crashes, freezes or loses its database must reach a person within 30 s in the
worst case with the production defaults, while one lost scrape or a supervised restart
still pages nobody (docs/benchmarks.md, "Page latency").
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import pytest
import yaml

from hux.bot.config import BotConfig
from hux.config import ConfigError
from hux.monitoring.durations import duration_seconds
from hux.monitoring.prometheus_config import Targets, prometheus_config
from hux.monitoring.render import render_native, validate_native
from hux.monitoring.rules import ALERTS, FAST_ALERTS, FAST_GROUP, ha_alerts, rule_files
from hux.monitoring.settings import Settings
from tests.conftest import require_binary

#: the issue's target: fault -> a person
TARGET_S = 30.0


def _groups(settings: Settings) -> dict[str, dict[str, Any]]:
    return {group["name"]: group for doc in rule_files(settings).values() for group in doc["groups"]}


def _jobs(settings: Settings) -> dict[str, dict[str, Any]]:
    config = prometheus_config(settings, Targets.native(settings, grafana=False))
    return {job["job_name"]: job for job in config["scrape_configs"]}


def test_the_bot_job_is_scraped_on_its_own_interval_and_timeout(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings()
    p = settings.prometheus
    jobs = _jobs(settings)
    bot = jobs[settings.stack.bot_job]
    assert bot["scrape_interval"] == p.bot_scrape_interval == "5s"
    assert bot["scrape_timeout"] == p.bot_scrape_timeout == "3s"
    # every other job keeps the global interval (no per-job keys: the global ones apply)
    for name, job in jobs.items():
        if name != settings.stack.bot_job:
            assert "scrape_interval" not in job and "scrape_timeout" not in job, name


def test_the_docker_bot_job_gets_the_same_interval(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings()
    config = prometheus_config(settings, Targets.docker())
    bot = [job for job in config["scrape_configs"] if job["job_name"] == settings.stack.bot_job][0]
    assert (bot["scrape_interval"], bot["scrape_timeout"]) == ("5s", "3s")
    assert "dns_sd_configs" in bot


def test_the_fast_alerts_live_in_their_own_group_at_the_fast_interval(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings()
    groups = _groups(settings)
    fast = groups[FAST_GROUP]
    assert fast["interval"] == settings.prometheus.fast_evaluation_interval == "2s"
    names = [rule["alert"] for rule in fast["rules"]]
    assert sorted(set(names)) == sorted(FAST_ALERTS) == ["BotAbsent", "BotDatabaseDown", "ServiceDown"]
    by_name = {rule["alert"]: rule for rule in fast["rules"]}
    selector = settings.stack.bot_selector
    assert by_name["ServiceDown"]["expr"] == f"up{{{selector}}} == 0"
    assert by_name["ServiceDown"]["for"] == settings.alerts.bot_down_for == "12s"
    assert by_name["BotAbsent"]["for"] == settings.alerts.bot_down_for
    assert by_name["BotDatabaseDown"]["for"] == settings.alerts.database_down_for == "12s"
    # ServiceDown of every other job stays in the slow group, with the slow `for`, and never twice for the bot
    slow = [rule for name, group in groups.items() if name != FAST_GROUP for rule in group["rules"]
            if rule.get("alert") in FAST_ALERTS]
    assert [(r["alert"], r["expr"], r["for"]) for r in slow] == [
        ("ServiceDown", f'up{{job!="{settings.stack.bot_job}"}} == 0', settings.alerts.service_down_for)]
    defined = {rule["alert"] for group in groups.values() for rule in group["rules"] if "alert" in rule}
    # the single topology defines every alert but the HA layer's; the HA topology defines them all
    ha_settings = settings.with_topology("ha")
    ha_only = {rule["alert"] for rule in ha_alerts(ha_settings)}
    assert defined == set(ALERTS) - ha_only
    ha_defined = {rule["alert"] for group in _groups(ha_settings).values() for rule in group["rules"] if "alert" in rule}
    assert ha_defined == set(ALERTS)


def test_one_lost_scrape_or_a_restart_cannot_page_by_construction(make_settings: Callable[..., Settings]) -> None:
    """`for` spans at least two bot scrape intervals: one lost scrape (and a restart shorter than a scrape) is
    one failed sample, which stays visible for one interval only."""
    settings = make_settings()
    p, a = settings.prometheus, settings.alerts
    assert duration_seconds(a.bot_down_for) >= 2 * duration_seconds(p.bot_scrape_interval)
    bot = BotConfig()
    assert duration_seconds(a.database_down_for) >= 2 * bot.db_probe_interval_seconds


def test_production_defaults_page_within_30_seconds_in_the_worst_case(make_settings: Callable[..., Settings]) -> None:
    """The model: the last good scrape just before the fault; the failed sample lands one scrape interval later
    (a frozen bot: plus the scrape timeout; a lost database: plus the bot's probe period), the next evaluation
    sees it, `for` runs in whole evaluations, then the critical group wait."""
    settings = make_settings()
    p, a, am = settings.prometheus, settings.alerts, settings.alertmanager
    d = duration_seconds
    scrape, timeout, ev = d(p.bot_scrape_interval), d(p.bot_scrape_timeout), d(p.fast_evaluation_interval)
    wait = d(am.critical_group_wait)

    def rounded(for_: str) -> float:
        return -(-d(for_) // ev) * ev

    probe = BotConfig().db_probe_interval_seconds
    worst = {
        "crash": scrape + ev + rounded(a.bot_down_for) + wait,
        "SIGSTOP": scrape + timeout + ev + rounded(a.bot_down_for) + wait,
        "database stop": probe + scrape + ev + rounded(a.database_down_for) + wait,
    }
    assert all(bound <= TARGET_S for bound in worst.values()), worst


@pytest.mark.parametrize(("toml", "key"), [
    ('[prometheus]\nbot_scrape_interval = "5s"\nbot_scrape_timeout = "5s"\n', "bot_scrape_timeout"),
    ('[prometheus]\nbot_scrape_interval = "5s"\nbot_scrape_timeout = "6s"\n', "bot_scrape_timeout"),
    ('[prometheus]\nbot_scrape_interval = "5s"\n[alerts]\nbot_down_for = "4s"\n', "bot_down_for"),
    ('[prometheus]\nfast_evaluation_interval = "0s"\n', "fast_evaluation_interval"),
])
def test_a_fast_path_that_would_page_on_one_lost_scrape_is_refused(make_settings: Callable[..., Settings],
                                                                    toml: str, key: str) -> None:
    with pytest.raises(ConfigError) as refused:
        make_settings(toml)
    assert key in str(refused.value)


def test_the_fast_path_renders_and_loads_in_prometheus(make_settings: Callable[..., Settings], tmp_path: Path) -> None:
    for binary in ("promtool", "amtool"):
        require_binary(binary)
    settings = make_settings()
    rendered = render_native(settings, tmp_path / "run", data_dir=tmp_path, grafana_enabled=False, environ={})
    assert validate_native(rendered.run_dir) == []
    config = yaml.safe_load(rendered.prometheus_config.read_text())
    bot = [job for job in config["scrape_configs"] if job["job_name"] == settings.stack.bot_job][0]
    assert bot["scrape_interval"] == "5s"
    fast = yaml.safe_load((rendered.run_dir / "rules" / "bot-fast-alerts.yml").read_text())
    assert fast["groups"][0]["name"] == FAST_GROUP and fast["groups"][0]["interval"] == "2s"

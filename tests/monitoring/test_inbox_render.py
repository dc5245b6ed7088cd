"""Where the inbox is wired: natively on every route (ahead of the receivers, with continue) and scraped;
never in the docker tree; nowhere with inbox.enabled = false. Who is paged follows the rendered routing."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import yaml

from hux.monitoring import alertmanager as am
from hux.monitoring.render import docker_files, docker_paging, native_files

#: an external receiver needs runbook links that open from a phone
RUNBOOKS = '[alerts]\nrunbook_base_url = "https://runbooks.example.org/runbooks.md"\n'


def native(settings: Any, tmp_path: Path, environ: dict[str, str] | None = None
           ) -> tuple[dict[str, Any], dict[str, Any]]:
    files, _ = native_files(settings, tmp_path / "run", grafana_enabled=False, environ=environ or {})
    return yaml.safe_load(files["alertmanager.yml"]), yaml.safe_load(files["prometheus.yml"])


def test_native_routes_everything_to_the_inbox_first_and_scrapes_it(make_settings: Callable[..., Any],
                                                                     tmp_path: Path) -> None:
    settings = make_settings("")
    config, prometheus = native(settings, tmp_path)
    [inbox] = [r for r in config["receivers"] if r["name"] == "inbox"]
    assert inbox["webhook_configs"] == [{"url": f"{settings.url('inbox')}/webhook", "send_resolved": True,
                                         "max_alerts": 0}]
    first, second = config["route"]["routes"][:2]
    assert first["receiver"] == second["receiver"] == "inbox" and first["continue"] and second["continue"]
    assert first["group_interval"] == settings.alertmanager.heartbeat_interval   # the heartbeat, every minute
    assert first["repeat_interval"] == "30s"   # below it, so no flush is skipped
    odd, _ = native(make_settings('[alertmanager]\nheartbeat_interval = "5s"\n'), tmp_path / "odd")
    assert odd["route"]["routes"][0]["repeat_interval"] == "2500ms"   # whole units: "2.5s" is no duration to amtool
    assert config["route"]["routes"][-1] == {"receiver": config["route"]["receiver"]}  # unmatched: still the root
    assert [j["static_configs"][0]["targets"] for j in prometheus["scrape_configs"] if j["job_name"] == "inbox"] == [
        [f"127.0.0.1:{settings.stack.ports.inbox}"]]
    paging = am.who_is_paged(config)
    assert paging.nobody and paging.inbox


def test_the_docker_tree_has_no_inbox(make_settings: Callable[..., Any]) -> None:
    settings = make_settings('[receivers.slack]\nenabled = true\n' + RUNBOOKS, environ={"HUX_SLACK_WEBHOOK_URL": "https://x/y"})
    files = docker_files(settings)
    config = yaml.safe_load(files["docker/alertmanager/alertmanager.yml"])
    assert "inbox" not in {r["name"] for r in config["receivers"]}
    assert "inbox" not in {j["job_name"] for j in yaml.safe_load(files["docker/prometheus/prometheus.yml"])[
        "scrape_configs"]}
    assert docker_paging(settings).sentence() == "Critical alerts page slack; warnings go to slack."


def test_inbox_off_removes_it_everywhere(make_settings: Callable[..., Any], tmp_path: Path) -> None:
    config, prometheus = native(make_settings("[inbox]\nenabled = false\n"), tmp_path)
    assert "inbox" not in {r["name"] for r in config["receivers"]}
    assert all(r["receiver"] != "inbox" for r in config["route"]["routes"])
    assert "inbox" not in {j["job_name"] for j in prometheus["scrape_configs"]}
    assert am.who_is_paged(config).sentence().startswith("No one is paged: alerts reach no receiver.")


def test_email_and_slack_are_named_per_severity(make_settings: Callable[..., Any], tmp_path: Path) -> None:
    slack = {"HUX_SLACK_WEBHOOK_URL": "https://hooks.example.org/x"}
    settings = make_settings('[receivers.email]\nenabled = true\n[receivers.slack]\nenabled = true\n' + RUNBOOKS,
                             environ=slack)
    paging = am.who_is_paged(native(settings, tmp_path, slack)[0])
    assert (paging.critical, paging.warning) == (("email", "slack"), ("slack",))
    assert paging.sentence() == ("Critical alerts page email, slack; warnings go to slack "
                                 "(and to the local inbox: hux alerts).")

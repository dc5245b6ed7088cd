"""The bot's series are selected one way: ``settings.stack.bot_selector`` (its job is ``stack.bot_job``).

Prometheus's scrape job, the dashboards and the checks read it from the
settings, like a mixin's selector, rather than spelling ``job="bot"`` again.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from hux.monitoring.dashboards import build_dashboards
from hux.monitoring.prometheus_config import Targets, prometheus_config

SRC = Path(__file__).resolve().parents[2] / "src" / "hux"
#: a bare bot job: job="bot" in a query, or a scrape job / label named "bot"
BARE = re.compile(r'job\s*=~?\s*\\?"bot\\?"|"job_name":\s*"bot"|"job":\s*"bot"')


def test_the_scrape_job_and_the_dashboards_use_the_selector(make_settings) -> None:
    settings = make_settings()
    assert settings.stack.bot_selector == f'job="{settings.stack.bot_job}"' == 'job="bot"'
    config = prometheus_config(settings, Targets.native(settings, grafana=False))
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert settings.stack.bot_job in jobs
    boards = json.dumps(build_dashboards(settings))
    assert f"up{{{settings.stack.bot_selector}}}".replace('"', '\\"') in boards


def test_no_other_module_spells_the_bot_job() -> None:
    found = []
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC).as_posix()
        if rel.startswith("bot/"):
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if BARE.search(line):
                found.append(f"{rel}:{number}: {line.strip()}")
    assert not found, "use settings.stack.bot_selector / bot_job instead:\n" + "\n".join(found)

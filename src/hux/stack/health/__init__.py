"""The deep health check: `hux health [--json]`.

Every check answers pass / warn / fail (:mod:`hux.monitoring.status`) with the
reason and the fix. They run concurrently, each within a budget, against the
components' own APIs, grouped by what they look at:

* ``component_checks``: each component ready (``/-/ready``, ``/metrics``), with the
  supervisor's restart count when it is down; why Grafana does not run;
* ``grafana_checks``: Grafana's ``/api/health`` and its Prometheus datasource's health, when Grafana runs;
* ``bot_checks``: the bot's ``/ready`` (database, queue) and its expected metric families in Prometheus;
* ``prometheus_checks``: every target up (its last scrape error otherwise), the last
  config reload, rule groups healthy and evaluated on time, the Alertmanager discovered;
* ``alertmanager_checks``: a loaded config and cluster status; enabled receivers
  reachable (SMTP answers with its banner, webhook hosts answer HTTP);
* ``dashboard_checks``: every dashboard panel query returning data;
* ``inbox_checks``: the alert inbox ready, its last Watchdog heartbeat, and who is paged (a warning
  with the fix when no receiver reaches a person);
* ``host_checks``: free disk for each data directory; ``backup_checks``: the age of the last backup.

``model`` holds the report, ``context`` what each check is handed (settings,
layout, clients), ``runtime`` what differs between the native stack and the
docker path, ``run`` the runner. "warn" never changes the exit code; any
"fail" makes it 1.
"""

from __future__ import annotations

from hux.monitoring.dashboards.queries import grafana_vars_to_promql
from hux.stack.health.alertmanager_checks import check_alertmanager, check_receivers
from hux.stack.health.backup_checks import check_backup
from hux.stack.health.bot_checks import check_bot, check_metric_families, describe_bot_ready
from hux.stack.health.component_checks import check_components
from hux.stack.health.context import HealthContext, NotAnswering
from hux.stack.health.dashboard_checks import check_dashboards
from hux.stack.health.grafana_checks import check_grafana
from hux.stack.health.host_checks import check_disk
from hux.stack.health.model import FAIL, PASS, WARN, CheckResult, HealthReport
from hux.stack.health.prometheus_checks import (
    check_prometheus_alertmanager,
    check_prometheus_config,
    check_rules,
    check_targets,
)
from hux.stack.health.run import CHECK_BUDGET, CHECKS, Check, client_auth, health, run_health
from hux.stack.health.runtime import DockerRuntime, NativeRuntime, runtime_for

__all__ = [
    "CHECKS", "CHECK_BUDGET", "FAIL", "PASS", "WARN", "Check", "CheckResult", "DockerRuntime", "HealthContext",
    "HealthReport", "NativeRuntime", "NotAnswering", "check_alertmanager", "check_backup", "check_bot",
    "check_components", "check_dashboards", "check_disk", "check_grafana", "check_metric_families",
    "check_prometheus_alertmanager", "check_prometheus_config", "check_receivers", "check_rules", "check_targets",
    "client_auth", "describe_bot_ready", "grafana_vars_to_promql", "health", "run_health", "runtime_for",
]

"""The deep health check: `hux health [--json]`.

Every check answers pass / warn / fail with the reason and the fix. They run
concurrently with short timeouts (a full run stays well under 2 s) against the
components' own APIs:

* each component ready (``/-/ready``, ``/metrics``, ``/api/health``, the bot's ``/ready``
  with its database and queue), with the supervisor's restart count when it is down;
* every Prometheus target up (its last scrape error otherwise);
* the last Prometheus config reload succeeded; all rule groups healthy and evaluated on time;
* Prometheus has discovered the Alertmanager; Alertmanager has a config and a cluster status;
* Grafana's ``/api/health`` and its Prometheus datasource's health, when Grafana runs;
* the bot's expected metric families present in Prometheus (the seed's "missing metrics");
* every dashboard panel query returning data (the seed's "dashboard issues");
* enabled receivers reachable: SMTP answers with its banner, webhook hosts answer HTTP;
* free disk for each data directory; age of the last backup.

"warn" never changes the exit code; any "fail" makes it 1.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Awaitable, Callable, Iterable
from urllib.parse import urlsplit

import httpx

from hux.monitoring import auth as stack_auth
from hux.stack import probe
from hux.stack.components import READY_PATHS, LOG_FILES, decide_grafana, grafana_password_file
from hux.stack.plan import StackPaths, read_state

PASS, WARN, FAIL = "pass", "warn", "fail"
_RANK = {PASS: 0, WARN: 1, FAIL: 2}
HTTP_TIMEOUT = 1.0          # per request
CHECK_BUDGET = 1.7          # per check: the whole run must stay under 2 s
DASHBOARD_CONCURRENCY = 16
BOT_JOB = "bot"             # the bot's scrape job in the rendered prometheus.yml

Check = Callable[["HealthContext"], Awaitable[list["CheckResult"]]]


@dataclass
class CheckResult:
    name: str
    status: str
    reason: str
    fix: str = ""
    duration: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["duration_seconds"] = round(data.pop("duration"), 4)
        return data


@dataclass
class HealthReport:
    checks: list[CheckResult]
    duration: float
    mode: str = "native"

    @property
    def status(self) -> str:
        return max((c.status for c in self.checks), key=_RANK.__getitem__, default=PASS)

    @property
    def exit_code(self) -> int:
        return 1 if self.status == FAIL else 0

    def counts(self) -> dict[str, int]:
        return {s: sum(1 for c in self.checks if c.status == s) for s in (PASS, WARN, FAIL)}

    def failing(self) -> list[str]:
        return [c.name for c in self.checks if c.status == FAIL]

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "mode": self.mode,
            "duration_seconds": round(self.duration, 4),
            "counts": self.counts(),
            "checks": [c.to_dict() for c in self.checks],
        }


class NotAnswering(Exception):
    """A component whose API another check needs did not answer."""


@dataclass
class HealthContext:
    settings: Any
    paths: StackPaths
    mode: str = "native"
    client: httpx.AsyncClient | None = None
    timeout: float = HTTP_TIMEOUT
    _memo: dict[str, asyncio.Task] = field(default_factory=dict)

    def url(self, component: str) -> str:
        return self.settings.url(component)

    def rendered_dashboards_dir(self) -> Path:
        if self.mode == "docker":
            from hux.stack.docker import find_compose_file

            try:
                return find_compose_file().parent / "docker" / "grafana" / "dashboards"
            except Exception:  # noqa: BLE001 - no compose file: build the dashboards instead
                return self.paths.run_dir / "grafana" / "dashboards"
        return self.paths.run_dir / "grafana" / "dashboards"

    def supervisor_state(self) -> dict[str, Any]:
        if self.mode != "native":
            return {}
        return read_state(self.paths.state_file) or {}

    def supervised(self, name: str) -> dict[str, Any] | None:
        state = self.supervisor_state()
        if not (state.get("supervisor") or {}).get("running"):
            return None
        return (state.get("components") or {}).get(name)

    def grafana_expected(self) -> tuple[bool, str]:
        if self.mode == "docker":
            return True, ""
        if self.supervised("grafana") is not None:
            return True, ""
        try:
            decision = decide_grafana(self.settings)
        except Exception as exc:  # noqa: BLE001 - grafana.enabled=true without a binary
            return True, str(exc)
        return decision.run, decision.reason

    def grafana_auth(self) -> tuple[str, str] | None:
        path = grafana_password_file(self.settings, self.paths)
        try:
            password = path.read_text(encoding="utf-8").strip()
        except OSError:
            return None
        return (self.settings.grafana.admin_user, password)

    async def get(self, url: str, **kwargs: Any) -> probe.Probe:
        assert self.client is not None
        return await probe.get(self.client, url, timeout=self.timeout, **kwargs)

    def _memoised(self, key: str, make: Callable[[], Awaitable[Any]]) -> asyncio.Task:
        task = self._memo.get(key)
        if task is None:
            task = self._memo[key] = asyncio.ensure_future(make())
        return task

    async def prom(self, path: str, params: dict[str, str] | None = None) -> Any:
        """``data`` of a Prometheus API answer; NotAnswering when Prometheus does not answer."""
        key = path + repr(sorted((params or {}).items()))

        async def fetch() -> Any:
            assert self.client is not None
            try:
                response = await self.client.get(self.url("prometheus") + path, params=params, timeout=self.timeout)
                if response.status_code == 401:
                    raise NotAnswering(f"Prometheus refused {path} with HTTP 401: {AUTH_FIX}")
                payload = response.json()
            except (httpx.HTTPError, ValueError) as exc:
                raise NotAnswering(f"Prometheus did not answer {path} ({type(exc).__name__})") from None
            if payload.get("status") != "success":
                raise NotAnswering(f"Prometheus refused {path}: {payload.get('error', response.status_code)}")
            return payload.get("data")

        return await asyncio.shield(self._memoised(key, fetch))

    async def query(self, expr: str) -> list[dict[str, Any]]:
        data = await self.prom("/api/v1/query", {"query": expr})
        return data.get("result") or []


AUTH_FIX = ("our credentials (data/auth/password) do not match its web config: run `hux up` to re-render "
            "data/auth/web.yml from the password (the components re-read it at once)")
DISCOVERY_GRACE = 30.0      # s after Prometheus starts during which "nothing discovered yet" is not a failure


async def _still_discovering(ctx: HealthContext) -> float | None:
    """Seconds since Prometheus started, while that is under DISCOVERY_GRACE (service discovery syncs every 5 s)."""
    try:
        info = await ctx.prom("/api/v1/status/runtimeinfo")
    except NotAnswering:
        return None
    started = _parse_time(info.get("startTime", ""))
    if started is None:
        return None
    age = time.time() - started
    return age if age < DISCOVERY_GRACE else None


def _discovering(name: str, age: float, what: str) -> CheckResult:
    return CheckResult(name, WARN, f"Prometheus started {age:.0f} s ago and has not discovered its {what} yet",
                       "check again in a few seconds")


def _not_checked(name: str, exc: NotAnswering) -> CheckResult:
    return CheckResult(name, WARN, f"not checked: {exc}", "fix the prometheus check first")


def _ago(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


def _parse_time(text: str) -> float | None:
    """RFC 3339 (nanosecond precision allowed) -> Unix time; None for Go's zero time."""
    if not text or text.startswith("0001-01-01"):
        return None
    text = text.replace("Z", "+00:00")
    text = re.sub(r"(\.\d{6})\d+", r"\1", text)
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        return None


def _redact(url: str) -> str:
    """Scheme, host and port only: webhook paths and queries often carry tokens."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}{':' + str(parts.port) if parts.port else ''}/…"


# ----- components -------------------------------------------------------------------------------


def _down_fix(ctx: HealthContext, name: str) -> tuple[str, str]:
    """(extra reason, fix) for a component that is not ready."""
    log = ctx.paths.logs / LOG_FILES[name]
    if ctx.mode == "docker":
        return "", f"`docker compose logs {name}`; `hux restart {name}`"
    supervised = ctx.supervised(name)
    if supervised is None:
        state = ctx.supervisor_state()
        if not (state.get("supervisor") or {}).get("running"):
            return " (the stack is not running)", "start it: `hux up` (or `python3 scripts/setup_monitoring.py`)"
        return "", f"see {log}"
    bits = [f"supervisor: {supervised.get('state')}", f"restarts {supervised.get('restarts', 0)}"]
    if supervised.get("last_exit"):
        bits.append(f"last exit: {supervised['last_exit']}")
    if supervised.get("error"):
        bits.append(supervised["error"])
    return f" ({'; '.join(bits)})", f"see {log}; the supervisor restarts it with backoff (`hux restart {name}` to force)"


async def check_components(ctx: HealthContext) -> list[CheckResult]:
    names = ["prometheus", "alertmanager", "node_exporter"]
    expected, skip_reason = ctx.grafana_expected()
    probes = await asyncio.gather(*(ctx.get(ctx.url(n) + READY_PATHS[n]) for n in names))
    results = []
    for name, result in zip(names, probes):
        if result.ok:
            results.append(CheckResult(f"{name} ready", PASS, f"{ctx.url(name)} ready ({result.elapsed * 1000:.0f} ms)"))
        elif result.status == 401:
            results.append(CheckResult(f"{name} ready", FAIL, f"{result.url}: refused our credentials (HTTP 401)",
                                       AUTH_FIX))
        else:
            extra, fix = _down_fix(ctx, name)
            results.append(CheckResult(f"{name} ready", FAIL, f"{result.url}: {result.detail}{extra}", fix))
    if not expected:
        summary, _, fix = skip_reason.partition(". ")
        results.append(CheckResult("grafana", WARN, f"not running: {summary}", fix))
    return results


async def check_grafana(ctx: HealthContext) -> list[CheckResult]:
    expected, reason = ctx.grafana_expected()
    if not expected:
        return []
    if reason:  # expected but cannot run
        return [CheckResult("grafana ready", FAIL, reason, "install Grafana or set grafana.enabled = \"auto\"")]
    health = await ctx.get(ctx.url("grafana") + "/api/health", want_json=True)
    if not health.ok:
        extra, fix = _down_fix(ctx, "grafana")
        return [CheckResult("grafana ready", FAIL, f"{health.url}: {health.detail}{extra}", fix)]
    body = health.body or {}
    if body.get("database") != "ok":
        return [CheckResult("grafana ready", FAIL, f"Grafana answers but its database is {body.get('database')!r}",
                            f"see {ctx.paths.logs / 'grafana.log'}")]
    results = [CheckResult("grafana ready", PASS, f"version {body.get('version', '?')}, database ok")]
    uid = ctx.settings.grafana.datasource_uid
    auth = ctx.grafana_auth()
    name = f"grafana datasource {uid}"
    if auth is None:
        results.append(CheckResult(name, WARN, "not checked: no Grafana admin password file",
                                   f"create {grafana_password_file(ctx.settings, ctx.paths)} (`hux up` does)"))
        return results
    ds = await ctx.get(f"{ctx.url('grafana')}/api/datasources/uid/{uid}/health", auth=auth, want_json=True)
    message = (ds.body or {}).get("message", "") if isinstance(ds.body, dict) else ""
    if ds.ok and (ds.body or {}).get("status") == "OK":
        results.append(CheckResult(name, PASS, message or "OK"))
    elif ds.status == 404:
        results.append(CheckResult(name, FAIL, f"Grafana has no datasource with uid {uid!r}",
                                   "check data/run/grafana/provisioning/datasources and restart Grafana"))
    elif ds.status in (401, 403):
        results.append(CheckResult(name, FAIL, "Grafana refused the admin credentials",
                                   "the password file differs from the one Grafana was first started with: "
                                   "reset it with `grafana cli admin reset-admin-password`"))
    else:
        results.append(CheckResult(name, FAIL, message or ds.detail,
                                   "Grafana cannot query Prometheus: check the prometheus checks above"))
    return results


async def check_bot(ctx: HealthContext) -> list[CheckResult]:
    if ctx.mode == "docker":
        return []   # not published on the host there: its scrape target and metric families speak for it
    ready = await ctx.get(ctx.url("bot") + READY_PATHS["bot"], want_json=True)
    if ready.status is None:
        extra, fix = _down_fix(ctx, "bot")
        return [CheckResult("bot ready", FAIL, f"{ready.url}: {ready.detail}{extra}", fix)]
    body = ready.body if isinstance(ready.body, dict) else {}
    details = describe_bot_ready(body)
    if ready.ok and body.get("ready", True):
        return [CheckResult("bot ready", PASS, details)]
    fixes = []
    if not (body.get("database") or {}).get("reachable", True):
        fixes.append("the database is unreachable: check bot.database_url and the database server (the bot holds "
                     "results and retries)")
    if (body.get("queue") or {}).get("saturated"):
        fixes.append("the intake queue is full: workers cannot keep up (raise bot.workers; see the latency panels)")
    fixes.append(f"see {ctx.paths.logs / 'mr_hux_alpha_bot.log'}")
    return [CheckResult("bot ready", FAIL, f"HTTP {ready.status}: {details or ready.detail}", "; ".join(fixes))]


def describe_bot_ready(body: dict[str, Any]) -> str:
    """One line from the bot's /ready JSON: mode, database, queue."""
    parts = [f"{body.get('mode', 'unknown')} mode"]
    database = body.get("database") or {}
    parts.append("database reachable" if database.get("reachable") else "database UNREACHABLE")
    queue = body.get("queue") or {}
    if queue:
        parts.append(f"queue {queue.get('length')}/{queue.get('capacity')}" + (" SATURATED" if queue.get("saturated") else ""))
    if body.get("sources"):
        parts.append("sources " + ", ".join(body["sources"]))
    return ", ".join(parts)


# ----- prometheus ---------------------------------------------------------------------------------


async def check_prometheus_config(ctx: HealthContext) -> list[CheckResult]:
    name = "prometheus config"
    try:
        info = await ctx.prom("/api/v1/status/runtimeinfo")
    except NotAnswering as exc:
        return [_not_checked(name, exc)]
    if info.get("reloadConfigSuccess") is False:
        return [CheckResult(name, FAIL, "the last config reload failed; Prometheus runs the previous config",
                            f"see {ctx.paths.logs / 'prometheus.log'}, fix the settings, then `hux reload`")]
    loaded = _parse_time(info.get("lastConfigTime", ""))
    return [CheckResult(name, PASS, "loaded" + (f" {_ago(time.time() - loaded)} ago" if loaded else ""))]


async def check_targets(ctx: HealthContext) -> list[CheckResult]:
    try:
        data = await ctx.prom("/api/v1/targets", {"state": "active"})
    except NotAnswering as exc:
        return [_not_checked("prometheus targets", exc)]
    targets = data.get("activeTargets") or []
    if not targets and (age := await _still_discovering(ctx)) is not None:
        return [_discovering("prometheus targets", age, "targets")]
    if not targets:
        return [CheckResult("prometheus targets", FAIL, "Prometheus has no active targets",
                            "check the scrape configs in data/run/prometheus.yml (`hux render --check`)")]
    results = []
    for target in sorted(targets, key=lambda t: (t["labels"].get("job", ""), t["labels"].get("instance", ""))):
        labels = target.get("labels", {})
        name = f"target {labels.get('job', '?')} {labels.get('instance', target.get('scrapeUrl', '?'))}"
        health = target.get("health")
        if health == "up":
            last = _parse_time(target.get("lastScrape", ""))
            results.append(CheckResult(name, PASS, "up" + (f", scraped {_ago(time.time() - last)} ago" if last else "")))
        elif health == "unknown":
            results.append(CheckResult(name, WARN, "not scraped yet", "wait one scrape interval and check again"))
        else:
            error = target.get("lastError") or "down"
            results.append(CheckResult(name, FAIL, f"down: {error}",
                                       f"is {target.get('scrapeUrl')} running? `hux status`; check its log"))
    return results


async def check_rules(ctx: HealthContext) -> list[CheckResult]:
    name = "rule groups"
    try:
        data = await ctx.prom("/api/v1/rules")
    except NotAnswering as exc:
        return [_not_checked(name, exc)]
    groups = data.get("groups") or []
    if not groups:
        return [CheckResult(name, FAIL, "no rule groups loaded",
                            "check rule_files in data/run/prometheus.yml and data/run/rules/ (`hux render --check`)")]
    now = time.time()
    broken, late, pending, rules, oldest = [], [], [], 0, 0.0
    for group in groups:
        interval = float(group.get("interval") or 15)
        for rule in group.get("rules") or []:
            rules += 1
            if rule.get("health") == "err":
                broken.append(f"{group['name']}/{rule.get('name')}: {rule.get('lastError', 'error')}")
        last = _parse_time(group.get("lastEvaluation", ""))
        if last is None:
            pending.append(group["name"])
            continue
        age = now - last
        oldest = max(oldest, age)
        if age > 2 * interval + 5:
            late.append(f"{group['name']} (last {_ago(age)} ago, every {interval:g} s)")
    if broken:
        return [CheckResult(name, FAIL, f"{len(broken)} rule(s) failing: " + "; ".join(broken[:3]),
                            "fix the expression in the rules (`hux check-config`), then `hux reload`")]
    if late:
        return [CheckResult(name, FAIL, "not evaluating on time: " + ", ".join(late[:3]),
                            "Prometheus is overloaded or stuck: see logs/prometheus.log")]
    if pending:
        return [CheckResult(name, WARN, f"{len(pending)} of {len(groups)} groups not evaluated yet",
                            "normal right after a start or reload; check again after one evaluation interval")]
    return [CheckResult(name, PASS, f"{len(groups)} groups, {rules} rules healthy, last evaluated ≤ {_ago(oldest)} ago")]


async def check_prometheus_alertmanager(ctx: HealthContext) -> list[CheckResult]:
    name = "prometheus → alertmanager"
    try:
        data = await ctx.prom("/api/v1/alertmanagers")
    except NotAnswering as exc:
        return [_not_checked(name, exc)]
    active = [am.get("url", "") for am in data.get("activeAlertmanagers") or []]
    if not active and (age := await _still_discovering(ctx)) is not None:
        return [_discovering(name, age, "Alertmanager")]
    if not active:
        return [CheckResult(name, FAIL, "Prometheus has no Alertmanager to send alerts to",
                            "check the alerting section of data/run/prometheus.yml")]
    port = f":{ctx.settings.stack.ports.alertmanager}/"
    ours = [url for url in active if port in url]
    if not ours:
        return [CheckResult(name, WARN, f"sends to {', '.join(active)}, not to port {ctx.settings.stack.ports.alertmanager}",
                            "re-render (`hux render`) and `hux reload`")]
    return [CheckResult(name, PASS, f"sends to {', '.join(ours)}")]


async def check_alertmanager(ctx: HealthContext) -> list[CheckResult]:
    name = "alertmanager config"
    status = await ctx.get(ctx.url("alertmanager") + "/api/v2/status", want_json=True)
    if not status.ok or not isinstance(status.body, dict):
        return [CheckResult(name, WARN, f"not checked: {status.detail}", "fix the alertmanager ready check first")]
    body = status.body
    original = ((body.get("config") or {}).get("original") or "").strip()
    cluster = (body.get("cluster") or {}).get("status", "unknown")
    if not original:
        return [CheckResult(name, FAIL, "Alertmanager reports no loaded configuration",
                            "see logs/alertmanager.log; `hux check-config`, then `hux reload`")]
    if cluster not in ("ready", "disabled"):
        return [CheckResult(name, WARN, f"config loaded; cluster {cluster}", "wait for the cluster to settle")]
    metrics = await _text(ctx, ctx.url("alertmanager") + "/metrics")
    failed_reload = _metric_value(metrics, "alertmanager_config_last_reload_successful") == 0
    if failed_reload:
        return [CheckResult(name, FAIL, "the last config reload failed; Alertmanager runs the previous config",
                            "see logs/alertmanager.log, fix the settings, then `hux reload`")]
    return [CheckResult(name, PASS, f"config loaded, cluster {cluster}")]


async def _text(ctx: HealthContext, url: str) -> str:
    assert ctx.client is not None
    try:
        return (await ctx.client.get(url, timeout=ctx.timeout)).text
    except httpx.HTTPError:
        return ""


def _metric_value(text: str, name: str) -> float | None:
    match = re.search(rf"^{re.escape(name)}(?:\{{[^}}]*\}})?\s+(\S+)", text, re.MULTILINE)
    return float(match.group(1)) if match else None


# ----- metrics and dashboards -------------------------------------------------------------------------


async def check_metric_families(ctx: HealthContext) -> list[CheckResult]:
    from hux.bot.metrics import EXPECTED_FAMILIES

    name = "bot metric families"
    try:
        targets = await ctx.prom("/api/v1/targets", {"state": "active"})
    except NotAnswering as exc:
        return [_not_checked(name, exc)]
    bot_addresses = set(ctx.settings.stack.resolved_bot_targets())
    active = targets.get("activeTargets") or []
    jobs = sorted({t["labels"].get("job", "") for t in active if urlsplit(t.get("scrapeUrl", "")).netloc in bot_addresses})
    if not jobs:   # docker: the bot is discovered by service name, not by the host addresses
        jobs = sorted({t["labels"].get("job", "") for t in active if t["labels"].get("job") == BOT_JOB})
    if not jobs and (age := await _still_discovering(ctx)) is not None:
        return [_discovering(name, age, "targets")]
    if not jobs:
        return [CheckResult(name, FAIL, f"Prometheus does not scrape the bot ({', '.join(sorted(bot_addresses))})",
                            "check stack.bot_targets and the bot job in data/run/prometheus.yml")]
    bot_targets = [t for t in active if t["labels"].get("job") in jobs]
    if bot_targets and all(t.get("health") == "unknown" for t in bot_targets):
        return [CheckResult(name, WARN, "not checked yet: Prometheus has not scraped the bot yet",
                            "check again after one scrape interval")]
    suffixes = "(_total|_bucket|_count|_sum|_created|_info)?"
    regex = "(" + "|".join(re.escape(f.removesuffix("_total")) for f in EXPECTED_FAMILIES) + ")" + suffixes
    job_re = "|".join(re.escape(j) for j in jobs)
    try:
        series = await ctx.query(f'group by (__name__) ({{__name__=~"{regex}", job=~"{job_re}"}})')
    except NotAnswering as exc:
        return [_not_checked(name, exc)]
    present = {s["metric"].get("__name__", "") for s in series}
    missing = [f for f in EXPECTED_FAMILIES
               if not any(re.fullmatch(re.escape(f.removesuffix("_total")) + suffixes, p) for p in present)]
    if missing:
        return [CheckResult(name, FAIL, f"{len(missing)} of {len(EXPECTED_FAMILIES)} missing in Prometheus: "
                            + ", ".join(missing[:6]) + ("…" if len(missing) > 6 else ""),
                            "is the bot up and scraped (target checks)? if so, see logs/mr_hux_alpha_bot.log")]
    return [CheckResult(name, PASS, f"all {len(EXPECTED_FAMILIES)} present (job {', '.join(jobs)})")]


def dashboard_queries(settings: Any, rendered_dir: Path | None = None) -> list[tuple[str, str, str]]:
    """(dashboard title, panel title, PromQL) for every panel target of the dashboards.

    The rendered JSON files (what Grafana provisions) when ``rendered_dir`` holds them;
    otherwise the monitoring area's dashboards module builds them.
    """
    import json

    boards: list[dict[str, Any]] = []
    if rendered_dir is not None and rendered_dir.is_dir():
        boards = [json.loads(p.read_text(encoding="utf-8")) for p in sorted(rendered_dir.glob("*.json"))]
    if not boards:
        from hux.monitoring import dashboards  # the monitoring area owns the dashboards

        boards = [b if isinstance(b, dict) else _to_dict(b) for b in dashboards.build_dashboards(settings).values()]
    out = []
    for data in boards:
        title = data.get("title", "?")
        variables = {v.get("name"): v.get("allValue") or ".*" for v in (data.get("templating") or {}).get("list") or []}
        for panel in _panels(data.get("panels") or []):
            for target in panel.get("targets") or []:
                expr = target.get("expr")
                if expr:
                    out.append((title, panel.get("title") or "(untitled)", _substitute(expr, variables)))
    return out


def _substitute(expr: str, variables: dict[str, str]) -> str:
    """Dashboard variables ($job, ${instance}) as their "All" value."""
    def value(match: re.Match) -> str:
        return variables.get(match.group(1), match.group(0))

    return re.sub(r"\$\{?([A-Za-z][A-Za-z0-9_]*)(?::[a-z]+)?\}?", value, expr)


def _to_dict(board: Any) -> dict[str, Any]:
    import json

    if hasattr(board, "to_json"):
        return json.loads(board.to_json())
    return json.loads(json.dumps(board, default=lambda o: getattr(o, "__dict__", str(o))))


def _panels(panels: Iterable[dict[str, Any]]) -> Iterable[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels") or [])   # rows hold their panels


def grafana_vars_to_promql(expr: str, scrape_interval: float) -> str:
    """Replace Grafana's built-in variables so Prometheus can run a panel query as-is."""
    rate = f"{int(max(4 * scrape_interval, 60))}s"
    replacements = {
        "$__rate_interval": rate, "${__rate_interval}": rate,
        "$__interval": f"{int(scrape_interval)}s", "${__interval}": f"{int(scrape_interval)}s",
        "$__range": "1h", "${__range}": "1h",
    }
    for key, value in replacements.items():
        expr = expr.replace(key, value)
    # dashboard variables ($job, ${instance}, ...) as "match anything"
    return re.sub(r"\$\{?[A-Za-z_][A-Za-z0-9_]*(?::[a-z]+)?\}?", ".*", expr)


async def check_dashboards(ctx: HealthContext) -> list[CheckResult]:
    from hux.monitoring.settings import duration_seconds

    try:
        queries = dashboard_queries(ctx.settings, ctx.rendered_dashboards_dir())
    except Exception as exc:  # noqa: BLE001 - the dashboards module may be absent in a partial checkout
        return [CheckResult("dashboards", WARN, f"not checked: cannot build the dashboards ({exc})",
                            "run `hux render --check`")]
    if not queries:
        return [CheckResult("dashboards", WARN, "no dashboard panel queries to check",
                            "the dashboards module built no panels: `hux render --check`")]
    interval = duration_seconds(ctx.settings.prometheus.scrape_interval)
    gate = asyncio.Semaphore(DASHBOARD_CONCURRENCY)

    async def run(expr: str) -> list[dict[str, Any]] | str:
        async with gate:
            try:
                return await ctx.query(grafana_vars_to_promql(expr, interval))
            except NotAnswering as exc:
                return str(exc)

    answers = await asyncio.gather(*(run(expr) for _, _, expr in queries))
    boards: dict[str, list[str]] = {}
    errors: dict[str, list[str]] = {}
    totals: dict[str, int] = {}
    for (board, panel, _expr), answer in zip(queries, answers):
        totals[board] = totals.get(board, 0) + 1
        if isinstance(answer, str):
            errors.setdefault(board, []).append(f"{panel}: {answer}")
        elif not answer:
            boards.setdefault(board, []).append(panel)
    results = []
    for board in sorted(totals):
        name = f"dashboard {board}"
        if board in errors:
            results.append(CheckResult(name, WARN if "did not answer" in errors[board][0] else FAIL,
                                       "queries failed: " + "; ".join(errors[board][:2]),
                                       "fix the prometheus checks first; a refused query is a dashboard bug"))
        elif board in boards:
            empty = sorted(set(boards[board]))
            results.append(CheckResult(name, WARN, f"{len(boards[board])} of {totals[board]} queries return nothing: "
                                       + ", ".join(empty[:4]) + ("…" if len(empty) > 4 else ""),
                                       "right after a start, rates need two scrapes in their window: check again "
                                       "in a minute; otherwise the series do not exist yet (e.g. no errors so far) "
                                       "or a target is down: see the target and metric family checks"))
        else:
            results.append(CheckResult(name, PASS, f"all {totals[board]} queries return data"))
    return results


# ----- receivers, disk, backups ------------------------------------------------------------------------


async def _smtp_banner(host: str, port: int, timeout: float) -> str:
    reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    try:
        line = await asyncio.wait_for(reader.readline(), timeout)
        try:
            writer.write(b"QUIT\r\n")
            await asyncio.wait_for(writer.drain(), 0.2)
        except (OSError, asyncio.TimeoutError):
            pass
        return line.decode(errors="replace").strip()
    finally:
        writer.close()


async def check_receivers(ctx: HealthContext) -> list[CheckResult]:
    receivers = ctx.settings.receivers
    environ = os.environ
    checks: list[Awaitable[CheckResult]] = []

    async def smtp() -> CheckResult:
        host, _, port = receivers.email.smtp_smarthost.rpartition(":")
        name = "receiver email"
        try:
            banner = await _smtp_banner(host.strip("[]"), int(port), ctx.timeout)
        except (OSError, asyncio.TimeoutError) as exc:
            return CheckResult(name, FAIL, f"cannot connect to SMTP {host}:{port} ({type(exc).__name__})",
                               "check receivers.email.smtp_smarthost and that the mail server is up")
        if not banner.startswith("220"):
            return CheckResult(name, FAIL, f"SMTP {host}:{port} answered {banner[:60]!r}, not a 220 greeting",
                               "is receivers.email.smtp_smarthost really an SMTP server?")
        return CheckResult(name, PASS, f"SMTP {host}:{port} answers ({banner[:40]})")

    async def http(name: str, url: str | None, setting: str) -> CheckResult:
        if not url:
            return CheckResult(name, FAIL, "enabled but no URL", f"set {setting}")
        assert ctx.client is not None
        try:
            response = await ctx.client.head(url, timeout=ctx.timeout)
        except httpx.HTTPError as exc:
            return CheckResult(name, FAIL, f"{_redact(url)} unreachable ({type(exc).__name__})",
                               f"check {setting} and the network path to that host")
        return CheckResult(name, PASS, f"{_redact(url)} answers (HTTP {response.status_code})")

    if receivers.email.enabled:
        checks.append(smtp())
    if receivers.slack.enabled:
        checks.append(http("receiver slack", receivers.slack.api_url(environ), "receivers.slack.api_url_env"))
    if receivers.webhook.enabled:
        checks.append(http("receiver webhook", receivers.webhook.resolved_url(environ), "receivers.webhook.url"))
    if receivers.heartbeat.enabled:
        checks.append(http("receiver heartbeat", receivers.heartbeat.resolved_url(environ), "receivers.heartbeat.url"))
    return list(await asyncio.gather(*checks))


def _human_bytes(value: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.1f} {unit}" if unit != "B" else f"{value:.0f} B"
        value /= 1024
    return f"{value:.1f} TiB"


def data_directories(ctx: HealthContext) -> list[Path]:
    dirs = [ctx.paths.component_data(n) for n in ("prometheus", "alertmanager", "bot", "grafana")]
    dirs.append(backup_dir(ctx))
    return [d for d in dirs if d.exists()] or [ctx.paths.data if ctx.paths.data.exists() else ctx.paths.home]


def backup_dir(ctx: HealthContext) -> Path:
    configured = Path(ctx.settings.backup.dir).expanduser()
    return configured if configured.is_absolute() else ctx.paths.home / configured


async def check_disk(ctx: HealthContext) -> list[CheckResult]:
    by_device: dict[int, list[Path]] = {}
    for directory in data_directories(ctx):
        by_device.setdefault(directory.stat().st_dev, []).append(directory)
    fail_ratio = ctx.settings.alerts.disk_free_ratio
    warn_ratio = min(0.5, 2 * fail_ratio)
    results = []
    for dirs in by_device.values():
        usage = shutil.disk_usage(dirs[0])
        ratio = usage.free / usage.total if usage.total else 0.0
        shown = ", ".join(str(d.relative_to(ctx.paths.home)) if d.is_relative_to(ctx.paths.home) else str(d) for d in dirs)
        reason = f"{_human_bytes(usage.free)} free ({ratio:.0%}) for {shown}"
        if ratio < fail_ratio:
            results.append(CheckResult(f"disk {dirs[0].name}", FAIL, reason,
                                       "free space: `hux` maintenance cleans old metrics and backups; lower "
                                       "prometheus.retention_time or set retention_size"))
        elif ratio < warn_ratio:
            results.append(CheckResult(f"disk {dirs[0].name}", WARN, reason,
                                       "plan space: lower prometheus.retention_time or set retention_size"))
        else:
            results.append(CheckResult(f"disk {dirs[0].name}", PASS, reason))
    return results


async def check_backup(ctx: HealthContext) -> list[CheckResult]:
    from hux.monitoring.settings import duration_seconds
    from hux.ops.textfile import FILE_NAME, read_values

    name = "last backup"
    max_age = duration_seconds(ctx.settings.backup.max_age)
    fix = "take one: `python3 scripts/backup_monitoring.py` (and `python3 scripts/backup_grafana.py` with Grafana)"
    values = read_values(ctx.paths.textfile_dir / FILE_NAME)
    now = time.time()
    if values:
        stale, failed, ages = [], [], []
        for kind, series in sorted(values.items()):
            last_ok = series.get("hux_backup_last_success_timestamp_seconds")
            if series.get("hux_backup_last_success") == 0:
                failed.append(kind)
            if last_ok is None:
                stale.append(f"{kind}: never succeeded")
                continue
            age = now - last_ok
            ages.append(f"{kind} {_ago(age)} ago")
            if age > max_age:
                stale.append(f"{kind} {_ago(age)} old")
        if failed:
            return [CheckResult(name, WARN, f"last {', '.join(failed)} backup run failed; " + ", ".join(ages),
                                "see the backup command's output; " + fix)]
        if stale:
            return [CheckResult(name, WARN, "older than backup.max_age "
                                f"({ctx.settings.backup.max_age}): " + ", ".join(stale), fix)]
        return [CheckResult(name, PASS, ", ".join(ages))]
    directory = backup_dir(ctx)
    archives = [p for p in directory.rglob("*") if p.is_file()] if directory.is_dir() else []
    if not archives:
        return [CheckResult(name, WARN, "no backup taken yet", fix)]
    newest = max(p.stat().st_mtime for p in archives)
    age = now - newest
    if age > max_age:
        return [CheckResult(name, WARN, f"newest file in {directory} is {_ago(age)} old (max {ctx.settings.backup.max_age})", fix)]
    return [CheckResult(name, PASS, f"newest file in {directory} is {_ago(age)} old")]


# ----- running them --------------------------------------------------------------------------------

CHECKS: tuple[tuple[str, Check], ...] = (
    ("components", check_components),
    ("grafana", check_grafana),
    ("bot", check_bot),
    ("prometheus config", check_prometheus_config),
    ("targets", check_targets),
    ("rules", check_rules),
    ("prometheus → alertmanager", check_prometheus_alertmanager),
    ("alertmanager", check_alertmanager),
    ("metric families", check_metric_families),
    ("dashboards", check_dashboards),
    ("receivers", check_receivers),
    ("disk", check_disk),
    ("backup", check_backup),
)


async def _guarded(label: str, check: Check, ctx: HealthContext, budget: float) -> list[CheckResult]:
    started = time.perf_counter()
    try:
        results = await asyncio.wait_for(check(ctx), budget)
    except asyncio.TimeoutError:
        results = [CheckResult(label, FAIL, f"no result within {budget:g} s", "a component answers too slowly: `hux status`")]
    except Exception as exc:  # noqa: BLE001 - one broken check must not hide the others
        results = [CheckResult(label, FAIL, f"check crashed: {type(exc).__name__}: {exc}", "report this as a bug")]
    elapsed = time.perf_counter() - started
    for result in results:
        result.duration = elapsed
    return results


def client_auth(settings: Any, paths: StackPaths, mode: str = "native") -> httpx.Auth | None:
    """The stack's basic auth, sent only to Prometheus, Alertmanager and node_exporter (never to the bot,
    Grafana or a receiver's URL); docker runs them without auth."""
    if mode != "native":
        return None
    return stack_auth.client_auth(paths.data, [settings.url(name) for name in stack_auth.COMPONENTS])


async def run_health(settings: Any, paths: StackPaths, *, mode: str = "native",
                     checks: Iterable[tuple[str, Check]] = CHECKS, budget: float = CHECK_BUDGET) -> HealthReport:
    started = time.perf_counter()
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=32)
    async with httpx.AsyncClient(verify=False, limits=limits, follow_redirects=False,
                                 auth=client_auth(settings, paths, mode)) as client:
        ctx = HealthContext(settings=settings, paths=paths, mode=mode, client=client)
        groups = await asyncio.gather(*(_guarded(label, fn, ctx, budget) for label, fn in checks))
        for task in ctx._memo.values():
            if not task.done():
                task.cancel()
    flat = [result for group in groups for result in group]
    return HealthReport(flat, time.perf_counter() - started, mode)


def health(settings: Any, paths: StackPaths, *, mode: str = "native") -> HealthReport:
    return asyncio.run(run_health(settings, paths, mode=mode))

"""What `hux up / down / status / restart / reload / health` do, for both paths.

Native (default): render the run directory, start the supervisor detached,
wait until every component is ready, print the URLs and log files. A second
`up` applies configuration changes to the running stack instead (validate,
swap, hot-reload; restart only what needs new flags). Docker
(``stack.mode = "docker"`` or ``--docker``): the same verbs through
``docker compose`` with the committed files.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from hux.config import ConfigError
from hux.monitoring.alertmanager import native_paging
from hux.monitoring.prometheus_config import DOCKER_SERVICES
from hux.monitoring.render import docker_paging, render_native
from hux.monitoring.settings import Settings, load_settings
from hux.stack import binaries, docker, probe
from hux.stack.components import (
    HA_COMPONENTS,
    LOG_FILES,
    ORDER,
    READY_PATHS,
    build_plan,
    decide_grafana,
    grafana_password_file,
    is_loopback,
)
from hux.stack.grafana import ensure_admin_password
from hux.stack.health import client_auth
from hux.stack.logs import tail
from hux.stack.native import NativeStack, StackError
from hux.stack.output import Console, paint, table, use_colour
from hux.stack.plan import StackPaths, StackPlan
from hux.stack.supervisor import Supervisor
from hux.units import ago, human_bytes

DEFAULT_UP_TIMEOUT = 60.0
CRASH_LOOP_RESTARTS = 3   # `up` stops waiting for a component restarted this often


def load(config: str | None) -> Settings:
    return load_settings(config)


def _rel(path: str | Path, home: Path) -> str:
    path = Path(path)
    try:
        return str(path.relative_to(home))
    except ValueError:
        return str(path)


# ----- rendering and applying configuration ---------------------------------------------------------


def render(settings: Settings, paths: StackPaths, *, grafana: bool) -> Any:
    """Render + validate into a staging dir, then swap into data/run (the renderer's contract).

    A config that fails promtool/amtool raises ConfigError and leaves data/run untouched.
    """
    try:
        return render_native(settings, paths.run_dir, data_dir=paths.data, grafana_enabled=grafana)
    except ConfigError as exc:
        raise ConfigError(f"{exc}\nThe configuration was refused; nothing changed (a running stack keeps its current "
                          "configuration). Fix the settings and run the command again.") from None


def hot_reload(settings: Settings, stack: NativeStack) -> list[str]:
    """Ask Prometheus and Alertmanager to re-read their (already validated) files."""
    messages = []
    children = stack.recorded_children()
    stack_settings = settings.stack
    for name in (*stack_settings.prometheus_replicas(), *stack_settings.alertmanager_members()):
        url = settings.url(name) + "/-/reload"
        lifecycle = name.startswith("alertmanager") or is_loopback(stack_settings.bind_address)
        if not lifecycle:
            ident = children.get(name)
            if ident is None or not ident.signal(signal.SIGHUP):
                raise StackError(f"{name} is not running: cannot reload it (`hux status`)")
            messages.append(f"{name}: sent SIGHUP (pid {ident.pid})")
            continue
        try:
            response = httpx.post(url, timeout=10, auth=client_auth(settings, stack.paths))
        except httpx.HTTPError as exc:
            raise StackError(f"{name} did not answer {url} ({type(exc).__name__}): is it running? `hux status`") from None
        if response.status_code != 200:
            raise StackError(f"{name} refused the new configuration (HTTP {response.status_code}: "
                             f"{response.text.strip()[:300]}); it keeps running the previous one. "
                             f"See logs/{LOG_FILES[name]}")
        messages.append(f"{name}: configuration reloaded")
    return messages


def apply_changes(settings: Settings, paths: StackPaths, stack: NativeStack, new_plan: StackPlan, con: Console) -> None:
    """On a running stack: hot-reload configs, restart components whose command line changed."""
    for message in hot_reload(settings, stack):
        con.say(f"  {message}")
    old_plan = stack.plan()
    old = {s.name: s.launch_key() for s in old_plan.components} if old_plan else {}
    new = {s.name: s.launch_key() for s in new_plan.components}
    changed = sorted(n for n in new if old.get(n) != new[n]) + sorted(n for n in old if n not in new)
    if not changed:
        return
    components = (stack.state() or {}).get("components") or {}
    old_pids = {n: (components.get(n) or {}).get("pid") for n in changed}
    new_plan.save(paths.plan_file)
    stack.replan()
    con.say(f"  command line changed for {', '.join(changed)}: the supervisor restarts "
            f"{'it' if len(changed) == 1 else 'them'} now")
    restarted = [n for n in changed if n in new]
    if not restarted:
        return
    if not stack.wait_new_pids(restarted, old_pids, timeout=60):
        raise StackError(f"the supervisor did not restart {', '.join(restarted)} in time; see {paths.supervisor_log}")
    urls = {n: new_plan.component(n).ready_url for n in restarted}
    for name, result in asyncio.run(probe.wait_ready(urls, timeout=60)).items():
        con.say(f"  {name}: restarted, {'ready' if result.ok else 'NOT READY: ' + result.detail}")


# ----- native up -------------------------------------------------------------------------------------


@dataclass
class Prepared:
    settings: Settings
    paths: StackPaths
    plan: StackPlan
    grafana_note: str


def prepare(config: str | None, con: Console, *, quiet: bool = False) -> Prepared:
    settings = load(config)
    paths = StackPaths.current()
    stack = NativeStack(paths)
    stack.prepare_dirs()
    password_file = grafana_password_file(settings, paths)
    try:
        _, created = ensure_admin_password(password_file)
    except (OSError, ValueError) as exc:
        raise StackError(f"Grafana admin password: {exc}") from None
    if created and not quiet:
        con.say(f"  generated the Grafana admin password in {_rel(password_file, paths.home)} (mode 0600)")
    try:
        grafana = decide_grafana(settings)
        rendered = render(settings, paths, grafana=grafana.run)
        plan = build_plan(settings, paths, rendered, config_path=config, grafana=grafana)
    except binaries.MissingBinary as exc:
        raise StackError(str(exc)) from None
    if not quiet:
        con.say(f"  rendered and validated the configuration in {_rel(paths.run_dir, paths.home)}/ "
                "(promtool check config, amtool check-config)")
    return Prepared(settings, paths, plan, grafana.reason)


def _crash_loop_reason(stack: NativeStack, name: str) -> str | None:
    comp = ((stack.state() or {}).get("components") or {}).get(name) or {}
    if comp.get("error"):
        return str(comp["error"])
    if comp.get("restarts", 0) >= CRASH_LOOP_RESTARTS:
        return f"keeps exiting ({comp.get('last_exit')}; {comp['restarts']} restarts)"
    return None


def wait_until_ready(prep: Prepared, stack: NativeStack | None, timeout: float, con: Console) -> dict[str, probe.Probe]:
    urls = {spec.name: spec.ready_url for spec in prep.plan.components}
    started = time.monotonic()

    def progress(name: str, result: probe.Probe) -> None:
        con.say(f"  {name:<14} ready after {time.monotonic() - started:.1f} s")

    give_up = (lambda name: _crash_loop_reason(stack, name)) if stack is not None else None
    return asyncio.run(probe.wait_ready(urls, timeout=timeout, give_up=give_up, progress=progress))


def summary(prep: Prepared, results: dict[str, probe.Probe], con: Console, supervisor_pid: int | None) -> None:
    home = prep.paths.home
    rows = []
    # bot.instances > 1 adds bot_2, bot_3, ... after the bot
    for name in (*ORDER, *(n for n in prep.plan.names if n not in ORDER)):
        if name in HA_COMPONENTS and name not in prep.plan.names:
            continue   # the single topology has none
        try:
            spec = prep.plan.component(name)
        except KeyError:
            why = "not installed (see below)" if name == "grafana" else "off (inbox.enabled = false)"
            rows.append([name, prep.settings.url(name), "skipped", why])
            continue
        result = results.get(name)
        state = "ready" if result and result.ok else "NOT READY"
        log = _rel(spec.log_file, home)
        if spec.extra_logs:
            log = f"{_rel(spec.extra_logs[0], home)} (stdout/stderr: {log})"
        rows.append([name, spec.url, state, log])
    con.say()
    con.say(table(["COMPONENT", "URL", "STATE", "LOG"], rows))
    con.say(f"supervisor     pid {supervisor_pid}, log {_rel(prep.paths.supervisor_log, home)}, "
            f"state {_rel(prep.paths.state_file, home)}")
    if "grafana" not in prep.plan.names:
        con.say()
        con.say(f"Grafana: {prep.grafana_note}")
        con.say("Dashboards without Grafana: `hux dashboards snapshot` writes all three, every panel over the last "
                f"3 hours (--since 1h, --from/--to), to one HTML file in {_rel(prep.paths.snapshots_dir, home)}/ "
                "to open in any browser.")
    else:
        con.say(f"Grafana login: {prep.settings.grafana.admin_user} / the password in "
                f"{_rel(grafana_password_file(prep.settings, prep.paths), home)}")
    con.say()
    con.say(f"Alerts: {native_paging(prep.settings).sentence()}")


def up_native(config: str | None, *, timeout: float, foreground: bool, con: Console) -> int:
    paths = StackPaths.current()
    stack = NativeStack(paths)
    con.say(f"hux up: native stack, home {paths.home}")
    if stack.running():
        if foreground:
            raise StackError("the stack already runs for this home (`hux status`); stop it first: `hux down`")
        prep = prepare(config, con)
        con.say("  the stack is already running: applying the configuration")
        apply_changes(prep.settings, paths, stack, prep.plan, con)
        con.say()
        return status_native(prep.settings, paths, con, as_json=False)
    prep = prepare(config, con)
    busy = NativeStack.busy_ports(prep.plan, {"bot demo doubles": (prep.settings.stack.loopback_host,
                                                                   prep.settings.stack.ports.doubles)})
    if busy:
        raise StackError(
            "ports already in use by another program: " + "; ".join(busy) + ". Stop that program, or choose "
            "other ports in hux.toml ([stack.ports]) or with HUX__STACK__PORTS__<NAME>=<port>."
        )
    prep.plan.save(paths.plan_file)
    if foreground:
        return _run_foreground(prep, timeout, con)
    ident = stack.start_detached()
    con.say(f"  supervisor started (pid {ident.pid}); waiting for the components to be ready")
    results = wait_until_ready(prep, stack, timeout, con)
    summary(prep, results, con, ident.pid)
    not_ready = [n for n in prep.plan.names if not results.get(n) or not results[n].ok]
    if not_ready:
        con.say()
        for name in not_ready:
            spec = prep.plan.component(name)
            con.say(f"{name} is not ready: {results[name].detail if name in results else 'no answer'}")
            for line in tail(Path(spec.log_file), 8):
                con.say(f"    {line}")
        con.say("The stack keeps running (the supervisor retries with backoff). `hux status` shows it; "
                "`hux down` stops it.")
        return 1
    con.say()
    con.say("All components are ready. Prometheus scrapes every "
            f"{prep.settings.prometheus.scrape_interval}: run `hux health` (or scripts/run_monitoring_health.sh) "
            "for the deep check; `hux status`; `hux down` to stop.")
    return 0


def _run_foreground(prep: Prepared, timeout: float, con: Console) -> int:
    """Containers and systemd: the supervisor in this process, printing the summary once ready."""

    def announce() -> None:
        results = wait_until_ready(prep, None, timeout, con)
        summary(prep, results, con, os.getpid())

    threading.Thread(target=announce, name="announce-ready", daemon=True).start()
    return Supervisor(prep.paths, prep.plan, echo=True).run()


# ----- native down / status / restart / reload ---------------------------------------------------------


def down_native(paths: StackPaths, con: Console, timeout: float = 60.0) -> int:
    stack = NativeStack(paths)
    report = stack.stop(timeout=timeout)
    if not report.was_running:
        con.say(f"hux down: nothing is running for {paths.home}")
        return 0
    if report.stopped:
        con.say("hux down: stopped " + ", ".join(report.stopped))
    if report.forced:
        con.say("  had to stop directly (verified by pid and start time): " + ", ".join(report.forced))
    if report.left:
        con.say("  STILL RUNNING: " + ", ".join(report.left) + " — stop them by hand (kill <pid>)")
        return 1
    return 0


def status_data(settings: Settings, paths: StackPaths) -> dict[str, Any]:
    stack = NativeStack(paths)
    state = stack.state() or {}
    sup = stack.supervisor()
    plan = stack.plan()
    components = state.get("components") or {}
    running = sup is not None
    urls = {}
    if running and plan is not None:
        urls = {spec.name: spec.ready_url for spec in plan.components}
    probes = probe.probe_all_sync(urls, timeout=1.0) if urls else {}
    now = time.time()
    rows = []
    names = plan.names if plan else list(components)
    for name in names:
        comp = components.get(name) or {}
        alive = running and comp.get("state") == "running"
        spec = plan.component(name) if plan else None
        rows.append({
            "name": name,
            "state": comp.get("state", "stopped") if running else "stopped",
            "ready": bool(probes.get(name) and probes[name].ok),
            "ready_detail": probes[name].detail if name in probes else None,
            "pid": comp.get("pid") if alive else None,
            "restarts": comp.get("restarts", 0),
            "uptime_seconds": (now - comp["started_at"]) if alive and comp.get("started_at") else None,
            "last_exit": comp.get("last_exit"),
            "next_start_in": comp.get("next_start_in"),
            "url": spec.url if spec else comp.get("url"),
            "log_file": spec.log_file if spec else comp.get("log_file"),
            "extra_logs": list(spec.extra_logs) if spec else [],
        })
    memory = stack.memory() if running else {}
    grafana_note = ""
    if "grafana" not in names:
        try:
            grafana_note = decide_grafana(settings).reason
        except binaries.MissingBinary as exc:
            grafana_note = str(exc)
    return {
        "mode": "native",
        "home": str(paths.home),
        "running": running,
        "supervisor": {"pid": sup.pid if sup else None, "log_file": str(paths.supervisor_log)},
        "components": rows,
        "memory_rss_bytes": memory,
        "memory_rss_total_bytes": sum(memory.values()),
        "grafana_skipped": grafana_note or None,
        "paging": native_paging(settings).to_dict(),
    }


def status_native(settings: Settings, paths: StackPaths, con: Console, *, as_json: bool) -> int:
    data = status_data(settings, paths)
    if as_json:
        con.say(json.dumps(data, indent=2))
        return 0 if data["running"] else 3
    if not data["running"]:
        con.say(f"native stack: not running (home {paths.home}); start it with `hux up`")
        return 3
    colour = use_colour(con.out)
    rows = []
    for row in data["components"]:
        state = row["state"]
        if state == "backoff" and row["next_start_in"] is not None:
            state = f"backoff ({row['next_start_in']:.0f}s)"
        rows.append([
            row["name"],
            paint(state.ljust(9), row["state"], colour),
            "yes" if row["ready"] else "NO",
            str(row["pid"] or "-"),
            str(row["restarts"]),
            ago(row["uptime_seconds"], compact=True),
            row["url"] or "-",
            _rel((row["extra_logs"] or [row["log_file"]])[0], paths.home) if row["log_file"] else "-",
        ])
    con.say(f"native stack, home {paths.home}: supervisor pid {data['supervisor']['pid']}, "
            f"memory (RSS) {human_bytes(data['memory_rss_total_bytes'])}")
    con.say(table(["COMPONENT", "STATE    ", "READY", "PID", "RESTARTS", "UPTIME", "URL", "LOG"], rows))
    for row in data["components"]:
        if row["last_exit"] and row["restarts"]:
            con.say(f"  {row['name']}: last exit: {row['last_exit']}")
    if data["grafana_skipped"]:
        con.say(f"  grafana: skipped: {data['grafana_skipped'].split('. ')[0]}")
    con.say(f"  alerts: {data['paging']['sentence']}")
    return 0 if all(r["ready"] for r in data["components"]) else 1


def restart_native(config: str | None, components: list[str], *, timeout: float, con: Console) -> int:
    paths = StackPaths.current()
    stack = NativeStack(paths)
    if not components:
        if stack.running():
            down_native(paths, con)
        return up_native(config, timeout=timeout, foreground=False, con=con)
    plan = stack.plan()
    if not stack.running() or plan is None:
        raise StackError("the stack is not running: start it with `hux up`")
    unknown = [c for c in components if c not in plan.names]
    if unknown:
        raise StackError(f"unknown component(s) {', '.join(unknown)}; running: {', '.join(plan.names)}")
    old = {n: ((stack.state() or {}).get("components") or {}).get(n, {}).get("pid") for n in components}
    stack.request_restart(components)
    if not stack.wait_new_pids(components, old, timeout=max(30.0, max(plan.component(c).stop_timeout for c in components) + 10)):
        raise StackError(f"the supervisor did not restart {', '.join(components)} in time; see {paths.supervisor_log}")
    urls = {c: plan.component(c).ready_url for c in components}
    results = asyncio.run(probe.wait_ready(urls, timeout=timeout))
    for name in components:
        result = results[name]
        con.say(f"{name}: restarted, {'ready' if result.ok else 'NOT READY: ' + result.detail}")
    return 0 if all(r.ok for r in results.values()) else 1


def reload_native(config: str | None, con: Console) -> int:
    paths = StackPaths.current()
    stack = NativeStack(paths)
    if not stack.running():
        raise StackError("the stack is not running: start it with `hux up` (which renders the configuration)")
    prep = prepare(config, con)
    apply_changes(prep.settings, paths, stack, prep.plan, con)
    return 0


# ----- docker ------------------------------------------------------------------------------------------


def _docker_urls(settings: Settings, project: docker.ComposeProject) -> dict[str, str]:
    """Ready URLs of the services compose publishes on the host (the bot is only reachable inside)."""
    published = project.published_services()
    return {name: settings.published_url(name) + path for name, path in READY_PATHS.items()
            if DOCKER_SERVICES.get(name) in published}


def docker_environment(settings: Settings, project: docker.ComposeProject) -> dict[str, str]:
    """Compose's environment with the generated Grafana, PostgreSQL and Grafana-reader passwords (unless .env sets them)."""
    paths = StackPaths.current()
    secrets = {
        "HUX_GRAFANA_ADMIN_PASSWORD": grafana_password_file(settings, paths),
        "HUX_POSTGRES_PASSWORD": paths.data / "docker" / "postgres_password",
        "HUX_GRAFANA_DB_PASSWORD": paths.data / "docker" / "grafana_db_password",
    }
    try:
        return docker.compose_environment(project.file.parent, secrets)
    except (OSError, ValueError) as exc:
        raise StackError(f"generated passwords for the docker path: {exc}") from None


def up_docker(settings: Settings, con: Console, *, timeout: float, compose_file: Path | None) -> int:
    project = docker.ComposeProject.detect(compose_file)
    env = docker_environment(settings, project)
    con.say(f"hux up: docker path ({' '.join(project.frontend)}, {project.file})")
    result = project.run(project.up_command(), env=env)
    if result.returncode != 0:
        raise StackError(f"`{' '.join(project.up_command())}` failed with code {result.returncode}")
    urls = _docker_urls(settings, project)
    results = asyncio.run(probe.wait_ready(urls, timeout=timeout))
    rows = [[n, settings.published_url(n), "ready" if r.ok else f"NOT READY ({r.detail})"] for n, r in results.items()]
    con.say(table(["SERVICE", "URL", "STATE"], rows))
    con.say(f"Grafana login: {settings.grafana.admin_user} / the password in "
            f"{grafana_password_file(settings, StackPaths.current())} (unless .env sets HUX_GRAFANA_ADMIN_PASSWORD)")
    con.say("Logs: `docker compose logs <service>`; stop: `hux down --docker`.")
    con.say(f"Alerts: {docker_paging(settings).sentence()}")
    return 0 if all(r.ok for r in results.values()) else 1


def docker_simple(settings: Settings, verb: str, con: Console, *, compose_file: Path | None,
                  services: list[str] | None = None) -> int:
    project = docker.ComposeProject.detect(compose_file)
    if verb == "down":
        argv = project.down_command()
    elif verb == "status":
        argv = project.status_command()
    elif verb == "restart":
        argv = project.restart_command(project.check_services(services or []))
    else:
        raise ValueError(verb)
    return project.run(argv, env=docker_environment(settings, project)).returncode

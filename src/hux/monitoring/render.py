"""Rendering the settings into runtime configs: the native run directory and the docker tree.

``render_native`` writes ``data/run`` for the local processes; ``render_docker``
writes the committed ``docker/`` tree and ``docker-compose.yml``. Both come
from the same builders (``prometheus``, ``rules``, ``alertmanager``,
``grafana``, ``dashboards``, ``compose``), so a threshold changes in one place.

Rendering is all-or-nothing: files are written into a staging directory next
to the target, checked with ``promtool`` and ``amtool``, and only then moved
into place. A bad setting raises ``ConfigError`` and leaves the target as it
was.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from hux import paths
from hux.config import ConfigError
from hux.monitoring import alertmanager as am
from hux.monitoring import auth, compose, grafana, prometheus_config, rules, runbooks, targets, wiring
from hux.monitoring.alertdocs import alerts_markdown
from hux.monitoring.settings import Settings
from hux.monitoring.yamlout import GENERATED, dump
from hux.paths import RUN_GRAFANA_DASHBOARDS, RUN_GRAFANA_PROVISIONING

TEMPLATES_DIR = Path(__file__).parent / "templates"
CHECK_TIMEOUT = 60

VM_RELABEL_FILE = prometheus_config.VM_RELABEL_FILE
#: native secret files (run_dir/secrets/<name>), each 0600
SECRET_SMTP_PASSWORD = "smtp_auth_password"
SECRET_SLACK_API_URL = "slack_api_url"
#: top-level paths of the docker tree that rendering owns (relative to the repository root)
DOCKER_MANAGED_DIRS = ("docker/prometheus", "docker/alertmanager", "docker/grafana", "docker/postgres",
                       "docker/victoriametrics")
DOCKER_SECRETS_README = """# Alertmanager secrets for the docker path

One file per secret, never committed (this directory ignores everything but
this README and its .gitignore). `docker compose` mounts them at
/run/secrets/<name>; docker/alertmanager/alertmanager.yml reads them through
its *_file settings.

| file | holds | needed |
|---|---|---|
| smtp_password | SMTP password of receivers.email.auth_username | when email is wired and auth_username is set |
| slack_api_url | Slack incoming-webhook URL | when receivers.slack is enabled |
| webhook_url | generic webhook URL | when receivers.webhook is enabled without a url setting |
| heartbeat_url | dead man's switch URL for the Watchdog | when receivers.heartbeat is enabled without a url setting |

A receiver is wired into docker/alertmanager/alertmanager.yml only when it is
enabled and complete inside a container (an SMTP relay or URL on localhost is
the Alertmanager container itself, so it is not wired): `hux check-config`
prints one line per receiver saying which are wired and why the others are not.

Create them with `umask 077; printf %s 'https://hooks.slack.com/services/...' > slack_api_url`.
A receiver whose file is empty or wrong fails its notifications, and the
AlertmanagerNotificationsFailing alert says so through the other receivers.
"""


@dataclass(frozen=True)
class RenderedNative:
    """Paths of a rendered native run directory and the command lines that go with it."""

    run_dir: Path
    prometheus_config: Path
    rules_dir: Path
    alertmanager_config: Path
    templates_dir: Path
    secrets_dir: Path
    grafana_provisioning_dir: Path
    grafana_dashboards_dir: Path
    grafana_enabled: bool
    #: the web config (basic auth) of Prometheus, Alertmanager and node_exporter (data/auth/web.yml)
    web_config: Path | None = None
    prometheus_args: list[str] = field(default_factory=list)
    alertmanager_args: list[str] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)
    #: topology "ha": the command lines of the other components, by component name (``prometheus_b``,
    #: ``alertmanager_b``, ``alertmanager_c``, ``victoria_metrics``)
    ha_args: dict[str, list[str]] = field(default_factory=dict)

    @property
    def rule_files(self) -> list[Path]:
        return sorted(self.rules_dir.glob("*.yml"))

    @property
    def web_args(self) -> list[str]:
        """``--web.config.file`` for Prometheus, Alertmanager and node_exporter (the supervisor's plan adds it)."""
        return [f"--web.config.file={self.web_config}"] if self.web_config else []


# --- building the file set -----------------------------------------------------------


def _dashboards(settings: Settings) -> dict[str, dict[str, Any]]:
    from hux.monitoring.dashboards import build_dashboards  # the SDK import is slow; only when rendering

    return build_dashboards(settings)


def _common_files(settings: Settings, targets: prometheus_config.Targets, secrets: am.ReceiverSecrets,
                  basic_auth: dict[str, str] | None = None) -> dict[str, str]:
    """Relative path -> text, shared by both modes (the callers add their own extras)."""
    files: dict[str, str] = {}
    # one config per replica (topology "ha": the same but for the replica label); prometheus.yml is the first
    for name, replica in settings.stack.prometheus_replicas().items():
        files[f"{name}.yml"] = dump(
            prometheus_config.prometheus_config(settings, targets, auth=basic_auth, replica=replica), GENERATED)
    if settings.stack.ha:
        files[VM_RELABEL_FILE] = dump(prometheus_config.victoria_metrics_relabel(), GENERATED)
    for name, document in rules.rule_files(settings).items():
        files[f"rules/{name}"] = dump(document, GENERATED)
    files["alertmanager.yml"] = dump(am.alertmanager_config(settings, secrets), GENERATED)
    for name in am.TEMPLATE_FILES:
        files[f"templates/{name}"] = (TEMPLATES_DIR / name).read_text(encoding="utf-8")
    return files


def _dashboard_files(settings: Settings) -> dict[str, str]:
    return {f"{uid}.json": json.dumps(board, indent=2, sort_keys=False) + "\n"
            for uid, board in _dashboards(settings).items()}


def native_secrets(settings: Settings, run_dir: Path, environ: os._Environ[str] | dict[str, str] | None = None
                   ) -> tuple[am.ReceiverSecrets, dict[str, str]]:
    """The receiver references for the native config and the secret files' contents (name -> value)."""
    environ = os.environ if environ is None else environ
    r = settings.receivers
    enabled = tuple(settings.enabled_receivers())
    contents: dict[str, str] = {}
    smtp_file = slack_file = None
    if r.email.enabled and r.email.auth_username:
        password = r.email.password(environ)
        if not password:
            raise ConfigError("receivers.email needs its SMTP password: set "
                              f"{r.email.auth_password_env} or receivers.email.auth_password_file")
        contents[SECRET_SMTP_PASSWORD] = password
        smtp_file = str(run_dir / "secrets" / SECRET_SMTP_PASSWORD)
    if r.slack.enabled:
        url = r.slack.api_url(environ)
        if not url:
            raise ConfigError(f"receivers.slack needs its webhook URL: set {r.slack.api_url_env} "
                              "or receivers.slack.api_url_file")
        contents[SECRET_SLACK_API_URL] = url
        slack_file = str(run_dir / "secrets" / SECRET_SLACK_API_URL)
    # Alertmanager 0.25 has no webhook url_file: the URL goes into alertmanager.yml (written 0600).
    webhook_url = r.webhook.resolved_url(environ) if r.webhook.enabled else None
    heartbeat_url = r.heartbeat.resolved_url(environ) if r.heartbeat.enabled else None
    refs = am.ReceiverSecrets(
        receivers=enabled,
        smtp_password_file=smtp_file,
        slack_api_url_file=slack_file,
        webhook_url=webhook_url,
        heartbeat_url=heartbeat_url,
        inbox_url=am.inbox_url(settings),
    )
    return refs, contents


def native_files(settings: Settings, run_dir: Path, *, grafana_enabled: bool | None = None,
                 environ: dict[str, str] | None = None,
                 auth_password_file: Path | None = None,
                 targets_dir: Path | None = None) -> tuple[dict[str, str], dict[str, str]]:
    """(config files, secret files) of a native run directory, as relative path -> text.

    ``auth_password_file``: Prometheus scrapes itself, Alertmanager and node_exporter and sends alerts
    with user ``hux`` and this password file (``hux.monitoring.auth``); only the path is rendered.
    ``targets_dir``: the target files of ``hux targets`` the node and bot jobs also read.
    """
    with_grafana = settings.grafana.native_enabled() if grafana_enabled is None else grafana_enabled
    scraped = prometheus_config.Targets.native(settings, grafana=with_grafana, file_sd_dir=targets_dir)
    refs, secrets = native_secrets(settings, run_dir, environ)
    basic_auth = prometheus_config.basic_auth(auth.USER, auth_password_file) if auth_password_file else None
    files = _common_files(settings, scraped, refs, basic_auth)
    stack = settings.stack
    vm_url = settings.url("victoria_metrics") if stack.ha else None
    datasources = grafana.datasource_provisioning(
        settings, settings.url("prometheus"), settings.url("alertmanager"), victoria_metrics_url=vm_url,
        replica_urls={replica: settings.url(name) for name, replica in stack.prometheus_replicas().items()})
    if auth_password_file:
        # Grafana queries Prometheus and Alertmanager as user hux; it reads the password from the file itself ($__file),
        # so the provisioning file holds only the path. VictoriaMetrics listens on loopback without auth.
        for source in datasources["datasources"]:
            if source["url"] == vm_url:
                continue
            source.update(basicAuth=True, basicAuthUser=auth.USER,
                          secureJsonData={"basicAuthPassword": f"$__file{{{auth_password_file}}}"})
    files[f"{RUN_GRAFANA_PROVISIONING}/datasources/hux.yml"] = dump(datasources, GENERATED)
    files[f"{RUN_GRAFANA_PROVISIONING}/dashboards/hux.yml"] = dump(
        grafana.dashboard_provisioning(str(run_dir / RUN_GRAFANA_DASHBOARDS)), GENERATED)
    for name, text in _dashboard_files(settings).items():
        files[f"{RUN_GRAFANA_DASHBOARDS}/{name}"] = text
    return files, {f"secrets/{name}": value + "\n" for name, value in secrets.items()}


def docker_secret_refs(settings: Settings) -> tuple[am.ReceiverSecrets, list[str]]:
    """Receiver references of the docker tree and the docker secrets Alertmanager needs.

    Only the receivers that are enabled and complete inside a container are wired
    (:mod:`hux.monitoring.wiring`); their secrets come from docker/secrets/ files the operator fills.
    """
    r = settings.receivers
    wired = wiring.wired_receivers(settings, "docker")
    heartbeat = wiring.heartbeat_wired(settings, "docker")
    smtp = "email" in wired and bool(r.email.auth_username)
    slack = "slack" in wired
    webhook_file = "webhook" in wired and not r.webhook.url
    heartbeat_file = heartbeat and not r.heartbeat.url
    needed = [name for name, used in (("hux_smtp_password", smtp), ("hux_slack_api_url", slack),
                                      ("hux_webhook_url", webhook_file), ("hux_heartbeat_url", heartbeat_file))
              if used]
    refs = am.ReceiverSecrets(
        receivers=wired,
        smtp_password_file=compose.secret_path("hux_smtp_password") if smtp else None,
        slack_api_url_file=compose.secret_path("hux_slack_api_url") if slack else None,
        webhook_url=r.webhook.url if "webhook" in wired and r.webhook.url else None,
        webhook_url_file=compose.secret_path("hux_webhook_url") if webhook_file else None,
        heartbeat_url=r.heartbeat.url if heartbeat and r.heartbeat.url else None,
        heartbeat_url_file=compose.secret_path("hux_heartbeat_url") if heartbeat_file else None,
    )
    return refs, needed


def docker_paging(settings: Settings) -> am.Paging:
    """Who the docker tree's Alertmanager pages (its wired receivers; the docker path has no local inbox)."""
    refs, _ = docker_secret_refs(settings)
    return am.who_is_paged(am.alertmanager_config(settings, refs))


def docker_files(settings: Settings) -> dict[str, str]:
    """The committed docker tree, docker-compose.yml and docs/alerts.md: path relative to the repository root -> text.

    The docker components run without basic auth inside the compose network (no credential file exists
    there); only native mode puts Prometheus, Alertmanager and node_exporter behind it.
    """
    refs, needed = docker_secret_refs(settings)
    common = _common_files(settings, prometheus_config.Targets.docker(settings), refs)
    files: dict[str, str] = {}
    replica_files = {f"{name}.yml" for name in settings.stack.prometheus_replicas()}
    for rel, text in common.items():
        if rel in replica_files or rel.startswith("rules/"):
            files[f"docker/prometheus/{rel}"] = text
        elif rel == VM_RELABEL_FILE:
            files[f"docker/victoriametrics/{rel}"] = text
        else:
            files[f"docker/alertmanager/{rel}"] = text

    def url(component: str) -> str:
        return f"http://{prometheus_config.DOCKER_SERVICES[component]}:{prometheus_config.DOCKER_PORTS[component]}"

    stack = settings.stack
    files["docker/grafana/provisioning/datasources/hux.yml"] = dump(grafana.datasource_provisioning(
        settings, url("prometheus"), url("alertmanager"),
        victoria_metrics_url=url("victoria_metrics") if stack.ha else None,
        replica_urls={replica: url(name) for name, replica in stack.prometheus_replicas().items()},
        bot_database=grafana.bot_database_datasource("postgres:5432", "hux")), GENERATED)
    files[compose.READER_INIT_SCRIPT] = compose.reader_init_script()
    files["docker/grafana/provisioning/dashboards/hux.yml"] = dump(
        grafana.dashboard_provisioning("/var/lib/grafana/dashboards"), GENERATED)
    # the docker tree's dashboards read cAdvisor whatever mode these settings run in
    docker_mode = settings.model_copy(update={"stack": settings.stack.model_copy(update={"mode": "docker"})})
    for name, text in _dashboard_files(docker_mode).items():
        files[f"docker/grafana/dashboards/{name}"] = text
    files["docker/secrets/.gitignore"] = "*\n!.gitignore\n!README.md\n"
    files["docker/secrets/README.md"] = DOCKER_SECRETS_README
    files["docker-compose.yml"] = dump(compose.compose_document(settings, needed), GENERATED)
    files["docker/exporters/docker-compose.yml"] = dump(compose.exporters_document(settings), GENERATED)
    files["docker/exporters/.gitignore"] = "web.yml\n"
    files["docs/alerts.md"] = alerts_markdown(settings)
    files[runbooks.DOCS_PATH] = runbooks.docs_markdown()
    return files


def _stale_docker_files(root: Path, rendered: Iterable[str]) -> list[str]:
    """Files under the managed docker directories that rendering no longer produces."""
    rendered = set(rendered)
    stale = []
    for managed in DOCKER_MANAGED_DIRS:
        base = root / managed
        if base.is_dir():
            stale += [p.relative_to(root).as_posix() for p in base.rglob("*")
                      if p.is_file() and p.relative_to(root).as_posix() not in rendered]
    return sorted(stale)


def check_docker(settings: Settings, root: Path) -> list[str]:
    """Differences between the committed docker tree under root and a fresh render ([] = up to date)."""
    root = Path(root)
    files = docker_files(settings)
    problems = []
    for rel, text in sorted(files.items()):
        path = root / rel
        if not path.is_file():
            problems.append(f"{rel}: missing")
        elif path.read_text(encoding="utf-8") != text:
            problems.append(f"{rel}: differs from a fresh render")
    problems += [f"{rel}: no longer rendered (stale)" for rel in _stale_docker_files(root, files)]
    return problems


def validate_docker(stage: Path) -> list[str]:
    """promtool/amtool checks of a rendered docker tree.

    The docker Alertmanager is newer than the Debian amtool (0.25), which has no
    webhook ``url_file``; the check reads a copy with those lines swapped for a URL.
    """
    problems = [p for p in (_run_check(["promtool", "check", "config", str(config)])   # each replica's (HA: two)
                            for config in sorted((stage / "docker/prometheus").glob("prometheus*.yml"))) if p]
    am_config = stage / "docker/alertmanager/alertmanager.yml"
    checked = am_config.with_name("alertmanager.amtool-0.25.yml")
    checked.write_text(re.sub(r"(?m)^(\s*-?\s*)url_file: .*$", r"\1url: http://127.0.0.1:9/placeholder",
                              am_config.read_text(encoding="utf-8")), encoding="utf-8")
    try:
        problem = _run_check(["amtool", "check-config", str(checked)])
    finally:
        checked.unlink()
    return problems + ([problem] if problem else [])


def render_docker(settings: Settings, root: Path) -> list[Path]:
    """Write the docker tree and docker-compose.yml under root (checked first; ConfigError changes nothing)."""
    root = Path(root).resolve()
    files = docker_files(settings)
    staging = Path(tempfile.mkdtemp(prefix=".hux-docker-render-", dir=root))
    try:
        _write_tree(staging, files)
        problems = validate_docker(staging)
        if problems:
            raise ConfigError("the rendered docker configuration does not pass its checks, nothing was written:\n  "
                              + "\n  ".join(problems))
        for rel in _stale_docker_files(root, files):
            (root / rel).unlink()
        for rel in files:
            target = root / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(staging / rel, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return [root / rel for rel in files]


# --- checks -----------------------------------------------------------------------------


def _run_check(argv: list[str]) -> str | None:
    """None when the check passes, else its complaint."""
    binary = shutil.which(argv[0])
    if binary is None:
        return (f"{argv[0]} is not installed, so the rendered configs cannot be checked: install it "
                "(Debian: apt-get install prometheus prometheus-alertmanager) or run scripts/setup_monitoring.py")
    try:
        proc = subprocess.run([binary, *argv[1:]], capture_output=True, text=True, timeout=CHECK_TIMEOUT)
    except subprocess.TimeoutExpired:
        return f"{' '.join(argv)} did not finish within {CHECK_TIMEOUT}s"
    if proc.returncode != 0:
        # amtool prints the reason on stdout and a summary on stderr: keep both.
        output = "\n".join(part for part in (proc.stdout.strip(), proc.stderr.strip()) if part)[-2000:]
        return f"{' '.join(argv)} failed:\n{output}"
    return None


#: the checks' runner for the other renderers (hux.monitoring.kubernetes)
run_check = _run_check


def validate_native(run_dir: Path) -> list[str]:
    """Check a rendered directory with promtool and amtool; the problems found ([] = all good)."""
    run_dir = Path(run_dir)
    checks = [
        *(["promtool", "check", "config", str(config)] for config in sorted(run_dir.glob("prometheus*.yml"))),
        ["promtool", "check", "rules", *(str(p) for p in sorted((run_dir / "rules").glob("*.yml")))],
        ["amtool", "check-config", str(run_dir / "alertmanager.yml")],
    ]
    return [problem for problem in (_run_check(argv) for argv in checks) if problem]


def check_native(settings: Settings) -> list[str]:
    """Render the native configuration into a temporary directory and check it; the problems found."""
    with tempfile.TemporaryDirectory(prefix="hux-render-check-") as tmp:
        run_dir = Path(tmp) / "run"
        files, secrets = native_files(settings, run_dir, auth_password_file=Path(tmp) / "auth" / "password",
                                      targets_dir=Path(tmp) / paths.TARGETS_DIR_NAME)
        _write_tree(run_dir, {**files, **secrets}, private={*secrets, "alertmanager.yml"})
        return validate_native(run_dir)


# --- atomic writing -----------------------------------------------------------------------


def _write_tree(root: Path, files: dict[str, str], *, mode: int = 0o644, private: Iterable[str] = ()) -> None:
    private = set(private)
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        path.chmod(0o600 if rel in private else mode)


def _swap_in(staging: Path, target: Path, entries: Iterable[str]) -> None:
    """Move each top-level entry of staging over the same entry of target (each move atomic)."""
    target.mkdir(parents=True, exist_ok=True)
    for entry in entries:
        new, old = staging / entry, target / entry
        if new.is_dir() and old.exists():
            trash = target / f".{entry}.old"
            shutil.rmtree(trash, ignore_errors=True)
            os.replace(old, trash)
            os.replace(new, old)
            shutil.rmtree(trash, ignore_errors=True)
        else:
            if old.is_dir() and not new.is_dir():
                shutil.rmtree(old)
            os.replace(new, old)


def render_native(settings: Settings, run_dir: Path, *, data_dir: Path, grafana_enabled: bool | None = None,
                  environ: dict[str, str] | None = None) -> RenderedNative:
    """Write the native run directory (validated first; on any problem ConfigError and nothing changes)."""
    run_dir = Path(run_dir).resolve()
    data_dir = Path(data_dir).resolve()
    with_grafana = settings.grafana.native_enabled() if grafana_enabled is None else grafana_enabled
    try:   # first run: generate the password; later runs keep it
        credentials, _ = auth.ensure(data_dir, [settings.url(name) for name in auth.components(settings.stack)])
    except auth.AuthError as exc:
        raise ConfigError(str(exc)) from None
    targets_dir = data_dir / paths.TARGETS_DIR_NAME
    try:   # Prometheus watches the target files: they exist (empty) before it starts
        targets.ensure_files(targets_dir)
        for kind in targets.KINDS:
            targets.read_targets(targets_dir, kind)
    except OSError as exc:
        raise ConfigError(f"cannot create the target files in {targets_dir}: {exc}") from None
    files, secrets = native_files(settings, run_dir, grafana_enabled=with_grafana, environ=environ,
                                  auth_password_file=credentials.password_file, targets_dir=targets_dir)
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{run_dir.name}.render-", dir=run_dir.parent))
    try:
        # alertmanager.yml may hold the webhook URL (see hux.monitoring.alertmanager): private.
        _write_tree(staging, files, private={"alertmanager.yml"})
        (staging / "secrets").mkdir(mode=0o700, exist_ok=True)
        (staging / "secrets").chmod(0o700)
        _write_tree(staging, secrets, private=secrets.keys())
        problems = validate_native(staging)
        problem = _run_check(["promtool", "check", "web-config", str(credentials.web_config)])
        problems += [problem] if problem else []
        if problems:
            raise ConfigError("the rendered configuration does not pass its checks, nothing was written:\n  "
                              + "\n  ".join(problems))
        entries = sorted({Path(rel).parts[0] for rel in files} | {"secrets"})
        _swap_in(staging, run_dir, entries)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    prometheus_file = run_dir / "prometheus.yml"
    alertmanager_config = run_dir / "alertmanager.yml"
    return RenderedNative(
        run_dir=run_dir,
        prometheus_config=prometheus_file,
        rules_dir=run_dir / "rules",
        alertmanager_config=alertmanager_config,
        templates_dir=run_dir / "templates",
        secrets_dir=run_dir / "secrets",
        grafana_provisioning_dir=run_dir / RUN_GRAFANA_PROVISIONING,
        grafana_dashboards_dir=run_dir / RUN_GRAFANA_DASHBOARDS,
        grafana_enabled=with_grafana,
        web_config=credentials.web_config,
        prometheus_args=prometheus_config.prometheus_flags(settings, prometheus_file, data_dir / "prometheus"),
        alertmanager_args=am.alertmanager_flags(settings, str(alertmanager_config), str(data_dir / "alertmanager")),
        files=[run_dir / rel for rel in (*files, *secrets)],
        ha_args=_ha_args(settings, run_dir, data_dir),
    )


def _ha_args(settings: Settings, run_dir: Path, data_dir: Path) -> dict[str, list[str]]:
    """Topology "ha": the command lines of the second replica, the other members and VictoriaMetrics."""
    stack = settings.stack
    if not stack.ha:
        return {}
    args: dict[str, list[str]] = {}
    for name in stack.prometheus_replicas():
        if name != "prometheus":
            args[name] = prometheus_config.prometheus_flags(
                settings, run_dir / f"{name}.yml", data_dir / name,
                listen=f"{stack.bind_address}:{getattr(stack.ports, name)}")
    for name in stack.alertmanager_members()[1:]:
        args[name] = am.alertmanager_flags(settings, str(run_dir / "alertmanager.yml"), str(data_dir / name),
                                           member=name)
    args["victoria_metrics"] = prometheus_config.victoria_metrics_flags(
        settings, data_dir / "victoria_metrics", run_dir / VM_RELABEL_FILE)
    return args
